//! A supervisor of named children added and removed at run time (OTP's
//! dynamic supervisor), with the same strategies, intensity and backoff as
//! a system's components.

mod child;
mod engine;

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use pattern_error::{Error, Kind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use child::{Child, ChildInfo, ChildState};
use engine::{Command, Engine, Shared};

use super::{Intensity, RestartBudget, RestartStrategy};
use crate::supervision::StopOutcome;

/// Whose restarts the intensity counts, and what gives up when one more
/// is wanted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Escalation {
    /// The supervisor's restarts, all children together; past the
    /// intensity the supervisor gives up: it stops every child and reports
    /// it ([`Supervisor::gave_up`]; a nested supervisor's run fails, and
    /// its parent decides). OTP's rule. The default.
    #[default]
    Supervisor,
    /// Each child's own restarts; past the intensity that child stays
    /// [`Failed`](ChildState::Failed) and the others run on (independent
    /// jobs, as Akka's one-for-one counts them).
    Child,
}

#[derive(Clone, Debug)]
struct Config {
    name: Arc<str>,
    strategy: RestartStrategy,
    intensity: Intensity,
    escalation: Escalation,
    backoff: (Duration, Duration),
    stop_timeout: Duration,
}

impl Config {
    fn budget(&self) -> RestartBudget {
        RestartBudget::new(self.intensity, self.backoff.0, self.backoff.1)
    }
}

/// Settings of a [`Supervisor`]; start with [`Supervisor::builder`].
///
/// | setting | default |
/// | --- | --- |
/// | [`name`](Self::name) (in logs) | `supervisor` |
/// | [`strategy`](Self::strategy) | one for one |
/// | [`intensity`](Self::intensity) | 5 restarts in 60 s |
/// | [`escalation`](Self::escalation) | the supervisor gives up |
/// | [`restart_backoff`](Self::restart_backoff) | 100 ms, doubling, at most 10 s |
/// | [`stop_timeout`](Self::stop_timeout) (per child) | 10 s |
#[derive(Clone, Debug)]
#[must_use]
pub struct SupervisorBuilder {
    config: Config,
}

impl SupervisorBuilder {
    /// The name its logs carry.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into().into();
        self
    }

    /// Which children restart together.
    pub fn strategy(mut self, strategy: RestartStrategy) -> Self {
        self.config.strategy = strategy;
        self
    }

    /// At most `max` restarts within any `within`.
    pub fn intensity(mut self, max: u32, within: Duration) -> Self {
        self.config.intensity = Intensity {
            max_restarts: max,
            within,
        };
        self
    }

    /// Whose restarts the intensity counts.
    pub fn escalation(mut self, escalation: Escalation) -> Self {
        self.config.escalation = escalation;
        self
    }

    /// The backoff before a restart: from `min`, doubling to `max`,
    /// starting over after a run with no restart within the intensity
    /// window.
    pub fn restart_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.backoff = (min, max);
        self
    }

    /// How long a child may take to end once asked, unless it says
    /// otherwise ([`Child::stop_timeout`]).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.config.stop_timeout = timeout;
        self
    }

    /// The supervisor, with no children yet. Its task starts with the
    /// first call that needs it (inside a tokio runtime).
    pub fn build(self) -> Supervisor {
        // Commands wait here while the engine stops a child; a caller past
        // the bound waits for room.
        let (commands, rx) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            children: Mutex::new(Vec::new()),
            gave_up: watch::channel(None).0,
        });
        Supervisor {
            inner: Arc::new(Inner {
                name: self.config.name.clone(),
                commands,
                engine: Mutex::new(Some(Engine::new(self.config, rx, shared.clone()))),
                shared,
            }),
        }
    }
}

