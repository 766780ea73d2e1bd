//! Circuit breaker overhead in the closed state, on one thread and on two
//! threads sharing one breaker: `pattern-error` against `recloser`,
//! `failsafe` and `tower-resilience-circuitbreaker`, in the same run.
//!
//! The guarded call is an immediately ready `Ok`, so what is measured is the
//! breaker's own admission and recording. Futures are polled once with a
//! no-op waker: no executor time is counted.
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use std::future::{Future, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use patterns::error::Error;
use patterns::error::breaker::{CircuitBreaker, CircuitBreakerLayer};
use tower::{Layer, Service};

/// Polls a future that must be ready at once.
fn now<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the bench's futures are always ready"),
    }
}

/// Runs `per_thread` on `threads` threads at once, each for `iters` calls;
/// returns the wall time (one iteration = one call on every thread).
fn threaded<F>(threads: usize, iters: u64, per_thread: F) -> Duration
where
    F: Fn(u64) + Sync,
{
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                per_thread(iters);
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn ours() -> CircuitBreaker {
    CircuitBreaker::builder("bench").build().unwrap()
}

fn call_api(c: &mut Criterion) {
    use failsafe::futures::CircuitBreaker as _;
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("breaker_call/{threads}_thread"));
        let breaker = ours();
        group.bench_function("ours", |b| {
            b.iter_custom(|iters| {
                threaded(threads, iters, |n| {
                    for _ in 0..n {
                        black_box(now(breaker.call(ready(Ok::<u64, Error>(black_box(1))))))
                            .unwrap();
                    }
                })
            })
        });
        let recloser = recloser::AsyncRecloser::from(recloser::Recloser::default());
        group.bench_function("recloser", |b| {
            b.iter_custom(|iters| {
                threaded(threads, iters, |n| {
                    for _ in 0..n {
                        black_box(now(recloser.call(ready(Ok::<u64, ()>(black_box(1)))))).unwrap();
                    }
                })
            })
        });
        let failsafe = failsafe::Config::new().build();
        group.bench_function("failsafe", |b| {
            b.iter_custom(|iters| {
                threaded(threads, iters, |n| {
                    for _ in 0..n {
                        black_box(now(failsafe.call(ready(Ok::<u64, ()>(black_box(1)))))).unwrap();
                    }
                })
            })
        });
        group.finish();
    }
}

fn layer(c: &mut Criterion) {
    type Ready = std::future::Ready<Result<u64, std::io::Error>>;
    let inner = tower::service_fn(|x: u64| -> Ready { ready(Ok(x)) });
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("breaker_layer/{threads}_thread"));
        let svc = CircuitBreakerLayer::new(ours()).layer(inner);
        group.bench_function("ours", |b| {
            b.iter_custom(|iters| {
                threaded(threads, iters, |n| {
                    let mut svc = svc.clone();
                    for _ in 0..n {
                        black_box(now(svc.call(black_box(1)))).unwrap();
                    }
                })
            })
        });
        let theirs = tower_resilience_circuitbreaker::CircuitBreakerLayer::builder()
            .build()
            .unwrap()
            .layer(inner);
        group.bench_function("tower-resilience", |b| {
            b.iter_custom(|iters| {
                threaded(threads, iters, |n| {
                    let mut svc = theirs.clone();
                    for _ in 0..n {
                        black_box(now(svc.call(black_box(1)))).unwrap();
                    }
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, call_api, layer);
criterion_main!(benches);
