//! The export queue: finished spans go into a bounded queue that a task
//! empties in batches, on a thread of its own (encoding a batch takes
//! milliseconds a request thread would not serve). A full queue drops the
//! span (counted), so a slow or absent collector never slows a request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{Notify, mpsc, oneshot};

/// Counter of spans sent to the collector.
pub const EXPORTED_TOTAL: &str = "otel_spans_exported_total";
/// Counter of spans lost, labelled `reason`: `queue_full` (the collector
/// fell behind, or is gone), `export_failed` (it refused or did not
/// answer in time) or `shutdown` (the span ended after the export
/// stopped).
pub const DROPPED_TOTAL: &str = "otel_spans_dropped_total";

/// What the export has done so far.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) exported: AtomicU64,
    pub(super) queue_full: AtomicU64,
    pub(super) export_failed: AtomicU64,
    /// Spans that ended after the export stopped.
    pub(super) after_stop: AtomicU64,
}

/// Registers the counters at zero (a rate over them is then 0, not
/// absent); again once the metrics recorder is installed, if it was not.
pub(super) fn register_counters() {
    metrics::counter!(EXPORTED_TOTAL).increment(0);
    for reason in ["queue_full", "export_failed", "shutdown"] {
        metrics::counter!(DROPPED_TOTAL, "reason" => reason).increment(0);
    }
}

/// Asks the export task to send what it holds (and, with `last`, to end).
#[derive(Debug)]
struct Flush {
    last: bool,
    done: oneshot::Sender<OTelSdkResult>,
}

/// The spans waiting for the export task, and how it is woken: once a
/// batch is full, not per span (a wake per span was a system call and a
/// thread switch each).
#[derive(Debug)]
struct Waiting {
    pending: Mutex<Pending>,
    max_queue: usize,
    max_batch: usize,
    /// A full batch waits.
    full: Notify,
}

/// What the lock guards: the spans, and whether the last flush took them
/// (a span ended after it is not sent, and counted).
#[derive(Debug, Default)]
struct Pending {
    spans: Vec<SpanData>,
    ended: bool,
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// At most a batch of what waits, oldest first.
    fn take_batch(&self) -> Vec<SpanData> {
        let mut pending = self.lock();
        if pending.spans.len() <= self.max_batch {
            return std::mem::take(&mut pending.spans);
        }
        pending.spans.drain(..self.max_batch).collect()
    }

    fn len(&self) -> usize {
        self.lock().spans.len()
    }

    /// Ends the queue, and takes what waits: under one lock, so a span is
    /// either taken or counted as after the stop.
    fn end(&self) -> Vec<SpanData> {
        let mut pending = self.lock();
        pending.ended = true;
        std::mem::take(&mut pending.spans)
    }

    fn ended(&self) -> bool {
        self.lock().ended
    }
}

/// The span processor: a bounded queue in front of the export task.
#[derive(Debug)]
pub(super) struct Queue {
    waiting: Arc<Waiting>,
    flushes: mpsc::Sender<Flush>,
    stats: Arc<Stats>,
    /// Set once the task has been told to end.
    ended: AtomicBool,
    timeout: Duration,
}

/// Where the export task runs.
#[derive(Debug)]
pub(super) enum Runner {
    /// A thread of its own, named `trace-export`, with a one-thread
    /// runtime: the service's threads never encode nor send.
    Thread,
    /// A runtime's (the tests', whose time is paused).
    #[cfg(test)]
    Runtime(tokio::runtime::Handle),
}

/// How the export task batches.
#[derive(Clone, Copy, Debug)]
pub(super) struct Batching {
    pub(super) max_queue: usize,
    pub(super) max_batch: usize,
    pub(super) interval: Duration,
    pub(super) timeout: Duration,
}

