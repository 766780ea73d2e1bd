//! Starting and stopping 100 no-op components in a dependency chain:
//! `pattern-component`'s system against the same tasks spawned and
//! cancelled by hand in the same order (`bare`), in the same run.
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use criterion::{Criterion, criterion_group, criterion_main};
use patterns::component::component::from_fn;
use patterns::component::lifecycle::System;
use tokio_util::sync::CancellationToken;

const N: usize = 100;

fn chain() -> System {
    let mut builder = System::builder();
    for i in 0..N {
        let mut component = from_fn(format!("c{i}"), |ctx| async move {
            ctx.stop_token().cancelled().await;
            Ok(())
        });
        if i > 0 {
            component = component.depends_on(format!("c{}", i - 1));
        }
        builder = builder.component(component);
    }
    builder.build().unwrap()
}

fn lifecycle(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("lifecycle_chain_100");
    group.bench_function("ours", |b| {
        b.iter(|| {
            rt.block_on(async {
                let running = chain().start().await.unwrap();
                assert!(running.stop().await.is_clean());
            })
        })
    });
    group.bench_function("bare", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut started = Vec::with_capacity(N);
                for _ in 0..N {
                    let token = CancellationToken::new();
                    let stop = token.clone();
                    started.push((token, tokio::spawn(async move { stop.cancelled().await })));
                }
                for (token, task) in started.into_iter().rev() {
                    token.cancel();
                    task.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, lifecycle);
criterion_main!(benches);
