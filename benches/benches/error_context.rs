//! Wrapping an error in two layers of context and rendering the one-line
//! report: `pattern-error` against `anyhow`.
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

fn io_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused")
}

fn wrap(c: &mut Criterion) {
    let mut group = c.benchmark_group("error_context");
    group.bench_function("ours", |b| {
        use patterns::error::Context as _;
        b.iter(|| {
            let err = Err::<(), _>(black_box(io_error()))
                .context("connecting to the database")
                .context("loading order 42")
                .unwrap_err();
            black_box(err.kind());
            black_box(err.report().to_string())
        })
    });
    group.bench_function("anyhow", |b| {
        use anyhow::Context as _;
        b.iter(|| {
            let err = Err::<(), _>(black_box(io_error()))
                .context("connecting to the database")
                .context("loading order 42")
                .unwrap_err();
            black_box(format!("{err:#}"))
        })
    });
    group.finish();
}

criterion_group!(benches, wrap);
criterion_main!(benches);
