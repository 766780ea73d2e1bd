//! The worker pool under random settings and schedules (paused time):
//! jobs of random length that fail or panic, several producers with random
//! gaps, some calls given up. Every job submitted ends once (processed,
//! failed or panicked), the pool never runs more than `max` jobs or
//! workers at once, it never stalls while it has work, and once idle it
//! shrinks back to `min`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pattern_error::{Error, Kind};
use pattern_network::scale::WorkerPool;
use proptest::prelude::*;
use tokio::time::sleep;

mod common;

#[derive(Clone, Copy, Debug)]
enum Fate {
    Ok(u64),
    Fail,
    Panic,
}

#[derive(Clone, Debug)]
struct Case {
    min: usize,
    max: usize,
    queue: usize,
    scale_up_at: usize,
    cooldown_ms: u64,
    idle_ms: u64,
    /// Per producer: (gap before each job in ms, the job's fate).
    producers: Vec<Vec<(u64, Fate)>>,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        10 => prop_oneof![0u64..5, 50u64..500].prop_map(Fate::Ok),
        1 => Just(Fate::Fail),
        1 => Just(Fate::Panic),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        0usize..=3,
        1usize..=6,
        1usize..=16,
        1usize..=8,
        prop_oneof![Just(0u64), 1u64..200],
        prop_oneof![Just(0u64), 1u64..2_000],
        proptest::collection::vec(
            proptest::collection::vec((prop_oneof![Just(0u64), 1u64..300], fate()), 0..40),
            1..=4,
        ),
    )
        .prop_map(
            |(min, max, queue, scale_up_at, cooldown_ms, idle_ms, producers)| Case {
                min,
                max,
                queue,
                scale_up_at,
                cooldown_ms,
                idle_ms,
                producers,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_job_ends_once_within_bounds_and_the_pool_shrinks_back(case in case()) {
        common::quiet_panics("job panicked");
        common::paused_runtime().block_on(async {
            let running = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let (r, p) = (running.clone(), peak.clone());
            let pool = WorkerPool::builder("prop", case.min, case.max)
                .queue(case.queue)
                .scale_up_at(case.scale_up_at)
                .cooldown(Duration::from_millis(case.cooldown_ms))
                .idle_timeout(Duration::from_millis(case.idle_ms))
                .spawn(move |fate: Fate| {
                    let (r, p) = (r.clone(), p.clone());
                    async move {
                        let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                        p.fetch_max(now, Ordering::SeqCst);
                        let _running = Decrement(r);
                        match fate {
                            Fate::Ok(ms) => {
                                sleep(Duration::from_millis(ms)).await;
                                Ok(ms)
                            }
                            Fate::Fail => Err(Error::new(Kind::InvalidInput, "refused")),
                            Fate::Panic => panic!("job panicked"),
                        }
                    }
                });
            let (min, max) = (case.min.max(1), case.max.max(case.min.max(1)));
            let producers: Vec<_> = case
                .producers
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, jobs)| {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let mut submitted = 0u64;
                        for (j, (gap, fate)) in jobs.into_iter().enumerate() {
                            sleep(Duration::from_millis(gap)).await;
                            // Producer 1 calls and waits; the others submit.
                            if i == 1 {
                                let answer = pool.call(fate).await;
                                match fate {
                                    Fate::Ok(ms) => assert_eq!(answer.unwrap(), ms),
                                    Fate::Fail => assert_eq!(answer.unwrap_err().kind(), Kind::InvalidInput),
                                    Fate::Panic => assert_eq!(answer.unwrap_err().kind(), Kind::Internal),
                                }
                            } else {
                                pool.submit(fate).await.unwrap();
                            }
                            submitted += 1;
                            let workers = pool.workers();
                            assert!(workers <= max && workers >= 1, "{workers} workers, {j}");
                        }
                        submitted
                    })
                })
                .collect();
            let mut submitted = 0;
            for producer in producers {
                submitted += tokio::time::timeout(Duration::from_secs(3_600), producer)
                    .await
                    .map_err(|_| TestCaseError::fail("a producer stalled"))?
                    .map_err(|e| TestCaseError::fail(format!("a producer failed: {e}")))?;
            }
            // Submitting returns before the jobs run: wait for the last one
            // to end (the idle time counts from there).
            for _ in 0..10_000_000 {
                if pool.queued() == 0 && running.load(Ordering::SeqCst) == 0 {
                    break;
                }
                sleep(Duration::from_millis(1)).await;
            }
            prop_assert_eq!((pool.queued(), running.load(Ordering::SeqCst)), (0, 0), "jobs left");
            // Idle for two periods (the one the last job ended in, then a
            // whole idle one) and a cooldown per worker: back to min.
            sleep(Duration::from_millis(2 * case.idle_ms + case.cooldown_ms * (max as u64 + 1) + 1_000)).await;
            prop_assert_eq!(pool.workers(), min, "not back to min when idle");
            let report = tokio::time::timeout(Duration::from_secs(3_600), pool.stop())
                .await
                .map_err(|_| TestCaseError::fail("the stop stalled"))?;
            prop_assert_eq!(report.processed + report.failed + report.panicked, submitted);
            prop_assert_eq!(report.abandoned, 0);
            prop_assert!(peak.load(Ordering::SeqCst) <= max, "{} jobs at once", peak.load(Ordering::SeqCst));
            Ok(())
        })?;
    }
}

/// Counts a job out however it ends (a panic included).
struct Decrement(Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
