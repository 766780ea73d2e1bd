//! Consistent-hash lookup among 64 endpoints (150 virtual nodes each):
//! `pattern-network`'s ring against plain `hash % 64` routing (which moves
//! almost every key when the set changes), same hasher (XXH64 with the
//! ring's seed), same run.
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use std::hash::{Hash, Hasher};
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use patterns::network::partition::HashRing;
use twox_hash::XxHash64;

fn lookup(c: &mut Criterion) {
    let mut ring = HashRing::new(150);
    for n in 0..64u32 {
        ring.add(format!("10.0.0.{n}:8080"));
    }
    let endpoints: Vec<String> = (0..64u32).map(|n| format!("10.0.0.{n}:8080")).collect();
    let mut group = c.benchmark_group("hash_ring_lookup_64");
    let mut key = 0u64;
    group.bench_function("ours", |b| {
        b.iter(|| {
            key = key.wrapping_add(0x9E37_79B9);
            black_box(ring.get(black_box(&key)))
        })
    });
    let mut key = 0u64;
    group.bench_function("modulo", |b| {
        b.iter(|| {
            key = key.wrapping_add(0x9E37_79B9);
            let mut h = XxHash64::with_seed(HashRing::<()>::SEED);
            black_box(&key).hash(&mut h);
            black_box(&endpoints[(h.finish() % 64) as usize])
        })
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
