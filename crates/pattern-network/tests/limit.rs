//! Back pressure: the adaptive limit finds a server's capacity, rejects the
//! excess at once, and gives slots back on cancellation (paused time).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pattern_error::{Error, Kind};
use pattern_network::limit::{AdaptiveLimit, AdaptiveLimitLayer, Aimd, Algorithm, Vegas};
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
    assert_eq!(limit.limit(), 1, "a cancelled call is no sample");
}
