//! Just enough HTTP/1.1 client: keep-alive connections through hyper, and
//! raw requests over a socket for input hyper would refuse to send.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) latency: Duration,
}

impl Reply {
    /// Whether the body is an RFC 9457 problem with the fields every error
    /// of the service has.
    pub(crate) fn is_problem(&self) -> bool {
        let content_type = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if content_type != Some("application/problem+json") {
            return false;
        }
        serde_json::from_slice::<serde_json::Value>(&self.body).is_ok_and(|p| {
            p["status"] == self.status && p["title"].is_string() && p["request_id"].is_string()
        })
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection could not be opened (refused).
    Connect(#[expect(dead_code, reason = "shown through Debug in reports")] std::io::Error),
    /// The connection was closed before the request was sent.
    NotSent,
    /// The connection closed or was reset before a whole response.
    Closed(#[expect(dead_code, reason = "shown through Debug in reports")] String),
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl Conn {
    /// Opens a connection to `addr`.
    pub(crate) async fn open(addr: SocketAddr) -> Result<Self, Failure> {
        let stream = TcpStream::connect(addr).await.map_err(Failure::Connect)?;
        Self::handshake(stream, addr).await
    }

    /// Opens a connection to `addr` from the local address `from` (any
    /// 127.0.0.0/8 address on loopback), so the service sees another client.
    pub(crate) async fn open_from(from: IpAddr, addr: SocketAddr) -> Result<Self, Failure> {
        let socket = TcpSocket::new_v4().map_err(Failure::Connect)?;
        socket
            .bind(SocketAddr::new(from, 0))
            .map_err(Failure::Connect)?;
        let stream = socket.connect(addr).await.map_err(Failure::Connect)?;
        Self::handshake(stream, addr).await
    }

    async fn handshake(stream: TcpStream, addr: SocketAddr) -> Result<Self, Failure> {
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::Closed(e.to_string()))?;
        tokio::spawn(connection);
        Ok(Self { sender, addr })
    }

    /// Whether the server closed it.
    pub(crate) fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one request and reads the whole response.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, Failure> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, self.addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body.into()))
            .expect("a valid request");
        let started = Instant::now();
        self.sender.ready().await.map_err(|_| Failure::NotSent)?;
        let response = self.sender.send_request(request).await.map_err(|e| {
            if e.is_canceled() {
                Failure::NotSent
            } else {
                Failure::Closed(e.to_string())
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| Failure::Closed(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            latency: started.elapsed(),
        })
    }

    /// `GET path`.
    pub(crate) async fn get(&mut self, path: &str) -> Result<Reply, Failure> {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// `POST /v1/items` of an item named `name`, quantity 1.
    pub(crate) async fn post_item(&mut self, name: &str) -> Result<Reply, Failure> {
        let body = serde_json::json!({"name": name, "quantity": 1}).to_string();
        self.send(
            Method::POST,
            "/v1/items",
            &[("content-type", "application/json")],
            Bytes::from(body),
        )
        .await
    }
}

/// What a raw exchange ended with.
#[derive(Debug)]
pub(crate) enum Raw {
    /// A status line was read (and the connection then closed or went idle).
    Status {
        status: u16,
        head: String,
        after: Duration,
    },
    /// The server closed the connection without answering.
    Closed { after: Duration },
    /// Nothing happened within the wait.
    Silent,
}

/// Writes `parts` (with `pause` between them) and reads what comes back
/// until the server closes or `wait` passes.
pub(crate) async fn raw(addr: SocketAddr, parts: &[&[u8]], pause: Duration, wait: Duration) -> Raw {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return Raw::Closed {
            after: started.elapsed(),
        };
    };
    let deadline = started + wait;
    let mut received = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    for (i, part) in parts.iter().enumerate() {
        if i > 0 && !pause.is_zero() {
            // The limit holds while writing too: a server that never gives
            // up on a slow client must not hold the run for every part.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return if received.is_empty() {
                    Raw::Silent
                } else {
                    finish(received, started)
                };
            }
            // Keep reading while pausing: the server may answer or close.
            match tokio::time::timeout(pause.min(left), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return finish(received, started),
                Ok(Ok(n)) => {
                    received.extend_from_slice(&buf[..n]);
                    return read_rest(stream, received, buf, started, deadline).await;
                }
                Err(_) => {}
            }
        }
        if stream.write_all(part).await.is_err() {
            // Closed by the server while we were still writing.
            return read_rest(stream, received, buf, started, deadline).await;
        }
    }
    read_rest(stream, received, buf, started, deadline).await
}

async fn read_rest(
    mut stream: TcpStream,
    mut received: Vec<u8>,
    mut buf: Vec<u8>,
    started: Instant,
    deadline: Instant,
) -> Raw {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return if received.is_empty() {
                Raw::Silent
            } else {
                finish(received, started)
            };
        }
        match tokio::time::timeout(deadline - now, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return finish(received, started),
            Ok(Ok(n)) => {
                received.extend_from_slice(&buf[..n]);
                // One whole response is enough.
                if let Some(Raw::Status { .. }) = complete(&received, started) {
                    return finish(received, started);
                }
            }
            Err(_) => {
                return if received.is_empty() {
                    Raw::Silent
                } else {
                    finish(received, started)
                };
            }
        }
    }
}

/// The response in `received` if its head and `content-length` body are all there.
fn complete(received: &[u8], started: Instant) -> Option<Raw> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
        })
        .unwrap_or(0);
    let body = &received[end + 4..];
    (body.len() >= length).then(|| status_of(&head, started))
}

fn status_of(head: &str, started: Instant) -> Raw {
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Raw::Status {
        status,
        head: head.to_owned(),
        after: started.elapsed(),
    }
}

fn finish(received: Vec<u8>, started: Instant) -> Raw {
    if received.is_empty() {
        return Raw::Closed {
            after: started.elapsed(),
        };
    }
    let end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(received.len());
    status_of(&String::from_utf8_lossy(&received[..end]), started)
}
