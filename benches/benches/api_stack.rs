//! One GET through the full default middleware stack against bare axum
//! and bare hyper (same handler), same run:
//!
//! - `api_stack_oneshot`: in process, time per request;
//! - `api_stack_loopback`: over loopback, each server on its own thread
//!   with a one-thread runtime, 16 keep-alive connections from a client
//!   runtime on the bench thread; time per request (throughput is its
//!   inverse).
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use benches::block_on;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use patterns::api::middleware::DeadlineLayer;
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

/// Each piece of the stack alone on bare axum, in process: the delta column
/// of `cargo xtask bench` is that piece's cost per request.
fn per_layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    fn bare() -> ApiStack {
        ApiStack::new()
            .trace(false)
            .metrics(false)
            .catch_panic(false)
            .concurrency_limit(None)
            .timeout(None)
            .request_id(false)
            .problem_json(false)
            .body_limit(None)
    }
    type Piece = (&'static str, fn() -> ApiStack);
    let pieces: [Piece; 8] = [
        ("request_id", || bare().request_id(true)),
        ("trace", || bare().trace(true)),
        ("metrics", || bare().metrics(true)),
        ("problem_json", || bare().problem_json(true)),
        ("catch_panic", || bare().catch_panic(true)),
        ("load_shed", || bare().concurrency_limit(1024)),
        ("timeout", || {
            bare().timeout(DeadlineLayer::new(std::time::Duration::from_secs(30)))
        }),
        ("body_limit", || bare().body_limit(1024 * 1024)),
    ];
    let request = || Request::get("/v1/items/7").body(Body::empty()).unwrap();
    let baseline = bare().apply(handler_router());
    for (name, stack) in pieces {
        let app = stack().apply(handler_router());
        let mut group = c.benchmark_group(format!("api_layer_cost/{name}"));
        group.bench_function("ours", |b| {
            b.iter(|| black_box(block_on(app.clone().oneshot(request())).unwrap().status()))
        });
        group.bench_function("axum", |b| {
            b.iter(|| {
                black_box(
                    block_on(baseline.clone().oneshot(request()))
                        .unwrap()
                        .status(),
                )
            })
        });
        group.finish();
    }
}

/// Serves `app` on 127.0.0.1:0 on a thread of its own; returns the address.
fn serve_axum(app: Router) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
    });
    rx.recv().unwrap()
}

/// A bare hyper HTTP/1.1 server answering "ok" to everything.
fn serve_hyper() -> std::net::SocketAddr {
    use hyper::service::service_fn;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

const CONNECTIONS: u64 = 16;

fn loopback(c: &mut Criterion) {
    use http_body_util::BodyExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let servers = [
        ("ours", serve_axum(ApiStack::new().apply(handler_router()))),
        ("axum", serve_axum(handler_router())),
        ("hyper", serve_hyper()),
    ];
    let mut group = c.benchmark_group("api_stack_loopback");
    for (name, addr) in servers {
        let senders: Vec<Sender> = rt.block_on(async {
            let mut all = Vec::new();
            for _ in 0..CONNECTIONS {
                all.push(connect(addr).await);
            }
            all
        });
        let senders = std::cell::RefCell::new(senders);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let per_connection = iters.div_ceil(CONNECTIONS);
                let mut senders = senders.borrow_mut();
                rt.block_on(async {
                    let start = std::time::Instant::now();
                    let tasks: Vec<_> = senders
                        .iter_mut()
                        .map(|sender| async move {
                            for _ in 0..per_connection {
                                sender.ready().await.unwrap();
                                let req = http::Request::get("/v1/items/7")
                                    .header("host", "127.0.0.1")
                                    .body(http_body_util::Empty::new())
                                    .unwrap();
                                let response = sender.send_request(req).await.unwrap();
                                assert_eq!(response.status(), 200);
                                black_box(response.into_body().collect().await.unwrap());
                            }
                        })
                        .collect();
                    futures_util::future::join_all(tasks).await;
                    // Wall time for about `iters` requests: per iteration it
                    // is the inverse of the throughput.
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, stack, per_layer, loopback);
criterion_main!(benches);
