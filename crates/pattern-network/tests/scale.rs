//! The worker pool scales up under a burst and back down when idle, with a
//! cooldown (paused time).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pattern_error::{Error, Kind};
use pattern_network::scale::WorkerPool;
use tokio::time::sleep;

mod common;

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
    let report = pool.stop().await;
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
            let report = pool.stop().await;
            assert_eq!(report.processed, 8 * 16);
        }
    });
}

/// A panicking job is that job's failure: the pool goes on with all its
/// workers (before, each panic took a worker's place for good, and after
/// `max` panics nothing ran).
#[tokio::test(start_paused = true)]
async fn panicking_jobs_do_not_stall_the_pool() {
    common::quiet_panics("job panicked");
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let pool = WorkerPool::builder("fragile", 1, 2)
        .queue(32)
        .cooldown(Duration::ZERO)
        .spawn(move |job: u32| {
            let counter = counter.clone();
            async move {
                assert!(job >= 100, "job panicked on {job}");
                counter.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Error>(())
            }
        });
    for job in 0..6 {
        pool.submit(job).await.unwrap();
    }
    for job in 100..110 {
        pool.submit(job).await.unwrap();
    }
    let report = tokio::time::timeout(Duration::from_secs(60), pool.stop())
        .await
        .expect("the pool must not stall");
    assert_eq!(ran.load(Ordering::SeqCst), 10);
    assert_eq!(
        (report.processed, report.panicked, report.failed),
        (10, 6, 0)
    );
}

/// `call` gives back the job's output, its error, or Internal for a panic;
/// the pool's workers stay.
#[tokio::test(start_paused = true)]
async fn call_returns_the_jobs_output() {
    common::quiet_panics("job panicked");
    let pool = WorkerPool::builder("square", 1, 3)
        .cooldown(Duration::ZERO)
        .spawn(|n: i64| async move {
            match n {
                n if n < 0 => Err(Error::new(Kind::InvalidInput, "negative")),
                13 => panic!("job panicked on 13"),
                n => Ok(n * n),
            }
        });
    assert_eq!(pool.call(7).await.unwrap(), 49);
    assert_eq!(pool.call(-1).await.unwrap_err().kind(), Kind::InvalidInput);
    assert_eq!(pool.call(13).await.unwrap_err().kind(), Kind::Internal);
    let answers = futures_join(&pool, 0..50).await;
    assert_eq!(
        answers,
        (0..50)
            .map(|n| if n == 13 { None } else { Some(n * n) })
            .collect::<Vec<_>>()
    );
    let report = pool.stop().await;
    assert_eq!(
        (report.processed, report.failed, report.panicked),
        (50, 1, 2)
    );
}

async fn futures_join(pool: &WorkerPool<i64, i64>, jobs: std::ops::Range<i64>) -> Vec<Option<i64>> {
    let calls: Vec<_> = jobs
        .map(|n| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.call(n).await.ok() })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    answers
}

/// A call dropped while its item waits in the queue cancels the job.
#[tokio::test(start_paused = true)]
async fn a_dropped_call_cancels_its_job() {
    let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = ran.clone();
    let pool = WorkerPool::builder("one", 1, 1).spawn(move |n: u32| {
        let log = log.clone();
        async move {
            sleep(Duration::from_secs(1)).await;
            log.lock().unwrap().push(n);
            Ok::<_, Error>(())
        }
    });
    pool.submit(1).await.unwrap(); // keeps the only worker busy for 1 s
    tokio::task::yield_now().await;
    let given_up = tokio::time::timeout(Duration::from_millis(100), pool.call(2)).await;
    assert!(given_up.is_err());
    pool.call(3).await.unwrap();
    pool.stop().await;
    assert_eq!(*ran.lock().unwrap(), [1, 3]);
}

