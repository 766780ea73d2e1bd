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

/// An item and its input position; `None` when it failed upstream (so
/// ordered stages downstream can move past its position).
#[derive(Debug)]
pub(super) struct Envelope<T> {
    pub(super) seq: u64,
    pub(super) item: Option<T>,
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
    // Ordered stages send to a reorder task. A worker only starts an item
    // within a window of positions past the next one to emit, so what the
    // reorder task holds is bounded even when one item is stuck (the
    // producer is held back instead).
    let (done_tx, done_rx, window) = match order {
        Order::Ordered => {
            let (tx, rx) = flume::bounded::<Envelope<Out>>(capacity);
            (
                tx,
                Some(rx),
                Some(Arc::new(Window::new(workers + capacity))),
            )
        }
        _ => (out_tx.clone(), None, None),
    };
    for _ in 0..workers {
        let (done, dead, f) = (done_tx.clone(), dead.clone(), f.clone());
        let input = input.reader();
        let window = window.clone();
        // Metric handles made once per worker, not per item.
        let queue_depth = metrics::gauge!("pipeline_queue_depth", "stage" => name);
        let items_in = metrics::counter!("pipeline_items_in_total", "stage" => name);
        let items_out = metrics::counter!("pipeline_items_out_total", "stage" => name);
        let items_failed = metrics::counter!("pipeline_items_failed_total", "stage" => name);
        let duration = metrics::histogram!("pipeline_stage_duration_seconds", "stage" => name);
        tokio::spawn(async move {
            while let Ok(Envelope { seq, item }) = input.recv().await {
                // Reading the depth takes the channel's lock: sample it.
                if seq % 64 == 0 {
                    queue_depth.set(input.len() as f64);
                }
                if let Some(window) = &window {
                    window.admit(seq).await;
                }
                let item = match item {
                    Some(item) => {
                        items_in.increment(1);
                        // Reading the clock costs as much as a small stage:
                        // time one item in eight.
                        let start = (seq % 8 == 0).then(Instant::now);
                        // A panic is this item's failure, not the worker's
                        // end: an ordered stage must still see its position.
                        let result = AssertUnwindSafe(async { f(item).await })
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| {
                                Err(Error::new(
                                    Kind::Internal,
                                    "the stage panicked on this item",
                                ))
                            });
                        if let Some(start) = start {
                            duration.record(start.elapsed().as_secs_f64());
                        }
                        match result {
                            Ok(out) => {
                                items_out.increment(1);
                                Some(out)
                            }
                            Err(error) => {
                                items_failed.increment(1);
                                tracing::debug!(stage = name, seq, error = %error.report(), "pipeline item failed");
                                // Waits if the dead-letter channel is full;
                                // dropped only if nobody reads it any more.
                                let _ = dead
                                    .send_async(DeadLetter {
                                        stage: name,
                                        seq,
                                        error,
                                    })
                                    .await;
                                None
                            }
                        }
                    }
                    None => None,
                };
                if done.send_async(Envelope { seq, item }).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(done_tx);
    if let (Some(done_rx), Some(window)) = (done_rx, window) {
        tokio::spawn(reorder(done_rx, out_tx, window));
    }
    Queue::new(out_rx, None)
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

    /// Waits until `seq` is inside the window. The next position to emit
    /// always is, so this cannot wait on itself.
    async fn admit(&self, seq: u64) {
        loop {
            let moved = self.moved.notified();
            if seq < self.next.load(Ordering::Acquire) + self.size
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

/// Emits envelopes in `seq` order. Sequences arrive exactly once each
/// (failed items as `None`), and workers only start those inside the
/// window, so the buffer holds at most the window's size.
async fn reorder<T>(
    done: flume::Receiver<Envelope<T>>,
    out: flume::Sender<Envelope<T>>,
    window: Arc<Window>,
) {
    let _close = CloseOnDrop(window.clone());
    // Every stage sees every input position, from 0.
    let mut expected = 0u64;
    let mut early: BTreeMap<u64, Option<T>> = BTreeMap::new();
    while let Ok(envelope) = done.recv_async().await {
        early.insert(envelope.seq, envelope.item);
        while let Some(item) = early.remove(&expected) {
            if out
                .send_async(Envelope {
                    seq: expected,
                    item,
                })
                .await
                .is_err()
            {
                return;
            }
            expected += 1;
            window.advance(expected);
        }
    }
    // Upstream closed with nothing missing: `early` is empty here, unless a
    // worker died mid-item; then pass on what is left, in order.
    for (seq, item) in early {
        if out.send_async(Envelope { seq, item }).await.is_err() {
            return;
        }
    }
}
