//! Back pressure: the adaptive limit finds a server's capacity, rejects the
//! excess at once, and gives slots back on cancellation (paused time).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pattern_error::{Error, Kind};
use pattern_network::limit::{
    AdaptiveLimit, AdaptiveLimitLayer, Aimd, Algorithm, Gradient2, Vegas,
};
use tower::{Layer, Service, ServiceExt, service_fn};

/// A server that handles `capacity` calls at 10 ms each; past that, calls
/// queue and every extra call in flight adds latency; past twice that, it
/// answers overloaded.
fn server(
    capacity: usize,
) -> impl Service<
    (),
    Response = (),
    Error = Error,
    Future = impl Future<Output = Result<(), Error>> + Send,
> + Clone {
    let in_flight = Arc::new(AtomicUsize::new(0));
    service_fn(move |()| {
        let in_flight = in_flight.clone();
        async move {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            let result = if now > 2 * capacity {
                Err(Error::from_kind(Kind::Overloaded))
            } else {
                let queued = now.saturating_sub(capacity) as u64;
                tokio::time::sleep(Duration::from_millis(10 + 2 * queued)).await;
                Ok(())
            };
            in_flight.fetch_sub(1, Ordering::SeqCst);
            result
        }
    })
}

/// 100 clients calling in a loop for 5 simulated seconds; returns the
/// limit averaged over the last 4 seconds (sampled every 10 ms) and the
/// share of calls turned away.
async fn drive(algorithm: impl Algorithm) -> (usize, f64) {
    let limit = AdaptiveLimit::new("test", algorithm);
    let svc = AdaptiveLimitLayer::new(limit.clone()).layer(server(20));
    let rejected = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let svc = svc.clone();
            let (rejected, total) = (rejected.clone(), total.clone());
            tokio::spawn(async move {
                while tokio::time::Instant::now() < end {
                    total.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = svc.clone().oneshot(()).await {
                        if e.kind() == Kind::Overloaded {
                            rejected.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();
    let watched = limit.clone();
    let monitor = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut samples = Vec::new();
        while tokio::time::Instant::now() < end {
            samples.push(watched.limit());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        samples.iter().sum::<usize>() / samples.len()
    });
    for c in clients {
        c.await.unwrap();
    }
    let mean = monitor.await.unwrap();
    assert_eq!(limit.in_flight(), 0, "every slot given back");
    let share = rejected.load(Ordering::Relaxed) as f64 / total.load(Ordering::Relaxed) as f64;
    eprintln!(
        "mean limit {mean}, {:.1} % of calls turned away",
        share * 100.0
    );
    (mean, share)
}

#[tokio::test(start_paused = true)]
async fn vegas_settles_near_the_capacity() {
    let (limit, rejected) = drive(Vegas::new(5, 1, 1000)).await;
    assert!(
        (10..=40).contains(&limit),
        "limit {limit} for a capacity of 20"
    );
    assert!(rejected > 0.0, "the excess was turned away");
}

#[tokio::test(start_paused = true)]
async fn aimd_backs_off_on_overload() {
    let (limit, _) = drive(Aimd::new(100, 1, 1000).timeout(Duration::from_millis(100))).await;
    // AIMD saws up and down around the overload point (40 in flight).
    assert!(
        (10..=60).contains(&limit),
        "mean limit {limit} for a server overloaded past 40"
    );
}

#[tokio::test(start_paused = true)]
async fn gradient2_settles_near_the_capacity() {
    let (limit, rejected) = drive(Gradient2::new(5, 1, 1000)).await;
    assert!(
        (10..=60).contains(&limit),
        "limit {limit} for a capacity of 20"
    );
    assert!(rejected > 0.0, "the excess was turned away");
}

/// A server of fixed capacity (20 at a time, beyond that calls queue)
/// whose base latency is `base_ms` of the phase the clock is in.
fn stepping_server(
    phases: Arc<Vec<(Duration, u64)>>,
    start: tokio::time::Instant,
) -> impl Service<
    (),
    Response = (),
    Error = Error,
    Future = impl Future<Output = Result<(), Error>> + Send,
> + Clone {
    let in_flight = Arc::new(AtomicUsize::new(0));
    service_fn(move |()| {
        let in_flight = in_flight.clone();
        let elapsed = start.elapsed();
        let mut until = Duration::ZERO;
        let mut base = phases.last().map_or(10, |p| p.1);
        for &(length, ms) in phases.iter() {
            until += length;
            if elapsed < until {
                base = ms;
                break;
            }
        }
        async move {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            let queued = now.saturating_sub(20) as u64;
            tokio::time::sleep(Duration::from_millis(base + base * queued / 5)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    })
}

/// 100 clients through the phases; the mean limit over the second half of
/// each phase.
async fn drive_phases(algorithm: impl Algorithm, phases: Vec<(Duration, u64)>) -> Vec<usize> {
    let limit = AdaptiveLimit::new("steps", algorithm);
    let start = tokio::time::Instant::now();
    let phases = Arc::new(phases);
    let svc = AdaptiveLimitLayer::new(limit.clone()).layer(stepping_server(phases.clone(), start));
    let total: Duration = phases.iter().map(|p| p.0).sum();
    let end = start + total;
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                while tokio::time::Instant::now() < end {
                    if svc.clone().oneshot(()).await.is_err() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();
    let mut means = Vec::new();
    let mut phase_start = start;
    for &(length, _) in phases.iter() {
        tokio::time::sleep_until(phase_start + length / 2).await;
        let mut samples = Vec::new();
        while tokio::time::Instant::now() < phase_start + length {
            samples.push(limit.limit());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        means.push(samples.iter().sum::<usize>() / samples.len().max(1));
        phase_start += length;
    }
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(limit.in_flight(), 0, "every slot given back");
    eprintln!("mean limit per phase: {means:?}");
    means
}

/// Latency steps up fourfold for a while, then back down: the limit falls
/// with it and recovers once latency is back (paused time).
#[tokio::test(start_paused = true)]
async fn gradient2_follows_a_latency_step_up_and_recovers() {
    let phases = vec![
        (Duration::from_secs(20), 10),
        (Duration::from_secs(20), 40),
        (Duration::from_secs(30), 10),
    ];
    let means = drive_phases(Gradient2::new(20, 1, 1000), phases).await;
    assert!(
        means[1] * 5 <= means[0] * 4,
        "the limit falls under the latency step: {means:?}"
    );
    assert!(
        means[2] * 5 >= means[0] * 4,
        "and recovers once it is over: {means:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn vegas_follows_a_latency_step_up_and_recovers() {
    let phases = vec![
        (Duration::from_secs(20), 10),
        (Duration::from_secs(20), 40),
        (Duration::from_secs(30), 10),
    ];
    let means = drive_phases(Vegas::new(20, 1, 1000), phases).await;
    assert!(
        means[2] * 5 >= means[0] * 4,
        "recovers once latency is back: {means:?}"
    );
}

/// Calls their callers give up (futures dropped at a deadline) are samples:
/// under a server that stopped answering, the limit falls.
#[tokio::test(start_paused = true)]
async fn calls_given_up_by_their_callers_pull_the_limit_down() {
    let limit = AdaptiveLimit::builder(
        "hung",
        Aimd::new(10, 1, 100).timeout(Duration::from_millis(100)),
    )
    .window(Duration::ZERO, Duration::ZERO, 1)
    .build();
    let svc = AdaptiveLimitLayer::new(limit.clone())
        .layer(service_fn(|()| std::future::pending::<Result<(), Error>>()));
    for _ in 0..5 {
        let call = svc.clone().oneshot(());
        assert!(
            tokio::time::timeout(Duration::from_millis(500), call)
                .await
                .is_err()
        );
    }
    assert!(limit.limit() < 10, "limit {}", limit.limit());
    assert_eq!(limit.in_flight(), 0);
}

/// A call given up early, while others answer (a hedge's loser), is only a
/// latency: the limit is not cut for it.
#[tokio::test(start_paused = true)]
async fn a_call_given_up_early_is_not_a_drop() {
    let limit = AdaptiveLimit::builder("hedged", Aimd::new(4, 1, 100))
        .window(Duration::from_millis(100), Duration::from_secs(1), 4)
        .build();
    for _ in 0..10 {
        let answered: Vec<_> = (0..3).map(|_| limit.try_acquire().unwrap()).collect();
        let loser = limit.try_acquire().unwrap();
        tokio::time::advance(Duration::from_millis(50)).await;
        for permit in answered {
            permit.success();
        }
        drop(loser); // given up as the others answered
        tokio::time::advance(Duration::from_millis(60)).await;
    }
    assert!(limit.limit() >= 4, "limit {}", limit.limit());
}

/// The plain API: a permit reported by hand, and `run` around a future.
#[tokio::test(start_paused = true)]
async fn the_limit_works_without_tower() {
    let limit = AdaptiveLimit::builder("plain", Aimd::new(2, 1, 10))
        .window(Duration::ZERO, Duration::ZERO, 1)
        .build();
    let a = limit.try_acquire().unwrap();
    let b = limit.try_acquire().unwrap();
    assert_eq!(limit.try_acquire().unwrap_err().kind(), Kind::Overloaded);
    assert_eq!(b.in_flight(), 2);
    tokio::time::advance(Duration::from_millis(1)).await;
    a.dropped();
    assert_eq!(limit.limit(), 1, "a drop backs off");
    b.ignore();
    let got = limit
        .run(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, Error>(7)
        })
        .await
        .unwrap();
    assert_eq!(got, 7);
    assert_eq!(limit.limit(), 2, "a used limit grows");
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropped_calls_give_their_slot_back() {
    let limit = AdaptiveLimit::new("drop", Aimd::new(1, 1, 1));
    let mut svc = AdaptiveLimitLayer::new(limit.clone())
        .layer(service_fn(|()| std::future::pending::<Result<(), Error>>()));
    let fut = svc.ready().await.unwrap().call(());
    assert_eq!(limit.in_flight(), 1);
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Overloaded);
    drop(fut);
    assert_eq!(limit.in_flight(), 0);
    assert_eq!(limit.limit(), 1);
}

/// Windows at their extremes: a window that never closes never moves the
/// limit; slots still come back.
#[tokio::test(start_paused = true)]
async fn windows_of_zero_and_max() {
    for (min, max) in [
        (Duration::ZERO, Duration::ZERO),
        (Duration::MAX, Duration::MAX),
    ] {
        let limit = AdaptiveLimit::builder("extreme", Aimd::new(2, 1, 10))
            .window(min, max, u32::MAX)
            .min_rtt(Duration::MAX)
            .build();
        for _ in 0..5 {
            limit
                .run(async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    Ok::<_, Error>(())
                })
                .await
                .unwrap();
        }
        assert_eq!(limit.in_flight(), 0);
        assert_eq!(limit.limit(), 2, "calls under min_rtt are no samples");
    }
}
