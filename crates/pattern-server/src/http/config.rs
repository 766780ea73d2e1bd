//! Server settings, validated when loaded.

use std::net::SocketAddr;
use std::time::Duration;

use garde::Validate;
use serde::{Deserialize, Serialize};

/// What to do with a connection beyond `max_connections`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OnLimit {
    /// Leave it in the listen backlog until a connection ends.
    #[default]
    Wait,
    /// Accept and close it at once.
    Refuse,
}

/// HTTP server settings (serde, garde-validated; durations in milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct ServerConfig {
    /// Where to listen (port 0: any free port).
    #[garde(skip)]
    pub addr: SocketAddr,
    /// Serve HTTP/1.1.
    #[garde(skip)]
    pub http1: bool,
    /// Serve HTTP/2 (prior knowledge, h2c).
    #[garde(skip)]
    pub http2: bool,
    /// Keep HTTP/1.1 connections alive between requests.
    #[garde(skip)]
    pub keep_alive: bool,
    /// Close a connection whose request headers take longer (against
    /// slowloris).
    #[garde(range(min = 1, max = 600_000))]
    pub header_read_timeout_ms: u64,
    /// The largest request head accepted, in bytes (hyper's minimum
    /// buffer is 8 KiB).
    #[garde(range(min = 8192, max = 16_777_216))]
    pub max_header_bytes: usize,
    /// Connections served at once.
    #[garde(range(min = 1, max = 1_000_000))]
    pub max_connections: usize,
    /// What happens beyond `max_connections`.
    #[garde(skip)]
    pub on_limit: OnLimit,
    /// How long requests in flight may take to finish once stopping.
    #[garde(range(min = 1, max = 3_600_000))]
    pub drain_deadline_ms: u64,
    /// Once stopping, how long connections go on reading before idle
    /// keep-alive connections are closed: a request a client sent just
    /// before the stop, not read yet, is then served rather than cut with
    /// its connection (about a network round trip).
    #[garde(range(max = 60_000))]
    pub drain_linger_ms: u64,
}

impl Default for ServerConfig {
    /// 127.0.0.1:8080, HTTP/1.1 and HTTP/2, keep-alive, 10 s header read
    /// timeout, 64 KiB heads, 10 000 connections (waiting beyond), 30 s
    /// drain after a 50 ms linger.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http1: true,
            http2: true,
            keep_alive: true,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            on_limit: OnLimit::Wait,
            drain_deadline_ms: 30_000,
            drain_linger_ms: 50,
        }
    }
}

impl ServerConfig {
    /// The header read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// The drain deadline.
    pub fn drain_deadline(&self) -> Duration {
        Duration::from_millis(self.drain_deadline_ms)
    }

    /// The linger before idle connections close when stopping.
    pub fn drain_linger(&self) -> Duration {
        Duration::from_millis(self.drain_linger_ms)
    }
}
