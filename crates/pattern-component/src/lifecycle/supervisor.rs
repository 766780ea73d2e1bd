//! The task that owns a running system: restarts, escalation, shutdown.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use pattern_error::Error;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::plan::{ComponentState, Plan, Shared, start_error};
use super::report::{StopReason, StopRecord, StopReport};
use crate::component::StartContext;
use crate::ports::{PortSpec, Ports, bind};
use crate::supervision::StopOutcome;
use crate::supervision::{Backoff, Restart, RestartBudget, panic_message};
use crate::time::deadline;

/// How a component's task ended.
#[derive(Debug)]
enum Ending {
    Returned,
    Failed(String),
    /// Aborted by the supervisor itself.
    Aborted,
}

#[derive(Debug)]
enum Event {
    /// A task ended (or a start failed) in generation `generation`.
    Ended {
        slot: usize,
        generation: u64,
        ending: Ending,
    },
    /// The backoff after `slot`'s failure in `generation` is over.
    Restart { slot: usize, generation: u64 },
}

struct Slot {
    /// Bumped at every start attempt; events of older generations are stale.
    generation: u64,
    /// Set while started (cancelled to stop it).
    stop: Option<CancellationToken>,
    /// The task, if the component has one and it runs.
    task: Option<AbortHandle>,
    /// Addresses bound at the first start, bound again on restarts.
    bound_at: Vec<PortSpec>,
    /// Its backoff (the system's budget counts the restarts).
    backoff: Backoff,
}

pub(crate) struct Supervisor {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    ports: Ports,
    shutdown: CancellationToken,
    slots: Vec<Slot>,
    tx: mpsc::Sender<Event>,
    rx: mpsc::Receiver<Event>,
    pending: VecDeque<Event>,
    /// The system's restarts within the intensity window.
    budget: RestartBudget,
}

impl Supervisor {
    pub(crate) fn new(
        plan: Arc<Plan>,
        shared: Arc<Shared>,
        ports: Ports,
        shutdown: CancellationToken,
    ) -> Self {
        let n = plan.entries.len();
        // Each start makes at most one `Ended`, each failure at most one
        // `Restart`: a few per component is plenty.
        let (tx, rx) = mpsc::channel(4 * n + 8);
        Self {
            slots: (0..n)
                .map(|_| Slot {
                    generation: 0,
                    stop: None,
                    task: None,
                    bound_at: Vec::new(),
                    backoff: Backoff::new(plan.intensity.within, plan.backoff.0, plan.backoff.1),
                })
                .collect(),
            budget: RestartBudget::new(plan.intensity, plan.backoff.0, plan.backoff.1),
            plan,
            shared,
            ports,
            shutdown,
            tx,
            rx,
            pending: VecDeque::new(),
        }
    }

    fn name(&self, i: usize) -> &str {
        &self.plan.entries[i].name
    }

