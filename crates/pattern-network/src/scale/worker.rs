//! The workers and the scaling decisions they share.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use pattern_error::{Error, Kind};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    BUSY_GAUGE, JOBS_TOTAL, QUEUE_WAIT, SCALE_EVENTS_TOTAL, WORKERS_GAUGE, WorkerPoolBuilder,
    WorkerPoolReport,
};

pub(super) type Job<T, R> =
    Arc<dyn Fn(T) -> Pin<Box<dyn Future<Output = Result<R, Error>> + Send>> + Send + Sync>;

/// An item in the queue, with where its output goes (for a `call`) and
/// when it was submitted.
pub(super) struct Message<T, R> {
    pub(super) item: T,
    pub(super) reply: Option<oneshot::Sender<Result<R, Error>>>,
    pub(super) queued: Instant,
}

impl<T, R> Message<T, R> {
    /// `item`, submitted now.
    pub(super) fn new(item: T, reply: Option<oneshot::Sender<Result<R, Error>>>) -> Self {
        Self {
            item,
            reply,
            queued: Instant::now(),
        }
    }
}

/// What every worker and handle of one pool share. Times are nanoseconds
/// since `epoch` on tokio's clock.
pub(super) struct Shared<T, R> {
    pub(super) name: &'static str,
    min: usize,
    max: usize,
    scale_up_depth: usize,
    cooldown: u64,
    /// `u64::MAX`: never shrink.
    idle: u64,
    rx: flume::Receiver<Message<T, R>>,
    job: Job<T, R>,
    pub(super) workers: AtomicUsize,
    busy: AtomicUsize,
    /// The most workers busy at once since `period_start`.
    peak: AtomicUsize,
    period_start: AtomicU64,
    /// The last scaling decision, plus one (0: never).
    last_scale: AtomicU64,
    epoch: Instant,
    outcomes: Outcomes,
    pub(super) tasks: TaskTracker,
    /// Cancelled at a stop deadline: workers stop where they are.
    pub(super) stop: CancellationToken,
}

/// Counts of how jobs ended, with their metric handles.
struct Outcomes {
    processed: (AtomicU64, metrics::Counter),
    failed: (AtomicU64, metrics::Counter),
    panicked: (AtomicU64, metrics::Counter),
    abandoned: (AtomicU64, metrics::Counter),
    workers: metrics::Gauge,
    busy: metrics::Gauge,
    queue_wait: metrics::Histogram,
}

impl Outcomes {
    fn new(pool: &'static str) -> Self {
        let count = |outcome: &'static str| {
            (
                AtomicU64::new(0),
                metrics::counter!(JOBS_TOTAL, "pool" => pool, "outcome" => outcome),
            )
        };
        Self {
            processed: count("ok"),
            failed: count("failed"),
            panicked: count("panicked"),
            abandoned: count("abandoned"),
            workers: metrics::gauge!(WORKERS_GAUGE, "pool" => pool),
            busy: metrics::gauge!(BUSY_GAUGE, "pool" => pool),
            queue_wait: metrics::histogram!(QUEUE_WAIT, "pool" => pool),
        }
    }
}

