//! The worker pool scales up under a burst and back down when idle, with a
//! cooldown (paused time).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pattern_error::{Error, Kind};
use pattern_network::scale::WorkerPool;
use tokio::time::sleep;

#[tokio::test(start_paused = true)]
async fn scales_up_under_a_burst_and_down_when_idle() {
    let concurrent = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (c, p) = (concurrent.clone(), peak.clone());
    let pool = WorkerPool::builder("test", 1, 6)
        .queue(16)
        .scale_up_at(4)
        .cooldown(Duration::from_millis(50))
        .idle_timeout(Duration::from_secs(1))
        .spawn(move |_job: u32| {
            let (c, p) = (c.clone(), p.clone());
            async move {
                let now = c.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                sleep(Duration::from_millis(200)).await;
                c.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Error>(())
            }
        });
    assert_eq!(pool.workers(), 1);
    for job in 0..60 {
        pool.submit(job).await.unwrap();
    }
    assert_eq!(pool.workers(), 6, "scaled to max under the burst");
    assert!(peak.load(Ordering::SeqCst) >= 5);

    // The burst drains; idle workers leave one per cooldown, down to min.
    sleep(Duration::from_secs(10)).await;
    assert_eq!(pool.workers(), 1, "back to min when idle");
    let report = pool.shutdown().await;
    assert_eq!(report.processed, 60, "nothing lost");
}

#[tokio::test(start_paused = true)]
async fn cooldown_limits_the_scaling_rate() {
    let pool = WorkerPool::builder("cool", 1, 10)
        .queue(100)
        .scale_up_at(1)
        .cooldown(Duration::from_secs(1))
        .spawn(|_job: u32| async {
            sleep(Duration::from_secs(5)).await;
            Ok::<_, Error>(())
        });
    for job in 0..50 {
        pool.try_submit(job).unwrap();
    }
    assert_eq!(pool.workers(), 2, "one decision per cooldown");
    sleep(Duration::from_millis(1100)).await;
    pool.try_submit(99).unwrap();
    assert_eq!(pool.workers(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_is_refused_with_overloaded() {
    let pool = WorkerPool::builder("full", 1, 1)
        .queue(2)
        .spawn(|_job: u32| async {
            sleep(Duration::from_secs(60)).await;
            Ok::<_, Error>(())
        });
    tokio::task::yield_now().await;
    let mut refused = None;
    for job in 0..5 {
        if let Err(e) = pool.try_submit(job) {
            refused = Some(e);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(refused.expect("the queue filled").kind(), Kind::Overloaded);
}

/// With no cooldown, producers submitting at once from several threads
/// (clones of one pool) never take it past `max` workers.
#[test]
fn concurrent_submissions_never_exceed_max() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for _ in 0..50 {
            let release = Arc::new(tokio::sync::Semaphore::new(0));
            let pool = {
                let release = release.clone();
                WorkerPool::builder("race", 1, 3)
                    .queue(256)
                    .scale_up_at(1)
                    .cooldown(Duration::ZERO)
                    .spawn(move |_: u32| {
                        let release = release.clone();
                        async move {
                            let _ = release.acquire().await.map(|permit| permit.forget());
                            Ok(())
                        }
                    })
            };
            let producers: Vec<_> = (0..8)
                .map(|p| {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        for i in 0..16 {
                            pool.submit(p * 100 + i).await.unwrap();
                            assert!(pool.workers() <= 3, "{} workers", pool.workers());
                        }
                    })
                })
                .collect();
            for producer in producers {
                producer.await.unwrap();
            }
            assert!(pool.workers() <= 3, "{} workers", pool.workers());
            release.add_permits(8 * 16);
            let report = pool.shutdown().await;
            assert_eq!(report.processed, 8 * 16);
        }
    });
}