    /// Binds every port, then starts every component in order; on failure,
    /// stops the started ones in reverse order.
    pub(crate) async fn start_all(&mut self) -> Result<(), Error> {
        let mut bound = Vec::with_capacity(self.slots.len());
        for (i, entry) in self.plan.entries.iter().enumerate() {
            let listeners = bind(&entry.name, &entry.ports, &self.ports)?;
            self.slots[i].bound_at = entry
                .ports
                .iter()
                .map(|spec| {
                    PortSpec::new(
                        spec.name.clone(),
                        self.ports
                            .addr(&entry.name, &spec.name)
                            .unwrap_or(spec.addr),
                    )
                })
                .collect();
            bound.push(listeners);
        }
        let deadline = deadline(Instant::now(), self.plan.start_all_timeout);
        for (i, listeners) in bound.into_iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(err) = self.start_slot(i, listeners, left).await {
                tracing::error!(component = self.name(i), error = %err.report(), "start failed; stopping what started");
                let deadline = crate::time::deadline(Instant::now(), self.plan.stop_all_timeout);
                for j in (0..i).rev() {
                    self.stop_slot(j, deadline).await;
                }
                self.shared.live.store(false, Ordering::Release);
                return Err(err);
            }
        }
        Ok(())
    }

    /// Starts component `i` within `budget` (and its own start timeout).
    async fn start_slot(
        &mut self,
        i: usize,
        listeners: crate::ports::Bound,
        budget: Duration,
    ) -> Result<(), Error> {
        let entry = &self.plan.entries[i];
        let slot = &mut self.slots[i];
        slot.generation += 1;
        let generation = slot.generation;
        // Not a child of the system's token: at shutdown each component is
        // told to stop in turn, dependents first.
        let stop = CancellationToken::new();
        let ctx = StartContext::new(
            entry.name.clone(),
            stop.clone(),
            self.ports.clone(),
            listeners,
        );
        self.shared.set_state(i, ComponentState::Starting);
        tracing::info!(component = %entry.name, "starting");
        let started = Instant::now();
        let timeout = self.plan.start_timeout(i).min(budget);
        let running = match tokio::time::timeout(timeout, entry.component.start(ctx)).await {
            Ok(Ok(running)) => running,
            Ok(Err(err)) => {
                stop.cancel();
                return Err(start_error(&entry.name, Ok(err)));
            }
            Err(_) => {
                stop.cancel();
                return Err(start_error(&entry.name, Err(timeout)));
            }
        };
        slot.stop = Some(stop);
        if let Some(task) = running.task {
            let handle = tokio::spawn(task);
            slot.task = Some(handle.abort_handle());
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let ending = match handle.await {
                    Ok(Ok(())) => Ending::Returned,
                    Ok(Err(err)) => Ending::Failed(err.report().to_string()),
                    Err(join) if join.is_panic() => {
                        Ending::Failed(panic_message(join.into_panic()))
                    }
                    Err(_) => Ending::Aborted,
                };
                // The receiver is gone only when the supervisor has finished.
                let _ = tx
                    .send(Event::Ended {
                        slot: i,
                        generation,
                        ending,
                    })
                    .await;
            });
        }
        self.shared.set_state(i, ComponentState::Running);
        tracing::info!(component = %entry.name, took = ?started.elapsed(), "started");
        Ok(())
    }

    /// Stops component `i` if it is started: cancels its token, calls its
    /// `stop`, waits for its task; all before `deadline` and its own stop
    /// timeout, else abandons it.
    async fn stop_slot(&mut self, i: usize, deadline: Instant) -> StopRecord {
        let started = Instant::now();
        let name = self.name(i).to_owned();
        let Some(stop) = self.slots[i].stop.take() else {
            return StopRecord {
                name,
                outcome: StopOutcome::NotRunning,
                took: Duration::ZERO,
            };
        };
        let until = deadline.min(crate::time::deadline(started, self.plan.stop_timeout(i)));
        tracing::info!(component = %name, "stopping");
        stop.cancel();
        let component = self.plan.entries[i].component.clone();
        let mut outcome = match tokio::time::timeout_at(until, component.stop()).await {
            Ok(Ok(())) => StopOutcome::Stopped,
            Ok(Err(err)) => StopOutcome::Failed(err.report().to_string()),
            Err(_) => StopOutcome::Abandoned,
        };
        if let Some(task) = self.slots[i].task.take() {
            let generation = self.slots[i].generation;
            if !self.wait_for_end(i, generation, until).await {
                task.abort();
                outcome = StopOutcome::Abandoned;
            }
        }
        let took = started.elapsed();
        match &outcome {
            StopOutcome::Abandoned => {
                tracing::warn!(component = %name, ?took, "did not stop in time; abandoned")
            }
            StopOutcome::Failed(why) => {
                tracing::warn!(component = %name, ?took, error = %why, "stop failed")
            }
            _ => tracing::info!(component = %name, ?took, "stopped"),
        }
        self.shared.set_state(i, ComponentState::Stopped);
        StopRecord {
            name,
            outcome,
            took,
        }
    }

    /// Waits for the end of `slot`'s task of `generation`, keeping other
    /// events for later. False if `until` passes first.
    async fn wait_for_end(&mut self, slot: usize, generation: u64, until: Instant) -> bool {
        let matches = |e: &Event| matches!(e, Event::Ended { slot: s, generation: g, .. } if *s == slot && *g == generation);
        if let Some(at) = self.pending.iter().position(matches) {
            self.pending.remove(at);
            return true;
        }
        loop {
            match tokio::time::timeout_at(until, self.rx.recv()).await {
                Ok(Some(Event::Ended {
                    slot: s,
                    generation: g,
                    ..
                })) if s == slot && g == generation => {
                    return true;
                }
                Ok(Some(other)) => self.pending.push_back(other),
                Ok(None) | Err(_) => return false,
            }
        }
    }

    /// Supervises until shutdown, then stops everything.
    pub(crate) async fn run(mut self) -> StopReport {
        loop {
            let event = match self.pending.pop_front() {
                Some(event) => event,
                None => tokio::select! {
                    biased;
                    () = self.shutdown.cancelled() => break,
                    event = self.rx.recv() => match event {
                        Some(event) => event,
                        None => break,
                    },
                },
            };
            if self.shutdown.is_cancelled() {
                break;
            }
            match event {
                Event::Ended {
                    slot,
                    generation,
                    ending,
                } if generation == self.slots[slot].generation => {
                    self.on_end(slot, ending).await;
                }
                Event::Restart { slot, generation }
                    if generation == self.slots[slot].generation =>
                {
                    self.restart(slot).await;
                }
                _ => {} // from a generation already replaced
            }
        }
        self.stop_all().await
    }

    /// Component `i` ended: settled as exited or failed, or restarted with
    /// its group after its backoff, or, past the restart intensity, the
    /// whole system gives up.
    async fn on_end(&mut self, i: usize, ending: Ending) {
        self.slots[i].stop = None;
        self.slots[i].task = None;
        let name = self.name(i).to_owned();
        let failed = match ending {
            Ending::Returned => None,
            Ending::Failed(why) => Some(why),
            Ending::Aborted => Some("aborted".to_owned()),
        };
        let restart = self.plan.entries[i]
            .options
            .restart
            .restarts(failed.is_some());
        match &failed {
            Some(why) => {
                tracing::warn!(component = %name, error = %why, restart, "component failed")
            }
            None => tracing::info!(component = %name, restart, "component ended"),
        }
        if !restart {
            let state = failed.map_or(ComponentState::Exited, ComponentState::Failed);
            self.shared.set_state(i, state);
            return;
        }
        let now = Instant::now();
        if !self.budget.allow(now) {
            self.give_up(i, &name, failed.unwrap_or_default(), now);
            return;
        }
        // The delay is the failed component's own: a flapping neighbour
        // does not stretch it.
        let delay = self.slots[i].backoff.next(now);
        self.stop_group(i).await;
        tracing::info!(component = %name, ?delay, "restarting after backoff");
        self.restart_after(i, delay);
    }

    /// Too many restarts within the intensity's window: component `i`
    /// stays failed and the system stops, escalated.
    fn give_up(&mut self, i: usize, name: &str, why_failed: String, now: Instant) {
        let why = format!(
            "component {name:?} failed after {} restarts within {:?}; giving up",
            self.budget.restarts_within(now),
            self.plan.intensity.within
        );
        tracing::error!(component = %name, "{why}");
        self.shared.set_state(i, ComponentState::Failed(why_failed));
        self.shared
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(StopReason::Escalated(why));
        self.shutdown.cancel();
    }

    /// Stops the components that restart with `i`, last started first, and
    /// marks them restarting; temporary ones (`Restart::Never`) are stopped
    /// and not started again, as OTP never restarts a temporary child.
    async fn stop_group(&mut self, i: usize) {
        let deadline = deadline(Instant::now(), self.plan.stop_all_timeout);
        for j in self.group(i).into_iter().rev() {
            if j != i {
                let was = self.shared.state(j);
                let record = self.stop_slot(j, deadline).await;
                if self.temporary(j) {
                    if record.outcome == StopOutcome::NotRunning {
                        self.shared.set_state(j, was);
                    }
                    continue;
                }
            }
            self.shared.set_state(j, ComponentState::Restarting);
        }
    }

    /// Sends the restart of `i`'s group after `delay`, unless the system
    /// stops first (a later generation of `i` ignores it).
    fn restart_after(&self, i: usize, delay: Duration) {
        let (tx, shutdown, generation) = (
            self.tx.clone(),
            self.shutdown.clone(),
            self.slots[i].generation,
        );
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => { let _ = tx.send(Event::Restart { slot: i, generation }).await; }
                () = shutdown.cancelled() => {}
            }
        });
    }

    /// The components that restart when `i` fails, in start order; a
    /// component depends on what it declares (start order is a topological
    /// order: a dependent comes after what it depends on).
    fn group(&self, i: usize) -> Vec<usize> {
        let entries = &self.plan.entries;
        crate::supervision::group(self.plan.strategy, i, entries.len(), |k, group| {
            entries[k]
                .component
                .dependencies()
                .iter()
                .any(|dep| group.iter().any(|&g| *entries[g].name == **dep))
        })
    }

    /// Whether `j` is temporary: never restarted, alone or with a group.
    fn temporary(&self, j: usize) -> bool {
        self.plan.entries[j].options.restart == Restart::Never
    }

    async fn restart(&mut self, i: usize) {
        for j in self.group(i) {
            if self.shutdown.is_cancelled() {
                return;
            }
            if self.slots[j].stop.is_some() || (j != i && self.temporary(j)) {
                // Still running (restarted on its own meanwhile), or
                // temporary: never started again.
                continue;
            }
            let listeners = match bind(
                &self.plan.entries[j].name,
                &self.slots[j].bound_at,
                &self.ports,
            ) {
                Ok(listeners) => listeners,
                Err(err) => {
                    self.fail_start(j, err);
                    return;
                }
            };
            if let Err(err) = self
                .start_slot(j, listeners, self.plan.start_all_timeout)
                .await
            {
                self.fail_start(j, err);
                return;
            }
        }
    }

    /// A restart that failed to start counts as another failure.
    fn fail_start(&mut self, j: usize, err: Error) {
        self.slots[j].generation += 1;
        let generation = self.slots[j].generation;
        self.pending.push_back(Event::Ended {
            slot: j,
            generation,
            ending: Ending::Failed(err.report().to_string()),
        });
    }

    async fn stop_all(mut self) -> StopReport {
        self.shared.stopping.store(true, Ordering::Release);
        let started = Instant::now();
        let deadline = deadline(started, self.plan.stop_all_timeout);
        let reason = self
            .shared
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or(StopReason::Requested);
        // An orderly stop keeps the process live (a failing liveness probe
        // would get it killed mid-drain); one the supervisor gave up on is
        // not.
        if matches!(reason, StopReason::Escalated(_)) {
            self.shared.live.store(false, Ordering::Release);
        }
        tracing::info!(?reason, "shutting down");
        let mut components = Vec::with_capacity(self.slots.len());
        for i in (0..self.slots.len()).rev() {
            let state = self.shared.state(i);
            let record = self.stop_slot(i, deadline).await;
            if record.outcome == StopOutcome::NotRunning {
                self.shared.set_state(i, state);
            }
            components.push(record);
        }
        let summary = StopReport {
            reason,
            components,
            took: started.elapsed(),
        };
        tracing::info!(took = ?summary.took, clean = summary.is_clean(), "system stopped");
        summary
    }
}
