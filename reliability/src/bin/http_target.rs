//! A server for the HTTP load figures (`cargo xtask bench --http`): the
//! same handler, on a one-thread runtime, served by
//!
//! | target | what |
//! | --- | --- |
//! | `hyper` | bare hyper, HTTP/1.1 |
//! | `hyper-h2` | bare hyper, HTTP/2 with prior knowledge |
//! | `axum-h2` | bare hyper's HTTP/2 serving the bare axum router |
//! | `axum` | bare axum, no logs |
//! | `stack` | axum behind the reference service's middleware chain (metrics into Prometheus; logs off) |
//! | `server-bare` | pattern-server's `HttpServer` (HTTP/1.1 and h2c) around the bare handler: no chain, no logs, no metrics |
//! | `server` | the reference service's serving path: pattern-server's `HttpServer` (HTTP/1.1 and h2c), the whole chain, `/metrics`, JSON access logs to the file `HT_LOG` names |
//! | `server-traced` | `server` with its trace export on: 10 % of traces sampled, sent over OTLP/HTTP to the collector `HT_OTLP` names |
//! | `otlp-sink` | a collector that answers every export and keeps nothing |
//! | `peer` | what a user would assemble instead: axum + tower-http request id, trace (one INFO line per request), timeout, body limit and catch-panic, tracing-subscriber JSON logs to `HT_LOG` through the same non-blocking writer |
//!
//! ```text
//! http-target hyper|hyper-h2|axum-h2|axum|stack|server-bare|server|server-traced|otlp-sink|peer [ADDR]
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
            "hyper" => serve_hyper(listener, false).await,
            "hyper-h2" => serve_hyper(listener, true).await,
            "axum-h2" => serve_axum_h2(listener).await,
            "server-bare" => serve_bare_server(listener).await,
            "server" => serve_server(listener, false).await,
            "server-traced" => serve_server(listener, true).await,
            "otlp-sink" => serve_otlp_sink(listener).await,
            "peer" => serve_peer(listener).await,
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
                        "metrics" => stack.metrics(false),
                        "trace" => stack.trace(false),
                        "rid" => stack.request_id(false),
                        "timeout" => stack.timeout(None),
                        "shed" => stack.concurrency_limit(None),
                        "panic" => stack.catch_panic(false),
                        "problem" => stack.problem_json(false),
                        "body" => stack.body_limit(None),
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
                eprintln!("unknown target {other:?}: hyper, hyper-h2, axum-h2, axum, stack, server-bare, server, server-traced, otlp-sink or peer");
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

/// Where the `server` and `peer` targets write their JSON logs.
fn log_file() -> std::path::PathBuf {
    std::env::var_os("HT_LOG").map_or_else(
        || std::env::temp_dir().join(format!("http-target-{}.log", std::process::id())),
        Into::into,
    )
}

/// The reference service's serving path around the bench handler; with
/// `traced`, its trace export on, sampling 10 % of the traces, to the
/// collector `HT_OTLP` names.
async fn serve_server(listener: tokio::net::TcpListener, traced: bool) {
    use patterns::component::lifecycle::System;
    use patterns::server::logging::{LogConfig, LogFormat};
    use patterns::server::telemetry::{Sampler, TelemetryConfig};

    let mut config = examples::reference::Config::default();
    if traced {
        config.telemetry = TelemetryConfig {
            endpoint: Some(std::env::var("HT_OTLP").expect("HT_OTLP: the collector's address")),
            service_name: "http-target".to_owned(),
            sampler: Sampler::ParentBasedTraceIdRatio,
            sampler_ratio: 0.1,
            ..TelemetryConfig::default()
        };
    }
    let log_config = LogConfig {
        format: LogFormat::Json,
        file: Some(log_file()),
        ..LogConfig::default()
    };
    // HT_NOLOG=1: no subscriber, to see what the logs cost.
    let (logs, export) = if std::env::var_os("HT_NOLOG").is_none() {
        let (logs, export) =
            patterns::server::logging::init_with_telemetry(&log_config, &config.telemetry)
                .expect("logging");
        (Some(logs), export)
    } else {
        (None, None)
    };
    config.limits.requests_per_second = 100_000_000;
    config.limits.burst = 100_000_000;
    // The reference service's settings for JSON logs to a file.
    config.log.format = LogFormat::Json;
    // HT_ACCESS=off: spans and other logs, no access events.
    if std::env::var("HT_ACCESS").as_deref() == Ok("off") {
        config.log.access = patterns::server::logging::AccessLog::Off;
    }
    let prometheus = patterns::server::ops::Prometheus::install().expect("a recorder");
    let render = prometheus.clone();
    let health = patterns::component::lifecycle::HealthHandle::detached();
    let app =
        examples::reference::middleware(&config)
            .expect("the middleware chain")
            .apply(Router::new().route("/", get(handler)).merge(
                patterns::server::ops::with_metrics(health.clone(), move || render.render()),
            ));
    let server = http_server(listener, app);
    let mut system = System::builder().health_handle(&health);
    if let Some(export) = export {
        system = system.component(export);
    }
    let _logs = logs;
    run_for_ever(
        system
            .component(prometheus)
            .component(server.after("metrics")),
    )
    .await;
}

