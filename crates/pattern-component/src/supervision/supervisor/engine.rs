//! The task that owns a supervisor's children: commands from the handles,
//! the ends of runs, restarts after their backoff.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pattern_error::{Error, Kind};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::child::{Child, ChildInfo, ChildState};
use super::{Config, Escalation};
use crate::lifecycle::StopOutcome;
use crate::lifecycle::panic_message;
use crate::supervision::{Restart, RestartBudget, Strategy};
use crate::time::deadline;

/// What the handles ask of the engine; each is answered once applied.
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
    StopAll {
        reply: oneshot::Sender<Vec<(String, StopOutcome)>>,
    },
    /// Starts every child that is down (a temporary one only if it never
    /// ran) with a fresh budget: the supervisor runs again.
    StartAll { reply: oneshot::Sender<()> },
}

/// What the handles read without asking the engine.
pub(super) struct Shared {
    /// Every child, in start order.
    pub(super) children: Mutex<Vec<ChildInfo>>,
    /// Why the supervisor gave up, while it stays down.
    pub(super) gave_up: watch::Sender<Option<String>>,
}

impl Shared {
    pub(super) fn children(&self) -> std::sync::MutexGuard<'_, Vec<ChildInfo>> {
        self.children.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A run ended: how.
struct Ended {
    generation: u64,
    failure: Option<String>,
}

/// A running run of a child.
struct Instance {
    generation: u64,
    stop: CancellationToken,
    /// Cancelled once the run's task has ended, before its `Ended` is sent.
    done: CancellationToken,
    abort: AbortHandle,
}

struct Slot {
    child: Child,
    instance: Option<Instance>,
    /// When it starts again (its own backoff, or its group's).
    restart_at: Option<Instant>,
    /// Its own budget ([`Escalation::Child`]).
    budget: RestartBudget,
    /// Whether it has run since it was added.
    ran: bool,
}

pub(super) struct Engine {
    config: Config,
    slots: Vec<Slot>,
    /// The supervisor's budget ([`Escalation::Supervisor`]).
    budget: RestartBudget,
    generation: u64,
    commands: mpsc::Receiver<Command>,
    ended_tx: mpsc::Sender<Ended>,
    ended_rx: mpsc::Receiver<Ended>,
    shared: Arc<Shared>,
}

impl Engine {
    pub(super) fn new(
        config: Config,
        commands: mpsc::Receiver<Command>,
        shared: Arc<Shared>,
    ) -> Self {
        // A run sends one `Ended`; a full channel only delays the task that
        // sends it (the engine never waits for a send).
        let (ended_tx, ended_rx) = mpsc::channel(64);
        Self {
            budget: config.budget(),
            config,
            slots: Vec::new(),
            generation: 0,
            commands,
            ended_tx,
            ended_rx,
            shared,
        }
    }

