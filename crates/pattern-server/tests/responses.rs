//! Response handling through the whole chain (pattern-api's middleware on
//! the server, real sockets): streaming bodies are not buffered, and
//! compression follows the client's `accept-encoding`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use pattern_api::stack::ApiStack;
use pattern_component::lifecycle::{RunningSystem, System};
use pattern_server::http::{HttpServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

async fn serve(app: Router) -> (RunningSystem, std::net::SocketAddr) {
    let config = ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let running = System::builder()
        .component(HttpServer::new("http", config, app))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = running.addr("http", "http").unwrap();
    (running, addr)
}

/// Reads from `stream` until `needle` has arrived (or 5 s pass).
async fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, needle: &[u8]) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    true
}

#[tokio::test]
async fn a_streamed_body_reaches_the_client_before_it_ends() {
    let go_on = Arc::new(Notify::new());
    let gate = go_on.clone();
    let app = ApiStack::new().apply(Router::new().route(
        "/stream",
        get(move || {
            let gate = gate.clone();
            let chunks = futures_util::stream::unfold(0u8, move |step| {
                let gate = gate.clone();
                async move {
                    match step {
                        0 => Some((Ok::<_, std::io::Error>("first-chunk;"), 1)),
                        1 => {
                            // The second part waits until the client has the first.
                            gate.notified().await;
                            Some((Ok("second-chunk"), 2))
                        }
                        _ => None,
                    }
                }
            });
            async move { Body::from_stream(chunks) }
        }),
    ));
    let (running, addr) = serve(app).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    assert!(
        read_until(&mut stream, &mut seen, b"first-chunk;").await,
        "the first chunk arrives while the handler still holds the rest: {}",
        String::from_utf8_lossy(&seen)
    );
    assert!(!seen.windows(12).any(|w| w == b"second-chunk"));
    let head = String::from_utf8_lossy(&seen).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("x-request-id"), "the chain ran: {head}");
    go_on.notify_one();
    assert!(read_until(&mut stream, &mut seen, b"second-chunk").await);
    running.stop().await;
}

#[tokio::test]
async fn compression_follows_accept_encoding() {
    let text = "a repetitive payload that compresses well; ".repeat(100);
    let app = ApiStack::new().compression(true).apply(Router::new().route(
        "/text",
        get(move || {
            let text = text.clone();
            async move { text }
        }),
    ));
    let (running, addr) = serve(app).await;
    let fetch = |accept: &'static str| async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET /text HTTP/1.1\r\nhost: x\r\n{accept}connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&response[..end]).to_lowercase();
        (head, response.len() - end - 4)
    };
    let (head, gzip_len) = fetch("accept-encoding: gzip\r\n").await;
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let (plain_head, plain_len) = fetch("").await;
    assert!(!plain_head.contains("content-encoding"), "{plain_head}");
    assert_eq!(plain_len, 4300);
    assert!(gzip_len < plain_len / 4, "{gzip_len} bytes compressed");
    let (identity, _) = fetch("accept-encoding: identity\r\n").await;
    assert!(!identity.contains("content-encoding"), "{identity}");
    running.stop().await;
}
