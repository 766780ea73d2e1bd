//! A keyed rate-limit check: `pattern-network`'s bounded keyed limiter
//! against governor's keyed limiter (DashMap store), same quota, same keys,
//! same run. Also prints how many keys each holds after a flood of distinct
//! keys: ours stays at its bound, governor's grows with every key seen.
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use std::hint::black_box;
use std::num::NonZeroU32;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::Quota;
use patterns::network::flow::rate::KeyedLimiter;

const KEYS: u64 = 1_000;

fn quota() -> Quota {
    Quota::per_second(NonZeroU32::new(1_000_000_000).unwrap())
}

fn keyed(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_keyed_check");
    let ours = KeyedLimiter::new(quota(), 10_000);
    let mut k = 0u64;
    group.bench_function("ours", |b| {
        b.iter(|| {
            k = (k + 1) % KEYS;
            black_box(ours.check(black_box(&k))).ok()
        })
    });
    let governor = governor::RateLimiter::keyed(quota());
    let mut k = 0u64;
    group.bench_function("governor", |b| {
        b.iter(|| {
            k = (k + 1) % KEYS;
            black_box(governor.check_key(black_box(&k))).ok()
        })
    });
    group.finish();

    // Memory: a flood of distinct keys.
    let ours = KeyedLimiter::new(quota(), 10_000);
    let theirs = governor::RateLimiter::keyed(quota());
    for key in 0..1_000_000u64 {
        let _ = ours.check(&key);
        let _ = theirs.check_key(&key);
    }
    println!(
        "rate_keyed_check memory: after 1 000 000 distinct keys ours tracks {} keys, governor {}",
        ours.len(),
        theirs.len()
    );
}

criterion_group!(benches, keyed);
criterion_main!(benches);