/// A stop with a timeout returns at the timeout, with the jobs cut
/// short and the items still queued counted as abandoned; a call waiting on
/// one of them gets Unavailable.
#[tokio::test(start_paused = true)]
async fn a_stop_with_a_timeout_abandons_what_is_left() {
    let pool = WorkerPool::builder("stuck", 2, 2)
        .queue(16)
        .spawn(|n: u32| async move {
            sleep(Duration::from_secs(if n < 3 { 0 } else { 3_600 })).await;
            Ok::<_, Error>(n)
        });
    for n in 0..8 {
        pool.submit(n).await.unwrap();
    }
    let waiting = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.call(99).await })
    };
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let report = pool.stop_timeout(Duration::from_secs(5)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    // 0..3 done; 3 and 4 cut short; 5, 6, 7 and the call's 99 still queued.
    assert_eq!(report.processed, 3);
    assert_eq!(report.abandoned, 6);
    assert_eq!(
        waiting.await.unwrap().unwrap_err().kind(),
        Kind::Unavailable
    );
}

/// With no idle timeout, surplus workers go as soon as they are idle and
/// the ones at `min` wait without spinning (the runtime must go idle so
/// paused time can move; a spinning worker kept it busy for ever). Run on
/// its own thread, so a spin fails the test instead of hanging it.
#[test]
fn a_zero_idle_timeout_shrinks_at_once_and_does_not_spin() {
    let (peak, after) = common::within(
        Duration::from_secs(30),
        "the pool spun: paused time never moved",
        || async {
            let pool = WorkerPool::builder("eager", 2, 4)
                .queue(16)
                .scale_up_at(1)
                .cooldown(Duration::ZERO)
                .idle_timeout(Duration::ZERO)
                .spawn(|_: u32| async {
                    sleep(Duration::from_millis(100)).await;
                    Ok::<_, Error>(())
                });
            for n in 0..16 {
                pool.submit(n).await.unwrap();
            }
            let peak = pool.workers();
            sleep(Duration::from_secs(60)).await;
            let after = pool.workers();
            pool.stop().await;
            (peak, after)
        },
    );
    assert_eq!(peak, 4);
    assert_eq!(after, 2);
}

/// A trickle of load that one worker handles shrinks a pool grown by a
/// burst, although every worker gets an item now and then.
#[tokio::test(start_paused = true)]
async fn a_trickle_of_load_shrinks_the_pool() {
    let pool = WorkerPool::builder("trickle", 1, 6)
        .queue(8)
        .scale_up_at(2)
        .cooldown(Duration::from_millis(50))
        .idle_timeout(Duration::from_secs(1))
        .spawn(|n: u32| async move {
            // The burst's jobs are slow, the trickle's quick.
            sleep(Duration::from_millis(if n < 60 { 100 } else { 10 })).await;
            Ok::<_, Error>(())
        });
    for n in 0..60 {
        pool.submit(n).await.unwrap();
    }
    assert_eq!(pool.workers(), 6);
    // One item every 150 ms for 20 s: each of six workers would get one
    // every 900 ms, within its 1 s idle timeout.
    for n in 0..133 {
        sleep(Duration::from_millis(150)).await;
        pool.submit(1_000 + n).await.unwrap();
    }
    assert_eq!(pool.workers(), 1, "one worker is enough for a trickle");
    let report = pool.stop().await;
    assert_eq!(report.processed, 60 + 133);
}

/// Deadlines at their extremes: zero abandons at once what runs, MAX waits
/// like `stop`; a clone submitting after the deadline is refused, not
/// left waiting.
#[tokio::test(start_paused = true)]
async fn stop_timeouts_of_zero_and_max() {
    let slow = |n: u32| async move {
        sleep(Duration::from_secs(1)).await;
        Ok::<_, Error>(n)
    };
    let pool = WorkerPool::builder("zero", 1, 1).spawn(slow);
    pool.submit(1).await.unwrap();
    tokio::task::yield_now().await;
    let late = pool.clone();
    let start = tokio::time::Instant::now();
    let report = pool.stop_timeout(Duration::ZERO).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!((report.processed, report.abandoned), (0, 1));
    assert_eq!(late.submit(2).await.unwrap_err().kind(), Kind::Unavailable);
    assert_eq!(late.call(3).await.unwrap_err().kind(), Kind::Unavailable);
    assert_eq!(late.try_submit(4).unwrap_err().kind(), Kind::Unavailable);
    drop(late);

    let pool = WorkerPool::builder("max", 1, 1).spawn(slow);
    pool.submit(1).await.unwrap();
    let report = pool.stop_timeout(Duration::MAX).await;
    assert_eq!((report.processed, report.abandoned), (1, 0));
}
