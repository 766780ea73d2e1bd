//! The success paths of the breaker and the retry layer allocate nothing.

use std::future::{Future, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use pattern_error::Error;
use pattern_error::breaker::{CircuitBreaker, CircuitBreakerLayer};
use pattern_error::retry::{RetryBudget, RetryLayer, RetryPolicy};
use tower::{Layer, Service, service_fn};

fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("expected a ready future"),
    }
}

type Ready = std::future::Ready<Result<u64, Error>>;

fn assert_no_alloc(what: &str, mut f: impl FnMut()) {
    // Warm up: thread-local slots and lazy statics allocate once.
    f();
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            f();
        }
    });
    assert_eq!(info.count_total, 0, "{what} allocated: {info:?}");
}

#[test]
fn breaker_closed_path_does_not_allocate() {
    let breaker = CircuitBreaker::builder("alloc").build().unwrap();
    assert_no_alloc("breaker.call", || {
        now(breaker.call(ready(Ok::<u64, Error>(1)))).unwrap();
    });
    let mut svc = CircuitBreakerLayer::new(breaker.clone())
        .layer(service_fn(|x: u64| -> Ready { ready(Ok(x)) }));
    assert_no_alloc("the breaker layer", || {
        now(svc.call(1)).unwrap();
    });
}

#[test]
fn retry_success_path_does_not_allocate() {
    let policy = RetryPolicy::builder("alloc")
        .budget(std::sync::Arc::new(RetryBudget::default()))
        .build()
        .unwrap();
    let mut svc = RetryLayer::new(policy).layer(service_fn(|x: u64| -> Ready { ready(Ok(x)) }));
    assert_no_alloc("the retry layer", || {
        now(svc.call(1)).unwrap();
    });
}
#[test]
fn the_counter_sees_allocations() {
    let info = allocation_counter::measure(|| {
        std::hint::black_box(Box::new(1));
    });
    assert_eq!(info.count_total, 1);
}