/// A supervisor of named children, added and removed at run time; cloning
/// shares it.
///
/// Each child is an async function of a stop token ([`Child`]). The
/// supervisor runs it as a task of its own (a panic is a failure), and when
/// a run ends applies the child's [`Restart`](super::Restart) policy and
/// its [`RestartStrategy`]: the failed child alone, every child, or the failed
/// child and those added after it are stopped (last added first) and
/// started again (in the order they were added) after the backoff.
///
/// What it guarantees, whatever the calls and failures and their timing
/// (checked by a property test over random strategies and schedules):
/// - a name runs at most one instance: a run starts only once the one
///   before it has ended, or been aborted after its stop timeout;
/// - a temporary child ([`Restart::Never`](super::Restart::Never)) runs
///   once: neither its own end nor its group's restart starts it again;
///   only an explicit [`restart`](Self::restart) does;
/// - no more than the intensity's `max_restarts` restarts within any
///   window of `within`: one more gives up (see [`Escalation`]);
/// - a stop waits at most the child's stop timeout, then aborts the run;
///   when every handle is dropped, the children are stopped (a child that
///   needs its supervisor holds a [`WeakSupervisor`], or it keeps it
///   alive);
/// - a child an operator stopped stays down: neither its group's restart
///   nor a new [`supervise`](Self::supervise) run starts it; only
///   [`restart`](Self::restart) does.
///
/// Calls are applied in the order they arrive and never wait for a child:
/// a slow stop holds up no other call, and a child may call its own
/// supervisor (a child stopping itself waits for its own end: it is
/// aborted at its stop timeout; return instead).
/// [`children`](Self::children) reads without asking.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), pattern_error::Error> {
/// use std::time::Duration;
/// use pattern_component::supervision::{Child, ChildState, RestartStrategy, Supervisor};
/// use pattern_error::{Error, Kind};
///
/// let supervisor = Supervisor::builder()
///     .strategy(RestartStrategy::OneForAll)
///     .intensity(3, Duration::from_secs(60))
///     .build();
/// supervisor
///     .add(Child::new("listener", |stop| async move {
///         stop.cancelled().await;
///         Ok(())
///     }))
///     .await?;
/// supervisor
///     .add(Child::new("consumer", |_stop| async {
///         tokio::time::sleep(Duration::from_secs(1)).await;
///         Err(Error::new(Kind::Unavailable, "broker connection lost"))
///     }))
///     .await?;
///
/// // The consumer fails every second; the listener restarts with it, and
/// // at the fourth failure within the minute the supervisor gives up.
/// tokio::time::sleep(Duration::from_secs(60)).await;
/// assert!(supervisor.gave_up().is_some());
/// let listener = supervisor.child("listener").unwrap();
/// assert_eq!((listener.state, listener.restarts), (ChildState::Stopped, 3));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    commands: mpsc::Sender<Command>,
    /// The engine until its task is spawned.
    engine: Mutex<Option<Engine>>,
    shared: Arc<Shared>,
}

