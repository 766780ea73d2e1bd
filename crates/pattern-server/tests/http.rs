//! The HTTP server on real sockets at 127.0.0.1: graceful drain, the drain
//! deadline cut, the connection limit, the header read timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use pattern_component::lifecycle::{RunningSystem, System};
use pattern_server::http::{HttpServer, OnLimit, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep};

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "hi" }))
        .route(
            "/slow",
            get(|| async {
                sleep(Duration::from_millis(300)).await;
                "slow done"
            }),
        )
        .route(
            "/stuck",
            get(|| async {
                sleep(Duration::from_secs(30)).await;
                "never"
            }),
        )
}

async fn start(config: ServerConfig) -> (Arc<HttpServer>, RunningSystem, std::net::SocketAddr) {
    let server = Arc::new(HttpServer::new("http", config, router()));
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

fn config() -> ServerConfig {
    ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    }
}

/// Sends a GET on its own connection and returns the whole raw response.
async fn fetch(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// Reads `stream` until the server closes it, which must be after the
/// 300 ms header read timeout the tests set (counted from `started`) and
/// well within 3 s; returns what it read.
async fn closed_after_the_header_timeout(stream: &mut TcpStream, started: Instant) -> Vec<u8> {
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    rest
}

#[tokio::test]
async fn requests_in_flight_finish_during_the_drain() {
    let (server, running, addr) = start(config()).await;
    assert!(fetch(addr, "/").await.unwrap().starts_with("HTTP/1.1 200"));
    let in_flight: Vec<_> = (0..5).map(|_| tokio::spawn(fetch(addr, "/slow"))).collect();
    sleep(Duration::from_millis(50)).await;
    let stopping = tokio::spawn(running.stop());
    sleep(Duration::from_millis(50)).await;
    // Stopped accepting: new connections are refused.
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the port is closed once stopping"
    );
    for request in in_flight {
        let response = request.await.unwrap().unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200") && response.ends_with("slow done"),
            "{response}"
        );
    }
    assert!(stopping.await.unwrap().is_clean());
    let drain = server.last_drain().unwrap();
    assert_eq!(drain.cut, 0);
}

#[tokio::test]
async fn the_drain_deadline_cuts_what_is_left() {
    let (server, running, addr) = start(ServerConfig {
        drain_deadline_ms: 200,
        ..config()
    })
    .await;
    let stuck = tokio::spawn(fetch(addr, "/stuck"));
    sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    running.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let drain = server.last_drain().unwrap();
    assert_eq!((drain.open_at_stop, drain.cut), (1, 1));
    // The cut client sees its connection end without a response.
    let response = stuck.await.unwrap().unwrap_or_default();
    assert!(!response.contains("never"));
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let (_server, running, addr) = start(ServerConfig {
        max_connections: 1,
        on_limit: OnLimit::Refuse,
        ..config()
    })
    .await;
    let busy = tokio::spawn(fetch(addr, "/slow"));
    sleep(Duration::from_millis(50)).await;
    let refused = fetch(addr, "/").await.unwrap_or_default();
    assert!(refused.is_empty(), "closed without an answer: {refused:?}");
    assert!(busy.await.unwrap().unwrap().ends_with("slow done"));
    sleep(Duration::from_millis(50)).await;
    assert!(
        fetch(addr, "/").await.unwrap().starts_with("HTTP/1.1 200"),
        "served once a slot is free"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_slow_header_writer_is_closed_while_others_are_served() {
    let (_server, running, addr) = start(ServerConfig {
        header_read_timeout_ms: 300,
        ..config()
    })
    .await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nho").await.unwrap();
    let started = Instant::now();
    // Others are served meanwhile.
    assert!(fetch(addr, "/").await.unwrap().starts_with("HTTP/1.1 200"));
    let rest = closed_after_the_header_timeout(&mut slow, started).await;
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    running.stop().await;
}

/// A client that connects and sends nothing at all (so no protocol is
/// detected and no header timer runs) is closed after the header read
/// timeout, not kept forever in a connection slot.
#[tokio::test]
async fn a_silent_client_is_closed_after_the_header_timeout() {
    let (_server, running, addr) = start(ServerConfig {
        header_read_timeout_ms: 300,
        ..config()
    })
    .await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    closed_after_the_header_timeout(&mut silent, started).await;
    assert!(fetch(addr, "/").await.unwrap().starts_with("HTTP/1.1 200"));
    running.stop().await;
}

/// A request sent on an idle keep-alive connection just as the server
/// stops is read and answered (with the connection then closed), not
/// dropped with the idle connection.
#[tokio::test]
async fn a_request_racing_the_stop_on_an_idle_connection_is_served() {
    for _ in 0..20 {
        let (_server, running, addr) = start(config()).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        stream.write_all(request).await.unwrap();
        let mut first = [0u8; 256];
        let n = stream.read(&mut first).await.unwrap();
        assert!(first[..n].starts_with(b"HTTP/1.1 200"));
        // Idle now. The next request and the stop leave together.
        stream.write_all(request).await.unwrap();
        let stopping = tokio::spawn(running.stop());
        let mut second = Vec::new();
        stream.read_to_end(&mut second).await.unwrap();
        let second = String::from_utf8_lossy(&second);
        assert!(second.starts_with("HTTP/1.1 200"), "answered: {second:?}");
        assert!(
            second.to_ascii_lowercase().contains("connection: close"),
            "the last answer on the connection: {second:?}"
        );
        assert!(stopping.await.unwrap().is_clean());
    }
}
