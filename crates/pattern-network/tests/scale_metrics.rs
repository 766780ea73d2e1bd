//! The worker pool reports its saturation and how long items wait: with
//! one worker and jobs of 100 ms, three items submitted at once wait 0,
//! 100 and 200 ms, and the busy gauge is 1 while a job runs and 0 after.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use pattern_error::Error;
use pattern_network::scale::{BUSY_GAUGE, QUEUE_WAIT, WorkerPool};

#[test]
fn the_pool_reports_its_saturation_and_queue_wait() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    // A debugging snapshot drains what it reads (gauges to zero,
    // histograms emptied): the two snapshots add up to the whole run.
    let (mid, ends) = metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let pool =
                WorkerPool::builder("metrics-test", 1, 1)
                    .queue(8)
                    .spawn(|_: u32| async move {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, Error>(())
                    });
            for job in 0..3 {
                pool.submit(job).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mid = read(&snapshotter);
            pool.call(3).await.unwrap();
            let report = pool.stop_timeout(Duration::from_secs(1)).await;
            assert_eq!(report.processed, 4);
            (mid, read(&snapshotter))
        })
    });
    assert_eq!(mid.0, Some(1.0), "one job running");
    assert_eq!(
        mid.0.zip(ends.0).map(|(a, b)| a + b),
        Some(0.0),
        "none after"
    );
    let mut waits: Vec<f64> = mid.1.into_iter().chain(ends.1).collect();
    waits.sort_by(f64::total_cmp);
    // Paused time: the waits are exact.
    assert_eq!(waits, [0.0, 0.1, 0.2, 0.25], "{waits:?}");
}

/// The busy gauge and the queue waits recorded since the last read.
fn read(snapshotter: &metrics_util::debugging::Snapshotter) -> (Option<f64>, Vec<f64>) {
    let mut busy = None;
    let mut waits = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        match (key.key().name(), value) {
            (name, DebugValue::Gauge(value)) if name == BUSY_GAUGE => {
                busy = Some(value.into_inner())
            }
            (name, DebugValue::Histogram(values)) if name == QUEUE_WAIT => {
                waits.extend(values.into_iter().map(|v| v.into_inner()));
            }
            _ => {}
        }
    }
    (busy, waits)
}
