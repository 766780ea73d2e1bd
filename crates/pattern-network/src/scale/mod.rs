//! Dynamic scaling: a worker pool that grows under load and shrinks when
//! idle.
//!
//! A [`WorkerPool`] runs between `min` and `max` workers over one bounded
//! queue. It is event-driven, with no polling loop: a submission that finds
//! the queue at or above the scale-up depth, or every worker busy, adds a
//! worker (at most one per cooldown); a worker that waits longer than the
//! idle timeout for an item exits, down to `min` (also at most one per
//! cooldown). Decisions show in metrics and tracing.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use pattern_error::Error;
//! use pattern_network::scale::WorkerPool;
//!
//! let pool = WorkerPool::builder("thumbnails", 1, 4)
//!     .queue(32)
//!     .cooldown(Duration::from_millis(10))
//!     .spawn(|job: u32| async move {
//!         tokio::time::sleep(Duration::from_millis(100)).await;
//!         let _ = job;
//!         Ok::<_, Error>(())
//!     });
//! for job in 0..20 {
//!     pool.submit(job).await.unwrap();
//! }
//! assert!(pool.workers() > 1, "a burst adds workers");
//! let report = pool.shutdown().await;
//! assert_eq!(report.processed, 20);
//! # }
//! ```
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `worker_pool_workers` | gauge | `pool` |
//! | `worker_pool_scale_events_total` | counter | `pool`, `direction` (`up`, `down`) |

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use pattern_error::{Error, Kind};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// Gauge of running workers, labelled `pool`.
pub const WORKERS_GAUGE: &str = "worker_pool_workers";
/// Counter of scaling decisions, labelled `pool` and `direction`.
pub const SCALE_EVENTS_TOTAL: &str = "worker_pool_scale_events_total";

type Job<T> = Arc<
    dyn Fn(T) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Error>> + Send>> + Send + Sync,
>;

/// Configures a [`WorkerPool`]; start with [`WorkerPool::builder`].
#[derive(Debug)]
#[must_use]
pub struct PoolBuilder {
    name: &'static str,
    min: usize,
    max: usize,
    queue: usize,
    scale_up_depth: Option<usize>,
    cooldown: Duration,
    idle_timeout: Duration,
}

/// A pool of workers that scales with its queue; see the [module docs](self).
///
/// Clones submit to the same pool (share it between producers); its queue
/// closes once every clone is shut down or dropped.
pub struct WorkerPool<T> {
    tx: flume::Sender<T>,
    shared: Arc<Shared<T>>,
}

impl<T> Clone for WorkerPool<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

struct Shared<T> {
    name: &'static str,
    min: usize,
    max: usize,
    scale_up_depth: usize,
    cooldown: Duration,
    idle_timeout: Duration,
    rx: flume::Receiver<T>,
    job: Job<T>,
    workers: AtomicUsize,
    busy: AtomicUsize,
    processed: AtomicU64,
    failed: AtomicU64,
    /// Last scaling decision, in milliseconds since `epoch` (+1; 0 = never).
    last_scale: AtomicU64,
    epoch: Instant,
    tasks: TaskTracker,
}

/// What [`WorkerPool::shutdown`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolReport {
    /// Items processed successfully over the pool's life.
    pub processed: u64,
    /// Items whose job failed.
    pub failed: u64,
}

impl WorkerPool<()> {
    /// A pool named `name` (the `pool` metrics label) of `min` to `max`
    /// workers; the item type comes from the job given to
    /// [`PoolBuilder::spawn`].
    pub fn builder(name: &'static str, min: usize, max: usize) -> PoolBuilder {
        let max = max.max(min).max(1);
        PoolBuilder {
            name,
            min,
            max,
            queue: 64,
            scale_up_depth: None,
            cooldown: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl<T: Send + 'static> WorkerPool<T> {
    /// Submits `item`, waiting while the queue is full; may add a worker.
    pub async fn submit(&self, item: T) -> Result<(), Error> {
        self.maybe_scale_up();
        self.tx
            .send_async(item)
            .await
            .map_err(|_| Error::new(Kind::Unavailable, "the pool is shut down"))
    }

    /// Submits `item` if the queue has room, else fails at once with
    /// [`Kind::Overloaded`]; may add a worker.
    pub fn try_submit(&self, item: T) -> Result<(), Error> {
        self.maybe_scale_up();
        self.tx.try_send(item).map_err(|e| match e {
            flume::TrySendError::Full(_) => {
                Error::new(Kind::Overloaded, "the pool's queue is full")
            }
            flume::TrySendError::Disconnected(_) => {
                Error::new(Kind::Unavailable, "the pool is shut down")
            }
        })
    }

    /// Workers running now.
    pub fn workers(&self) -> usize {
        self.shared.workers.load(Ordering::Acquire)
    }

    /// Items waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// Stops taking items, lets the workers finish everything queued, and
    /// waits for them (and so for every clone of this pool to be shut down
    /// or dropped: until then, the queue stays open).
    pub async fn shutdown(self) -> PoolReport {
        let shared = self.shared.clone();
        drop(self);
        shared.tasks.close();
        shared.tasks.wait().await;
        PoolReport {
            processed: shared.processed.load(Ordering::Acquire),
            failed: shared.failed.load(Ordering::Acquire),
        }
    }

    fn maybe_scale_up(&self) {
        let s = &self.shared;
        let workers = s.workers.load(Ordering::Acquire);
        let pressed =
            self.tx.len() >= s.scale_up_depth || s.busy.load(Ordering::Acquire) >= workers;
        if workers < s.max && pressed && s.cooled_down() {
            Shared::add_worker(&self.shared);
        }
    }
}

impl PoolBuilder {
    /// The queue's capacity (default 64).
    pub fn queue(mut self, capacity: usize) -> Self {
        self.queue = capacity.max(1);
        self
    }

    /// Queue depth at which a submission adds a worker (default: a quarter
    /// of the queue).
    pub fn scale_up_at(mut self, depth: usize) -> Self {
        self.scale_up_depth = Some(depth.max(1));
        self
    }

    /// Minimum time between two scaling decisions (default 1 s).
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// How long a worker waits for an item before it may exit (default 30 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Starts the pool with `min` workers running `job`. Call inside a tokio
    /// runtime.
    pub fn spawn<T, F, Fut>(self, job: F) -> WorkerPool<T>
    where
        T: Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        let (tx, rx) = flume::bounded(self.queue);
        let shared = Arc::new(Shared {
            name: self.name,
            min: self.min,
            max: self.max,
            scale_up_depth: self.scale_up_depth.unwrap_or((self.queue / 4).max(1)),
            cooldown: self.cooldown,
            idle_timeout: self.idle_timeout,
            rx,
            job: Arc::new(move |item| Box::pin(job(item))),
            workers: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            processed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_scale: AtomicU64::new(0),
            epoch: Instant::now(),
            tasks: TaskTracker::new(),
        });
        for _ in 0..self.min.max(1).min(self.max) {
            Shared::spawn_worker(&shared);
        }
        WorkerPool { tx, shared }
    }
}

impl<T: Send + 'static> Shared<T> {
    fn now_ms(&self) -> u64 {
        u64::try_from(
            Instant::now()
                .saturating_duration_since(self.epoch)
                .as_millis(),
        )
        .unwrap_or(u64::MAX)
    }

