//! Load balancing: distribution, weights, pending counts, failure penalty,
//! outlier ejection, sticky keys, live changes (paused time).

use std::collections::HashMap;
use std::time::Duration;

use pattern_error::{Error, Kind};
use pattern_network::balance::{Balancer, Outlier, Strategy};
use tower::{Service, ServiceExt, service_fn};

mod common;

type Reply = std::pin::Pin<Box<dyn Future<Output = Result<&'static str, Error>> + Send>>;

/// An endpoint answering its name after `ms`, or failing at once.
fn endpoint(
    name: &'static str,
    ms: u64,
    fails: bool,
) -> impl Service<u64, Response = &'static str, Error = Error, Future = Reply> + Clone {
    service_fn(move |_req: u64| -> Reply {
        Box::pin(async move {
            if fails {
                return Err(Error::new(Kind::Unavailable, "503"));
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(name)
        })
    })
}

async fn tally<S>(balancer: &S, calls: u64) -> HashMap<&'static str, u32>
where
    S: Service<u64, Response = &'static str, Error = Error> + Clone,
{
    let mut counts = HashMap::new();
    for req in 0..calls {
        let name = balancer.clone().oneshot(req).await.unwrap_or("error");
        *counts.entry(name).or_default() += 1;
    }
    counts
}

/// A balancer with the default time constant (10 s) and failure penalty
/// (1 s), and `outlier` for ejections.
fn with_outlier<S>(strategy: Strategy, outlier: Outlier) -> Balancer<S> {
    Balancer::with_settings(
        strategy,
        outlier,
        Duration::from_secs(10),
        Duration::from_secs(1),
    )
}

#[tokio::test(start_paused = true)]
async fn round_robin_and_weights() {
    let rr = Balancer::new(Strategy::RoundRobin);
    for name in ["a", "b", "c"] {
        rr.add(name, endpoint(name, 1, false), 1);
    }
    let counts = tally(&rr, 30).await;
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [10, 10, 10]);

    let weighted = Balancer::new(Strategy::WeightedRoundRobin);
    weighted.add("a", endpoint("a", 1, false), 5);
    weighted.add("b", endpoint("b", 1, false), 1);
    weighted.add("c", endpoint("c", 1, false), 1);
    let mut order = Vec::new();
    for req in 0..7 {
        order.push(weighted.clone().oneshot(req).await.unwrap());
    }
    // nginx's smooth weighted round-robin interleaves instead of bunching.
    assert_eq!(order, ["a", "a", "b", "a", "c", "a", "a"]);
}

#[tokio::test(start_paused = true)]
async fn least_pending_avoids_a_busy_endpoint() {
    let balancer = Balancer::new(Strategy::LeastPending);
    balancer.add("slow", endpoint("slow", 10_000, false), 1);
    balancer.add("quick", endpoint("quick", 1, false), 1);
    // Occupy both once; the slow one stays busy.
    let stuck = tokio::spawn(balancer.clone().oneshot(0));
    tokio::task::yield_now().await;
    let counts = tally(&balancer, 20).await;
    assert!(
        counts.get("quick").copied().unwrap_or(0) >= 19,
        "{counts:?}"
    );
    stuck.abort();
}

#[tokio::test(start_paused = true)]
async fn peak_ewma_does_not_reward_fast_failures() {
    // Ejection off: the failure penalty alone must steer traffic away.
    let outlier = Outlier::default().consecutive_failures(0);
    let balancer = with_outlier(Strategy::PeakEwma, outlier);
    balancer.add("failing", endpoint("failing", 0, true), 1);
    balancer.add("healthy", endpoint("healthy", 20, false), 1);
    balancer.add("healthy-2", endpoint("healthy-2", 20, false), 1);
    let counts = tally(&balancer, 300).await;
    let failed = counts.get("error").copied().unwrap_or(0);
    eprintln!("peak EWMA with a fast-failing endpoint: {counts:?}");
    assert!(
        failed < 30,
        "the fast-failing endpoint got {failed} of 300: {counts:?}"
    );
}

