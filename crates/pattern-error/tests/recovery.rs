//! Timeout, fallback, bulkhead and fault injection, with paused tokio time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pattern_error::bulkhead::{Bulkhead, BulkheadLayer};
use pattern_error::fallback::{FallbackLayer, Kinds, Value};
use pattern_error::fault::FaultLayer;
use pattern_error::timeout::TimeoutLayer;
use pattern_error::{Error, Kind};
use tokio::time::{Instant, sleep};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn timeout_fails_slow_calls_and_passes_quick_ones() {
    let slow = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .service(service_fn(|ms: u64| async move {
            sleep(Duration::from_millis(ms)).await;
            Ok::<_, Error>(ms)
        }));
    assert_eq!(slow.clone().oneshot(99).await.unwrap(), 99);
    let t0 = Instant::now();
    let err = slow.oneshot(10_000).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Timeout);
    assert!(err.is_transient());
    assert!(t0.elapsed() <= Duration::from_millis(101));
}

#[tokio::test(start_paused = true)]
async fn timeout_keeps_inner_errors_classified() {
    let svc = TimeoutLayer::new(Duration::from_secs(1)).layer(service_fn(|()| async {
        Err::<(), _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }));
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable);
}

#[tokio::test]
async fn fallback_answers_only_chosen_kinds() {
    let svc = |kind: Kind| {
        FallbackLayer::new(
            Kinds::of([Kind::Timeout, Kind::Unavailable]),
            Value("cached"),
        )
        .layer(service_fn(move |()| async move {
            Err::<&'static str, _>(Error::from_kind(kind))
        }))
    };
    assert_eq!(svc(Kind::Timeout).oneshot(()).await.unwrap(), "cached");
    assert_eq!(svc(Kind::Unavailable).oneshot(()).await.unwrap(), "cached");
    let err = svc(Kind::InvalidInput).oneshot(()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidInput);

    // A function fallback sees the error and may fail in turn.
    let svc = FallbackLayer::new(
        |e: &Error| e.is_transient(),
        |e: Error| {
            if e.kind() == Kind::RateLimited {
                Err(e.context("no fallback for rate limits"))
            } else {
                Ok(0u32)
            }
        },
    )
    .layer(service_fn(|kind: Kind| async move {
        Err::<u32, _>(Error::from_kind(kind))
    }));
    assert_eq!(svc.clone().oneshot(Kind::Overloaded).await.unwrap(), 0);
    let err = svc.oneshot(Kind::RateLimited).await.unwrap_err();
    assert_eq!(err.kind(), Kind::RateLimited);
}

#[tokio::test(start_paused = true)]
async fn bulkhead_rejects_beyond_its_bound() {
    let bulkhead = Bulkhead::new("db", 2);
    let svc = BulkheadLayer::new(bulkhead.clone()).layer(service_fn(|()| async {
        sleep(Duration::from_secs(1)).await;
        Ok::<_, Error>(())
    }));
    let a = tokio::spawn(svc.clone().oneshot(()));
    let b = tokio::spawn(svc.clone().oneshot(()));
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.in_flight(), 2);
    let err = svc.clone().oneshot(()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Overloaded);
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    assert_eq!(bulkhead.in_flight(), 0);
    svc.oneshot(()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn bulkhead_waits_up_to_its_timeout() {
    let bulkhead = Bulkhead::new("db", 1).wait_up_to(Duration::from_millis(500));
    let svc = BulkheadLayer::new(bulkhead.clone()).layer(service_fn(|ms: u64| async move {
        sleep(Duration::from_millis(ms)).await;
        Ok::<_, Error>(ms)
    }));
    // Holder for 300 ms: a waiter gets the slot after it.
    let holder = tokio::spawn(svc.clone().oneshot(300));
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    assert_eq!(svc.clone().oneshot(1).await.unwrap(), 1);
    assert!(t0.elapsed() >= Duration::from_millis(300));
    holder.await.unwrap().unwrap();

    // Holder for 2 s: a waiter gives up after 500 ms.
    let holder = tokio::spawn(svc.clone().oneshot(2_000));
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    let err = svc.clone().oneshot(1).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Overloaded);
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(500) && waited <= Duration::from_millis(502));
    holder.await.unwrap().unwrap();
}

