//! Retry: attempts, delays, budget, retry-after, with paused tokio time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pattern_error::retry::{RetryBudget, RetryLayer, RetryPolicy, retry};
use pattern_error::{Error, Kind};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};

fn policy() -> pattern_error::retry::RetryBuilder {
    RetryPolicy::builder("test")
        .backoff(Duration::from_millis(100), 2.0, Duration::from_millis(350))
        .jitter(false)
}

/// An operation that fails `failures` times with `error`, then returns the
/// attempt number; it records when each attempt started.
struct Flaky {
    failures: u32,
    error: fn() -> Error,
    calls: AtomicU32,
    starts: Mutex<Vec<Duration>>,
    t0: Instant,
}

impl Flaky {
    fn new(failures: u32, error: fn() -> Error) -> Self {
        Self {
            failures,
            error,
            calls: AtomicU32::new(0),
            starts: Mutex::new(Vec::new()),
            t0: Instant::now(),
        }
    }

    async fn call(&self) -> Result<u32, Error> {
        self.starts.lock().unwrap().push(self.t0.elapsed());
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.failures {
            Err((self.error)())
        } else {
            Ok(n)
        }
    }

    /// Asserts the attempts started at `expected` milliseconds. Tokio's
    /// timer rounds each sleep up to its next millisecond tick, so every
    /// sleep may end up to 1 ms late.
    fn assert_starts(&self, expected: &[u128]) {
        let starts: Vec<u128> = self
            .starts
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.as_millis())
            .collect();
        assert_eq!(starts.len(), expected.len(), "{starts:?} vs {expected:?}");
        for (i, (got, want)) in starts.iter().zip(expected).enumerate() {
            assert!(
                *got >= *want && *got <= *want + i as u128,
                "attempt {i}: {starts:?} vs {expected:?}"
            );
        }
    }
}

fn unavailable() -> Error {
    Error::new(Kind::Unavailable, "connection refused")
}

#[tokio::test(start_paused = true)]
async fn attempts_follow_the_backoff() {
    let policy = policy().max_attempts(5).build().unwrap();
    let op = Flaky::new(4, unavailable);
    assert_eq!(retry(&policy, || op.call()).await.unwrap(), 5);
    // 100, 200, then capped at 350.
    op.assert_starts(&[0, 100, 300, 650, 1000]);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let policy = policy().max_attempts(3).build().unwrap();
    let op = Flaky::new(10, unavailable);
    let err = retry(&policy, || op.call()).await.unwrap_err();
    assert_eq!(op.calls.load(Ordering::SeqCst), 3);
    assert_eq!(err.kind(), Kind::Unavailable);
    assert_eq!(
        err.report().to_string(),
        "gave up after 3 attempts: connection refused"
    );
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let policy = policy().max_attempts(5).build().unwrap();
    let op = Flaky::new(10, || Error::new(Kind::InvalidInput, "quantity < 0"));
    let err = retry(&policy, || op.call()).await.unwrap_err();
    assert_eq!(op.calls.load(Ordering::SeqCst), 1);
    assert_eq!(err.to_string(), "quantity < 0", "returned unchanged");
}

#[tokio::test(start_paused = true)]
async fn retry_if_decides_what_is_retried() {
    let policy = policy()
        .max_attempts(3)
        .retry_if(|e| e.kind() == Kind::Conflict)
        .build()
        .unwrap();
    let op = Flaky::new(1, || Error::from_kind(Kind::Conflict));
    assert_eq!(retry(&policy, || op.call()).await.unwrap(), 2);
    let op = Flaky::new(1, unavailable);
    retry(&policy, || op.call()).await.unwrap_err();
    assert_eq!(op.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_hint_is_respected() {
    let policy = policy()
        .max_attempts(3)
        .backoff(Duration::from_millis(100), 2.0, Duration::from_secs(5))
        .build()
        .unwrap();
    let op = Flaky::new(2, || {
        Error::new(Kind::RateLimited, "slow down").with_retry_after(Duration::from_secs(2))
    });
    assert_eq!(retry(&policy, || op.call()).await.unwrap(), 3);
    op.assert_starts(&[0, 2000, 4000]);

    // A hint shorter than the backoff does not shorten it.
    let op = Flaky::new(1, || {
        Error::new(Kind::RateLimited, "slow down").with_retry_after(Duration::from_millis(10))
    });
    retry(&policy, || op.call()).await.unwrap();
    op.assert_starts(&[0, 100]);

    // A hint beyond the maximum delay is not slept on: the policy gives up
    // at once, and the error goes up with its hint.
    let op = Flaky::new(1, || {
        Error::new(Kind::RateLimited, "slow down").with_retry_after(Duration::from_secs(3_600))
    });
    let start = Instant::now();
    let err = retry(&policy, || op.call()).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(op.calls.load(Ordering::SeqCst), 1);
    assert_eq!(err.kind(), Kind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3_600)));
    assert!(
        err.report().to_string().contains("maximum delay"),
        "{}",
        err.report()
    );

    // Ignored when switched off.
    let deaf = policy_without_hints();
    let op = Flaky::new(1, || {
        Error::new(Kind::RateLimited, "slow down").with_retry_after(Duration::from_secs(9))
    });
    retry(&deaf, || op.call()).await.unwrap();
    op.assert_starts(&[0, 100]);
}