/// One slow answer raises an endpoint's peak EWMA; while other calls go on,
/// the estimate decays and the endpoint is tried again (it is not starved
/// by a stale peak because it is never picked to refresh it).
#[tokio::test(start_paused = true)]
async fn a_slow_answer_is_forgiven_as_time_passes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Answers its name after `first_ms` the first time, `ms` afterwards,
    /// counting its calls.
    fn timed(
        name: &'static str,
        first_ms: u64,
        ms: u64,
        calls: Arc<AtomicU32>,
    ) -> impl Service<u64, Response = &'static str, Error = Error, Future = Reply> + Clone {
        service_fn(move |_req: u64| -> Reply {
            let wait = if calls.fetch_add(1, Ordering::Relaxed) == 0 {
                first_ms
            } else {
                ms
            };
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                Ok(name)
            })
        })
    }

    let spiky_calls = Arc::new(AtomicU32::new(0));
    let balancer = Balancer::with_settings(
        Strategy::PeakEwma,
        Outlier::default(),
        Duration::from_secs(1),
        Duration::from_secs(1),
    );
    balancer.add("spiky", timed("spiky", 2_000, 10, spiky_calls.clone()), 1);
    let steady_calls = Arc::new(AtomicU32::new(0));
    balancer.add("steady", timed("steady", 10, 10, steady_calls), 1);
    // Until the spiky endpoint has given its slow answer.
    for req in 0..100 {
        if spiky_calls.load(Ordering::Relaxed) > 0 {
            break;
        }
        balancer.clone().oneshot(req).await.unwrap();
    }
    assert_eq!(spiky_calls.load(Ordering::Relaxed), 1);
    // 2 s decays to the steady 10 ms in about ln(200) = 5.3 time constants:
    // 1 000 calls of 10 ms (10 s) are plenty.
    tally(&balancer, 1_000).await;
    assert!(
        spiky_calls.load(Ordering::Relaxed) > 1,
        "the endpoint was never tried again after one slow answer"
    );
}

#[tokio::test(start_paused = true)]
async fn failing_endpoints_are_ejected_for_a_growing_period() {
    let outlier = Outlier::default()
        .consecutive_failures(3)
        .ejection(Duration::from_secs(10), Duration::from_secs(60))
        .max_ejected_share(0.5);
    let balancer = with_outlier(Strategy::RoundRobin, outlier);
    balancer.add("bad", endpoint("bad", 0, true), 1);
    balancer.add("good-1", endpoint("good-1", 1, false), 1);
    balancer.add("good-2", endpoint("good-2", 1, false), 1);
    // Round-robin: "bad" fails every third call; the third failure ejects it.
    let counts = tally(&balancer, 9).await;
    assert_eq!(counts.get("error"), Some(&3));
    assert!(
        balancer
            .endpoints()
            .iter()
            .any(|(k, out)| k == "bad" && *out)
    );
    let counts = tally(&balancer, 30).await;
    assert_eq!(counts.get("error"), None, "ejected: {counts:?}");
    // After 10 s it is back, fails 3 more times, and is out for 20 s.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let counts = tally(&balancer, 9).await;
    assert_eq!(counts.get("error"), Some(&3));
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(
        balancer
            .endpoints()
            .iter()
            .any(|(k, out)| k == "bad" && *out),
        "second ejection lasts 20 s"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(balancer.endpoints().iter().all(|(_, out)| !*out));
}

/// Each ejection is reported to the hook, with its endpoint, how long it
/// lasts and how many times that endpoint has been ejected; the hook may
/// use the balancer.
#[tokio::test(start_paused = true)]
async fn ejections_are_reported_to_the_hook() {
    use std::sync::{Arc, Mutex};

    let outlier = Outlier::default()
        .consecutive_failures(2)
        .ejection(Duration::from_secs(10), Duration::from_secs(60));
    let balancer = with_outlier(Strategy::RoundRobin, outlier);
    balancer.add("bad", endpoint("bad", 0, true), 1);
    balancer.add("good", endpoint("good", 1, false), 1);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (log, inner) = (seen.clone(), balancer.clone());
    balancer.on_ejection(move |ejection| {
        // Reading the balancer from the hook must not deadlock.
        let out = inner.endpoints().iter().filter(|(_, out)| *out).count();
        log.lock().unwrap().push((
            ejection.endpoint().to_owned(),
            ejection.duration(),
            ejection.count(),
            out,
        ));
    });
    tally(&balancer, 4).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    tally(&balancer, 4).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("bad".to_owned(), Duration::from_secs(10), 1, 1),
            ("bad".to_owned(), Duration::from_secs(20), 2, 1),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn never_more_than_the_allowed_share_is_ejected() {
    let outlier = Outlier::default()
        .consecutive_failures(1)
        .max_ejected_share(0.5);
    let balancer = with_outlier(Strategy::RoundRobin, outlier);
    for name in ["a", "b", "c", "d"] {
        balancer.add(name, endpoint(name, 0, true), 1);
    }
    tally(&balancer, 20).await;
    let ejected = balancer.endpoints().iter().filter(|(_, out)| *out).count();
    assert_eq!(ejected, 2, "half of four");
}

#[tokio::test(start_paused = true)]
async fn consistent_hash_keeps_keys_sticky_and_moves_few_on_change() {
    let balancer = Balancer::new(Strategy::ConsistentHash).with_key(|req: &u64| *req);
    for name in ["a", "b", "c", "d"] {
        balancer.add(name, endpoint(name, 0, false), 1);
    }
    let mut before = HashMap::new();
    for key in 0..400u64 {
        let first = balancer.clone().oneshot(key).await.unwrap();
        assert_eq!(
            balancer.clone().oneshot(key).await.unwrap(),
            first,
            "sticky"
        );
        before.insert(key, first);
    }
    balancer.add("e", endpoint("e", 0, false), 1);
    let mut moved = 0;
    for key in 0..400u64 {
        let now = balancer.clone().oneshot(key).await.unwrap();
        if now != before[&key] {
            assert_eq!(now, "e", "keys only move to the new endpoint");
            moved += 1;
        }
    }
    assert!(
        (40..130).contains(&moved),
        "{moved} of 400 moved (about 1/5 expected)"
    );
}

#[tokio::test(start_paused = true)]
async fn endpoints_change_while_running() {
    let balancer = Balancer::new(Strategy::RoundRobin);
    let err = balancer.clone().oneshot(0).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable);
    balancer.add("a", endpoint("a", 50, false), 1);
    let in_flight = tokio::spawn(balancer.clone().oneshot(1));
    tokio::task::yield_now().await;
    balancer.add("b", endpoint("b", 1, false), 1);
    assert!(balancer.remove("a"));
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        "a",
        "a call already sent finishes"
    );
    assert_eq!(tally(&balancer, 5).await.get("b"), Some(&5));
}