impl Supervisor {
    /// A builder with the defaults.
    pub fn builder() -> SupervisorBuilder {
        SupervisorBuilder {
            config: Config {
                name: "supervisor".into(),
                strategy: RestartStrategy::default(),
                intensity: Intensity::default(),
                escalation: Escalation::default(),
                backoff: (Duration::from_millis(100), Duration::from_secs(10)),
                stop_timeout: Duration::from_secs(10),
            },
        }
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        let engine = self
            .inner
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(engine) = engine {
            tokio::spawn(engine.run());
        }
        let (reply, answer) = oneshot::channel();
        let gone = || {
            Error::new(
                Kind::Unavailable,
                format!(
                    "supervisor {:?} is not running (its runtime ended)",
                    self.inner.name
                ),
            )
        };
        self.inner
            .commands
            .send(command(reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }

    /// Adds `child` and starts it; [`Kind::Conflict`] if the name is taken.
    pub async fn add(&self, child: Child) -> Result<(), Error> {
        self.call(|reply| Command::Add {
            child,
            replace: false,
            reply,
        })
        .await?
    }

    /// Adds `child` and starts it, in place of the child of that name if
    /// there is one (stopped first; its place in the start order kept).
    /// [`Kind::Conflict`] when the child is stopped or removed while the
    /// old one stops: it stays, stopped (or is gone).
    pub async fn replace(&self, child: Child) -> Result<(), Error> {
        self.call(|reply| Command::Add {
            child,
            replace: true,
            reply,
        })
        .await?
    }

    /// Stops `name` and forgets it; [`Kind::NotFound`] if unknown.
    pub async fn remove(&self, name: &str) -> Result<StopOutcome, Error> {
        let name = name.to_owned();
        self.call(|reply| Command::Remove { name, reply }).await?
    }

    /// Stops `name` (a pending restart is cancelled) and keeps it, stopped;
    /// [`Kind::NotFound`] if unknown.
    pub async fn stop(&self, name: &str) -> Result<StopOutcome, Error> {
        let name = name.to_owned();
        self.call(|reply| Command::Stop { name, reply }).await?
    }

    /// Stops `name` if it runs and starts it again, with its restart budget
    /// starting over (whatever its policy or state: an operator's
    /// restart); [`Kind::NotFound`] if unknown, [`Kind::Conflict`] if a
    /// stop or a removal came while the old run was ending (it stays
    /// stopped).
    pub async fn restart(&self, name: &str) -> Result<(), Error> {
        let name = name.to_owned();
        self.call(|reply| Command::Restart { name, reply }).await?
    }

    /// Stops every child (all at once under one-for-one, else last added
    /// first, each once the one after it has stopped) and keeps them,
    /// stopped; how each went, in start order.
    pub async fn stop_all(&self) -> Vec<(String, StopOutcome)> {
        self.call(|reply| Command::StopAll { run: None, reply })
            .await
            .unwrap_or_default()
    }

    /// Every child, in start order.
    pub fn children(&self) -> Vec<ChildInfo> {
        self.inner.shared.children().clone()
    }

    /// One child.
    pub fn child(&self, name: &str) -> Option<ChildInfo> {
        self.inner
            .shared
            .children()
            .iter()
            .find(|info| info.name == name)
            .cloned()
    }

    /// Why the supervisor gave up ([`Escalation::Supervisor`]), until it
    /// supervises again (an operator's [`add`](Self::add),
    /// [`replace`](Self::replace) or [`restart`](Self::restart), or a new
    /// [`supervise`](Self::supervise) run, each with a fresh budget);
    /// `None` while it supervises.
    pub fn gave_up(&self) -> Option<String> {
        self.inner.shared.gave_up.borrow().clone()
    }

    /// Runs the supervisor as the run of a child of another: starts every
    /// child that is down (not one an operator stopped, nor a temporary one
    /// that ran) with a fresh restart budget, and supervises them until
    /// `stop` (then stops them: `Ok`) or until it gives up (an error, for
    /// the parent's policy). Dropped before it ends (aborted by its parent,
    /// say), it stops the children of its run, never those of a run after
    /// it.
    pub async fn supervise(&self, stop: CancellationToken) -> Result<(), Error> {
        let mut gave_up = self.inner.shared.gave_up.subscribe();
        let run = self.call(|reply| Command::StartAll { reply }).await?;
        let mut guard = StopOnDrop(Some((Arc::downgrade(&self.inner), run)));
        let outcome = tokio::select! {
            () = stop.cancelled() => Ok(()),
            why = gave_up.wait_for(Option::is_some) => Err(Error::new(
                Kind::Unavailable,
                format!(
                    "supervisor {:?} gave up: {}",
                    self.inner.name,
                    why.ok().and_then(|why| why.clone()).unwrap_or_default()
                ),
            )),
        };
        self.call(|reply| Command::StopAll {
            run: Some(run),
            reply,
        })
        .await?;
        guard.0 = None;
        outcome
    }

    /// This supervisor as a child named `name` of another
    /// ([`supervise`](Self::supervise) as its run): nested supervision.
    /// Give it a [stop timeout](Child::stop_timeout) its own children fit
    /// in.
    pub fn into_child(self, name: impl Into<String>) -> Child {
        Child::new(name, move |stop| {
            let supervisor = self.clone();
            async move { supervisor.supervise(stop).await }
        })
    }
}

/// Stops a nested supervisor's children when its run is dropped before it
/// ends (aborted by its parent, say): the stop is queued at once, behind
/// nothing a later run could send, and names its run.
struct StopOnDrop(Option<(Weak<Inner>, u64)>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let Some((inner, run)) = self.0.take() else {
            return;
        };
        let Some(inner) = inner.upgrade() else {
            return; // every handle gone: the engine stops the children
        };
        let (reply, _) = oneshot::channel();
        let command = Command::StopAll {
            run: Some(run),
            reply,
        };
        if let Err(mpsc::error::TrySendError::Full(command)) = inner.commands.try_send(command)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // The queue is full: wait for room (the run number keeps it
            // from stopping a later run).
            runtime.spawn(async move {
                let _ = inner.commands.send(command).await;
            });
        }
    }
}

/// A handle to a [`Supervisor`] that does not keep it alive: what a child
/// holds to reach its own supervisor (a child holding a [`Supervisor`]
/// keeps it, and so itself, running after every other handle is dropped).
#[derive(Clone, Debug)]
pub struct WeakSupervisor(Weak<Inner>);

impl WeakSupervisor {
    /// The supervisor, if a handle to it is still held.
    pub fn upgrade(&self) -> Option<Supervisor> {
        self.0.upgrade().map(|inner| Supervisor { inner })
    }
}

impl Supervisor {
    /// A handle that does not keep the supervisor alive.
    pub fn downgrade(&self) -> WeakSupervisor {
        WeakSupervisor(Arc::downgrade(&self.inner))
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("name", &self.inner.name)
            .field("children", &self.children())
            .finish()
    }
}
