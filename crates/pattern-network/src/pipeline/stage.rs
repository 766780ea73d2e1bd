use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures_util::FutureExt;
use pattern_error::{Error, Kind};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{DeadLetter, Order};

/// An item and its position in the pipeline's input (which its dead
/// letter reports).
#[derive(Debug)]
pub(super) struct Envelope<T> {
    pub(super) seq: u64,
    pub(super) item: T,
}

/// One reader of a queue between stages. The first queue's readers also
/// carry the signal its senders wait on for room (later queues are fed by
/// stages, which use flume's own waiting): given at each item taken, and
/// when a reader goes, so that once the last has gone a waiting sender
/// wakes to find the pipeline closed.
#[derive(Debug)]
pub(super) struct Queue<T> {
    /// Always set until dropped.
    rx: Option<flume::Receiver<Envelope<T>>>,
    room: Option<Arc<Notify>>,
}

impl<T> Queue<T> {
    pub(super) fn new(rx: flume::Receiver<Envelope<T>>, room: Option<Arc<Notify>>) -> Self {
        Self { rx: Some(rx), room }
    }

    fn rx(&self) -> &flume::Receiver<Envelope<T>> {
        self.rx
            .as_ref()
            .expect("a queue reader has its receiver until dropped")
    }

    /// Another reader of the same queue.
    pub(super) fn reader(&self) -> Self {
        Self {
            rx: self.rx.clone(),
            room: self.room.clone(),
        }
    }

    /// The next envelope; an error once the queue is drained and closed.
    pub(super) async fn recv(&self) -> Result<Envelope<T>, flume::RecvError> {
        let envelope = self.rx().recv_async().await;
        if let Some(room) = &self.room {
            room.notify_one();
        }
        envelope
    }

    fn len(&self) -> usize {
        self.rx().len()
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        // The receiver goes first: a sender woken now sees the queue closed
        // if this was its last reader.
        drop(self.rx.take());
        if let Some(room) = &self.room {
            room.notify_waiters();
        }
    }
}

/// Spawns a stage's workers (and, for an ordered stage, the task that puts
/// results back in order); returns the stage's output.
pub(super) fn spawn_stage<In, Out, F, Fut>(
    name: &'static str,
    workers: usize,
    order: Order,
    capacity: usize,
    input: Queue<In>,
    dead: flume::Sender<DeadLetter>,
    f: F,
) -> Queue<Out>
where
    In: Send + 'static,
    Out: Send + 'static,
    F: Fn(In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Out, Error>> + Send + 'static,
{
    let (out_tx, out_rx) = flume::bounded(capacity);
    let f = Arc::new(f);
    // An ordered stage numbers items as they arrive (taking one and its
    // number under one lock, so the numbers follow the queue) and its
    // workers send results to a reorder task that emits them by number. A
    // worker only starts an item within a window of numbers past the next
    // one to emit: what the reorder task holds is bounded even when one
    // item is stuck (the producer is held back instead), and the next one
    // to emit has always arrived, so the window never waits on its queue.
    let ordered = match order {
        Order::Ordered => {
            let (tx, rx) = flume::bounded::<Finished<Out>>(capacity);
            let window = Arc::new(Window::new(workers + capacity));
            tokio::spawn(reorder(rx, out_tx.clone(), window.clone()));
            Some(Ordered {
                arrivals: Arc::new(tokio::sync::Mutex::new(0)),
                window,
                done: tx,
            })
        }
        _ => None,
    };
    for _ in 0..workers {
        let worker = Worker {
            name,
            f: f.clone(),
            input: input.reader(),
            dead: dead.clone(),
            out: out_tx.clone(),
            ordered: ordered.clone(),
            queue_depth: metrics::gauge!("pipeline_queue_depth", "stage" => name),
            items_in: metrics::counter!("pipeline_items_in_total", "stage" => name),
            items_out: metrics::counter!("pipeline_items_out_total", "stage" => name),
            items_failed: metrics::counter!("pipeline_items_failed_total", "stage" => name),
            duration: metrics::histogram!("pipeline_stage_duration_seconds", "stage" => name),
        };
        tokio::spawn(worker.run());
    }
    Queue::new(out_rx, None)
}

/// What an ordered stage's workers share.
struct Ordered<Out> {
    /// The number the next item to arrive gets.
    arrivals: Arc<tokio::sync::Mutex<u64>>,
    window: Arc<Window>,
    /// To the reorder task.
    done: flume::Sender<Finished<Out>>,
}

impl<Out> Clone for Ordered<Out> {
    fn clone(&self) -> Self {
        Self {
            arrivals: self.arrivals.clone(),
            window: self.window.clone(),
            done: self.done.clone(),
        }
    }
}

/// An ordered stage's result for the item that arrived `arrival`-th;
/// `None` when it failed (so the reorder task moves past it).
struct Finished<T> {
    arrival: u64,
    seq: u64,
    item: Option<T>,
}

/// One worker of a stage, with its metric handles (made once per worker,
/// not per item).
struct Worker<In, Out, F> {
    name: &'static str,
    f: Arc<F>,
    input: Queue<In>,
    dead: flume::Sender<DeadLetter>,
    /// The stage's output (unordered stages send to it directly).
    out: flume::Sender<Envelope<Out>>,
    ordered: Option<Ordered<Out>>,
    queue_depth: metrics::Gauge,
    items_in: metrics::Counter,
    items_out: metrics::Counter,
    items_failed: metrics::Counter,
    duration: metrics::Histogram,
}

impl<In, Out, F, Fut> Worker<In, Out, F>
where
    F: Fn(In) -> Fut,
    Fut: Future<Output = Result<Out, Error>>,
{
    async fn run(self) {
        loop {
            let (arrival, Envelope { seq, item }) = match &self.ordered {
                Some(ordered) => {
                    let mut next = ordered.arrivals.lock().await;
                    let Ok(envelope) = self.input.recv().await else {
                        return;
                    };
                    let arrival = *next;
                    *next += 1;
                    drop(next);
                    (arrival, envelope)
                }
                None => match self.input.recv().await {
                    Ok(envelope) => (0, envelope),
                    Err(_) => return,
                },
            };
            // Reading the depth takes the channel's lock: sample it.
            if seq.is_multiple_of(64) {
                self.queue_depth.set(self.input.len() as f64);
            }
            if let Some(ordered) = &self.ordered {
                ordered.window.admit(arrival).await;
            }
            let item = self.process(seq, item).await;
            let sent = match (&self.ordered, item) {
                (Some(ordered), item) => ordered
                    .done
                    .send_async(Finished { arrival, seq, item })
                    .await
                    .is_ok(),
                (None, Some(item)) => self.out.send_async(Envelope { seq, item }).await.is_ok(),
                (None, None) => true,
            };
            if !sent {
                return;
            }
        }
    }

    /// Runs the stage's function on one item: its output, or `None` once
    /// the failure has gone to the dead letters.
    async fn process(&self, seq: u64, item: In) -> Option<Out> {
        self.items_in.increment(1);
        // Reading the clock costs as much as a small stage: time one item
        // in eight.
        let start = seq.is_multiple_of(8).then(Instant::now);
        // A panic is this item's failure, not the worker's end.
        let result = AssertUnwindSafe(async { (self.f)(item).await })
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(
                    Kind::Internal,
                    "the stage panicked on this item",
                ))
            });
        if let Some(start) = start {
            self.duration.record(start.elapsed().as_secs_f64());
        }
        match result {
            Ok(out) => {
                self.items_out.increment(1);
                Some(out)
            }
            Err(error) => {
                self.items_failed.increment(1);
                tracing::debug!(stage = self.name, seq, error = %error.report(), "pipeline item failed");
                // Waits if the dead-letter channel is full; dropped only if
                // nobody reads it any more.
                let _ = self
                    .dead
                    .send_async(DeadLetter {
                        stage: self.name,
                        seq,
                        error,
                    })
                    .await;
                None
            }
        }
    }
}