/// An endpoint that is not ready (its own concurrency limit reached) is
/// passed over for one that is, instead of calls queueing behind it.
#[tokio::test(start_paused = true)]
async fn an_endpoint_that_is_not_ready_is_passed_over() {
    let balancer = Balancer::new(Strategy::RoundRobin);
    let limited =
        |name, ms, slots| tower::limit::ConcurrencyLimit::new(endpoint(name, ms, false), slots);
    balancer.add("slow", limited("slow", 1_000, 1), 1);
    balancer.add("free", limited("free", 1, 1_000), 1);
    // Round-robin gives "slow" the first call: it holds its only slot.
    let busy = tokio::spawn(balancer.clone().oneshot(0));
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let counts = tally(&balancer, 10).await;
    assert_eq!(counts.get("free"), Some(&10), "{counts:?}");
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(busy.await.unwrap().unwrap(), "slow");
}

/// When no endpoint is ready the balancer waits for the first that is.
#[tokio::test(start_paused = true)]
async fn when_no_endpoint_is_ready_the_balancer_waits() {
    let balancer = Balancer::new(Strategy::PeakEwma);
    for name in ["a", "b"] {
        let limited = tower::limit::ConcurrencyLimit::new(endpoint(name, 100, false), 1);
        balancer.add(name, limited, 1);
    }
    let first: Vec<_> = (0..2)
        .map(|i| tokio::spawn(balancer.clone().oneshot(i)))
        .collect();
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let mut third = balancer.clone();
    third.ready().await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(100),
        "ready once a slot frees"
    );
    third.call(3).await.unwrap();
    for call in first {
        call.await.unwrap().unwrap();
    }
}

