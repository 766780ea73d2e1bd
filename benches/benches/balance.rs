//! A P2C peak-EWMA pick, readying the endpoint, plus a call among 64
//! ready endpoints:
//! `pattern-network`'s balancer against tower's `balance::p2c` over
//! `load::PeakEwma` services, same endpoints, same run.
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use std::future::{Ready, ready};
use std::hint::black_box;
use std::time::Duration;

use benches::block_on;
use criterion::{Criterion, criterion_group, criterion_main};
use patterns::error::Error;
use patterns::network::balance::{Balancer, Strategy};
use tower::{Service, ServiceExt};

type Endpoint = tower::util::ServiceFn<fn(u64) -> Ready<Result<u64, Error>>>;

fn endpoint() -> Endpoint {
    tower::service_fn((|x| ready(Ok(x))) as fn(u64) -> Ready<Result<u64, Error>>)
}

fn p2c(c: &mut Criterion) {
    let mut group = c.benchmark_group("balance_p2c_64");

    let ours = Balancer::new(Strategy::PeakEwma);
    for i in 0..64 {
        ours.add(format!("10.0.0.{i}:80"), endpoint(), 1);
    }
    let mut svc = ours.clone();
    group.bench_function("ours", |b| {
        b.iter(|| {
            block_on(svc.ready()).unwrap();
            black_box(block_on(svc.call(black_box(1)))).unwrap()
        })
    });

    let endpoints: Vec<_> = (0..64)
        .map(|_| {
            tower::load::PeakEwma::new(
                endpoint(),
                Duration::from_millis(1),
                10e9,
                tower::load::CompleteOnResponse::default(),
            )
        })
        .collect();
    let mut theirs =
        tower::balance::p2c::Balance::new(tower::discover::ServiceList::new(endpoints));
    group.bench_function("tower", |b| {
        b.iter(|| {
            block_on(theirs.ready()).unwrap();
            black_box(block_on(theirs.call(black_box(1)))).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, p2c);
criterion_main!(benches);
