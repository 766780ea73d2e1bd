//! Settings of a worker pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pattern_error::Error;

use super::WorkerPool;
use super::worker::Shared;

/// Configures a [`WorkerPool`]; start with [`WorkerPool::builder`].
///
/// | setting | default |
/// | --- | --- |
/// | [`queue`](Self::queue) | 64 items |
/// | [`scale_up_at`](Self::scale_up_at) | a quarter of the queue |
/// | [`cooldown`](Self::cooldown) | 1 s |
/// | [`idle_timeout`](Self::idle_timeout) | 30 s |
#[derive(Debug)]
#[must_use]
pub struct WorkerPoolBuilder {
    pub(super) name: &'static str,
    pub(super) min: usize,
    pub(super) max: usize,
    pub(super) queue: usize,
    pub(super) scale_up_depth: Option<usize>,
    pub(super) cooldown: Duration,
    pub(super) idle_timeout: Duration,
}

impl WorkerPoolBuilder {
    pub(super) fn new(name: &'static str, min: usize, max: usize) -> Self {
        // At least one worker, and max never below min.
        let min = min.max(1);
        Self {
            name,
            min,
            max: max.max(min),
            queue: 64,
            scale_up_depth: None,
            cooldown: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(30),
        }
    }

    /// The queue's capacity (default 64; at least 1).
    pub fn queue(mut self, capacity: usize) -> Self {
        self.queue = capacity.max(1);
        self
    }

    /// Queue depth at which a submission adds a worker (default: a quarter
    /// of the queue; at least 1).
    pub fn scale_up_at(mut self, depth: usize) -> Self {
        self.scale_up_depth = Some(depth.max(1));
        self
    }

    /// Minimum time between two scaling decisions, up or down (default
    /// 1 s; zero lets the pool move by one worker per event).
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The period over which the pool judges whether it has more workers
    /// than it needs (default 30 s): a period in which fewer were busy at
    /// once than were running lets an idle one go. Zero judges at every
    /// chance, so surplus workers go as soon as they are idle;
    /// [`Duration::MAX`] never shrinks the pool.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Starts the pool with `min` workers running `job`, whose output a
    /// [`WorkerPool::call`] returns. Call inside a tokio runtime.
    pub fn spawn<T, R, F, Fut>(self, job: F) -> WorkerPool<T, R>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, Error>> + Send + 'static,
    {
        let (tx, rx) = flume::bounded(self.queue);
        let shared = Arc::new(Shared::new(
            &self,
            rx,
            Arc::new(move |item| Box::pin(job(item))),
        ));
        for _ in 0..self.min {
            Shared::spawn_worker(&shared);
        }
        WorkerPool::from_parts(tx, shared)
    }
}
