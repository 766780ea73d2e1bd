//! A server for the HTTP load figures (`cargo xtask bench --http`): the
//! same handler served by bare hyper, bare axum, or axum behind the
//! reference service's middleware chain, on a one-thread runtime. The
//! chain records into a Prometheus recorder, as the service's does.
//!
//! ```text
//! http-target hyper|axum|stack [ADDR]
//! ```
//!
//! It prints `listening on http://ADDR` once bound and serves until killed.
//! `HT_OFF=metrics,trace,...` switches pieces of the stack off, to see what
//! each costs under load (`metrics`, `trace`, `rid`, `timeout`, `shed`,
//! `panic`, `problem`, `body`); for example, with the load generator on
//! the other core: `HT_OFF=metrics taskset -c 0 http-target stack
//! 127.0.0.1:18099` and `taskset -c 1 reliability load 127.0.0.1:18099 64 1 5`.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

/// What every target answers to `GET /`.
const BODY: &[u8] = br#"{"data":{"message":"hello"}}"#;

async fn handler() -> ([(http::HeaderName, &'static str); 1], &'static [u8]) {
    ([(CONTENT_TYPE, "application/json")], BODY)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_default();
    let addr: SocketAddr = args
        .next()
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()
        .expect("an address");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        println!(
            "listening on http://{}",
            listener.local_addr().expect("address")
        );
        match kind.as_str() {
            "hyper" => serve_hyper(listener).await,
            "axum" => serve_axum(listener, Router::new().route("/", get(handler))).await,
            "stack" => {
                let mut config = examples::reference::Config::default();
                // All load comes from 127.0.0.1: keep the limiter in the
                // path but out of the way.
                config.limits.requests_per_second = 100_000_000;
                config.limits.burst = 100_000_000;
                let prometheus = patterns::server::ops::install_prometheus().expect("a recorder");
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
                    loop {
                        ticks.tick().await;
                        prometheus.run_upkeep();
                    }
                });
                let mut stack =
                    examples::reference::middleware(&config).expect("the middleware chain");
                let off = std::env::var("HT_OFF").unwrap_or_default();
                for piece in off.split(',').filter(|p| !p.is_empty()) {
                    stack = match piece {
                        "metrics" => stack.without_metrics(),
                        "trace" => stack.without_trace(),
                        "rid" => stack.without_request_id(),
                        "timeout" => stack.without_timeout(),
                        "shed" => stack.without_concurrency_limit(),
                        "panic" => stack.without_catch_panic(),
                        "problem" => stack.without_problem_json(),
                        "body" => stack.without_body_limit(),
                        other => {
                            eprintln!("HT_OFF: unknown piece {other:?}");
                            std::process::exit(2);
                        }
                    };
                }
                serve_axum(
                    listener,
                    stack.apply(Router::new().route("/", get(handler))),
                )
                .await;
            }
            other => {
                eprintln!("unknown target {other:?}: hyper, axum or stack");
                std::process::exit(2);
            }
        }
    });
}

async fn serve_axum(listener: tokio::net::TcpListener, app: Router) {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .expect("serving");
}

async fn serve_hyper(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(
                    http::Response::builder()
                        .header(CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from_static(BODY)))
                        .expect("a response"),
                )
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