impl Queue {
    /// The queue, and its export task started where `runner` says; an
    /// error when its thread cannot start.
    pub(super) fn start<E: SpanExporter + 'static>(
        exporter: E,
        batching: Batching,
        runner: Runner,
    ) -> std::io::Result<(Self, Arc<Stats>)> {
        let waiting = Arc::new(Waiting {
            pending: Mutex::new(Pending::default()),
            max_queue: batching.max_queue,
            max_batch: batching.max_batch,
            full: Notify::new(),
        });
        let (flushes, flush_receiver) = mpsc::channel(4);
        let stats = Arc::new(Stats::default());
        register_counters();
        let task = Task {
            exporter,
            batching,
            stats: stats.clone(),
            failing: false,
        };
        let run = task.run(waiting.clone(), flush_receiver);
        match runner {
            #[cfg(test)]
            Runner::Runtime(runtime) => drop(runtime.spawn(run)),
            Runner::Thread => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                // Ends when the task does: at the last flush, or when the
                // queue and its flushers are dropped.
                std::thread::Builder::new()
                    .name("trace-export".to_owned())
                    .spawn(move || runtime.block_on(run))?;
            }
        }
        let queue = Self {
            waiting,
            flushes,
            stats: stats.clone(),
            ended: AtomicBool::new(false),
            timeout: batching.timeout,
        };
        Ok((queue, stats))
    }

    /// A handle that flushes from async code (the component's stop).
    pub(super) fn flusher(&self) -> Flusher {
        Flusher {
            flushes: self.flushes.clone(),
            timeout: self.timeout,
        }
    }

    /// Asks for a flush; from a thread outside the runtime, waits for it
    /// at most twice the export timeout (the batch being sent, then the
    /// rest). From a runtime thread it only asks: await [`Flusher`] there.
    fn flush_blocking(&self, last: bool) -> OTelSdkResult {
        let (done, mut answer) = oneshot::channel();
        self.flushes
            .try_send(Flush { last, done })
            .map_err(|_| OTelSdkError::InternalFailure("the export task is busy or gone".into()))?;
        // On a runtime thread, waiting would hold a thread requests need
        // (and, with the task on the runtime, the very thread it may need):
        // the flush is asked for, not waited for. Async code awaits it
        // through the component's stop.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Ok(());
        }
        let wait = self.timeout.saturating_mul(2);
        let started = std::time::Instant::now();
        loop {
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => {
                    return Err(OTelSdkError::InternalFailure(
                        "the export task ended".into(),
                    ));
                }
                Err(oneshot::error::TryRecvError::Empty) if started.elapsed() >= wait => {
                    return Err(OTelSdkError::Timeout(wait));
                }
                Err(oneshot::error::TryRecvError::Empty) => {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
}

/// Flushes the queue from async code.
#[derive(Clone, Debug)]
pub(super) struct Flusher {
    flushes: mpsc::Sender<Flush>,
    timeout: Duration,
}

impl Flusher {
    /// Sends what is queued; with `last`, ends the export task after.
    pub(super) async fn flush(&self, last: bool) -> OTelSdkResult {
        let (done, answer) = oneshot::channel();
        let asked = tokio::time::timeout(self.timeout, self.flushes.send(Flush { last, done }));
        if !matches!(asked.await, Ok(Ok(()))) {
            return Err(OTelSdkError::InternalFailure(
                "the export task is busy or gone".into(),
            ));
        }
        match tokio::time::timeout(self.timeout.saturating_mul(2), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(OTelSdkError::InternalFailure(
                "the export task ended".into(),
            )),
            Err(_) => Err(OTelSdkError::Timeout(self.timeout.saturating_mul(2))),
        }
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let waiting = &*self.waiting;
        let queued = {
            let mut pending = waiting.lock();
            if pending.ended {
                Err("shutdown")
            } else if pending.spans.len() >= waiting.max_queue {
                Err("queue_full")
            } else {
                pending.spans.push(span);
                Ok(pending.spans.len())
            }
        };
        match queued {
            // The task is woken once per batch.
            Ok(len) if len == waiting.max_batch => waiting.full.notify_one(),
            Ok(_) => {}
            // Ended: spans after the last flush are not sent (counted).
            Err(reason @ "shutdown") => {
                self.stats.after_stop.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(DROPPED_TOTAL, "reason" => reason).increment(1);
            }
            Err(reason) => {
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(DROPPED_TOTAL, "reason" => reason).increment(1);
            }
        }
    }

    /// Nothing to do once the export has ended (the component's stop,
    /// or a shutdown before).
    fn force_flush(&self) -> OTelSdkResult {
        if self.ended.load(Ordering::Acquire) || self.waiting.ended() {
            return Ok(());
        }
        self.flush_blocking(false)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        if self.ended.swap(true, Ordering::AcqRel) || self.waiting.ended() {
            return Ok(());
        }
        self.flush_blocking(true)
    }
}

/// The export task.
struct Task<E> {
    exporter: E,
    batching: Batching,
    stats: Arc<Stats>,
    /// The last export failed (logged once per change, not per batch).
    failing: bool,
}

impl<E: SpanExporter> Task<E> {
    async fn run(mut self, waiting: Arc<Waiting>, mut flushes: mpsc::Receiver<Flush>) {
        let max_batch = self.batching.max_batch.max(1);
        // A span waits at most an interval for its batch to fill.
        let interval = self.batching.interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A flush first: it is waited for.
            tokio::select! {
                biased;
                flush = flushes.recv() => {
                    let Some(Flush { last, done }) = flush else {
                        // The queue and its flushers are gone.
                        let _ = self.send_all(waiting.end()).await;
                        return;
                    };
                    if last {
                        let result = self.send_all(waiting.end()).await;
                        let _ = self.exporter.shutdown_with_timeout(self.batching.timeout);
                        let _ = done.send(result);
                        return;
                    }
                    let result = self.send_queued(&waiting).await;
                    let _ = done.send(result);
                }
                () = waiting.full.notified() => {
                    // The full batches there now; the rest waits for the
                    // tick. More full ones meanwhile: another turn, after
                    // a flush if one waits.
                    let full = waiting.len() / max_batch;
                    for _ in 0..full {
                        let _ = self.export(waiting.take_batch()).await;
                    }
                    if full > 0 {
                        ticks.reset();
                    }
                    if waiting.len() >= max_batch {
                        waiting.full.notify_one();
                    }
                }
                _ = ticks.tick() => {
                    let _ = self.send_queued(&waiting).await;
                }
            }
        }
    }

    /// Sends what is queued now (not what keeps coming), in batches; the
    /// last batch's result.
    async fn send_queued(&mut self, waiting: &Waiting) -> OTelSdkResult {
        let batches = waiting.len().div_ceil(self.batching.max_batch.max(1));
        let mut result = Ok(());
        for _ in 0..batches {
            result = self.export(waiting.take_batch()).await;
        }
        result
    }

    /// Sends `spans` in batches; the last batch's result.
    async fn send_all(&mut self, mut spans: Vec<SpanData>) -> OTelSdkResult {
        let max_batch = self.batching.max_batch.max(1);
        let mut result = Ok(());
        while !spans.is_empty() {
            let rest = spans.split_off(spans.len().min(max_batch));
            result = self.export(spans).await;
            spans = rest;
        }
        result
    }

    /// Sends `batch`, within the export timeout.
    async fn export(&mut self, batch: Vec<SpanData>) -> OTelSdkResult {
        if batch.is_empty() {
            return Ok(());
        }
        let count = batch.len() as u64;
        let result =
            match tokio::time::timeout(self.batching.timeout, self.exporter.export(batch)).await {
                Ok(result) => result,
                Err(_) => Err(OTelSdkError::Timeout(self.batching.timeout)),
            };
        match &result {
            Ok(()) => {
                self.stats.exported.fetch_add(count, Ordering::Relaxed);
                metrics::counter!(EXPORTED_TOTAL).increment(count);
                if self.failing {
                    tracing::info!(target: "pattern_server::telemetry", "span export works again");
                    self.failing = false;
                }
            }
            Err(err) => {
                self.stats.export_failed.fetch_add(count, Ordering::Relaxed);
                metrics::counter!(DROPPED_TOTAL, "reason" => "export_failed").increment(count);
                if !self.failing {
                    tracing::warn!(target: "pattern_server::telemetry", error = %err, spans = count, "span export failed; spans are dropped until it works again");
                    self.failing = true;
                }
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use std::sync::Mutex;

    /// An exporter that records batch sizes, fails, or never answers.
    #[derive(Clone, Debug, Default)]
    struct Fake {
        batches: Arc<Mutex<Vec<usize>>>,
        fail: bool,
        stall: bool,
    }

    impl SpanExporter for Fake {
        fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
            let this = self.clone();
            async move {
                if this.stall {
                    std::future::pending::<()>().await;
                }
                if this.fail {
                    return Err(OTelSdkError::InternalFailure("refused".into()));
                }
                this.batches.lock().unwrap().push(batch.len());
                Ok(())
            }
        }
    }

    use std::future::Future;

    fn batching(max_queue: usize, max_batch: usize) -> Batching {
        Batching {
            max_queue,
            max_batch,
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
        }
    }

    /// A provider over the queue; its tracer ends `n` spans at once.
    fn provider(exporter: Fake, batching: Batching) -> (SdkTracerProvider, Flusher, Arc<Stats>) {
        let runner = Runner::Runtime(tokio::runtime::Handle::current());
        let (queue, stats) = Queue::start(exporter, batching, runner).unwrap();
        let flusher = queue.flusher();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(queue)
            .build();
        (provider, flusher, stats)
    }

    fn end_spans(provider: &SdkTracerProvider, n: usize) {
        let tracer = provider.tracer("test");
        for i in 0..n {
            tracer.start(format!("span {i}")).end();
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_stalled_collector_drops_past_the_bound_and_never_blocks() {
        let exporter = Fake {
            stall: true,
            ..Fake::default()
        };
        let (provider, flusher, stats) = provider(exporter, batching(8, 4));
        // The export task has not run yet: the queue holds 8, the rest is
        // dropped at once.
        let started = std::time::Instant::now();
        end_spans(&provider, 100);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(stats.queue_full.load(Ordering::Relaxed), 92);
        // The stalled export times out (counted); the rest goes the same
        // way; nothing is lost silently.
        let flushed = flusher.flush(false).await;
        assert!(flushed.is_err(), "{flushed:?}");
        // Two batches of 4, each given up after the export timeout.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(stats.export_failed.load(Ordering::Relaxed), 8);
        assert_eq!(stats.exported.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn batches_are_bounded_and_flushes_send_everything() {
        let exporter = Fake::default();
        let batches = exporter.batches.clone();
        let (provider, flusher, stats) = provider(exporter, batching(64, 4));
        end_spans(&provider, 10);
        flusher.flush(false).await.unwrap();
        assert_eq!(*batches.lock().unwrap(), [4, 4, 2]);
        assert_eq!(stats.exported.load(Ordering::Relaxed), 10);
        // Within the interval, a lone span is sent without a flush.
        end_spans(&provider, 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(stats.exported.load(Ordering::Relaxed), 11);
        // The last flush ends the task (the component's stop): later spans
        // are not sent, and counted as dropped.
        flusher.flush(true).await.unwrap();
        end_spans(&provider, 5);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(stats.exported.load(Ordering::Relaxed), 11);
        assert_eq!(stats.queue_full.load(Ordering::Relaxed), 0);
        assert_eq!(stats.after_stop.load(Ordering::Relaxed), 5);
        assert!(flusher.flush(false).await.is_err(), "the task is gone");
    }

    /// A full batch goes at once; a partial one waits for the interval.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_full_batch_goes_without_waiting_for_the_interval() {
        let exporter = Fake::default();
        let batches = exporter.batches.clone();
        let (provider, _flusher, stats) = provider(exporter, batching(64, 4));
        end_spans(&provider, 3);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(stats.exported.load(Ordering::Relaxed), 0);
        end_spans(&provider, 6);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*batches.lock().unwrap(), [4, 4]);
        // The last one, at the interval.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*batches.lock().unwrap(), [4, 4, 1]);
        assert_eq!(stats.exported.load(Ordering::Relaxed), 9);
    }

    /// The stop's last flush is taken even while a stalled collector and
    /// steady spans keep full batches waiting: spans after it are refused
    /// (counted), not queued for ever.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_last_flush_is_not_starved_by_full_batches() {
        let exporter = Fake {
            stall: true,
            ..Fake::default()
        };
        let (provider, flusher, stats) = provider(exporter, batching(64, 4));
        let tracer = provider.tracer("steady");
        let steady = tokio::spawn(async move {
            for i in 0..200 {
                for _ in 0..4 {
                    tracer.start(format!("span {i}")).end();
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Stalled: the flush times out, but the task has taken it.
        let _ = flusher.flush(true).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            stats.after_stop.load(Ordering::Relaxed) > 0,
            "spans after the stop are still queued: {stats:?}"
        );
        steady.abort();
    }

    /// Many threads ending spans while the queue is sent and finally
    /// stopped: every span is sent or counted, once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_span_is_sent_or_counted_once() {
        let exporter = Fake::default();
        let batches = exporter.batches.clone();
        let (provider, flusher, stats) = provider(exporter, batching(64, 16));
        let enders: Vec<_> = (0..4)
            .map(|_| {
                let provider = provider.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        end_spans(&provider, 20);
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        // The stop lands while spans are still ending.
        tokio::time::sleep(Duration::from_millis(1)).await;
        flusher.flush(true).await.unwrap();
        for ender in enders {
            ender.join().unwrap();
        }
        let sent: usize = batches.lock().unwrap().iter().sum();
        assert_eq!(sent as u64, stats.exported.load(Ordering::Relaxed));
        assert_eq!(
            stats.exported.load(Ordering::Relaxed)
                + stats.queue_full.load(Ordering::Relaxed)
                + stats.after_stop.load(Ordering::Relaxed),
            4 * 50 * 20,
            "{stats:?}"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_refusing_collector_counts_what_it_loses() {
        let exporter = Fake {
            fail: true,
            ..Fake::default()
        };
        let (provider, flusher, stats) = provider(exporter, batching(16, 16));
        end_spans(&provider, 5);
        assert!(flusher.flush(false).await.is_err());
        assert_eq!(stats.export_failed.load(Ordering::Relaxed), 5);
        assert_eq!(stats.queue_full.load(Ordering::Relaxed), 0);
    }

    /// On its own thread, the export needs no runtime of the service's:
    /// here there is none at all.
    #[test]
    fn the_export_thread_sends_without_the_services_runtime() {
        let exporter = Fake::default();
        let batches = exporter.batches.clone();
        let (queue, stats) = Queue::start(exporter, batching(64, 4), Runner::Thread).unwrap();
        let flusher = queue.flusher();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(queue)
            .build();
        end_spans(&provider, 10);
        provider.force_flush().unwrap();
        assert_eq!(stats.exported.load(Ordering::Relaxed), 10);
        assert_eq!(*batches.lock().unwrap(), [4, 4, 2]);
        // The last flush (the component's stop, from a runtime of its
        // own): the task ends; later spans are counted, not sent.
        end_spans(&provider, 1);
        let stop = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        stop.block_on(flusher.flush(true)).unwrap();
        assert_eq!(stats.exported.load(Ordering::Relaxed), 11);
        end_spans(&provider, 2);
        assert_eq!(stats.after_stop.load(Ordering::Relaxed), 2);
        assert_eq!(stats.exported.load(Ordering::Relaxed), 11);
        assert!(
            stop.block_on(flusher.flush(false)).is_err(),
            "the task is gone"
        );
        // The provider's own shutdown after the stop: nothing left to do.
        provider.shutdown().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_providers_flush_and_shutdown_wait_outside_the_runtime_only() {
        let exporter = Fake::default();
        let batches = exporter.batches.clone();
        let (provider, flusher, stats) = provider(exporter, batching(64, 64));
        // From a thread of its own (at exit, after the runtime): waited for.
        end_spans(&provider, 3);
        let outside = provider.clone();
        std::thread::spawn(move || outside.force_flush())
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(stats.exported.load(Ordering::Relaxed), 3);
        // From a runtime thread: asked for, not waited for (waiting could
        // hold the thread the export needs); the flush still happens.
        end_spans(&provider, 2);
        let started = std::time::Instant::now();
        provider.force_flush().unwrap();
        assert!(started.elapsed() < Duration::from_millis(100));
        flusher.flush(false).await.unwrap();
        assert_eq!(stats.exported.load(Ordering::Relaxed), 5);
        end_spans(&provider, 1);
        let outside = provider.clone();
        std::thread::spawn(move || outside.shutdown())
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(stats.exported.load(Ordering::Relaxed), 6);
        assert_eq!(batches.lock().unwrap().iter().sum::<usize>(), 6);
    }
}