fn add(count: &(AtomicU64, metrics::Counter), n: u64) {
    count.0.fetch_add(n, Ordering::AcqRel);
    count.1.increment(n);
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What an idle worker does next.
enum Idle {
    /// Leave the pool (already counted out).
    Retire,
    /// Wait for an item until this time, then decide again.
    Until(u64),
    /// Wait for an item with no timer.
    Forever,
}

impl<T: Send + 'static, R: Send + 'static> Shared<T, R> {
    pub(super) fn new(
        b: &WorkerPoolBuilder,
        rx: flume::Receiver<Message<T, R>>,
        job: Job<T, R>,
    ) -> Self {
        Self {
            name: b.name,
            min: b.min,
            max: b.max,
            scale_up_depth: b.scale_up_depth.unwrap_or((b.queue / 4).max(1)),
            cooldown: nanos(b.cooldown),
            idle: nanos(b.idle_timeout),
            rx,
            job,
            workers: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            period_start: AtomicU64::new(0),
            last_scale: AtomicU64::new(0),
            epoch: Instant::now(),
            outcomes: Outcomes::new(b.name),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    fn now(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.epoch))
    }

    pub(super) fn report(&self) -> WorkerPoolReport {
        let o = &self.outcomes;
        WorkerPoolReport {
            processed: o.processed.0.load(Ordering::Acquire),
            failed: o.failed.0.load(Ordering::Acquire),
            panicked: o.panicked.0.load(Ordering::Acquire),
            abandoned: o.abandoned.0.load(Ordering::Acquire),
        }
    }

    /// Drops what is still queued (after the workers stopped), counted as
    /// abandoned.
    pub(super) fn abandon_queued(&self) {
        let left = self.rx.drain().count();
        add(&self.outcomes.abandoned, left as u64);
    }

    /// Claims the scaling decision at `now` if the cooldown since the last
    /// one has passed; else the time it passes.
    fn claim_decision(&self, now: u64) -> Result<(), u64> {
        let mut last = self.last_scale.load(Ordering::Acquire);
        loop {
            if last != 0 {
                let allowed = (last - 1).saturating_add(self.cooldown);
                if now < allowed {
                    return Err(allowed);
                }
            }
            match self.last_scale.compare_exchange_weak(
                last,
                now + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => last = actual,
            }
        }
    }

    /// Starts a new period of watching how many workers are needed.
    fn new_period(&self, now: u64) {
        self.period_start.store(now, Ordering::Release);
        self.peak
            .store(self.busy.load(Ordering::Acquire), Ordering::Release);
    }

    /// Adds a worker if the queue is deep or every worker busy, the pool
    /// below `max` and the cooldown passed. The place is taken atomically,
    /// so concurrent submissions never go past `max`.
    pub(super) fn maybe_scale_up(self: &Arc<Self>, queued: usize) {
        let workers = self.workers.load(Ordering::Acquire);
        let pressed = queued >= self.scale_up_depth || self.busy.load(Ordering::Acquire) >= workers;
        if workers >= self.max || !pressed {
            return;
        }
        // The place first, then the cooldown (given back if refused), so
        // a pool found at `max` spends no cooldown.
        let Ok(before) = self
            .workers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
        else {
            return;
        };
        let now = self.now();
        if self.claim_decision(now).is_err() {
            self.workers.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        // A new worker gets a whole period to prove it is needed.
        self.new_period(now);
        self.start_worker(before + 1);
        metrics::counter!(SCALE_EVENTS_TOTAL, "pool" => self.name, "direction" => "up")
            .increment(1);
        tracing::info!(
            pool = self.name,
            workers = before + 1,
            queued,
            "worker pool scaled up"
        );
    }

    /// Counts and starts one of the first workers.
    pub(super) fn spawn_worker(this: &Arc<Self>) {
        let now = this.workers.fetch_add(1, Ordering::AcqRel) + 1;
        this.start_worker(now);
    }

    /// Starts a worker already counted (`now` running with it).
    fn start_worker(self: &Arc<Self>, now: usize) {
        self.outcomes.workers.set(now as f64);
        let shared = self.clone();
        self.tasks.spawn(async move { shared.work().await });
    }

    /// What an idle worker does next: leave if the period that just ended
    /// had a worker to spare (one per cooldown), else wait for an item
    /// until the next decision, or for ever at `min`.
    fn idle_decision(&self) -> Idle {
        loop {
            let workers = self.workers.load(Ordering::Acquire);
            if workers <= self.min || self.idle == u64::MAX {
                return Idle::Forever;
            }
            let now = self.now();
            let end = self
                .period_start
                .load(Ordering::Acquire)
                .saturating_add(self.idle);
            if now < end {
                return Idle::Until(end);
            }
            if !self.rx.is_empty() || self.peak.load(Ordering::Acquire) >= workers {
                // The period needed every worker: watch the next one. (At
                // least a nanosecond on: a zero period cannot spin.)
                self.new_period(now);
                return Idle::Until(now.saturating_add(self.idle.max(1)));
            }
            if let Err(allowed) = self.claim_decision(now) {
                return Idle::Until(allowed);
            }
            let retired = self
                .workers
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n > self.min).then(|| n - 1)
                });
            if let Ok(before) = retired {
                self.outcomes.workers.set((before - 1) as f64);
                metrics::counter!(SCALE_EVENTS_TOTAL, "pool" => self.name, "direction" => "down")
                    .increment(1);
                tracing::info!(
                    pool = self.name,
                    workers = before - 1,
                    "worker pool scaled down"
                );
                return Idle::Retire;
            }
            // Another worker took the pool to `min` meanwhile: decide again.
        }
    }

    async fn work(self: Arc<Self>) {
        let mut seat = Seat {
            shared: &self,
            counted: true,
        };
        loop {
            let wait = match self.idle_decision() {
                Idle::Retire => {
                    seat.counted = false;
                    return;
                }
                Idle::Until(t) => self.epoch.checked_add(Duration::from_nanos(t)),
                Idle::Forever => None,
            };
            let timer = async {
                match wait {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let message = tokio::select! {
                biased;
                () = self.stop.cancelled() => return,
                message = self.rx.recv_async() => message,
                () = timer => continue,
            };
            match message {
                Ok(message) => self.run(message).await,
                Err(_) => return, // every handle gone and the queue drained
            }
        }
    }

    /// Runs one job: a failure or a panic is that job's, counted and
    /// logged, never the worker's.
    async fn run(
        &self,
        Message {
            item,
            reply,
            queued,
        }: Message<T, R>,
    ) {
        if reply.as_ref().is_some_and(oneshot::Sender::is_closed) {
            return; // the call was dropped before the job started
        }
        self.outcomes
            .queue_wait
            .record(queued.elapsed().as_secs_f64());
        let busy = self.busy.fetch_add(1, Ordering::AcqRel) + 1;
        self.outcomes.busy.increment(1.0);
        self.peak.fetch_max(busy, Ordering::AcqRel);
        let job = AssertUnwindSafe(async { (self.job)(item).await }).catch_unwind();
        let outcome = tokio::select! {
            biased;
            outcome = job => Some(outcome),
            () = self.stop.cancelled() => None,
        };
        self.busy.fetch_sub(1, Ordering::AcqRel);
        self.outcomes.busy.decrement(1.0);
        let result = match outcome {
            None => {
                add(&self.outcomes.abandoned, 1);
                return; // the reply goes unanswered: the call sees the stop
            }
            Some(Ok(Ok(output))) => {
                add(&self.outcomes.processed, 1);
                Ok(output)
            }
            Some(Ok(Err(err))) => {
                add(&self.outcomes.failed, 1);
                tracing::warn!(pool = self.name, error = %err.report(), "job failed");
                Err(err)
            }
            Some(Err(panic)) => {
                add(&self.outcomes.panicked, 1);
                let message = panic
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("a non-text payload");
                tracing::error!(pool = self.name, panic = message, "job panicked");
                Err(Error::new(Kind::Internal, "the job panicked"))
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
}

/// A worker's place in the count, given back however the worker ends
/// (unless it retired, which gave it back already).
struct Seat<'a, T, R> {
    shared: &'a Shared<T, R>,
    counted: bool,
}

impl<T, R> Drop for Seat<'_, T, R> {
    fn drop(&mut self) {
        if self.counted {
            let left = self.shared.workers.fetch_sub(1, Ordering::AcqRel) - 1;
            self.shared.outcomes.workers.set(left as f64);
        }
    }
}
