//! Process registry: named long-running tasks with their state, restarts
//! and last error; stop or restart them by name; an admin route.
//!
//! A process is an async function of a stop token. The registry runs it,
//! restarts it after a failure or a panic within the component
//! supervisor's budget ([`RestartBudget`]: at most so many restarts within
//! a sliding window, after a backoff that starts over after a stable run),
//! and records what happened. A process that
//! returns `Ok` is done and stays stopped.
//!
//! A name runs at most one instance, whatever the interleaving of
//! `register`, `restart` and `stop` calls: a new instance starts only once
//! the one before it has ended. Stopping waits for the process to notice
//! its token for at most the [stop timeout](ProcessRegistry::stop_timeout),
//! then aborts it ([`StopOutcome::Aborted`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use pattern_server::registry::{ProcessRegistry, ProcessState};
//!
//! let registry = ProcessRegistry::new();
//! registry.register("expiry-sweeper", |stop| async move {
//!     stop.cancelled().await;
//!     Ok(())
//! });
//! tokio::task::yield_now().await;
//! assert_eq!(registry.get("expiry-sweeper").unwrap().state, ProcessState::Running);
//! registry.stop("expiry-sweeper").await.unwrap();
//! assert_eq!(registry.get("expiry-sweeper").unwrap().state, ProcessState::Stopped);
//! # }
//! ```

mod admin;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pattern_component::supervision::{Intensity, RestartBudget};
use pattern_error::{Error, Kind};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

pub use admin::admin_router;

type Run = Arc<
    dyn Fn(CancellationToken) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>
        + Send
        + Sync,
>;

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProcessState {
    /// About to run.
    Starting,
    /// Running.
    Running,
    /// Failed; waiting out the backoff before running again.
    Restarting,
    /// Stopped by request, or finished.
    Stopped,
    /// Failed more often than its restart intensity allows (so many restarts
    /// within the window).
    Failed,
}

/// A process as the registry sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: ProcessState,
    /// Restarts after failures so far.
    pub restarts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When it last started, in seconds since the Unix epoch.
    pub started_at: Option<u64>,
}

/// How a stop went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StopOutcome {
    /// It ended within the stop timeout.
    Stopped,
    /// It did not end within the stop timeout and was aborted.
    Aborted,
    /// It was not running.
    NotRunning,
}

struct Entry {
    info: ProcessInfo,
    run: Run,
    stop: CancellationToken,
    /// The instance's driver; aborting it aborts the instance.
    driver: Option<AbortOnDropHandle<()>>,
}

/// The registry; cloning shares it.
#[derive(Clone)]
pub struct ProcessRegistry {
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
    intensity: Intensity,
    backoff: (Duration, Duration),
    stop_timeout: Duration,
}