/// The same bound through the tower layer: calls waiting in the layer's
/// futures take places in the queue, and one more is turned away at once.
#[tokio::test(start_paused = true)]
async fn the_bulkhead_layer_keeps_the_wait_queue_bounded() {
    let bulkhead = Bulkhead::new("db", 1)
        .wait_up_to(Duration::from_secs(10))
        .max_waiting(1);
    let svc = BulkheadLayer::new(bulkhead.clone()).layer(service_fn(|()| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<_, Error>(())
    }));
    let running = tokio::spawn(svc.clone().oneshot(()));
    let queued = tokio::spawn(svc.clone().oneshot(()));
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.in_flight(), 1);
    assert_eq!(bulkhead.waiting(), 1);
    let t0 = Instant::now();
    let err = svc.clone().oneshot(()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Overloaded);
    assert_eq!(t0.elapsed(), Duration::ZERO);
    running.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
    assert_eq!(bulkhead.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_bulkhead_wait_queue_is_bounded() {
    let bulkhead = Bulkhead::new("db", 1)
        .wait_up_to(Duration::from_secs(10))
        .max_waiting(2);
    let held = bulkhead.try_acquire().unwrap();
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let bulkhead = bulkhead.clone();
            tokio::spawn(async move { bulkhead.call(async { Ok::<_, Error>(()) }).await })
        })
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.waiting(), 2);
    // The queue is full: the next call is turned away at once.
    let t0 = Instant::now();
    let err = bulkhead
        .call(async { Ok::<_, Error>(()) })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::Overloaded);
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(bulkhead.waiting(), 2, "a rejected call takes no place");
    // A waiter that gives up leaves its place.
    waiters[0].abort();
    tokio::task::yield_now().await;
    assert_eq!(bulkhead.waiting(), 1);
    drop(held);
    let mut waiters = waiters.into_iter();
    assert!(waiters.next().unwrap().await.unwrap_err().is_cancelled());
    waiters.next().unwrap().await.unwrap().unwrap();
    assert_eq!(bulkhead.waiting(), 0);
    assert_eq!(bulkhead.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropped_call_gives_back_its_bulkhead_slot() {
    let bulkhead = Bulkhead::new("db", 1);
    // Through the plain call API.
    let call = bulkhead.call(std::future::pending::<Result<(), Error>>());
    let mut call = Box::pin(call);
    assert!(
        tokio::time::timeout(Duration::from_millis(10), call.as_mut())
            .await
            .is_err()
    );
    assert_eq!(bulkhead.in_flight(), 1);
    drop(call);
    assert_eq!(bulkhead.in_flight(), 0);

    // Through the layer.
    let mut svc = BulkheadLayer::new(bulkhead.clone())
        .layer(service_fn(|()| std::future::pending::<Result<(), Error>>()));
    let fut = svc.ready().await.unwrap().call(());
    assert_eq!(bulkhead.in_flight(), 1);
    drop(fut);
    assert_eq!(bulkhead.in_flight(), 0);

    // A waiting call that is dropped holds nothing either.
    let waiting = Bulkhead::new("db", 1).wait_up_to(Duration::from_secs(10));
    let held = waiting.try_acquire().unwrap();
    let mut svc =
        BulkheadLayer::new(waiting.clone()).layer(service_fn(|()| async { Ok::<_, Error>(()) }));
    let mut fut = Box::pin(svc.ready().await.unwrap().call(()));
    assert!(
        tokio::time::timeout(Duration::from_millis(10), fut.as_mut())
            .await
            .is_err()
    );
    drop(fut);
    drop(held);
    assert_eq!(waiting.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn faults_are_deterministic_under_a_seed() {
    async fn run(seed: u64) -> (Vec<bool>, Duration, u32) {
        let reached = Arc::new(AtomicU32::new(0));
        let counter = reached.clone();
        let faults = FaultLayer::builder()
            .seed(seed)
            .error(0.3, || Error::new(Kind::Unavailable, "injected"))
            .latency(0.2, Duration::from_millis(100))
            .outcome(0.1, || 503u16)
            .build()
            .unwrap();
        let mut svc = faults.layer(service_fn(move |()| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<u16, Error>(200) }
        }));
        let t0 = Instant::now();
        let mut outcomes = Vec::new();
        let mut canned = 0;
        for _ in 0..500 {
            let r = svc.ready().await.unwrap().call(()).await;
            if r.as_ref().is_ok_and(|s| *s == 503) {
                canned += 1;
            }
            outcomes.push(r.is_ok());
        }
        let calls_reaching = reached.load(Ordering::SeqCst);
        assert_eq!(
            calls_reaching + canned + outcomes.iter().filter(|ok| !**ok).count() as u32,
            500
        );
        (outcomes, t0.elapsed(), canned)
    }
    let (a, time_a, canned_a) = run(9).await;
    let (b, time_b, canned_b) = run(9).await;
    assert_eq!(a, b, "same seed, same faults");
    assert_eq!((time_a, canned_a), (time_b, canned_b));
    let errors = a.iter().filter(|ok| !**ok).count();
    assert!((110..190).contains(&errors), "{errors} of 500 at 30 %");
    // About a fifth of calls delayed by 100 ms.
    let delayed = time_a.as_millis() / 100;
    assert!((70..130).contains(&delayed), "{delayed} delayed calls");
    assert!(canned_a > 10, "{canned_a} canned outcomes");
    let (c, _, _) = run(10).await;
    assert_ne!(a, c, "another seed, other faults");
}

#[test]
fn fault_rates_are_checked() {
    let err = FaultLayer::builder()
        .error(1.5, || Error::from_kind(Kind::Internal))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidInput);
    assert!(err.to_string().contains("error rate"));
}
