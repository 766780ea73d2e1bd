//! The task that owns a supervisor's children: commands from the handles,
//! the ends of runs, restarts after their backoff.
//!
//! The engine never waits for a child: a stop is a task of its own that
//! reports back ([`Event::Stopped`]), and whatever waits for it (a caller's
//! reply, a restart, a replacement, a removal) is noted on the child until
//! then. So a child may call its own supervisor, and a slow stop holds up
//! nobody else.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use pattern_error::{Error, Kind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::child::{Child, ChildInfo, ChildState};
use super::{Config, Escalation};
use crate::supervision::{Restart, RestartBudget, RestartStrategy};
use crate::supervision::{StopOutcome, panic_message};
use crate::time::deadline;

/// What the handles ask of the engine; each is answered once done.
pub(super) enum Command {
    Add {
        child: Child,
        replace: bool,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Remove {
        name: String,
        reply: oneshot::Sender<Result<StopOutcome, Error>>,
    },
    Stop {
        name: String,
        reply: oneshot::Sender<Result<StopOutcome, Error>>,
    },
    Restart {
        name: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Stops every child; with `run`, only while that run of
    /// [`StartAll`](Command::StartAll) is the current one (a late stop of
    /// an old nested run leaves the new one alone).
    StopAll {
        run: Option<u64>,
        reply: oneshot::Sender<Vec<(String, StopOutcome)>>,
    },
    /// Starts every child that is down (not one an operator stopped, nor a
    /// temporary one that ran) with a fresh budget: the supervisor runs
    /// again. Answered with the run's number.
    StartAll { reply: oneshot::Sender<u64> },
}

/// What the handles read without asking the engine.
pub(super) struct Shared {
    /// Every child, in start order.
    pub(super) children: Mutex<Vec<ChildInfo>>,
    /// Why the supervisor gave up, until it supervises again.
    pub(super) gave_up: watch::Sender<Option<String>>,
}

impl Shared {
    pub(super) fn children(&self) -> std::sync::MutexGuard<'_, Vec<ChildInfo>> {
        self.children.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the engine's own tasks report.
enum Event {
    /// A run ended by itself (or was aborted by the runtime).
    Ended {
        generation: u64,
        failure: Option<String>,
    },
    /// A run asked to stop has ended, or been aborted.
    Stopped {
        generation: u64,
        outcome: StopOutcome,
    },
}

/// A running run of a child.
struct Instance {
    generation: u64,
    stop: CancellationToken,
    /// Cancelled once the run's task has ended, before its `Ended` is sent.
    done: CancellationToken,
    abort: AbortHandle,
}

/// A run asked to stop, until it has.
struct Stopping {
    generation: u64,
    /// Cancelled once it has stopped (the next in an ordered stop waits
    /// for it).
    finished: CancellationToken,
    /// Callers waiting for how it went.
    waiters: Vec<Waiter>,
}

/// A caller waiting for a stop.
enum Waiter {
    /// A caller of `stop` or `remove`.
    Call(oneshot::Sender<Result<StopOutcome, Error>>),
    /// One of the stops of `stop_all`.
    Part(oneshot::Sender<StopOutcome>),
}

impl Waiter {
    fn send(self, outcome: StopOutcome) {
        let _ = match self {
            Waiter::Call(reply) => reply.send(Ok(outcome)).map_err(drop),
            Waiter::Part(reply) => reply.send(outcome).map_err(drop),
        };
    }
}

struct Slot {
    child: Child,
    instance: Option<Instance>,
    stopping: Option<Stopping>,
    /// Start once the stopping run has ended (a restart or a replacement
    /// came meanwhile); the callers waiting for that start.
    start_after_stop: Option<Vec<oneshot::Sender<Result<(), Error>>>>,
    /// Forget it once the stopping run has ended.
    removing: bool,
    /// When it starts again (its own backoff, or its group's).
    restart_at: Option<Instant>,
    /// Its own restarts (counted against the intensity with
    /// [`Escalation::Child`]) and its backoff.
    budget: RestartBudget,
    /// Whether it has run since it was added.
    ran: bool,
    /// Stopped by an operator: a new run of the supervisor leaves it down.
    held: bool,
}

impl Slot {
    fn down(&self) -> bool {
        self.instance.is_none() && self.stopping.is_none() && self.restart_at.is_none()
    }
}

pub(super) struct Engine {
    config: Config,
    slots: Vec<Slot>,
    /// The supervisor's restarts ([`Escalation::Supervisor`]).
    budget: RestartBudget,
    generation: u64,
    /// The current run of [`Command::StartAll`].
    run: u64,
    commands: mpsc::Receiver<Command>,
    events_tx: mpsc::Sender<Event>,
    events_rx: mpsc::Receiver<Event>,
    shared: Arc<Shared>,
}

impl Engine {
    pub(super) fn new(
        config: Config,
        commands: mpsc::Receiver<Command>,
        shared: Arc<Shared>,
    ) -> Self {
        // A run sends one `Ended` or one `Stopped`; a full channel only
        // delays the task that sends it (the engine never waits for one).
        let (events_tx, events_rx) = mpsc::channel(64);
        Self {
            budget: config.budget(),
            config,
            slots: Vec::new(),
            generation: 0,
            run: 0,
            commands,
            events_tx,
            events_rx,
            shared,
        }
    }

    pub(super) async fn run(mut self) {
        loop {
            let due = self.slots.iter().filter_map(|s| s.restart_at).min();
            tokio::select! {
                biased;
                Some(event) = self.events_rx.recv() => match event {
                    Event::Ended { generation, failure } => self.on_ended(generation, failure),
                    Event::Stopped { generation, outcome } => self.on_stopped(generation, outcome),
                },
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    // Every handle is gone: nobody can see or stop the
                    // children any more. The stops run on without us.
                    None => {
                        self.stop_all();
                        return;
                    }
                },
                () = sleep_until(due), if due.is_some() => self.restart_due(),
            }
        }
    }

    fn index(&self, name: &str) -> Result<usize, Error> {
        self.slots
            .iter()
            .position(|s| *s.child.name == *name)
            .ok_or_else(|| Error::new(Kind::NotFound, format!("no child named {name:?}")))
    }

    fn set(&self, i: usize, f: impl FnOnce(&mut ChildInfo)) {
        if let Some(info) = self.shared.children().get_mut(i) {
            f(info);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Add {
                child,
                replace,
                reply,
            } => self.add(child, replace, reply),
            Command::Remove { name, reply } => match self.index(&name) {
                Ok(i) => {
                    self.cancel_start(i, "removed before it started");
                    self.slots[i].removing = true;
                    if self.stop_and_wait(i) {
                        self.slots[i].waiters().push(Waiter::Call(reply));
                    } else {
                        self.forget(i);
                        let _ = reply.send(Ok(StopOutcome::NotRunning));
                    }
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Command::Stop { name, reply } => match self.index(&name) {
                Ok(i) => {
                    self.slots[i].held = true;
                    self.cancel_start(i, "stopped before it started");
                    if self.stop_and_wait(i) {
                        self.slots[i].waiters().push(Waiter::Call(reply));
                    } else {
                        let _ = reply.send(Ok(StopOutcome::NotRunning));
                    }
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Command::Restart { name, reply } => match self.index(&name) {
                Ok(i) => {
                    // An operator's restart: the child's budget starts over,
                    // and a supervisor that gave up supervises again.
                    self.slots[i].held = false;
                    self.slots[i].removing = false;
                    self.slots[i].budget = self.config.budget();
                    self.revive();
                    self.begin_stop(i, None);
                    self.start_when_stopped(i, Some(reply));
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Command::StopAll { run, reply } => {
                if run.is_some_and(|run| run != self.run) {
                    let _ = reply.send(Vec::new());
                    return;
                }
                let outcomes = self.stop_all();
                tokio::spawn(async move {
                    let mut all = Vec::with_capacity(outcomes.len());
                    for (name, outcome) in outcomes {
                        let outcome = match outcome {
                            Some(outcome) => outcome.await.unwrap_or(StopOutcome::Abandoned),
                            None => StopOutcome::NotRunning,
                        };
                        all.push((name, outcome));
                    }
                    let _ = reply.send(all);
                });
            }
            Command::StartAll { reply } => {
                self.run += 1;
                self.budget = self.config.budget();
                self.shared.gave_up.send_replace(None);
                for i in 0..self.slots.len() {
                    let slot = &self.slots[i];
                    let temporary_ran = slot.child.restart == Restart::Never && slot.ran;
                    if slot.instance.is_none() && !slot.held && !slot.removing && !temporary_ran {
                        self.start_when_stopped(i, None);
                    }
                }
                let _ = reply.send(self.run);
            }
        }
    }

    fn add(&mut self, child: Child, replace: bool, reply: oneshot::Sender<Result<(), Error>>) {
        let info = ChildInfo {
            name: child.name.to_string(),
            state: ChildState::Stopped,
            restarts: 0,
            last_error: None,
            started_at: None,
        };
        let budget = self.config.budget();
        let i = match self.index(&child.name) {
            Ok(_) if !replace => {
                let _ = reply.send(Err(Error::new(
                    Kind::Conflict,
                    format!("a child named {:?} is already supervised", info.name),
                )));
                return;
            }
            Ok(i) => {
                // One instance per name: the old run ends first.
                let slot = &mut self.slots[i];
                slot.child = child;
                slot.budget = budget;
                slot.ran = false;
                slot.held = false;
                slot.removing = false;
                let state = self.shared.children()[i].state;
                self.shared.children()[i] = ChildInfo { state, ..info };
                self.begin_stop(i, None);
                i
            }
            Err(_) => {
                self.slots.push(Slot {
                    child,
                    instance: None,
                    stopping: None,
                    start_after_stop: None,
                    removing: false,
                    restart_at: None,
                    budget,
                    ran: false,
                    held: false,
                });
                self.shared.children().push(info);
                self.slots.len() - 1
            }
        };
        self.revive();
        self.start_when_stopped(i, Some(reply));
    }

    /// Starts child `i` now if nothing of it runs, else once its stopping
    /// run has ended; `reply`, if a caller waits, is answered at the start.
    fn start_when_stopped(&mut self, i: usize, reply: Option<oneshot::Sender<Result<(), Error>>>) {
        let slot = &mut self.slots[i];
        slot.restart_at = None;
        if slot.stopping.is_some() {
            let waiting = slot.start_after_stop.get_or_insert_with(Vec::new);
            waiting.extend(reply);
            return;
        }
        if slot.instance.is_none() {
            self.start(i);
        }
        if let Some(reply) = reply {
            let _ = reply.send(Ok(()));
        }
    }

    /// Answers the callers waiting for child `i` to start after its stop,
    /// with `why` it will not.
    fn cancel_start(&mut self, i: usize, why: &str) {
        for reply in self.slots[i].start_after_stop.take().unwrap_or_default() {
            let _ = reply.send(Err(Error::new(Kind::Conflict, why.to_owned())));
        }
    }

    /// A supervisor that gave up supervises again (an operator brought a
    /// child back), with a fresh budget.
    fn revive(&mut self) {
        if self.shared.gave_up.borrow().is_some() {
            self.budget = self.config.budget();
            self.shared.gave_up.send_replace(None);
        }
    }

    /// Forgets child `i`.
    fn forget(&mut self, i: usize) {
        self.slots.remove(i);
        self.shared.children().remove(i);
    }

    /// Starts a run of child `i` (which has none).
    fn start(&mut self, i: usize) {
        self.generation += 1;
        let generation = self.generation;
        let slot = &mut self.slots[i];
        slot.restart_at = None;
        slot.ran = true;
        let (stop, done) = (CancellationToken::new(), CancellationToken::new());
        let run = slot.child.run.clone();
        let token = stop.clone();
        // The function is called inside the task: a panic there is the
        // run's failure, not the engine's.
        let task = tokio::spawn(async move { run(token).await });
        slot.instance = Some(Instance {
            generation,
            stop,
            done: done.clone(),
            abort: task.abort_handle(),
        });
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let failure = match task.await {
                Ok(Ok(())) => None,
                Ok(Err(err)) => Some(err.report().to_string()),
                Err(join) if join.is_panic() => Some(panic_message(join.into_panic())),
                Err(_) => Some("aborted".to_owned()),
            };
            done.cancel();
            let _ = events
                .send(Event::Ended {
                    generation,
                    failure,
                })
                .await;
        });
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs());
        self.set(i, |info| {
            info.state = ChildState::Running;
            info.started_at = now;
        });
        tracing::debug!(supervisor = %self.config.name, child = %self.slots[i].child.name, "started");
    }

    /// Asks child `i`'s run to stop, after `after` is cancelled if given
    /// (an ordered stop), and cancels a pending restart. Returns what is
    /// cancelled once it has stopped (already cancelled if nothing ran).
    fn begin_stop(&mut self, i: usize, after: Option<CancellationToken>) -> CancellationToken {
        let slot = &mut self.slots[i];
        let waiting = slot.restart_at.take().is_some();
        if let Some(stopping) = &slot.stopping {
            return stopping.finished.clone();
        }
        let finished = CancellationToken::new();
        let Some(instance) = slot.instance.take() else {
            if waiting {
                self.set(i, |info| info.state = ChildState::Stopped);
            }
            finished.cancel();
            return finished;
        };
        slot.stopping = Some(Stopping {
            generation: instance.generation,
            finished: finished.clone(),
            waiters: Vec::new(),
        });
        let timeout = slot.child.stop_timeout.unwrap_or(self.config.stop_timeout);
        let (events, done) = (self.events_tx.clone(), finished.clone());
        tokio::spawn(async move {
            if let Some(after) = after {
                after.cancelled().await;
            }
            instance.stop.cancel();
            let outcome = end(&instance, deadline(Instant::now(), timeout)).await;
            done.cancel();
            let _ = events
                .send(Event::Stopped {
                    generation: instance.generation,
                    outcome,
                })
                .await;
        });
        self.set(i, |info| info.state = ChildState::Stopping);
        finished
    }

    /// [`begin_stop`](Self::begin_stop); whether there is a stop to wait
    /// for (add a waiter), not when nothing ran.
    fn stop_and_wait(&mut self, i: usize) -> bool {
        self.begin_stop(i, None);
        self.slots[i].stopping.is_some()
    }

    /// Stops every child: all at once under one-for-one (they are
    /// independent), else one at a time, last started first (as OTP does).
    /// Each child's name, and how its stop went once it has.
    #[allow(clippy::type_complexity)]
    fn stop_all(&mut self) -> Vec<(String, Option<oneshot::Receiver<StopOutcome>>)> {
        let ordered = self.config.strategy != RestartStrategy::OneForOne;
        let mut after = None;
        let mut outcomes = Vec::with_capacity(self.slots.len());
        for i in (0..self.slots.len()).rev() {
            self.cancel_start(i, "stopped with every child before it started");
            let finished = self.begin_stop(i, if ordered { after.take() } else { None });
            after = Some(finished);
            let name = self.slots[i].child.name.to_string();
            let outcome = self.slots[i].stopping.is_some().then(|| {
                let (tx, rx) = oneshot::channel();
                self.slots[i].waiters().push(Waiter::Part(tx));
                rx
            });
            outcomes.push((name, outcome));
        }
        outcomes.reverse();
        outcomes
    }

    fn on_stopped(&mut self, generation: u64, outcome: StopOutcome) {
        let Some(i) = self.slots.iter().position(|s| {
            s.stopping
                .as_ref()
                .is_some_and(|s| s.generation == generation)
        }) else {
            return;
        };
        let stopping = self.slots[i]
            .stopping
            .take()
            .unwrap_or_else(|| unreachable!());
        let name = self.slots[i].child.name.clone();
        if outcome == StopOutcome::Abandoned {
            let timeout = self.slots[i]
                .child
                .stop_timeout
                .unwrap_or(self.config.stop_timeout);
            tracing::warn!(supervisor = %self.config.name, child = %name, ?timeout, "did not stop in time: aborted");
            self.set(i, |info| {
                info.last_error = Some(format!("aborted: did not stop within {timeout:?}"));
            });
        }
        if self.slots[i].removing {
            self.forget(i);
        } else if let Some(replies) = self.slots[i].start_after_stop.take() {
            self.start(i);
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
        } else {
            let state = if self.slots[i].restart_at.is_some() {
                ChildState::Restarting
            } else {
                ChildState::Stopped
            };
            self.set(i, |info| info.state = state);
        }
        for waiter in stopping.waiters {
            waiter.send(outcome.clone());
        }
    }

    fn on_ended(&mut self, generation: u64, failure: Option<String>) {
        let Some(i) = self.slots.iter().position(|s| {
            s.instance
                .as_ref()
                .is_some_and(|r| r.generation == generation)
        }) else {
            return; // a run already stopped or replaced
        };
        self.slots[i].instance = None;
        let name = self.slots[i].child.name.clone();
        let supervisor = self.config.name.clone();
        let restart = self.slots[i].child.restart.restarts(failure.is_some());
        match &failure {
            Some(why) => {
                tracing::warn!(%supervisor, child = %name, error = %why, restart, "child failed")
            }
            None => tracing::info!(%supervisor, child = %name, restart, "child ended"),
        }
        if failure.is_some() {
            self.set(i, |info| info.last_error = failure.clone());
        }
        if !restart {
            let state = if failure.is_some() {
                ChildState::Failed
            } else {
                ChildState::Stopped
            };
            self.set(i, |info| info.state = state);
            return;
        }
        let now = Instant::now();
        let allowed = match self.config.escalation {
            Escalation::Child => self.slots[i].budget.allow(now),
            Escalation::Supervisor => self.budget.allow(now),
        };
        if !allowed {
            self.give_up(i);
            return;
        }
        let delay = self.slots[i].budget.backoff(now);
        // The group stops, last started first; a temporary member is
        // stopped and never started again.
        let at = deadline(now, delay);
        let mut after = None;
        for j in self.group(i).into_iter().rev() {
            let own = self.slots[j].restart_at;
            if j != i {
                if self.slots[j].down() || self.slots[j].held {
                    continue; // down, or stopped by an operator: stays down
                }
                after = Some(self.begin_stop(j, after.take()));
                if self.slots[j].child.restart == Restart::Never {
                    continue;
                }
            }
            let slot = &mut self.slots[j];
            slot.restart_at = Some(own.map_or(at, |due| due.max(at)));
            let stopping = slot.stopping.is_some();
            self.set(j, |info| {
                if !stopping {
                    info.state = ChildState::Restarting;
                }
                if own.is_none() {
                    info.restarts = info.restarts.saturating_add(1);
                }
            });
        }
        tracing::info!(%supervisor, child = %name, ?delay, "restarting after backoff");
    }

    /// The children that restart when `i` fails, in start order; a child
    /// depends on those added before it.
    fn group(&self, i: usize) -> Vec<usize> {
        crate::supervision::group(self.config.strategy, i, self.slots.len(), |_, _| true)
    }

    /// The restart intensity is exhausted by child `i`: per child, it stays
    /// failed and the rest of its group stops with it (one for all: every
    /// child); for the supervisor, every child stops and the supervisor
    /// reports it.
    fn give_up(&mut self, i: usize) {
        let name = self.slots[i].child.name.clone();
        let intensity = self.config.intensity;
        let why = format!(
            "child {name:?} failed past {} restarts within {:?}",
            intensity.max_restarts, intensity.within
        );
        tracing::error!(supervisor = %self.config.name, child = %name, "{why}; giving up");
        match self.config.escalation {
            Escalation::Child => {
                let mut after = None;
                for j in self.group(i).into_iter().rev() {
                    if j != i {
                        after = Some(self.begin_stop(j, after.take()));
                    }
                }
            }
            Escalation::Supervisor => {
                self.stop_all();
                self.shared.gave_up.send_replace(Some(why));
            }
        }
        self.set(i, |info| info.state = ChildState::Failed);
    }

    /// Starts every child whose restart is due (once its stop is through,
    /// if it is still stopping), in start order.
    fn restart_due(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].restart_at.is_some_and(|at| at <= now) {
                self.start_when_stopped(i, None);
            }
        }
    }
}

impl Slot {
    /// The callers waiting for its stop (it is stopping).
    fn waiters(&mut self) -> &mut Vec<Waiter> {
        &mut self
            .stopping
            .as_mut()
            .unwrap_or_else(|| unreachable!("waiters are added to a stopping child"))
            .waiters
    }
}

/// Waits until `instance` has ended or `until` has passed, then aborts it.
async fn end(instance: &Instance, until: Instant) -> StopOutcome {
    if tokio::time::timeout_at(until, instance.done.cancelled())
        .await
        .is_ok()
    {
        return StopOutcome::Stopped;
    }
    instance.abort.abort();
    instance.done.cancelled().await;
    StopOutcome::Abandoned
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
