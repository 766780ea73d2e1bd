//! The retry layer on the success path: `pattern-error`'s retry layer (with
//! a budget) against the bare service and against tower's retry middleware
//! with its own budget, in the same run. The overhead the issue bounds is
//! `ours - bare`, printed by `cargo xtask bench` as the Δ column.
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use std::future::{Ready, ready};
use std::hint::black_box;
use std::sync::Arc;

use benches::block_on;
use criterion::{Criterion, criterion_group, criterion_main};
use patterns::error::Error;
use patterns::error::retry::{RetryBudget, RetryLayer, RetryPolicy};
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service};

/// A tower retry policy equivalent to ours: transient errors, a budget.
#[derive(Clone)]
struct TowerPolicy {
    budget: Arc<TpsBudget>,
}

impl tower::retry::Policy<u64, u64, Error> for TowerPolicy {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut u64, result: &mut Result<u64, Error>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(e) if e.is_transient() && self.budget.withdraw() => Some(ready(())),
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn retry(c: &mut Criterion) {
    let inner = tower::service_fn(|x: u64| -> Ready<Result<u64, Error>> { ready(Ok(x)) });
    let mut group = c.benchmark_group("retry_success");

    let mut bare = inner;
    group.bench_function("bare", |b| {
        b.iter(|| black_box(block_on(bare.call(black_box(1)))).unwrap())
    });

    let policy = RetryPolicy::builder("bench")
        .budget(Arc::new(RetryBudget::default()))
        .build()
        .unwrap();
    let mut ours = RetryLayer::new(policy).layer(inner);
    group.bench_function("ours", |b| {
        b.iter(|| black_box(block_on(ours.call(black_box(1)))).unwrap())
    });

    let mut theirs = tower::retry::RetryLayer::new(TowerPolicy {
        budget: Arc::new(TpsBudget::default()),
    })
    .layer(inner);
    group.bench_function("tower", |b| {
        b.iter(|| black_box(block_on(theirs.call(black_box(1)))).unwrap())
    });
    group.finish();
}

criterion_group!(benches, retry);
criterion_main!(benches);