fn policy_without_hints() -> RetryPolicy {
    policy().honour_retry_after(false).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_stops_before_a_retry_that_would_end_past_it() {
    let policy = policy()
        .max_attempts(10)
        .max_elapsed(Duration::from_millis(500))
        .build()
        .unwrap();
    let op = Flaky::new(10, unavailable);
    let err = retry(&policy, || op.call()).await.unwrap_err();
    // 0, 100, 300; the next would start at 650 > 500.
    op.assert_starts(&[0, 100, 300]);
    assert!(
        err.report().to_string().contains("time limit"),
        "{}",
        err.report()
    );

    // A retry-after longer than what is left gives up at once.
    let op = Flaky::new(10, || {
        Error::from_kind(Kind::Overloaded).with_retry_after(Duration::from_secs(60))
    });
    retry(&policy, || op.call()).await.unwrap_err();
    assert_eq!(op.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn budget_exhaustion_stops_retries() {
    // One retry per ten calls, no reserve, nothing saved yet.
    let budget = Arc::new(RetryBudget::new(0.1, 0, 100));
    let policy = policy()
        .max_attempts(5)
        .budget(budget.clone())
        .build()
        .unwrap();
    // Nine calls that succeed at once earn 0.9 of a retry.
    for _ in 0..9 {
        retry(&policy, || async { Ok::<_, Error>(()) })
            .await
            .unwrap();
    }
    // The tenth call's deposit completes one retry, and it is spent.
    let op = Flaky::new(10, unavailable);
    let err = retry(&policy, || op.call()).await.unwrap_err();
    assert_eq!(op.calls.load(Ordering::SeqCst), 2);
    assert!(
        err.report()
            .to_string()
            .contains("budget exhausted after 2 attempts"),
        "{}",
        err.report()
    );
    assert_eq!(budget.available(), 0);

    // Under a burst of failures, retries stay within the budget's share.
    let total = AtomicU32::new(0);
    for _ in 0..100 {
        let _ = retry(&policy, || async {
            total.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(unavailable())
        })
        .await;
    }
    let calls = total.load(Ordering::SeqCst);
    assert!(calls <= 110, "100 calls made {calls} attempts");
}

#[tokio::test(start_paused = true)]
async fn retry_on_result() {
    let policy = policy().max_attempts(4).build().unwrap();
    let n = AtomicU32::new(0);
    let status = policy
        .run_checked(
            || async {
                Ok::<_, Error>(if n.fetch_add(1, Ordering::SeqCst) < 2 {
                    503
                } else {
                    200
                })
            },
            |status: &u16| *status == 503,
        )
        .await
        .unwrap();
    assert_eq!((status, n.load(Ordering::SeqCst)), (200, 3));

    // Giving up on a result returns that result.
    let status = policy
        .run_checked(|| async { Ok::<_, Error>(503u16) }, |s: &u16| *s == 503)
        .await
        .unwrap();
    assert_eq!(status, 503);
}

#[tokio::test(start_paused = true)]
async fn layer_retries_with_clones_of_the_request() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let policy = policy().max_attempts(3).build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy.clone()))
        .service(service_fn(move |req: String| {
            let log = log.clone();
            async move {
                let mut log = log.lock().unwrap();
                log.push(req.clone());
                if log.len() < 3 {
                    Err(unavailable())
                } else {
                    Ok(req.len())
                }
            }
        }));
    let t0 = Instant::now();
    assert_eq!(svc.oneshot("order-42".to_owned()).await.unwrap(), 8);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited <= Duration::from_millis(302),
        "{waited:?}"
    );
    assert_eq!(*seen.lock().unwrap(), ["order-42"; 3]);
}

#[tokio::test(start_paused = true)]
async fn layer_retries_responses_when_asked() {
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new(policy().max_attempts(5).build().unwrap())
                .retry_response(|status: &u16| *status >= 500),
        )
        .service(service_fn(move |()| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<u16, Error>(if n < 2 { 502 } else { 204 }) }
        }));
    assert_eq!(svc.oneshot(()).await.unwrap(), 204);
    assert_eq!(n.load(Ordering::SeqCst), 3);
}

#[test]
fn invalid_policies_are_refused() {
    let err = RetryPolicy::builder("x")
        .max_attempts(0)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidInput);
    assert!(err.to_string().contains("max_attempts"));
    let err = RetryPolicy::builder("x")
        .backoff(Duration::from_secs(2), 2.0, Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("maximum delay"));
}