    /// Whether the cooldown since the last decision has passed; if so,
    /// claims the decision.
    fn cooled_down(&self) -> bool {
        let now = self.now_ms() + 1;
        let cooldown = u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX);
        self.last_scale
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                (last == 0 || now.saturating_sub(last) >= cooldown).then_some(now)
            })
            .is_ok()
    }

    /// Adds a worker unless the pool is at `max` already: the place is
    /// taken atomically, so concurrent submissions never go past `max`.
    fn add_worker(this: &Arc<Self>) {
        let Ok(before) = this
            .workers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < this.max).then_some(n + 1)
            })
        else {
            return;
        };
        let now = before + 1;
        Self::start_worker(this, now);
        metrics::counter!(SCALE_EVENTS_TOTAL, "pool" => this.name, "direction" => "up")
            .increment(1);
        tracing::info!(
            pool = this.name,
            workers = now,
            queued = this.rx.len(),
            "worker pool scaled up"
        );
    }

    /// Counts and starts one of the first workers.
    fn spawn_worker(this: &Arc<Self>) {
        let now = this.workers.fetch_add(1, Ordering::AcqRel) + 1;
        Self::start_worker(this, now);
    }

    /// Starts a worker already counted (`now` running with it).
    fn start_worker(this: &Arc<Self>, now: usize) {
        metrics::gauge!(WORKERS_GAUGE, "pool" => this.name).set(now as f64);
        let shared = this.clone();
        this.tasks.spawn(async move { shared.work().await });
    }

    async fn work(self: Arc<Self>) {
        loop {
            match tokio::time::timeout(self.idle_timeout, self.rx.recv_async()).await {
                Ok(Ok(item)) => {
                    self.busy.fetch_add(1, Ordering::AcqRel);
                    let result = (self.job)(item).await;
                    self.busy.fetch_sub(1, Ordering::AcqRel);
                    match result {
                        Ok(()) => self.processed.fetch_add(1, Ordering::AcqRel),
                        Err(err) => {
                            tracing::warn!(pool = self.name, error = %err.report(), "job failed");
                            self.failed.fetch_add(1, Ordering::AcqRel)
                        }
                    };
                }
                Ok(Err(_closed)) => break, // shut down and drained
                Err(_idle) => {
                    if self.try_retire() {
                        return;
                    }
                }
            }
        }
        let left = self.workers.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!(WORKERS_GAUGE, "pool" => self.name).set(left as f64);
    }

    /// An idle worker leaves if the pool stays at or above `min` and the
    /// cooldown allows.
    fn try_retire(&self) -> bool {
        let workers = self.workers.load(Ordering::Acquire);
        if workers <= self.min.max(1) || !self.cooled_down() {
            return false;
        }
        let retired = self
            .workers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > self.min.max(1)).then(|| n - 1)
            })
            .is_ok();
        if retired {
            let now = self.workers.load(Ordering::Acquire);
            metrics::gauge!(WORKERS_GAUGE, "pool" => self.name).set(now as f64);
            metrics::counter!(SCALE_EVENTS_TOTAL, "pool" => self.name, "direction" => "down")
                .increment(1);
            tracing::info!(pool = self.name, workers = now, "worker pool scaled down");
        }
        retired
    }
}

impl<T> std::fmt::Debug for WorkerPool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("name", &self.shared.name)
            .field("workers", &self.shared.workers.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
