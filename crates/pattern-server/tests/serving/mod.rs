//! Helpers shared by the tests that serve HTTP over real sockets.
#![allow(dead_code, reason = "each test binary uses some of the helpers")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use pattern_component::lifecycle::{RunningSystem, System};
use pattern_server::http::{HttpServer, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// Starts an `HttpServer` named `http` serving `router` with `config`; the
/// server (for its drain report), the system and the bound address.
pub(crate) async fn start(
    config: ServerConfig,
    router: Router,
) -> (Arc<HttpServer>, RunningSystem, SocketAddr) {
    let server = Arc::new(HttpServer::new("http", config, router));
    let running = System::builder()
        .component_shared(server.clone(), Default::default())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = running.addr("http", "http").unwrap();
    (server, running, addr)
}

/// Reads `stream` until the server closes it, which must be after the
/// 300 ms header read timeout the tests set (counted from `started`) and
/// well within 3 s; returns what it read.
pub(crate) async fn closed_after_the_header_timeout(
    stream: &mut (impl AsyncRead + Unpin),
    started: Instant,
) -> Vec<u8> {
    closed_between(
        stream,
        started,
        Duration::from_millis(250)..Duration::from_secs(3),
    )
    .await
}

/// Reads `stream` until the server closes it, which must be `within` this
/// long of `started`; returns what it read.
pub(crate) async fn closed_between(
    stream: &mut (impl AsyncRead + Unpin),
    started: Instant,
    within: std::ops::Range<Duration>,
) -> Vec<u8> {
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    let waited = started.elapsed();
    assert!(within.contains(&waited), "closed after {waited:?}");
    rest
}
