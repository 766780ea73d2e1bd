//! The HTTP server on real sockets at 127.0.0.1: graceful drain, the drain
//! deadline cut, the connection limit, the header read timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use pattern_component::lifecycle::{RunningSystem, System};

mod serving;
use pattern_server::http::{HttpServer, OnLimit, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep};

/// The size of `/big`'s answer: far more than the sockets' buffers hold.
const BIG: usize = 16 << 20;

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
        .route("/big", get(|| async { vec![b'x'; BIG] }))
        .route(
            "/paused",
            get(|| async {
                // Two parts 500 ms apart: a streamed answer that pauses.
                let parts = futures_util::stream::unfold(0, |part| async move {
                    match part {
                        0 => Some((Ok::<_, std::io::Error>("first,"), 1)),
                        1 => {
                            sleep(Duration::from_millis(500)).await;
                            Some((Ok("second"), 2))
                        }
                        _ => None,
                    }
                });
                axum::body::Body::from_stream(parts)
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
    serving::start(config, router()).await
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
        drain_timeout_ms: 200,
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
    a_second_connection_waits_for_the_first(addr).await;
    running.stop().await;
}

/// With one connection busy, a second is closed without an answer; once
/// the first is done, a new one is served.
async fn a_second_connection_waits_for_the_first(addr: std::net::SocketAddr) {
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
    let rest = serving::closed_after_the_header_timeout(&mut slow, started).await;
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    running.stop().await;
}

/// On a keep-alive connection, the header read timeout counts again from
/// each answer: a client that then sends nothing, or part of its next
/// head, is closed a timeout after the answer, not before.
#[tokio::test]
async fn the_next_head_on_a_kept_connection_has_the_header_timeout() {
    kept_connection_header_timeout().await;
}

async fn kept_connection_header_timeout() {
    let (_server, running, addr) = start(ServerConfig {
        header_read_timeout_ms: 300,
        ..config()
    })
    .await;
    for partial in [&b""[..], b"GET / HTTP/1.1\r\nho"] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut answered = Instant::now();
        for round in 0..3 {
            if round > 0 {
                // Within the timeout between requests: kept.
                sleep(Duration::from_millis(150)).await;
            }
            stream
                .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut answer = [0u8; 512];
            let mut read = 0;
            while !answer[..read].ends_with(b"hi") {
                let n = stream.read(&mut answer[read..]).await.unwrap();
                assert!(n > 0, "closed before its answer");
                read += n;
            }
            answered = Instant::now();
        }
        stream.write_all(partial).await.unwrap();
        let started = answered;
        let rest = serving::closed_after_the_header_timeout(&mut stream, started).await;
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    }
    running.stop().await;
}

/// A head sent a byte at a time, each well within the timeout of the one
/// before, is closed a timeout after the head began, not a timeout after
/// its last byte: bytes do not buy time.
#[tokio::test]
async fn a_head_trickled_byte_by_byte_gets_no_more_time() {
    let (_server, running, addr) = start(ServerConfig {
        header_read_timeout_ms: 300,
        ..config()
    })
    .await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    // Thirty bytes 100 ms apart: three seconds, ten timeouts.
    let trickle = tokio::spawn(async move {
        for byte in b"GET / HTTP/1.1\r\nx-slow: aaaaaaaaaaaaa".iter() {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            sleep(Duration::from_millis(100)).await;
        }
    });
    // Closed while bytes still came.
    let rest = serving::closed_between(
        &mut reader,
        started,
        Duration::from_millis(250)..Duration::from_millis(1500),
    )
    .await;
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    trickle.abort();
    running.stop().await;
}

/// A handler slower than the header read timeout, a streamed answer that
/// pauses longer, and a client reading a long answer slowly are not taken
/// for a client late with its next head.
#[tokio::test]
async fn slow_answers_and_slow_readers_are_not_cut_by_the_header_timeout() {
    let (_server, running, addr) = start(ServerConfig {
        header_read_timeout_ms: 200,
        ..config()
    })
    .await;
    assert!(fetch(addr, "/slow").await.unwrap().ends_with("slow done"));
    let paused = fetch(addr, "/paused").await.unwrap();
    assert!(
        paused.contains("first,") && paused.contains("second"),
        "{paused}"
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 64 * 1024];
    let n = stream.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // The server's writes wait on this reader for several timeouts.
    sleep(Duration::from_millis(700)).await;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    let body_from = first[..n]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head in the first read")
        + 4;
    assert_eq!(n - body_from + rest.len(), BIG, "the whole answer");
    running.stop().await;
}

/// On a kept connection, a handler slower than the header read timeout
/// (the timer of the head before it runs out meanwhile) is answered, the
/// next request too, and the connection then idle is closed a timeout
/// after the last answer: not at once, not never.
#[tokio::test]
async fn after_a_slow_answer_the_next_head_has_its_whole_timeout() {
    let (_server, running, addr) = start(ServerConfig {
        header_read_timeout_ms: 200,
        ..config()
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut answered = Instant::now();
    for (path, ends) in [("/slow", "slow done"), ("/", "hi"), ("/slow", "slow done")] {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 512];
        while !answer.ends_with(ends.as_bytes()) {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the answer to {path}");
            answer.extend_from_slice(&chunk[..n]);
        }
        answered = Instant::now();
    }
    let rest = serving::closed_between(
        &mut stream,
        answered,
        Duration::from_millis(150)..Duration::from_secs(3),
    )
    .await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    running.stop().await;
}

/// A keep-alive client that asks for a large answer and stops reading is
/// closed a write timeout after the server's writes stopped going
/// through, and its connection slot serves the next client: without the
/// timeout it held the only slot for ever.
#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
    stalled_reader_write_timeout().await;
}

async fn stalled_reader_write_timeout() {
    let (_server, running, addr) = start(ServerConfig {
        write_timeout_ms: 300,
        max_connections: 1,
        ..config()
    })
    .await;
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    // The server's writes cannot wait before the request is sent.
    let started = Instant::now();
    stalled
        .write_all(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 64 * 1024];
    let n = stalled.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // The next client waits for the only slot: given once the stalled one
    // is closed.
    let next = tokio::time::timeout(Duration::from_secs(5), fetch(addr, "/"))
        .await
        .expect("the slot freed")
        .unwrap();
    assert!(next.ends_with("hi"), "{next}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // What the stalled client can still read ends before the answer does.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest))
        .await
        .expect("closed");
    assert!(n + rest.len() < BIG, "the whole answer was written");
    running.stop().await;
}

/// A client that reads a large answer slowly but steadily, each pause
/// shorter than the write timeout, gets all of it: the timeout counts from
/// the last write that went through, not over the whole answer. With the
/// timeout off (0), a reader that stalls far longer also gets all of it.
#[tokio::test]
async fn a_slow_but_steady_reader_gets_the_whole_answer() {
    for (write_timeout_ms, pause) in [(1_000, 100), (0, 1_500)] {
        let (_server, running, addr) = start(ServerConfig {
            write_timeout_ms,
            ..config()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::with_capacity(BIG + 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut paused = false;
        let mut since_pause = 0;
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
            since_pause += n;
            // A pause after each megabyte; the long one once.
            if since_pause >= 1 << 20 && (write_timeout_ms > 0 || !paused) {
                sleep(Duration::from_millis(pause)).await;
                since_pause = 0;
                paused = true;
            }
        }
        let body_from = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head")
            + 4;
        assert_eq!(answer.len() - body_from, BIG, "timeout {write_timeout_ms}");
        running.stop().await;
    }
}

/// Answers written with vectored writes (the default) or copied into one
/// buffer are the same: a small one, and a large one that is more than the
/// buffer holds, each whole, two pipelined on one connection.
#[tokio::test]
async fn both_write_modes_send_whole_answers() {
    for vectored in [false, true] {
        let (_server, running, addr) = start(ServerConfig {
            http1_vectored_writes: vectored,
            ..config()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET /big HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.unwrap();
        let text = String::from_utf8_lossy(&all[..all.len().min(512)]);
        let second = all
            .windows(8)
            .position(|w| w == b"HTTP/1.1")
            .and_then(|first| {
                all[first + 8..]
                    .windows(8)
                    .position(|w| w == b"HTTP/1.1")
                    .map(|at| first + 8 + at)
            })
            .unwrap_or_else(|| panic!("two answers ({vectored}): {text}"));
        assert!(all[..second].ends_with(b"\r\n\r\nhi"), "{text}");
        let body_from = all[second..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap()
            + second
            + 4;
        assert_eq!(all.len() - body_from, BIG, "vectored: {vectored}");
        assert!(all[body_from..].iter().all(|&b| b == b'x'));
        running.stop().await;
    }
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
    serving::closed_after_the_header_timeout(&mut silent, started).await;
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

/// One request over HTTP/2 with prior knowledge (h2c) on its own
/// connection: the status and body, or the error.
async fn fetch_h2(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String), String> {
    fetch_h2_with(addr, path, &[]).await
}

async fn fetch_h2_with(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, String)],
) -> Result<(u16, String), String> {
    use http_body_util::BodyExt;
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut request = http::Request::get(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let (_server, running, addr) = start(config()).await;
    assert_eq!(fetch_h2(addr, "/").await.unwrap(), (200, "hi".to_owned()));
    assert!(fetch(addr, "/").await.unwrap().starts_with("HTTP/1.1 200"));
    running.stop().await;
}

/// `http1` and `http2` mean what they say: a connection in a protocol
/// that is off is closed, the other is served.
#[tokio::test]
async fn protocol_switches_are_obeyed() {
    let (_server, running, addr) = start(ServerConfig {
        http2: false,
        ..config()
    })
    .await;
    assert!(fetch_h2(addr, "/").await.is_err(), "HTTP/2 is off");
    assert!(fetch(addr, "/").await.unwrap().starts_with("HTTP/1.1 200"));
    running.stop().await;

    let (_server, running, addr) = start(ServerConfig {
        http1: false,
        ..config()
    })
    .await;
    assert_eq!(
        fetch(addr, "/").await.unwrap_or_default(),
        "",
        "HTTP/1 is off"
    );
    assert_eq!(fetch_h2(addr, "/").await.unwrap(), (200, "hi".to_owned()));
    running.stop().await;

    use garde::Validate;
    let neither = ServerConfig {
        http1: false,
        http2: false,
        ..config()
    };
    assert!(neither.validate().is_err(), "nothing would be served");
}

/// A client that starts the HTTP/2 preface and stalls is closed after the
/// header read timeout (before, no timer ran until the preface was whole).
#[tokio::test]
async fn a_stalled_http2_preface_is_closed_after_the_header_timeout() {
    let (_server, running, addr) = start(ServerConfig {
        header_read_timeout_ms: 300,
        ..config()
    })
    .await;
    for partial in [&b"P"[..], b"PRI * HTTP/2.0\r\n"] {
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled.write_all(partial).await.unwrap();
        let started = Instant::now();
        serving::closed_after_the_header_timeout(&mut stalled, started).await;
    }
    assert_eq!(fetch_h2(addr, "/").await.unwrap().0, 200);
    running.stop().await;
}

/// `max_header_bytes` caps HTTP/2 header lists too.
#[tokio::test]
async fn http2_headers_are_capped_by_max_header_bytes() {
    let (_server, running, addr) = start(ServerConfig {
        max_header_bytes: 16 * 1024,
        ..config()
    })
    .await;
    let big = "x".repeat(32 * 1024);
    let refused = fetch_h2_with(addr, "/", &[("x-big", big)]).await;
    assert!(
        refused.as_ref().map_or(true, |(status, _)| *status == 431),
        "{refused:?}"
    );
    let small = fetch_h2_with(addr, "/", &[("x-small", "y".repeat(1024))]).await;
    assert_eq!(small.unwrap().0, 200);
    running.stop().await;
}

/// A keep-alive connection left idle is closed after the idle timeout.
#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    idle_connection_timeout().await;
}

async fn idle_connection_timeout() {
    let (_server, running, addr) = start(ServerConfig {
        idle_timeout_ms: 300,
        ..config()
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    serving::closed_after_the_header_timeout(&mut stream, started).await;
    running.stop().await;
}

/// Connections from one address are capped; others are not affected.
#[tokio::test]
async fn connections_per_client_address_are_capped() {
    let (_server, running, addr) = start(ServerConfig {
        max_connections_per_ip: 1,
        ..config()
    })
    .await;
    a_second_connection_waits_for_the_first(addr).await;
    running.stop().await;
}

/// Stopping begins with the pre-stop delay: new connections are still
/// accepted and served (HTTP/1 answers say `connection: close`), then the
/// port closes.
#[tokio::test]
async fn the_pre_stop_delay_keeps_serving_before_the_port_closes() {
    let (server, running, addr) = start(ServerConfig {
        pre_stop_delay_ms: 400,
        ..config()
    })
    .await;
    let stopping = tokio::spawn(running.stop());
    sleep(Duration::from_millis(100)).await;
    let during = fetch(addr, "/").await.unwrap();
    assert!(during.starts_with("HTTP/1.1 200"), "{during}");
    assert!(
        during.to_ascii_lowercase().contains("connection: close"),
        "{during}"
    );
    sleep(Duration::from_millis(500)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "closed after the delay"
    );
    assert!(stopping.await.unwrap().is_clean());
    assert_eq!(server.last_drain().unwrap().cut, 0);
}

/// The server's stop timeout follows its drain: with a system whose stop
/// timeout per component is shorter than the drain, a request in flight
/// still finishes and the drain is reported (the server was aborted midway
/// before, and `last_drain` stayed empty).
#[tokio::test]
async fn the_stop_timeout_follows_the_drain_deadline() {
    let server = Arc::new(HttpServer::new(
        "http",
        ServerConfig {
            drain_timeout_ms: 2_000,
            ..config()
        },
        router(),
    ));
    let running = System::builder()
        .stop_timeout(Duration::from_millis(100))
        .component_shared(server.clone(), Default::default())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = running.addr("http", "http").unwrap();
    let slow = tokio::spawn(fetch(addr, "/slow"));
    sleep(Duration::from_millis(50)).await;
    assert!(running.stop().await.is_clean());
    assert!(slow.await.unwrap().unwrap().ends_with("slow done"));
    let drain = server.last_drain().expect("the drain ran to its end");
    assert_eq!((drain.open_at_stop, drain.cut), (1, 0));
}

/// An HTTP/2 connection with no stream open is closed (GOAWAY) after the
/// idle timeout; HTTP/2 has no timer of its own for that.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    use http_body_util::BodyExt;
    let (_server, running, addr) = start(ServerConfig {
        idle_timeout_ms: 300,
        ..config()
    })
    .await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let request = http::Request::get(format!("http://{addr}/"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the server closed the idle connection")
        .unwrap()
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    running.stop().await;
}

/// An HTTP/2 client that vanished (it opened the connection and answers
/// nothing, not even the server's pings) is closed once a ping goes
/// unanswered, even with no idle timeout; with pings off it is kept.
#[tokio::test]
async fn an_http2_client_that_stops_answering_pings_is_closed() {
    for pings in [true, false] {
        let (_server, running, addr) = start(ServerConfig {
            idle_timeout_ms: 0,
            http2_keep_alive_interval_ms: if pings { 200 } else { 0 },
            http2_keep_alive_timeout_ms: 200,
            drain_timeout_ms: 300,
            ..config()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // The preface and an empty SETTINGS frame; then silence (no
        // SETTINGS ack, no PING ack), while reading what the server sends.
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        let started = Instant::now();
        let mut seen = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_millis(1500), stream.read_to_end(&mut seen)).await;
        if pings {
            closed.expect("closed after an unanswered ping").ok();
            let waited = started.elapsed();
            assert!(waited >= Duration::from_millis(350), "{waited:?}");
            // Frames: type byte at offset 3 of each 9-byte header; a PING (6)
            // was sent before the close.
            let mut at = 0;
            let mut types = Vec::new();
            while at + 9 <= seen.len() {
                let length = (usize::from(seen[at]) << 16)
                    | (usize::from(seen[at + 1]) << 8)
                    | usize::from(seen[at + 2]);
                types.push(seen[at + 3]);
                at += 9 + length;
            }
            assert!(types.contains(&6), "no PING among frames {types:?}");
        } else {
            assert!(closed.is_err(), "kept open without pings: {seen:?}");
        }
        running.stop().await;
    }
}

/// Every new setting at its lowest and highest valid value still serves
/// both protocols (and passes validation).
#[tokio::test]
async fn settings_at_their_bounds_serve() {
    use garde::Validate;
    let low = ServerConfig {
        write_timeout_ms: 0,
        idle_timeout_ms: 0,
        max_connections_per_ip: 0,
        http2_max_concurrent_streams: 1,
        http2_stream_window_bytes: 65_535,
        http2_connection_window_bytes: 65_535,
        http2_max_frame_bytes: 16_384,
        http2_keep_alive_interval_ms: 0,
        http2_keep_alive_timeout_ms: 1,
        pre_stop_delay_ms: 0,
        ..config()
    };
    let high = ServerConfig {
        write_timeout_ms: 3_600_000,
        idle_timeout_ms: 3_600_000,
        max_connections_per_ip: 1_000_000,
        http2_max_concurrent_streams: 10_000,
        http2_stream_window_bytes: 2_147_483_647,
        http2_connection_window_bytes: 2_147_483_647,
        http2_max_frame_bytes: 16_777_215,
        http2_keep_alive_interval_ms: 3_600_000,
        http2_keep_alive_timeout_ms: 600_000,
        max_header_bytes: 16_777_216,
        ..config()
    };
    for config in [low, high] {
        config.validate().unwrap();
        let (_server, running, addr) = start(config).await;
        assert_eq!(fetch_h2(addr, "/").await.unwrap(), (200, "hi".to_owned()));
        assert!(fetch(addr, "/").await.unwrap().starts_with("HTTP/1.1 200"));
        running.stop().await;
    }
}

/// The header read, write and idle timeouts hold on a multi-thread runtime
/// too (timers fired from another thread, connections polled on either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_hold_on_a_multi_thread_runtime() {
    kept_connection_header_timeout().await;
    stalled_reader_write_timeout().await;
    idle_connection_timeout().await;
}