    pub(super) async fn run(mut self) {
        loop {
            let due = self.slots.iter().filter_map(|s| s.restart_at).min();
            tokio::select! {
                biased;
                Some(ended) = self.ended_rx.recv() => self.on_ended(ended).await,
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    // Every handle is gone: nobody can see or stop the
                    // children any more.
                    None => {
                        self.stop_all().await;
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

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Add {
                child,
                replace,
                reply,
            } => {
                let _ = reply.send(self.add(child, replace).await);
            }
            Command::Remove { name, reply } => {
                let removed = match self.index(&name) {
                    Ok(i) => {
                        let outcome = self.stop(i).await;
                        self.slots.remove(i);
                        self.shared.children().remove(i);
                        Ok(outcome)
                    }
                    Err(err) => Err(err),
                };
                let _ = reply.send(removed);
            }
            Command::Stop { name, reply } => {
                let stopped = match self.index(&name) {
                    Ok(i) => Ok(self.stop(i).await),
                    Err(err) => Err(err),
                };
                let _ = reply.send(stopped);
            }
            Command::Restart { name, reply } => {
                let restarted = match self.index(&name) {
                    Ok(i) => {
                        self.stop(i).await;
                        // An operator's restart: the child's budget starts over.
                        self.slots[i].budget = self.config.budget();
                        self.start(i);
                        Ok(())
                    }
                    Err(err) => Err(err),
                };
                let _ = reply.send(restarted);
            }
            Command::StopAll { reply } => {
                let _ = reply.send(self.stop_all().await);
            }
            Command::StartAll { reply } => {
                self.budget = self.config.budget();
                self.shared.gave_up.send_replace(None);
                for i in 0..self.slots.len() {
                    let slot = &self.slots[i];
                    let temporary_ran = slot.child.restart == Restart::Never && slot.ran;
                    if slot.instance.is_none() && !temporary_ran {
                        self.start(i);
                    }
                }
                let _ = reply.send(());
            }
        }
    }

    async fn add(&mut self, child: Child, replace: bool) -> Result<(), Error> {
        let info = ChildInfo {
            name: child.name.to_string(),
            state: ChildState::Stopped,
            restarts: 0,
            last_error: None,
            started_at: None,
        };
        let slot = Slot {
            child,
            instance: None,
            restart_at: None,
            budget: self.config.budget(),
            ran: false,
        };
        let i = match self.index(&slot.child.name) {
            Ok(_) if !replace => {
                return Err(Error::new(
                    Kind::Conflict,
                    format!("a child named {:?} is already supervised", info.name),
                ));
            }
            Ok(i) => {
                // One instance per name: the old run ends first.
                self.stop(i).await;
                self.slots[i] = slot;
                self.shared.children()[i] = info;
                i
            }
            Err(_) => {
                self.slots.push(slot);
                self.shared.children().push(info);
                self.slots.len() - 1
            }
        };
        self.start(i);
        Ok(())
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
        let ended = self.ended_tx.clone();
        tokio::spawn(async move {
            let failure = match task.await {
                Ok(Ok(())) => None,
                Ok(Err(err)) => Some(err.report().to_string()),
                Err(join) if join.is_panic() => Some(panic_message(join.into_panic())),
                Err(_) => Some("aborted".to_owned()),
            };
            done.cancel();
            let _ = ended
                .send(Ended {
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

    /// Stops child `i`: cancels a pending restart, asks its run to end and
    /// waits for at most its stop timeout, then aborts it. It stays
    /// `Stopped` (or `Failed`, if it had failed for good).
    async fn stop(&mut self, i: usize) -> StopOutcome {
        let slot = &mut self.slots[i];
        let waiting = slot.restart_at.take().is_some();
        let Some(instance) = slot.instance.take() else {
            if waiting {
                self.set(i, |info| info.state = ChildState::Stopped);
            }
            return StopOutcome::NotRunning;
        };
        instance.stop.cancel();
        let until = deadline(Instant::now(), self.stop_timeout(i));
        let outcome = end(&instance, until).await;
        self.stopped(i, &outcome);
        outcome
    }

    fn stop_timeout(&self, i: usize) -> Duration {
        self.slots[i]
            .child
            .stop_timeout
            .unwrap_or(self.config.stop_timeout)
    }

    fn stopped(&self, i: usize, outcome: &StopOutcome) {
        let name = &self.slots[i].child.name;
        if *outcome == StopOutcome::Abandoned {
            let timeout = self.stop_timeout(i);
            tracing::warn!(supervisor = %self.config.name, child = %name, ?timeout, "did not stop in time: aborted");
            self.set(i, |info| {
                info.state = ChildState::Stopped;
                info.last_error = Some(format!("aborted: did not stop within {timeout:?}"));
            });
        } else {
            self.set(i, |info| info.state = ChildState::Stopped);
        }
    }

    /// Stops every child: all at once under one-for-one (they are
    /// independent), else one at a time, last started first (as OTP does).
    async fn stop_all(&mut self) -> Vec<(String, StopOutcome)> {
        let mut outcomes = Vec::with_capacity(self.slots.len());
        if self.config.strategy == Strategy::OneForOne {
            let now = Instant::now();
            let mut running = Vec::new();
            for i in 0..self.slots.len() {
                self.slots[i].restart_at = None;
                match self.slots[i].instance.take() {
                    Some(instance) => {
                        instance.stop.cancel();
                        running.push((i, instance, deadline(now, self.stop_timeout(i))));
                    }
                    None => outcomes.push((i, StopOutcome::NotRunning)),
                }
            }
            for (i, instance, until) in running {
                let outcome = end(&instance, until).await;
                self.stopped(i, &outcome);
                outcomes.push((i, outcome));
            }
        } else {
            for i in (0..self.slots.len()).rev() {
                outcomes.push((i, self.stop(i).await));
            }
        }
        let mut children = self.shared.children();
        for (i, outcome) in &outcomes {
            if *outcome == StopOutcome::NotRunning && children[*i].state == ChildState::Restarting {
                children[*i].state = ChildState::Stopped;
            }
        }
        drop(children);
        outcomes.sort_by_key(|(i, _)| *i);
        outcomes
            .into_iter()
            .map(|(i, outcome)| (self.slots[i].child.name.to_string(), outcome))
            .collect()
    }

    async fn on_ended(&mut self, ended: Ended) {
        let Some(i) = self.slots.iter().position(|s| {
            s.instance
                .as_ref()
                .is_some_and(|r| r.generation == ended.generation)
        }) else {
            return; // a run already stopped or replaced
        };
        self.slots[i].instance = None;
        let name = self.slots[i].child.name.clone();
        let supervisor = self.config.name.clone();
        let failure = ended.failure;
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
        let budget = match self.config.escalation {
            Escalation::Child => &mut self.slots[i].budget,
            Escalation::Supervisor => &mut self.budget,
        };
        let Some(delay) = budget.restart(now) else {
            self.give_up(i).await;
            return;
        };
        // The group stops, last started first; a temporary member is
        // stopped and never started again.
        let at = deadline(now, delay);
        for j in self.group(i).into_iter().rev() {
            if j != i {
                if self.slots[j].instance.is_none() && self.slots[j].restart_at.is_none() {
                    continue; // down: stays down
                }
                self.stop(j).await;
                if self.slots[j].child.restart == Restart::Never {
                    continue;
                }
            }
            let slot = &mut self.slots[j];
            slot.restart_at = Some(slot.restart_at.map_or(at, |due| due.max(at)));
            self.set(j, |info| {
                info.state = ChildState::Restarting;
                info.restarts = info.restarts.saturating_add(1);
            });
        }
        tracing::info!(%supervisor, child = %name, ?delay, "restarting after backoff");
    }

    /// The children that restart when `i` fails, in start order; a child
    /// depends on those added before it.
    fn group(&self, i: usize) -> Vec<usize> {
        crate::supervision::group(self.config.strategy, i, self.slots.len(), |_, _| true)
    }

    /// The restart intensity is exhausted by child `i`.
    async fn give_up(&mut self, i: usize) {
        let name = self.slots[i].child.name.clone();
        let intensity = self.config.intensity;
        let why = format!(
            "child {name:?} failed past {} restarts within {:?}",
            intensity.max_restarts, intensity.within
        );
        tracing::error!(supervisor = %self.config.name, child = %name, "{why}; giving up");
        match self.config.escalation {
            Escalation::Child => {}
            Escalation::Supervisor => {
                self.stop_all().await;
                self.shared.gave_up.send_replace(Some(why));
            }
        }
        self.set(i, |info| info.state = ChildState::Failed);
    }

    /// Starts every child whose restart is due, in start order.
    fn restart_due(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            if self.slots[i].restart_at.is_some_and(|at| at <= now) {
                self.slots[i].restart_at = None;
                if self.slots[i].instance.is_none() {
                    self.start(i);
                }
            }
        }
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