/// Callers given the same hint come back spread over the minimum delay
/// (jitter), never before the hint nor past the maximum delay.
#[tokio::test(start_paused = true)]
async fn a_retry_after_hint_gets_jitter() {
    let policy = RetryPolicy::builder("spread")
        .max_attempts(2)
        .backoff(Duration::from_millis(100), 2.0, Duration::from_secs(5))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let policy = policy.clone();
            tokio::spawn(async move {
                let mut second = None;
                let _ = retry(&policy, || {
                    let now = t0.elapsed();
                    let first = now.is_zero();
                    if !first {
                        second = Some(now);
                    }
                    async move {
                        if first {
                            Err(Error::from_kind(Kind::Unavailable)
                                .with_retry_after(Duration::from_secs(1)))
                        } else {
                            Ok(())
                        }
                    }
                })
                .await;
                second.expect("a second attempt")
            })
        })
        .collect();
    let mut seconds = Vec::new();
    for caller in callers {
        seconds.push(caller.await.unwrap());
    }
    assert!(
        seconds
            .iter()
            .all(|s| *s >= Duration::from_secs(1) && *s <= Duration::from_millis(1_101)),
        "{seconds:?}"
    );
    seconds.sort();
    seconds.dedup();
    assert!(seconds.len() > 10, "spread: {seconds:?}");
}

/// No retry whose delay would end past the call's deadline.
#[tokio::test(start_paused = true)]
async fn the_calls_deadline_stops_retries() {
    let t0 = Instant::now();
    let policy = policy()
        .max_attempts(10)
        .deadline(move || Some(t0 + Duration::from_millis(500)))
        .build()
        .unwrap();
    let op = Flaky::new(10, unavailable);
    let err = retry(&policy, || op.call()).await.unwrap_err();
    // 0, 100, 300; the next would start at 650, past the deadline at 500.
    op.assert_starts(&[0, 100, 300]);
    assert!(
        err.report().to_string().contains("deadline"),
        "{}",
        err.report()
    );
    assert_eq!(err.kind(), Kind::Unavailable);
}

/// Retry outside a breaker, the policy's maximum delay below the breaker's
/// open duration: an open breaker makes callers give up at once (fail
/// fast) instead of waiting out its open state; only a breaker about to
/// half-open is waited for.
#[tokio::test(start_paused = true)]
async fn retry_over_an_open_breaker_fails_fast() {
    use pattern_error::breaker::{CircuitBreaker, CircuitBreakerLayer};

    let breaker = CircuitBreaker::builder("upstream")
        .count_window(4)
        .minimum_calls(4)
        .open_duration(Duration::from_secs(30))
        .half_open_probes(1)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let policy = RetryPolicy::builder("upstream")
        .max_attempts(3)
        .backoff(Duration::from_millis(100), 2.0, Duration::from_secs(2))
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(service_fn(move |_: ()| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 4 {
                    Err(Error::new(Kind::Unavailable, "down"))
                } else {
                    Ok(n)
                }
            }
        }));
    // Four failures open the breaker (the retries count in its window).
    let _ = service.clone().oneshot(()).await;
    let _ = service.clone().oneshot(()).await;
    assert_eq!(breaker.state(), pattern_error::breaker::State::Open);
    let reached = calls.load(Ordering::SeqCst);

    // Open for 30 s, the policy waits at most 2 s: give up at once.
    let start = Instant::now();
    let err = service.clone().oneshot(()).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO, "fail fast");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        reached,
        "the dependency was not called"
    );
    let open_for = err.retry_after().expect("the breaker's retry-after");
    assert!(open_for > Duration::from_secs(2), "{open_for:?}");

    // 1 s before the probe: the retry waits for it, then succeeds.
    tokio::time::advance(open_for - Duration::from_secs(1)).await;
    let start = Instant::now();
    service.clone().oneshot(()).await.unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited <= Duration::from_millis(1_101),
        "{waited:?}"
    );
}

/// Requests that are not `Clone` are retried through `clone_request`; one
/// it cannot copy is sent once.
#[tokio::test(start_paused = true)]
async fn clone_request_retries_requests_that_are_not_clone() {
    struct Upload {
        body: Option<Vec<u8>>, // None: a stream that can be read once
    }
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let copies = Arc::new(AtomicU32::new(0));
    let copied = copies.clone();
    let policy = policy().max_attempts(3).build().unwrap();
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(policy).clone_request(move |req: &Upload| {
            copied.fetch_add(1, Ordering::SeqCst);
            req.body.as_ref().map(|body| Upload {
                body: Some(body.clone()),
            })
        }))
        .service(service_fn(move |_: Upload| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Error::new(Kind::Unavailable, "down")) }
        }));
    service
        .clone()
        .oneshot(Upload {
            body: Some(b"abc".to_vec()),
        })
        .await
        .unwrap_err();
    assert_eq!(calls.swap(0, Ordering::SeqCst), 3);
    assert_eq!(
        copies.swap(0, Ordering::SeqCst),
        2,
        "no copy for the last attempt"
    );
    let err = service.oneshot(Upload { body: None }).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "sent once");
    assert_eq!(err.kind(), Kind::Unavailable);
}
