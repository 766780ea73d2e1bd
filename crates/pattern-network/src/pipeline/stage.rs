use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pattern_error::Error;
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

/// A stage's input queue, and the signal its senders wait on for room
/// (set for the first queue only: later ones are fed by stages, which use
/// flume's own waiting).
pub(super) struct Queue<T> {
    pub(super) rx: flume::Receiver<Envelope<T>>,
    pub(super) room: Option<Arc<Notify>>,
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
) -> flume::Receiver<Envelope<Out>>
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
        let (input, room) = (input.rx.clone(), input.room.clone());
        let window = window.clone();
        // Metric handles made once per worker, not per item.
        let queue_depth = metrics::gauge!("pipeline_queue_depth", "stage" => name);
        let items_in = metrics::counter!("pipeline_items_in_total", "stage" => name);
        let items_out = metrics::counter!("pipeline_items_out_total", "stage" => name);
        let items_failed = metrics::counter!("pipeline_items_failed_total", "stage" => name);
        let duration = metrics::histogram!("pipeline_stage_duration_seconds", "stage" => name);
        tokio::spawn(async move {
            while let Ok(Envelope { seq, item }) = input.recv_async().await {
                // The first stage tells waiting senders there is room.
                if let Some(room) = &room {
                    room.notify_one();
                }
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
                        let result = f(item).await;
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
    out_rx
}

/// The positions an ordered stage's workers may start: from the next one
/// to emit, `size` of them.
pub(super) struct Window {
    next: AtomicU64,
    size: u64,
    moved: Notify,
}

impl Window {
    fn new(size: usize) -> Self {
        Self {
            next: AtomicU64::new(0),
            size: size as u64,
            moved: Notify::new(),
        }
    }

    /// Waits until `seq` is inside the window. The next position to emit
    /// always is, so this cannot wait on itself.
    async fn admit(&self, seq: u64) {
        loop {
            let moved = self.moved.notified();
            if seq < self.next.load(Ordering::Acquire) + self.size {
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

/// Emits envelopes in `seq` order. Sequences arrive exactly once each
/// (failed items as `None`), and workers only start those inside the
/// window, so the buffer holds at most the window's size.
async fn reorder<T>(
    done: flume::Receiver<Envelope<T>>,
    out: flume::Sender<Envelope<T>>,
    window: Arc<Window>,
) {
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