/// The positions an ordered stage's workers may start: from the next one
/// to emit, `size` of them.
pub(super) struct Window {
    next: AtomicU64,
    size: u64,
    moved: Notify,
    /// Set when the reorder task has stopped (the output is gone): nothing
    /// is held back any more, workers run into the closed channel and stop.
    closed: AtomicBool,
}

impl Window {
    fn new(size: usize) -> Self {
        Self {
            next: AtomicU64::new(0),
            size: size as u64,
            moved: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Waits until `arrival` is inside the window. The next one to emit
    /// always is, so this cannot wait on itself.
    async fn admit(&self, arrival: u64) {
        loop {
            let moved = self.moved.notified();
            if arrival < self.next.load(Ordering::Acquire) + self.size
                || self.closed.load(Ordering::Acquire)
            {
                return;
            }
            moved.await;
        }
    }

    fn advance(&self, next: u64) {
        self.next.store(next, Ordering::Release);
        self.moved.notify_waiters();
    }
}

/// Closes the window when the reorder task ends, however it ends.
struct CloseOnDrop(Arc<Window>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.moved.notify_waiters();
    }
}

/// Emits results in arrival order, leaving failed items out. Every
/// number arrives exactly once, and workers only start those inside the
/// window, so the buffer holds at most the window's size.
async fn reorder<T>(
    done: flume::Receiver<Finished<T>>,
    out: flume::Sender<Envelope<T>>,
    window: Arc<Window>,
) {
    let _close = CloseOnDrop(window.clone());
    let mut expected = 0u64;
    let mut early: BTreeMap<u64, (u64, Option<T>)> = BTreeMap::new();
    while let Ok(finished) = done.recv_async().await {
        early.insert(finished.arrival, (finished.seq, finished.item));
        while let Some((seq, item)) = early.remove(&expected) {
            if let Some(item) = item
                && out.send_async(Envelope { seq, item }).await.is_err()
            {
                return;
            }
            expected += 1;
            window.advance(expected);
        }
    }
    // Every worker has gone with nothing missing: `early` is empty here,
    // unless a worker died mid-item; then pass on what is left, in order.
    for (seq, item) in early.into_values() {
        if let Some(item) = item
            && out.send_async(Envelope { seq, item }).await.is_err()
        {
            return;
        }
    }
}