impl ProcessRegistry {
    /// An empty registry restarting a failed process at most 10 times
    /// within a minute (after a backoff from 100 ms doubling to 5 s, so a
    /// process failing at once reaches the limit in about half a minute;
    /// starting over after a stable minute), and giving a stopping process
    /// 10 s before it is aborted.
    pub fn new() -> Self {
        Self {
            entries: Arc::default(),
            intensity: Intensity {
                max_restarts: 10,
                within: Duration::from_secs(60),
            },
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            stop_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for ProcessRegistry {
    /// [`ProcessRegistry::new`]: 10 restarts a minute, 10 s to stop.
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessRegistry {
    /// The same registry restarting a failed process at most `max` times
    /// within its window (a minute unless [`intensity`](Self::intensity)
    /// says otherwise), for processes registered from now on.
    #[must_use]
    pub fn max_restarts(mut self, max: u32) -> Self {
        self.intensity.max_restarts = max;
        self
    }

    /// The same registry restarting a failed process at most `max` times
    /// within any `within`, as the component supervisor does (one more and
    /// the process is `Failed`); a process that fails now and then, less
    /// often than that, is restarted for ever.
    #[must_use]
    pub fn intensity(mut self, max: u32, within: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts: max,
            within,
        };
        self
    }

    /// The same registry waiting from `min` (doubling to `max`) before a
    /// restart; the backoff starts over after a run with no restart within
    /// the intensity window.
    #[must_use]
    pub fn restart_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max);
        self
    }

    /// The same registry giving a stopping process `timeout` to end before
    /// it is aborted.
    #[must_use]
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers and starts a process (replacing and stopping one of the
    /// same name). Call inside a tokio runtime.
    pub fn register<F, Fut>(&self, name: impl Into<String>, run: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        let name = name.into();
        let run: Run = Arc::new(move |stop| Box::pin(run(stop)));
        let entry = Entry {
            info: ProcessInfo {
                name: name.clone(),
                state: ProcessState::Starting,
                restarts: 0,
                last_error: None,
                started_at: None,
            },
            run,
            stop: CancellationToken::new(),
            driver: None,
        };
        let mut entries = self.lock();
        match entries.get_mut(&name) {
            // The instance running under this name goes first: the new one
            // chains after whatever driver holds the name when it launches.
            Some(old) => {
                old.run = entry.run;
                old.info = entry.info;
            }
            None => {
                entries.insert(name.clone(), entry);
            }
        }
        self.launch_locked(&mut entries, &name);
    }

    /// Starts a new instance of `name` with a fresh stop token, once the
    /// one before it (if any) has ended: it is asked to stop and aborted
    /// after the stop timeout. Dropping the new driver aborts both.
    fn launch(&self, name: &str) {
        let mut entries = self.lock();
        self.launch_locked(&mut entries, name);
    }

    /// [`launch`](Self::launch) with the registry already locked: taking
    /// the driver before and putting the new one happen in one critical
    /// section, so every instance chains after the one before it.
    fn launch_locked(&self, entries: &mut BTreeMap<String, Entry>, name: &str) {
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        entry.stop.cancel();
        let previous = entry.driver.take();
        entry.stop = CancellationToken::new();
        entry.info.state = ProcessState::Starting;
        let (run, stop, registry, grace) = (
            entry.run.clone(),
            entry.stop.clone(),
            self.clone(),
            self.stop_timeout,
        );
        let name = name.to_owned();
        entry.driver = Some(AbortOnDropHandle::new(tokio::spawn(async move {
            if let Some(previous) = previous {
                end(previous, grace).await;
            }
            if stop.is_cancelled() {
                // Stopped before it could start.
                registry.update(&name, &stop, |info| info.state = ProcessState::Stopped);
            } else {
                registry.drive(name, run, stop).await;
            }
        })));
    }

    async fn drive(&self, name: String, run: Run, stop: CancellationToken) {
        // The component supervisor's budget: a sliding window and a
        // backoff that starts over after a stable run.
        let mut budget = RestartBudget::new(self.intensity, self.backoff.0, self.backoff.1);
        loop {
            self.update(&name, &stop, |info| {
                info.state = ProcessState::Running;
                info.started_at = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs());
            });
            // Run it as a task of its own, so a panic is caught; aborted
            // with the driver.
            let outcome = AbortOnDropHandle::new(tokio::spawn(run(stop.clone()))).await;
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(err)) => Some(err.report().to_string()),
                Err(join) if join.is_panic() => Some("panicked".to_owned()),
                Err(join) => Some(join.to_string()),
            };
            if stop.is_cancelled() || failure.is_none() {
                self.update(&name, &stop, |info| info.state = ProcessState::Stopped);
                return;
            }
            let delay = budget.restart(tokio::time::Instant::now());
            self.update(&name, &stop, |info| {
                info.last_error = failure.clone();
                if delay.is_some() {
                    info.restarts += 1;
                    info.state = ProcessState::Restarting;
                } else {
                    info.state = ProcessState::Failed;
                }
            });
            tracing::warn!(process = %name, error = ?failure, give_up = delay.is_none(), "process failed");
            let Some(delay) = delay else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => {
                    self.update(&name, &stop, |info| info.state = ProcessState::Stopped);
                    return;
                }
            }
        }
    }

    /// Applies `f` to the process's info if `stop` is still its token (a
    /// replaced or restarted run does not write over the new one).
    fn update(&self, name: &str, stop: &CancellationToken, f: impl FnOnce(&mut ProcessInfo)) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(name)
            && entry.stop == *stop
        {
            f(&mut entry.info);
        }
    }

    /// Every process, by name.
    pub fn list(&self) -> Vec<ProcessInfo> {
        self.lock().values().map(|e| e.info.clone()).collect()
    }

    /// One process.
    pub fn get(&self, name: &str) -> Option<ProcessInfo> {
        self.lock().get(name).map(|e| e.info.clone())
    }

    /// Stops `name` and waits for it to end, for at most the stop timeout,
    /// then aborts it; [`Kind::NotFound`] if unknown.
    pub async fn stop(&self, name: &str) -> Result<StopOutcome, Error> {
        let (told, outcome) = tokio::sync::oneshot::channel();
        let stop = {
            let mut entries = self.lock();
            let entry = entries
                .get_mut(name)
                .ok_or_else(|| Error::new(Kind::NotFound, format!("no process named {name:?}")))?;
            entry.stop.cancel();
            let previous = match entry.driver.take() {
                Some(previous) if !previous.is_finished() => previous,
                _ => return Ok(StopOutcome::NotRunning),
            };
            // The ending takes the driver's place: an instance started
            // after this stop waits for it.
            let grace = self.stop_timeout;
            entry.driver = Some(AbortOnDropHandle::new(tokio::spawn(async move {
                let _ = told.send(end(previous, grace).await);
            })));
            entry.stop.clone()
        };
        // No answer: a later stop or start gave up waiting and aborted it.
        let outcome = outcome.await.unwrap_or(StopOutcome::Aborted);
        if outcome == StopOutcome::Aborted {
            tracing::warn!(process = %name, timeout = ?self.stop_timeout, "process did not stop in time: aborted");
            self.update(name, &stop, |info| {
                info.state = ProcessState::Stopped;
                info.last_error = Some(format!(
                    "aborted: did not stop within {:?}",
                    self.stop_timeout
                ));
            });
        }
        Ok(outcome)
    }

    /// Stops `name` (as [`stop`](Self::stop) does) and starts a new
    /// instance once it has ended; [`Kind::NotFound`] if unknown.
    pub async fn restart(&self, name: &str) -> Result<(), Error> {
        if !self.lock().contains_key(name) {
            return Err(Error::new(
                Kind::NotFound,
                format!("no process named {name:?}"),
            ));
        }
        self.launch(name);
        Ok(())
    }

    /// Stops every process, all at once, each within the stop timeout (for
    /// shutdown); how each went.
    pub async fn stop_all(&self) -> Vec<(String, StopOutcome)> {
        let names: Vec<String> = self.lock().keys().cloned().collect();
        let mut stops = tokio::task::JoinSet::new();
        for name in names {
            let registry = self.clone();
            stops.spawn(async move {
                let outcome = registry
                    .stop(&name)
                    .await
                    .unwrap_or(StopOutcome::NotRunning);
                (name, outcome)
            });
        }
        let mut outcomes = Vec::new();
        while let Some(done) = stops.join_next().await {
            if let Ok(done) = done {
                outcomes.push(done);
            }
        }
        outcomes.sort();
        outcomes
    }
}

/// Waits for `driver` to end for at most `grace`, then aborts it.
async fn end(mut driver: AbortOnDropHandle<()>, grace: Duration) -> StopOutcome {
    if tokio::time::timeout(grace, &mut driver).await.is_ok() {
        return StopOutcome::Stopped;
    }
    driver.abort();
    let _ = driver.await;
    StopOutcome::Aborted
}

impl std::fmt::Debug for ProcessRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRegistry")
            .field("processes", &self.list())
            .finish()
    }
}
