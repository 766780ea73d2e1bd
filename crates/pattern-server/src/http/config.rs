//! Server settings, validated when loaded.

use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// Serve HTTP/1.1 (a connection that opens as HTTP/1 is closed when
    /// off).
    #[garde(custom(some_protocol(&self.http2)))]
    pub http1: bool,
    /// Serve HTTP/2 with prior knowledge, h2c (a connection that opens with
    /// the HTTP/2 preface is closed when off).
    #[garde(skip)]
    pub http2: bool,
    /// Keep HTTP/1.1 connections alive between requests.
    #[garde(skip)]
    pub keep_alive: bool,
    /// HTTP/1: write an answer's head and body as they are, with one
    /// vectored write (`writev`; the default), rather than copied into one
    /// buffer and written with `write`. Copying is cheaper for an API's
    /// small answers (about 5 % less CPU per request over loopback), but
    /// each body chunk is copied whole, however large, and the connection
    /// keeps the buffer's size until it closes: turn this off only where
    /// every answer is small.
    #[garde(skip)]
    pub http1_vectored_writes: bool,
    /// Close a connection whose request headers take longer (against
    /// slowloris); also the time a new connection has to show its protocol
    /// (its first bytes, the whole HTTP/2 preface).
    #[garde(range(min = 1, max = 600_000))]
    pub header_read_timeout_ms: u64,
    /// Close a connection whose writes could not go on for this long: its
    /// client stopped reading the answer (or reads it far too slowly), and
    /// would otherwise hold the connection for ever. Counted from the last
    /// write that went through, not over the whole answer; 0: never.
    ///
    /// The kernel takes more of an answer only once a good part of its
    /// send buffer is free again (a third or more), so a client reading
    /// very slowly, a few tens of kilobytes a second, can see no write go
    /// through for a while: keep this well above that (the default, 60 s,
    /// is nginx's `send_timeout`). A client that reads the answer only
    /// after sending its whole request counts as not reading meanwhile,
    /// should a handler answer before it has read the request's body.
    /// Not applied to upgraded connections, whose handlers own the socket.
    /// Over HTTP/2 a client that reads nothing at all is also found by the
    /// pings; one that reads but holds back its flow-control window stalls
    /// its stream, not the socket, and is not closed by this.
    #[garde(range(max = 3_600_000))]
    pub write_timeout_ms: u64,
    /// Close a connection with no request in flight for this long (HTTP/1
    /// keep-alive and HTTP/2 alike; 0: never).
    #[garde(range(max = 3_600_000))]
    pub idle_timeout_ms: u64,
    /// The largest request head accepted, in bytes (hyper's minimum
    /// buffer is 8 KiB); for HTTP/2, the largest header list.
    #[garde(range(min = 8192, max = 16_777_216))]
    pub max_header_bytes: usize,
    /// Connections served at once.
    #[garde(range(min = 1, max = 1_000_000))]
    pub max_connections: usize,
    /// Connections from one client address at once (0: no cap; IPv6
    /// addresses count by their /64). Behind a proxy or load balancer
    /// every connection comes from it: leave this off there.
    #[garde(range(max = 1_000_000))]
    pub max_connections_per_ip: usize,
    /// HTTP/2: streams (requests) a client may open at once on one
    /// connection.
    #[garde(range(min = 1, max = 10_000))]
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: the flow-control window of each stream, in bytes.
    #[garde(range(min = 65_535, max = 2_147_483_647))]
    pub http2_stream_window_bytes: u32,
    /// HTTP/2: the flow-control window of a whole connection, in bytes.
    #[garde(range(min = 65_535, max = 2_147_483_647))]
    pub http2_connection_window_bytes: u32,
    /// HTTP/2: the largest frame payload accepted, in bytes.
    #[garde(range(min = 16_384, max = 16_777_215))]
    pub http2_max_frame_bytes: u32,
    /// HTTP/2: how often to ping a connection to check the client is
    /// still there (0: never).
    #[garde(range(max = 3_600_000))]
    pub http2_keep_alive_interval_ms: u64,
    /// HTTP/2: how long a ping may go unanswered before the connection is
    /// closed.
    #[garde(range(min = 1, max = 600_000))]
    pub http2_keep_alive_timeout_ms: u64,
    /// What happens beyond `max_connections`.
    #[garde(skip)]
    pub on_limit: OnLimit,
    /// Once stopping, how long the server goes on accepting and serving as
    /// before (readiness is already false), so that load balancers take it
    /// out of rotation before connections are refused (Kubernetes'
    /// pre-stop). HTTP/1 answers say `connection: close` meanwhile.
    #[garde(range(max = 300_000))]
    pub pre_stop_delay_ms: u64,
    /// How long requests in flight may take to finish once stopping.
    #[garde(range(min = 1, max = 3_600_000))]
    pub drain_timeout_ms: u64,
    /// Once stopping, how long connections go on reading before idle
    /// keep-alive connections are closed: a request a client sent just
    /// before the stop, not read yet, is then served rather than cut with
    /// its connection (about a network round trip).
    #[garde(range(max = 60_000))]
    pub drain_linger_ms: u64,
    /// Serve HTTPS (feature `tls`): none, plain HTTP.
    #[garde(dive)]
    pub tls: Option<TlsConfig>,
}

