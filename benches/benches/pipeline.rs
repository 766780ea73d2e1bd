//! Ten thousand items through three trivial stages: `pattern-network`'s
//! pipeline (one worker per stage, unordered) against the same three stages
//! wired by hand with bounded flume channels, same run. Time per batch; the
//! throughput ratio is the inverse of the printed ratio.
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use criterion::{Criterion, criterion_group, criterion_main};
use patterns::network::pipeline::{Order, Pipeline};

const ITEMS: u64 = 10_000;
const CAPACITY: usize = 64;

async fn ours() -> u64 {
    let pipeline = Pipeline::<u64>::builder(CAPACITY)
        .stage("a", 1, Order::Unordered, |x: u64| async move { Ok(x + 1) })
        .stage("b", 1, Order::Unordered, |x: u64| async move { Ok(x * 2) })
        .stage("c", 1, Order::Unordered, |x: u64| async move { Ok(x + 3) })
        .build();
    let (input, output, _dead) = pipeline.into_parts();
    tokio::spawn(async move {
        for i in 0..ITEMS {
            input.send(i).await.unwrap();
        }
    });
    let mut sum = 0;
    while let Some(x) = output.recv().await {
        sum += x;
    }
    sum
}

async fn by_hand() -> u64 {
    let (input, a_rx) = flume::bounded::<u64>(CAPACITY);
    let (a_tx, b_rx) = flume::bounded::<u64>(CAPACITY);
    let (b_tx, c_rx) = flume::bounded::<u64>(CAPACITY);
    let (c_tx, output) = flume::bounded::<u64>(CAPACITY);
    fn stage(rx: flume::Receiver<u64>, tx: flume::Sender<u64>, f: fn(u64) -> u64) {
        tokio::spawn(async move {
            while let Ok(x) = rx.recv_async().await {
                if tx.send_async(f(x)).await.is_err() {
                    return;
                }
            }
        });
    }
    stage(a_rx, a_tx, |x| x + 1);
    stage(b_rx, b_tx, |x| x * 2);
    stage(c_rx, c_tx, |x| x + 3);
    tokio::spawn(async move {
        for i in 0..ITEMS {
            input.send_async(i).await.unwrap();
        }
    });
    let mut sum = 0;
    while let Ok(x) = output.recv_async().await {
        sum += x;
    }
    sum
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(ours()), rt.block_on(by_hand()));
    let mut group = c.benchmark_group("pipeline_3_stages_10k");
    group.sample_size(20);
    group.bench_function("ours", |b| b.iter(|| rt.block_on(ours())));
    group.bench_function("flume-by-hand", |b| b.iter(|| rt.block_on(by_hand())));
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
