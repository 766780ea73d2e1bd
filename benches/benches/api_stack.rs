//! One GET through the full default middleware stack against bare axum
//! (same handler), in process (oneshot), same run. The loopback variant
//! with a load generator is still to come.
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use benches::block_on;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use patterns::api::stack::ApiStack;
use tower::ServiceExt;

fn handler_router() -> Router {
    Router::new().route("/v1/items/{id}", get(|| async { "ok" }))
}

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let bare = handler_router();
    let full = ApiStack::new().apply(handler_router());
    let request = || Request::get("/v1/items/7").body(Body::empty()).unwrap();
    let mut group = c.benchmark_group("api_stack_oneshot");
    group.bench_function("ours", |b| {
        b.iter(|| {
            let response = block_on(full.clone().oneshot(request())).unwrap();
            black_box(response.status())
        })
    });
    group.bench_function("axum", |b| {
        b.iter(|| {
            let response = block_on(bare.clone().oneshot(request())).unwrap();
            black_box(response.status())
        })
    });
    group.finish();
}

criterion_group!(benches, stack);
criterion_main!(benches);
