//! Circuit breaker overhead in the closed state, on one thread and on two
//! threads sharing one breaker: `pattern-error` against `recloser`,
//! `failsafe` and `tower-resilience-circuitbreaker`, in the same run.
//!
//! The guarded call is an immediately ready `Ok`, so what is measured is the
//! breaker's own admission and recording.
//!
//! - `breaker_permit`: the synchronous forms (our permit, their `call(|| ..)`).
//! - `breaker_call`: the async call APIs on a ready future.
//! - `breaker_layer`: the tower layers around a ready service.
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use std::future::ready;
use std::hint::black_box;

use benches::{block_on, threaded};
use criterion::{Criterion, criterion_group, criterion_main};
use patterns::error::Error;
use patterns::error::breaker::{CircuitBreaker, CircuitBreakerLayer};
use tower::{Layer, Service};

fn ours() -> CircuitBreaker {
    CircuitBreaker::builder("bench").build().unwrap()
}

fn permit(c: &mut Criterion) {
    use failsafe::CircuitBreaker as _;
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("breaker_permit/{threads}_thread"));
        let breaker = ours();
        group.bench_function("ours", |b| {
            b.iter_custom(|iters| {
                threaded(threads, iters, |n| {
                    for _ in 0..n {
                        let permit = breaker.try_acquire().unwrap();
                        black_box(black_box(1u64) + 1);
                        permit.success();
                    }
                })
            })
        });
        let recloser = recloser::Recloser::default();
        group.bench_function("recloser", |b| {
            b.iter_custom(|iters| {
                threaded(threads, iters, |n| {
                    for _ in 0..n {
                        black_box(recloser.call(|| Ok::<u64, ()>(black_box(1)))).unwrap();
                    }
                })
            })
        });
        let failsafe = failsafe::Config::new().build();
        group.bench_function("failsafe", |b| {
            b.iter_custom(|iters| {
                threaded(threads, iters, |n| {
                    for _ in 0..n {
                        black_box(failsafe.call(|| Ok::<u64, ()>(black_box(1)))).unwrap();
                    }
                })
            })
        });
        group.finish();
    }
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
                        let call = breaker.call(ready(Ok::<u64, Error>(black_box(1))));
                        black_box(block_on(call)).unwrap();
                    }
                })
            })
        });
        let recloser = recloser::AsyncRecloser::from(recloser::Recloser::default());
        group.bench_function("recloser", |b| {
            b.iter_custom(|iters| {
                threaded(threads, iters, |n| {
                    for _ in 0..n {
                        let call = recloser.call(ready(Ok::<u64, ()>(black_box(1))));
                        black_box(block_on(call)).unwrap();
                    }
                })
            })
        });
        let failsafe = failsafe::Config::new().build();
        group.bench_function("failsafe", |b| {
            b.iter_custom(|iters| {
                threaded(threads, iters, |n| {
                    for _ in 0..n {
                        let call = failsafe.call(ready(Ok::<u64, ()>(black_box(1))));
                        black_box(block_on(call)).unwrap();
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
                        black_box(block_on(svc.call(black_box(1)))).unwrap();
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
                        black_box(block_on(svc.call(black_box(1)))).unwrap();
                    }
                })
            })
        });
        group.finish();
    }
}

criterion_group!(benches, permit, call_api, layer);
criterion_main!(benches);
