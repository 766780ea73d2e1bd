//! Upgraded connections over real sockets: they keep their connection slot
//! while they live, the drain waits for them and tells their handlers, and
//! the drain deadline cuts those that do not close.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use hyper_util::rt::TokioIo;
use pattern_component::lifecycle::RunningSystem;

mod serving;
use pattern_server::http::{Draining, HttpServer, OnLimit, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep};

/// `/echo` upgrades to a line echo; a polite handler says "bye" 300 ms
/// after the drain begins and closes, a rude one ignores the drain.
fn router(polite: bool) -> Router {
    Router::new().route("/", get(|| async { "hi" })).route(
        "/echo",
        get(
            move |draining: Option<Draining>, mut req: Request<Body>| async move {
                let draining = draining.expect("upgrade requests carry Draining");
                let upgrade = req
                    .extensions_mut()
                    .remove::<hyper::upgrade::OnUpgrade>()
                    .expect("an upgradable request");
                tokio::spawn(async move {
                    let mut io = TokioIo::new(upgrade.await.expect("upgraded"));
                    let mut buf = [0; 16 * 1024];
                    loop {
                        tokio::select! {
                            read = io.read(&mut buf) => match read {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if io.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            },
                            () = draining.started(), if polite => {
                                sleep(Duration::from_millis(300)).await;
                                let _ = io.write_all(b"bye").await;
                                let _ = io.shutdown().await;
                                return;
                            }
                        }
                    }
                });
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header(header::CONNECTION, "upgrade")
                    .header(header::UPGRADE, "echo")
                    .body(Body::empty())
                    .unwrap()
            },
        ),
    )
}

async fn start(
    config: ServerConfig,
    polite: bool,
) -> (Arc<HttpServer>, RunningSystem, std::net::SocketAddr) {
    serving::start(config, router(polite)).await
}

fn config() -> ServerConfig {
    ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        max_connections: 1,
        on_limit: OnLimit::Refuse,
        ..ServerConfig::default()
    }
}

/// An upgraded connection that echoes.
async fn upgrade(addr: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream.write_all(b"ping").await.unwrap();
    let mut echo = [0; 4];
    stream.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");
    stream
}

/// A GET on a new connection: the response, or empty when refused.
async fn fetch(addr: std::net::SocketAddr) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let _ = stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
}

#[tokio::test]
async fn an_upgraded_connection_keeps_its_slot_and_is_drained() {
    let (server, running, addr) = start(config(), true).await;
    let mut echo = upgrade(addr).await;
    // The only slot is the upgraded socket's (it was given back at the
    // upgrade before).
    assert_eq!(fetch(addr).await, "", "refused: the slot is held");
    let stopping = tokio::spawn(running.stop());
    sleep(Duration::from_millis(150)).await;
    assert!(
        !stopping.is_finished(),
        "the drain waits for the upgraded connection"
    );
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), echo.read_to_end(&mut rest))
        .await
        .expect("closed by its handler")
        .unwrap();
    assert_eq!(
        rest, b"bye",
        "the handler heard of the drain and said goodbye"
    );
    assert!(stopping.await.unwrap().is_clean());
    let drain = server.last_drain().unwrap();
    assert_eq!((drain.open_at_stop, drain.cut), (1, 0));
}

#[tokio::test]
async fn the_slot_is_free_again_once_the_upgraded_socket_closes() {
    let (_server, running, addr) = start(config(), true).await;
    let echo = upgrade(addr).await;
    drop(echo);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if fetch(addr).await.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never given back");
        sleep(Duration::from_millis(20)).await; // real time: a real server
    }
    running.stop().await;
}

#[tokio::test]
async fn an_upgraded_connection_that_ignores_the_drain_is_cut_at_the_deadline() {
    let (server, running, addr) = start(
        ServerConfig {
            drain_timeout_ms: 300,
            ..config()
        },
        false,
    )
    .await;
    let mut echo = upgrade(addr).await;
    let started = Instant::now();
    running.stop().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let drain = server.last_drain().unwrap();
    assert_eq!((drain.open_at_stop, drain.cut), (1, 1));
    // The socket is closed: its handler's read failed and it dropped it.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), echo.read_to_end(&mut rest))
        .await
        .expect("closed after the cut");
    assert!(read.is_err() || rest.is_empty(), "{rest:?}");
}

/// The write timeout is the HTTP connection's: once upgraded, a socket
/// whose client reads nothing for several timeouts is not cut (its
/// handler owns its pace), and every byte comes back.
#[tokio::test]
async fn an_upgraded_socket_has_no_write_timeout() {
    const SENT: usize = 8 << 20;
    let (_server, running, addr) = start(
        ServerConfig {
            write_timeout_ms: 200,
            ..config()
        },
        true,
    )
    .await;
    let (mut reader, mut writer) = upgrade(addr).await.into_split();
    let sending = tokio::spawn(async move {
        writer.write_all(&vec![b'e'; SENT]).await.unwrap();
        writer
    });
    // The echoes fill the buffers; the handler's writes wait on this
    // reader for a second: five timeouts.
    sleep(Duration::from_secs(1)).await;
    let mut back = vec![0u8; SENT];
    tokio::time::timeout(Duration::from_secs(10), reader.read_exact(&mut back))
        .await
        .expect("echoed in time")
        .unwrap();
    assert!(back.iter().all(|byte| *byte == b'e'));
    drop(sending.await.unwrap());
    running.stop().await;
}