/// HTTPS with rustls: the certificate and key come from PEM files, read at
/// start and again whenever they change (a renewed certificate is served
/// without a restart; a broken one is logged and the last good one kept).
/// ALPN offers `h2` and `http/1.1` as the protocol switches allow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, the server's own certificate first.
    #[garde(skip)]
    pub cert_path: PathBuf,
    /// The private key, PEM (PKCS #8, PKCS #1 or SEC1).
    #[garde(skip)]
    pub key_path: PathBuf,
    /// How often the files are looked at for a change (0: never; reload
    /// with [`HttpServer::reload_tls`](super::HttpServer::reload_tls)).
    #[serde(default = "TlsConfig::default_reload_interval_ms")]
    #[garde(range(max = 86_400_000))]
    pub reload_interval_ms: u64,
}

impl TlsConfig {
    /// The certificate and key at these paths, looked at every 10 s.
    pub fn new(cert_path: impl Into<PathBuf>, key_path: impl Into<PathBuf>) -> Self {
        Self {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            reload_interval_ms: Self::default_reload_interval_ms(),
        }
    }

    fn default_reload_interval_ms() -> u64 {
        10_000
    }

    /// The reload interval, if any.
    pub fn reload_interval(&self) -> Option<Duration> {
        (self.reload_interval_ms > 0).then(|| Duration::from_millis(self.reload_interval_ms))
    }
}

impl Default for ServerConfig {
    /// 127.0.0.1:8080, HTTP/1.1 (vectored writes) and HTTP/2, keep-alive,
    /// 10 s header read timeout, 60 s write timeout, connections idle 60 s
    /// closed, 64 KiB heads,
    /// 10 000 connections (waiting beyond), no cap per client, HTTP/2 with 200
    /// streams, 1 MiB windows, 16 KiB frames and a ping every 20 s
    /// (answered within 20 s), no pre-stop delay, 30 s drain after a 50 ms
    /// linger, plain HTTP.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http1: true,
            http2: true,
            keep_alive: true,
            http1_vectored_writes: true,
            header_read_timeout_ms: 10_000,
            write_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            max_connections_per_ip: 0,
            http2_max_concurrent_streams: 200,
            http2_stream_window_bytes: 1024 * 1024,
            http2_connection_window_bytes: 1024 * 1024,
            http2_max_frame_bytes: 16_384,
            http2_keep_alive_interval_ms: 20_000,
            http2_keep_alive_timeout_ms: 20_000,
            on_limit: OnLimit::Wait,
            pre_stop_delay_ms: 0,
            drain_timeout_ms: 30_000,
            drain_linger_ms: 50,
            tls: None,
        }
    }
}

/// At least one protocol must be on.
fn some_protocol(http2: &bool) -> impl FnOnce(&bool, &()) -> garde::Result + '_ {
    move |http1, ()| {
        if *http1 || *http2 {
            Ok(())
        } else {
            Err(garde::Error::new(
                "http1 and http2 are both off: nothing would be served",
            ))
        }
    }
}

impl ServerConfig {
    /// The idle timeout, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_ms > 0).then(|| Duration::from_millis(self.idle_timeout_ms))
    }

    /// The write timeout, if any.
    pub fn write_timeout(&self) -> Option<Duration> {
        (self.write_timeout_ms > 0).then(|| Duration::from_millis(self.write_timeout_ms))
    }

    /// The HTTP/2 ping interval, if any.
    pub fn http2_keep_alive_interval(&self) -> Option<Duration> {
        (self.http2_keep_alive_interval_ms > 0)
            .then(|| Duration::from_millis(self.http2_keep_alive_interval_ms))
    }

    /// The header read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// The pre-stop delay.
    pub fn pre_stop_delay(&self) -> Duration {
        Duration::from_millis(self.pre_stop_delay_ms)
    }

    /// How long a stop takes at most: the pre-stop delay, the linger and
    /// the drain deadline.
    pub fn stop_timeout(&self) -> Duration {
        self.pre_stop_delay() + self.drain_linger().min(self.drain_timeout()) + self.drain_timeout()
    }

    /// How long the drain waits for requests in flight before it cuts the
    /// connections left.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    /// The linger before idle connections close when stopping.
    pub fn drain_linger(&self) -> Duration {
        Duration::from_millis(self.drain_linger_ms)
    }
}
