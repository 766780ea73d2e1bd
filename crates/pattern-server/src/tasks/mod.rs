//! Bounded, tracked task spawning that ends with the server.
//!
//! A [`TaskSet`] spawns at most `max` tasks at once, hands each a
//! [`CancellationToken`] that fires at the stop, and on
//! [`stop`](TaskSet::stop) waits for them up to a timeout, then
//! drops whatever is still running. No task spawned through it outlives the
//! stop.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use pattern_server::tasks::TaskSet;
//!
//! let tasks = TaskSet::new(2);
//! let worker = tasks
//!     .try_spawn(|stop| async move {
//!         stop.cancelled().await; // a worker that runs until stopped
//!         "stopped cleanly"
//!     })
//!     .unwrap();
//! let report = tasks.stop(Duration::from_secs(1)).await;
//! assert_eq!(report.aborted, 0);
//! assert_eq!(worker.await.unwrap(), Some("stopped cleanly"));
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pattern_error::{Error, Kind};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A bounded set of tracked tasks; see the [module docs](self).
///
/// Cloning shares the set.
#[derive(Clone, Debug)]
pub struct TaskSet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tracker: TaskTracker,
    slots: Arc<Semaphore>,
    max: usize,
    /// Fired at the stop: tasks should finish.
    stop: CancellationToken,
    /// Fired when the timeout is over: tasks are dropped.
    kill: CancellationToken,
    aborted: AtomicUsize,
}

/// What [`TaskSet::stop`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskSetReport {
    /// Tasks that had not finished when the timeout ran out and were dropped.
    pub aborted: usize,
}

impl TaskSet {
    /// A set running at most `max` tasks at once.
    ///
    /// # Panics
    ///
    /// If `max` is 0.
    pub fn new(max: usize) -> Self {
        assert!(max > 0, "a task set needs room for at least one task");
        Self {
            inner: Arc::new(Inner {
                tracker: TaskTracker::new(),
                slots: Arc::new(Semaphore::new(max)),
                max,
                stop: CancellationToken::new(),
                kill: CancellationToken::new(),
                aborted: AtomicUsize::new(0),
            }),
        }
    }

    /// Spawns a task if a slot is free, or fails at once with
    /// [`Kind::Overloaded`] (or [`Kind::Unavailable`] after the stop began).
    ///
    /// `task` receives a token that is cancelled when the stop begins. The
    /// handle yields `None` if the task was dropped when the stop's timeout
    /// ran out.
    pub fn try_spawn<F, Fut>(&self, task: F) -> Result<JoinHandle<Option<Fut::Output>>, Error>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        if self.inner.tracker.is_closed() {
            return Err(Error::new(Kind::Unavailable, "task set is shutting down"));
        }
        let permit = self.inner.slots.clone().try_acquire_owned().map_err(|_| {
            Error::new(
                Kind::Overloaded,
                format!("task set is full ({} running)", self.inner.max),
            )
        })?;
        Ok(self.launch(permit, task))
    }

    /// Spawns a task, waiting for a free slot first.
    pub async fn spawn<F, Fut>(&self, task: F) -> Result<JoinHandle<Option<Fut::Output>>, Error>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let closed = || Error::new(Kind::Unavailable, "task set is shutting down");
        let permit = tokio::select! {
            permit = self.inner.slots.clone().acquire_owned() => permit.map_err(|_| closed())?,
            () = self.inner.stop.cancelled() => return Err(closed()),
        };
        if self.inner.tracker.is_closed() {
            return Err(closed());
        }
        Ok(self.launch(permit, task))
    }

    fn launch<F, Fut>(
        &self,
        permit: tokio::sync::OwnedSemaphorePermit,
        task: F,
    ) -> JoinHandle<Option<Fut::Output>>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let future = task(self.inner.stop.child_token());
        let kill = self.inner.kill.clone();
        let inner = self.inner.clone();
        self.inner.tracker.spawn(async move {
            let _slot = permit;
            tokio::select! {
                biased;
                output = future => Some(output),
                () = kill.cancelled() => {
                    inner.aborted.fetch_add(1, Ordering::Relaxed);
                    None
                }
            }
        })
    }

    /// Tasks running now.
    pub fn len(&self) -> usize {
        self.inner.tracker.len()
    }

    /// Whether no task is running.
    pub fn is_empty(&self) -> bool {
        self.inner.tracker.is_empty()
    }

    /// Stops accepting tasks, cancels every task's token, waits up to `timeout`
    /// for them to finish and drops the rest. Returns once no task is left.
    pub async fn stop(&self, timeout: Duration) -> TaskSetReport {
        self.inner.tracker.close();
        self.inner.stop.cancel();
        if tokio::time::timeout(timeout, self.inner.tracker.wait())
            .await
            .is_err()
        {
            self.inner.kill.cancel();
            self.inner.tracker.wait().await;
        }
        TaskSetReport {
            aborted: self.inner.aborted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn full_set_rejects_with_overloaded() {
        let tasks = TaskSet::new(1);
        let _running = tasks
            .try_spawn(|stop| async move { stop.cancelled().await })
            .unwrap();
        let err = tasks.try_spawn(|_| async {}).unwrap_err();
        assert_eq!(err.kind(), Kind::Overloaded);
        tasks.stop(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_drops_tasks_that_ignore_the_token() {
        let tasks = TaskSet::new(4);
        let stubborn = tasks
            .try_spawn(|_| async { tokio::time::sleep(Duration::from_secs(3600)).await })
            .unwrap();
        let polite = tasks
            .try_spawn(|stop| async move { stop.cancelled().await })
            .unwrap();
        let started = tokio::time::Instant::now();
        let report = tasks.stop(Duration::from_secs(5)).await;
        assert_eq!(report.aborted, 1);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert!(tasks.is_empty());
        assert_eq!(stubborn.await.unwrap(), None);
        assert_eq!(polite.await.unwrap(), Some(()));
        let late = tasks.try_spawn(|_| async {}).unwrap_err();
        assert_eq!(late.kind(), Kind::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn spawn_waits_for_a_slot() {
        let tasks = TaskSet::new(1);
        let first = tasks
            .try_spawn(|_| async { tokio::time::sleep(Duration::from_millis(10)).await })
            .unwrap();
        let second = tasks.spawn(|_| async { 2 }).await.unwrap();
        assert!(first.is_finished());
        assert_eq!(second.await.unwrap(), Some(2));
    }
}