/// Starts `system` and serves until killed.
async fn run_for_ever(system: patterns::component::lifecycle::SystemBuilder) {
    let _running = system
        .build()
        .expect("a system")
        .start()
        .await
        .expect("started");
    std::future::pending::<()>().await;
}

/// An `HttpServer` with the default settings serving `app` on `listener`'s
/// address (the component binds its own port: the listener is closed).
fn http_server(
    listener: tokio::net::TcpListener,
    app: Router,
) -> patterns::server::http::HttpServer {
    use patterns::server::http::{HttpServer, ServerConfig};

    let addr = listener.local_addr().expect("address");
    drop(listener);
    HttpServer::new(
        "http",
        ServerConfig {
            addr,
            ..ServerConfig::default()
        },
        app,
    )
}

/// pattern-server's `HttpServer` around the bare handler: what serving
/// costs before any middleware.
async fn serve_bare_server(listener: tokio::net::TcpListener) {
    use patterns::component::lifecycle::System;

    let server = http_server(listener, Router::new().route("/", get(handler)));
    run_for_ever(System::builder().component(server)).await;
}

/// What a user would assemble from tower-http instead.
async fn serve_peer(listener: tokio::net::TcpListener) {
    use std::time::Duration;

    use tower_http::catch_panic::CatchPanicLayer;
    use tower_http::limit::RequestBodyLimitLayer;
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::timeout::TimeoutLayer;
    use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
    use tracing::Level;

    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file())
        .expect("the log file");
    let (writer, _guard) = tracing_appender::non_blocking(file);
    tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_max_level(Level::INFO)
        .init();
    let app = Router::new().route("/", get(handler)).layer(
        tower::ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(CatchPanicLayer::new())
            .layer(TimeoutLayer::with_status_code(
                http::StatusCode::GATEWAY_TIMEOUT,
                Duration::from_secs(5),
            ))
            .layer(RequestBodyLimitLayer::new(64 * 1024)),
    );
    serve_axum(listener, app).await;
}

/// A collector that takes every export and keeps nothing: what the
/// `server-traced` target sends its spans to.
async fn serve_otlp_sink(listener: tokio::net::TcpListener) {
    use http_body_util::BodyExt as _;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header(CONTENT_TYPE, "application/x-protobuf")
                            .body(Full::new(Bytes::new()))
                            .expect("a response"),
                    )
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Bare hyper's HTTP/2 serving the bare axum router: what HTTP/2 costs
/// with axum's routing and nothing else.
async fn serve_axum_h2(listener: tokio::net::TcpListener) {
    let router = Router::new().route("/", get(handler)).with_state(());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn serve_hyper(listener: tokio::net::TcpListener, http2: bool) {
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
            let io = TokioIo::new(stream);
            let _ = if http2 {
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(io, service)
                    .await
            } else {
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
            };
        });
    }
}