/// A fresh endpoint joining a balancer that has run for a while does not
/// win every comparison until it answers (its estimate was dated at the
/// epoch and had decayed to nothing): a burst spreads.
#[tokio::test(start_paused = true)]
async fn a_fresh_endpoint_does_not_take_a_burst() {
    // One endpoint and the newcomer: every pick compares the two.
    let balancer = Balancer::new(Strategy::PeakEwma);
    balancer.add("old", endpoint("old", 10, false), 1);
    // A few time constants of traffic.
    for _ in 0..60 {
        tally(&balancer, 4).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    balancer.add("fresh", endpoint("fresh", 10, false), 1);
    let burst: Vec<_> = (0..40)
        .map(|i| tokio::spawn(balancer.clone().oneshot(i)))
        .collect();
    let mut to_fresh = 0;
    for call in burst {
        if call.await.unwrap().unwrap() == "fresh" {
            to_fresh += 1;
        }
    }
    assert!(
        (12..=28).contains(&to_fresh),
        "{to_fresh} of 40 went to the fresh endpoint"
    );
}

/// With slow start, a new endpoint takes a small share at first and its
/// full share once the window has passed.
#[tokio::test(start_paused = true)]
async fn slow_start_ramps_a_new_endpoint_up() {
    let balancer = Balancer::new(Strategy::WeightedRoundRobin);
    balancer.slow_start(Duration::from_secs(10));
    for name in ["a", "b", "c", "d"] {
        balancer.add(name, endpoint(name, 0, false), 1);
    }
    tokio::time::sleep(Duration::from_secs(11)).await;
    balancer.add("new", endpoint("new", 0, false), 1);
    let early = tally(&balancer, 200).await.get("new").copied().unwrap_or(0);
    assert!(early <= 10, "{early} of 200 at once");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = tally(&balancer, 200).await.get("new").copied().unwrap_or(0);
    assert_eq!(later, 40, "a fifth once ramped up");
}

/// Adding an endpoint that is there (a discovery refresh) keeps what the
/// balancer knows about it: an ejection stays.
#[tokio::test(start_paused = true)]
async fn a_refresh_keeps_an_ejection() {
    let outlier = Outlier::default()
        .consecutive_failures(2)
        .ejection(Duration::from_secs(30), Duration::from_secs(60));
    let balancer = with_outlier(Strategy::RoundRobin, outlier);
    balancer.add("bad", endpoint("bad", 0, true), 1);
    balancer.add("good", endpoint("good", 1, false), 1);
    tally(&balancer, 4).await;
    assert!(
        balancer
            .endpoints()
            .iter()
            .any(|(k, out)| k == "bad" && *out)
    );
    balancer.add("bad", endpoint("bad", 0, true), 1);
    assert!(
        balancer
            .endpoints()
            .iter()
            .any(|(k, out)| k == "bad" && *out),
        "still ejected after the refresh"
    );
    assert_eq!(tally(&balancer, 10).await.get("error"), None);
}

/// An ejected owner's keys go to the ring's next node, the one that would
/// own them without it (every process agrees), not round-robin.
#[tokio::test(start_paused = true)]
async fn an_ejected_owners_keys_go_to_the_ring_successor() {
    let outlier = Outlier::default()
        .consecutive_failures(1)
        .max_ejected_share(0.5);
    let balancer = Balancer::with_settings(
        Strategy::ConsistentHash,
        outlier,
        Duration::from_secs(10),
        Duration::from_secs(1),
    )
    .with_key(|req: &u64| *req);
    let without = Balancer::new(Strategy::ConsistentHash).with_key(|req: &u64| *req);
    for name in ["a", "b", "c", "d"] {
        balancer.add(name, endpoint(name, 0, name == "a"), 1);
        if name != "a" {
            without.add(name, endpoint(name, 0, false), 1);
        }
    }
    // A key of "a" (the balancer's ring: 150 points a node) fails once:
    // "a" is ejected.
    let mut ring = pattern_network::partition::HashRing::new(150);
    for name in ["a", "b", "c", "d"] {
        ring.add(name.to_owned());
    }
    let a_key = (0..1000u64).find(|k| ring.get(k).unwrap() == "a").unwrap();
    balancer.clone().oneshot(a_key).await.unwrap_err();
    assert!(balancer.endpoints().iter().any(|(k, out)| k == "a" && *out));
    for key in 0..300u64 {
        let got = balancer.clone().oneshot(key).await.unwrap();
        let expected = without.clone().oneshot(key).await.unwrap();
        assert_eq!(got, expected, "key {key}");
        assert_eq!(
            balancer.clone().oneshot(key).await.unwrap(),
            got,
            "still sticky"
        );
    }
}

/// Endpoints can come from tower's `Discover` stream.
#[tokio::test(start_paused = true)]
async fn endpoints_follow_a_discover_stream() {
    use tower::discover::Change;
    let balancer = Balancer::new(Strategy::RoundRobin);
    let (changes, stream) = flume::bounded::<Result<Change<&'static str, _>, Error>>(4);
    let follower = balancer.follow(stream.into_stream());
    for name in ["a", "b"] {
        changes
            .send_async(Ok(Change::Insert(name, endpoint(name, 0, false))))
            .await
            .unwrap();
    }
    tokio::task::yield_now().await;
    let counts = tally(&balancer, 10).await;
    assert_eq!((counts.get("a"), counts.get("b")), (Some(&5), Some(&5)));
    changes.send_async(Ok(Change::Remove("a"))).await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(tally(&balancer, 4).await.get("b"), Some(&4));
    drop(changes);
    follower.await.unwrap().unwrap();
}

/// A service whose readiness never comes, or fails.
#[derive(Clone)]
struct Stuck {
    fail: bool,
}

impl Service<u64> for Stuck {
    type Response = &'static str;
    type Error = Error;
    type Future = Reply;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Error>> {
        if self.fail {
            std::task::Poll::Ready(Err(Error::new(Kind::Unavailable, "connect refused")))
        } else {
            std::task::Poll::Pending
        }
    }

    fn call(&mut self, _: u64) -> Reply {
        Box::pin(async { Ok("stuck") })
    }
}

/// One of two services in a balancer: a stuck one or a real endpoint.
#[derive(Clone)]
enum Either<A, B> {
    Left(A),
    Right(B),
}

impl<A, B> Service<u64> for Either<A, B>
where
    A: Service<u64, Response = &'static str, Error = Error, Future = Reply>,
    B: Service<u64, Response = &'static str, Error = Error, Future = Reply>,
{
    type Response = &'static str;
    type Error = Error;
    type Future = Reply;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        match self {
            Either::Left(a) => a.poll_ready(cx),
            Either::Right(b) => b.poll_ready(cx),
        }
    }

    fn call(&mut self, req: u64) -> Reply {
        match self {
            Either::Left(a) => a.call(req),
            Either::Right(b) => b.call(req),
        }
    }
}

