//! Testing approaches: a client for a router, in-process or over a real
//! socket, with assertions on status, envelope and problem fields.
//!
//! [`TestClient::new`] calls the router directly (`oneshot`, no socket);
//! [`TestClient::serve`] serves it on 127.0.0.1 on a free port and sends
//! real HTTP/1.1 requests, so the same test body can run both ways.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use axum::{Router, routing::get};
//! use pattern_api::response::Envelope;
//! use pattern_api::testing::TestClient;
//!
//! let app = Router::new().route("/answer", get(|| async { Envelope::ok(42) }));
//! for client in [TestClient::new(app.clone()), TestClient::serve(app).await] {
//!     let response = client.get("/answer").await;
//!     response.assert_status(200);
//!     assert_eq!(response.data(), 42);
//!     client.get("/nowhere").await.assert_status(404);
//! }
//! # }
//! ```

use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

/// Sends requests to a router; see the [module docs](self).
#[derive(Debug)]
pub struct TestClient {
    target: Target,
}

#[derive(Debug)]
enum Target {
    InProcess(Router),
    Socket {
        addr: SocketAddr,
        /// The server this client started, if it did.
        server: Option<tokio::task::JoinHandle<()>>,
    },
}

impl Drop for TestClient {
    fn drop(&mut self) {
        if let Target::Socket {
            server: Some(server),
            ..
        } = &self.target
        {
            server.abort();
        }
    }
}

impl TestClient {
    /// Calls `router` in process.
    pub fn new(router: Router) -> Self {
        Self {
            target: Target::InProcess(router),
        }
    }

    /// Serves `router` on 127.0.0.1 (a free port) until the client is
    /// dropped, and sends requests over TCP.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound (a broken test machine).
    pub async fn serve(router: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let server = tokio::spawn(async move {
            let app = router.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(%err, "test server stopped");
            }
        });
        Self {
            target: Target::Socket {
                addr,
                server: Some(server),
            },
        }
    }

    /// Sends requests over TCP to a server already listening at `addr`
    /// (a service started on port 0 by the test, or another process).
    pub fn connect(addr: SocketAddr) -> Self {
        Self {
            target: Target::Socket { addr, server: None },
        }
    }

    /// The server's address, when serving on a socket.
    pub fn addr(&self) -> Option<SocketAddr> {
        match &self.target {
            Target::Socket { addr, .. } => Some(*addr),
            Target::InProcess(_) => None,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, HeaderMap::new(), Bytes::new())
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> TestResponse {
        self.send(Method::DELETE, path, HeaderMap::new(), Bytes::new())
            .await
    }

    /// `POST path` with `body` as JSON.
    pub async fn post_json<T: Serialize>(&self, path: &str, body: &T) -> TestResponse {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/json".parse().expect("static header"),
        );
        let body = serde_json::to_vec(body).expect("serializable test body");
        self.send(Method::POST, path, headers, Bytes::from(body))
            .await
    }

    /// Any request.
    ///
    /// # Panics
    ///
    /// When the request cannot be built or sent (a broken test).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        self.request(builder.body(Body::from(body)).expect("valid request"))
            .await
    }

    /// A request built by the test, with any body (streamed, or one that
    /// never ends); over a socket, its body is streamed as it comes.
    ///
    /// # Panics
    ///
    /// When the request cannot be sent (a broken test).
    pub async fn request(&self, mut req: Request<Body>) -> TestResponse {
        let response = match &self.target {
            Target::InProcess(router) => router
                .clone()
                .oneshot(req)
                .await
                .expect("infallible router"),
            Target::Socket { addr, .. } => {
                if !req.headers().contains_key(header::HOST) {
                    let host = addr
                        .to_string()
                        .parse()
                        .expect("an address is a header value");
                    req.headers_mut().insert(header::HOST, host);
                }
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .expect("connect to the test server");
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .expect("HTTP/1.1 handshake");
                tokio::spawn(connection);
                sender
                    .send_request(req)
                    .await
                    .expect("response")
                    .map(Body::new)
            }
        };
        let (parts, body) = response.into_parts();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.expect("body").to_bytes(),
        }
    }
}

/// A response, fully read; see [`TestClient`].
#[derive(Clone, Debug)]
pub struct TestResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl TestResponse {
    /// Panics unless the status is `status`.
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "status {} with body {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// The body as JSON.
    ///
    /// # Panics
    ///
    /// If it is not JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not the expected JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as any JSON value; `Null` when it is not JSON.
    pub fn json_value(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The `data` of a success envelope (panics without one).
    pub fn data(&self) -> Value {
        let body: Value = self.json();
        assert!(body["meta"].is_object(), "not an envelope: {body}");
        body["data"].clone()
    }

    /// Panics unless this is a problem+json answer with `status` and
    /// `code`; returns the problem.
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        self.assert_status(status);
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some(crate::problem::CONTENT_TYPE),
            "not problem+json"
        );
        let problem: Value = self.json();
        assert_eq!(problem["status"], status, "{problem}");
        assert_eq!(problem["code"], code, "{problem}");
        problem
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