/// An endpoint that is never ready and idle (the least pending) does not
/// hide a ready one the strategy would not pick.
#[tokio::test(start_paused = true)]
async fn a_ready_endpoint_is_found_behind_one_that_never_is() {
    let balancer = Balancer::new(Strategy::LeastPending);
    balancer.add("stuck", Either::Left(Stuck { fail: false }), 1);
    balancer.add("busy", Either::Right(endpoint("busy", 1_000, false)), 1);
    let calls: Vec<_> = (0..3)
        .map(|i| tokio::spawn(balancer.clone().oneshot(i)))
        .collect();
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(5), balancer.clone().oneshot(9))
        .await
        .expect("the ready endpoint must be found");
    assert_eq!(answer.unwrap(), "busy");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "busy");
    }
}

/// An endpoint whose readiness fails is ejected, and the ejection's hook
/// may change the balancer (it ran under the set's lock and deadlocked).
#[test]
fn a_readiness_failure_can_eject_and_the_hook_can_remove() {
    common::within(
        Duration::from_secs(30),
        "the balancer deadlocked",
        || async {
            let outlier = Outlier::default()
                .consecutive_failures(1)
                .max_ejected_share(1.0);
            let balancer = with_outlier(Strategy::RoundRobin, outlier);
            balancer.add("broken", Either::Left(Stuck { fail: true }), 1);
            balancer.add("good", Either::Right(endpoint("good", 1, false)), 1);
            let hook_side = balancer.clone();
            balancer.on_ejection(move |ejection| {
                hook_side.remove(ejection.endpoint());
            });
            let counts = tally(&balancer, 6).await;
            assert_eq!(counts.get("good"), Some(&6), "{counts:?}");
            assert_eq!(balancer.endpoints().len(), 1, "the hook removed it");
        },
    );
}

/// A refreshed endpoint keeps counting the calls in flight to it.
#[tokio::test(start_paused = true)]
async fn a_refresh_keeps_the_calls_in_flight() {
    let balancer = Balancer::new(Strategy::LeastPending);
    balancer.add("a", endpoint("a", 1_000, false), 1);
    let calls: Vec<_> = (0..5)
        .map(|i| tokio::spawn(balancer.clone().oneshot(i)))
        .collect();
    tokio::task::yield_now().await;
    balancer.add("b", endpoint("b", 1_000, false), 1);
    balancer.add("a", endpoint("a", 1_000, false), 1); // a refresh
    let next: Vec<_> = (0..4)
        .map(|i| tokio::spawn(balancer.clone().oneshot(i)))
        .collect();
    let mut to_b = 0;
    for call in next {
        if call.await.unwrap().unwrap() == "b" {
            to_b += 1;
        }
    }
    assert_eq!(to_b, 4, "a still has five in flight");
    for call in calls {
        call.await.unwrap().unwrap();
    }
}

/// Slow start at its extremes: zero is off, MAX keeps a newcomer at its
/// smallest share without overflowing; every strategy still answers.
#[tokio::test(start_paused = true)]
async fn slow_start_of_zero_and_max() {
    for strategy in [
        Strategy::WeightedRoundRobin,
        Strategy::LeastPending,
        Strategy::PeakEwma,
        Strategy::RoundRobin,
    ] {
        for window in [Duration::ZERO, Duration::MAX] {
            let balancer = Balancer::new(strategy);
            balancer.slow_start(window);
            balancer.add("a", endpoint("a", 0, false), 1);
            balancer.add("b", endpoint("b", 0, false), u32::MAX);
            let counts = tally(&balancer, 20).await;
            assert_eq!(counts.get("error"), None, "{strategy:?} {window:?}");
        }
    }
}
