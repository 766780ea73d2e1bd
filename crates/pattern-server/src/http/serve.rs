//! The accept loop and the drain.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use pattern_error::Error;
use pin_project_lite::pin_project;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::detect::{Protocol, Rewind, detect};
use super::gate::Gated;
use super::timer::HeadTimer;
use super::upgrade::{Draining, Tracked};
use super::{DrainReport, OnLimit, ServerConfig};

/// What makes a connection HTTPS.
#[cfg(feature = "tls")]
pub(super) type Acceptor = tokio_rustls::TlsAcceptor;

/// What makes a connection HTTPS: nothing without the `tls` feature.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
pub(super) enum Acceptor {}

/// Serves `router` on `listener` (over TLS with `tls`) until `stop` is
/// cancelled, then drains.
pub(super) async fn serve(
    listener: TcpListener,
    tls: Option<Acceptor>,
    router: Router,
    config: ServerConfig,
    stop: CancellationToken,
    report: Arc<std::sync::Mutex<Option<DrainReport>>>,
) -> Result<(), Error> {
    let server = Server::new(tls, router, config);
    server.stop_accepting_after_delay(stop);
    let _stop_accepting_on_exit = server.accepting.clone().drop_guard();
    // Connections are cut however this ends, even if the serving task is
    // aborted (a stop timeout shorter than the drain).
    let _cut_on_exit = server.cut.clone().drop_guard();
    while let Some((stream, peer, permit)) = server.accept(&listener).await {
        let Some(client) = server.per_ip.enter(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: at the limit for its address");
            continue;
        };
        server.spawn_connection(stream, peer, (permit, client));
    }
    // Stop accepting: the listener closes here.
    drop(listener);
    let summary = server.drain().await;
    tracing::info!(open = summary.open_at_stop, cut = summary.cut, took = ?summary.took, "server drained");
    *report.lock().unwrap_or_else(PoisonError::into_inner) = Some(summary);
    Ok(())
}

/// What the accept loop and the drain share.
struct Server {
    tls: Option<Acceptor>,
    router: Router,
    config: ServerConfig,
    protocols: Arc<Protocols>,
    /// One permit per connection ([`ServerConfig::max_connections`]).
    slots: Arc<Semaphore>,
    per_ip: PerIp,
    /// Every connection, until its socket is dropped.
    connections: TaskTracker,
    /// Cancelled after the drain's linger: connections finish what they
    /// are serving and close.
    drain: CancellationToken,
    /// Cancelled at the drain deadline: connections end at once.
    cut: CancellationToken,
    /// Cancelled when the server stops accepting, after the pre-stop delay
    /// (meanwhile it accepts, and HTTP/1 answers say `connection: close`).
    accepting: CancellationToken,
    /// Set once stopping: read by every HTTP/1 answer (an atomic load, not
    /// a token's lock).
    stopping: Arc<AtomicBool>,
}

impl Server {
    fn new(tls: Option<Acceptor>, router: Router, config: ServerConfig) -> Self {
        Self {
            tls,
            router,
            protocols: Arc::new(Protocols::new(&config)),
            slots: Arc::new(Semaphore::new(config.max_connections)),
            per_ip: PerIp::new(config.max_connections_per_ip),
            config,
            connections: TaskTracker::new(),
            drain: CancellationToken::new(),
            cut: CancellationToken::new(),
            accepting: CancellationToken::new(),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// When `stop` is cancelled: every answer from then on says it is
    /// stopping, and after the pre-stop delay the server stops accepting.
    fn stop_accepting_after_delay(&self, stop: CancellationToken) {
        let (accepting, stopping) = (self.accepting.clone(), self.stopping.clone());
        let delay = self.config.pre_stop_delay();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {
                    stopping.store(true, Ordering::Release);
                    tokio::time::sleep(delay).await;
                    accepting.cancel();
                }
                () = accepting.cancelled() => {}
            }
        });
    }

    /// The next connection with its slot: waiting for a free slot first,
    /// or refusing a connection over the limit, as
    /// [`ServerConfig::on_limit`] says. `None` once the server stops
    /// accepting.
    async fn accept(
        &self,
        listener: &TcpListener,
    ) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
        loop {
            let waited = match self.config.on_limit {
                OnLimit::Wait => tokio::select! {
                    permit = self.slots.clone().acquire_owned() => permit.ok(),
                    () = self.accepting.cancelled() => return None,
                },
                _ => None,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: log, pause
                        // (not a hot loop), go on.
                        tracing::warn!(%err, "accept failed");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                            () = self.accepting.cancelled() => return None,
                        }
                    }
                },
                () = self.accepting.cancelled() => return None,
            };
            match waited.map_or_else(|| self.slots.clone().try_acquire_owned().ok(), Some) {
                Some(permit) => return Some((stream, peer, permit)),
                None => tracing::debug!(%peer, "connection refused: at the connection limit"),
            }
        }
    }

    /// Serves one connection on a task of its own. The socket holds its
    /// slot, its address's place and its place in the drain (the tracker
    /// counts it until the socket is dropped: at the connection's end, or
    /// when an upgraded socket's handler is done with it).
    fn spawn_connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        (permit, client): (OwnedSemaphorePermit, ClientSeat),
    ) {
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new(self.stopping.clone()));
        let draining = Draining(self.drain.clone());
        let service = TowerToHyperService::new(CloseWhenStopping {
            inner: self.router.clone().map_request(
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    if asks_to_upgrade(&req) {
                        req.extensions_mut().insert(draining.clone());
                    }
                    req
                },
            ),
            activity: activity.clone(),
        });
        let connection = Connection {
            peer,
            tls: self.tls.clone(),
            protocols: self.protocols.clone(),
            stopping: self.accepting.clone(),
            drain: self.drain.clone(),
            cut: self.cut.clone(),
            activity,
            detect_within: self.config.header_read_timeout(),
            idle_timeout: self.config.idle_timeout(),
            write_timeout: self.config.write_timeout(),
        };
        let holds = (permit, client, self.connections.token());
        tokio::spawn(connection.serve(stream, service, holds));
    }

    /// Lets connections read for a moment (a request sent just before the
    /// stop on an idle keep-alive connection is taken in: closing an idle
    /// connection drops what it has not read), lets requests in flight
    /// finish, closes idle keep-alive connections, then cuts the rest.
    async fn drain(&self) -> DrainReport {
        let open = self.connections.len();
        self.connections.close();
        let started = tokio::time::Instant::now();
        let linger = self.config.drain_linger().min(self.config.drain_timeout());
        tokio::time::sleep(linger).await;
        self.drain.cancel();
        let left_for_drain = self.config.drain_timeout().saturating_sub(linger);
        let drained = tokio::time::timeout(left_for_drain, self.connections.wait())
            .await
            .is_ok();
        let left = if drained { 0 } else { self.connections.len() };
        self.cut.cancel();
        // Connections end at once when cut; an upgraded socket fails its
        // next read or write, and a handler that ignores that is not waited
        // for.
        if tokio::time::timeout(UPGRADED_GRACE, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                held = self.connections.len(),
                "upgraded connections still held by their handlers after the cut"
            );
        }
        DrainReport {
            open_at_stop: open,
            cut: left,
            took: started.elapsed(),
        }
    }
}

/// How long the drain waits, after the cut, for upgrade handlers to drop
/// their failed sockets.
const UPGRADED_GRACE: Duration = Duration::from_secs(1);

/// The protocols served, each with its settings.
struct Protocols {
    http1: Option<hyper::server::conn::http1::Builder>,
    http2: Option<hyper::server::conn::http2::Builder<TokioExecutor>>,
}

impl Protocols {
    fn new(config: &ServerConfig) -> Self {
        let http1 = config.http1.then(|| {
            // Each connection gets its own header read timer (`HeadTimer`).
            let mut http1 = hyper::server::conn::http1::Builder::new();
            http1
                .header_read_timeout(config.header_read_timeout())
                .keep_alive(config.keep_alive)
                .max_buf_size(config.max_header_bytes)
                .writev(config.http1_vectored_writes);
            http1
        });
        let http2 = config.http2.then(|| {
            let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            http2
                .timer(TokioTimer::new())
                .max_concurrent_streams(config.http2_max_concurrent_streams)
                .initial_stream_window_size(config.http2_stream_window_bytes)
                .initial_connection_window_size(config.http2_connection_window_bytes)
                .max_frame_size(config.http2_max_frame_bytes)
                .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
                .keep_alive_interval(config.http2_keep_alive_interval())
                .keep_alive_timeout(Duration::from_millis(config.http2_keep_alive_timeout_ms));
            http2
        });
        Self { http1, http2 }
    }
}

/// What serves a connection's requests (the router, wrapped).
trait HttpService:
    hyper::service::Service<
        axum::http::Request<hyper::body::Incoming>,
        Response = axum::response::Response,
        Future: Send + 'static,
        Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    > + Clone
    + Send
    + 'static
{
}

impl<S> HttpService for S where
    S: hyper::service::Service<
            axum::http::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Future: Send + 'static,
            Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        > + Clone
        + Send
        + 'static
{
}

/// One accepted connection, until it ends.
struct Connection {
    peer: SocketAddr,
    tls: Option<Acceptor>,
    protocols: Arc<Protocols>,
    stopping: CancellationToken,
    drain: CancellationToken,
    cut: CancellationToken,
    activity: Arc<Activity>,
    detect_within: Duration,
    idle_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl Connection {
    async fn serve<S, H>(self, stream: TcpStream, service: S, holds: H)
    where
        H: Send + Unpin + 'static,
        S: HttpService,
    {
        // The TLS handshake and the protocol's first bytes share one
        // deadline: no protocol timer runs before them.
        let deadline = tokio::time::Instant::now() + self.detect_within;
        match self.tls.clone() {
            None => self.serve_io(stream, deadline, service, holds).await,
            #[cfg(feature = "tls")]
            Some(acceptor) => {
                let peer = self.peer;
                let handshake = tokio::select! {
                    handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => handshake,
                    () = self.stopping.cancelled() => return,
                };
                match handshake {
                    Ok(Ok(tls)) => self.serve_io(tls, deadline, service, holds).await,
                    Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake not done within the header read timeout")
                    }
                }
            }
            #[cfg(not(feature = "tls"))]
            Some(never) => match never {},
        }
    }

    /// Serves a connection's (decrypted) stream.
    async fn serve_io<I, S, H>(
        self,
        mut stream: I,
        deadline: tokio::time::Instant,
        service: S,
        holds: H,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        H: Send + Unpin + 'static,
        S: HttpService,
    {
        let peer = self.peer;
        // Until its first bytes tell the protocol, no protocol timer runs:
        // a client that sends nothing, or stops midway through the HTTP/2
        // preface, gets the header read timeout, not a slot for ever (and
        // is closed at once when the server stops). Over TLS the client
        // may also have chosen by ALPN; its first bytes say the same.
        let detected = tokio::select! {
            detected = tokio::time::timeout_at(deadline, detect(&mut stream)) => detected,
            () = self.stopping.cancelled() => return,
        };
        let (protocol, prefix) = match detected {
            Ok(Ok(Some(found))) => found,
            Ok(Ok(None)) => return,
            Ok(Err(err)) => {
                tracing::debug!(%peer, %err, "connection failed before its protocol was known");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "protocol not shown within the header read timeout");
                return;
            }
        };
        let handed_off = self.activity.handed_off.clone();
        let io = TokioIo::new(Tracked::new(
            Rewind::new(prefix, stream),
            self.cut.clone(),
            handed_off.clone(),
            self.write_timeout,
            holds,
        ));
        match (protocol, &self.protocols.http1, &self.protocols.http2) {
            (Protocol::Http1, Some(http1), _) => {
                let mut http1 = http1.clone();
                http1.timer(HeadTimer::default());
                let conn = http1.serve_connection(io, service).with_upgrades();
                self.drive(conn, |conn| conn.graceful_shutdown()).await;
                // Ended, or upgraded: the socket is the handler's now.
                handed_off.store(true, Ordering::Relaxed);
            }
            (Protocol::Http2, _, Some(http2)) => {
                let conn = http2.serve_connection(io, service);
                self.drive(conn, |conn| conn.graceful_shutdown()).await;
            }
            (protocol, _, _) => {
                tracing::debug!(%peer, ?protocol, "connection closed: protocol not served");
            }
        }
    }

    /// Serves a connection until it ends: closed gracefully when the
    /// drain begins or it has been idle too long, cut at the drain
    /// deadline.
    async fn drive<C, E>(&self, conn: C, graceful: fn(Pin<&mut C>))
    where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let peer = self.peer;
        let mut conn = std::pin::pin!(conn);
        let mut closing = false;
        let idle = self.activity.idle(self.idle_timeout);
        let mut idle = std::pin::pin!(idle);
        loop {
            // The drain, the idle timer and the cut, polled only when one
            // of them was woken, not at every wakeup of the connection.
            let events = Gated::new(async {
                tokio::select! {
                    // In this order, without drawing a random start at
                    // every poll; a branch that fired is disabled or ends
                    // the loop, so none starves another.
                    biased;
                    () = self.drain.cancelled(), if !closing => Event::Drain,
                    () = idle.as_mut(), if !closing => Event::Idle,
                    () = self.cut.cancelled() => Event::Cut,
                }
            });
            let event = tokio::select! {
                // The connection first.
                biased;
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%peer, %err, "connection ended with an error");
                    }
                    return;
                }
                event = events => event,
            };
            match event {
                Event::Drain => {}
                Event::Idle => tracing::debug!(%peer, "connection closed: idle"),
                Event::Cut => {
                    tracing::debug!(%peer, "connection cut at the drain deadline");
                    return;
                }
            }
            graceful(conn.as_mut());
            closing = true;
        }
    }
}

/// What a connection's task watches beside the connection.
enum Event {
    /// The drain began: close gracefully.
    Drain,
    /// No request in flight for the idle timeout: close gracefully.
    Idle,
    /// The drain deadline passed: cut.
    Cut,
}

/// Whether a request asks to upgrade its connection: found in one pass
/// over a short header list (a lookup by name hashes it); HTTP/2 has no
/// `Upgrade`.
fn asks_to_upgrade<B>(req: &axum::http::Request<B>) -> bool {
    /// Beyond this many header values, a lookup costs less than a pass.
    const SCAN_UP_TO: usize = 16;
    let headers = req.headers();
    if req.version() > axum::http::Version::HTTP_11 {
        false
    } else if headers.len() > SCAN_UP_TO {
        headers.contains_key(axum::http::header::UPGRADE)
    } else {
        headers
            .keys()
            .any(|name| *name == axum::http::header::UPGRADE)
    }
}

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    /// Whether the server is stopping (shared by every connection).
    stopping: Arc<AtomicBool>,
    /// Set when the connection is upgraded (its 101 sent): the socket's
    /// reads and writes watch the drain's cut from then on.
    handed_off: Arc<AtomicBool>,
    in_flight: AtomicUsize,
    /// Nanoseconds from `since` to the last request's end (or the start).
    last: AtomicU64,
    since: tokio::time::Instant,
}

impl Activity {
    fn new(stopping: Arc<AtomicBool>) -> Self {
        Self {
            stopping,
            handed_off: Arc::new(AtomicBool::new(false)),
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            since: tokio::time::Instant::now(),
        }
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    fn end(&self) {
        let at = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(at, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Resolves once no request has been in flight for `timeout`; never
    /// without one.
    async fn idle(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let last = self.since + Duration::from_nanos(self.last.load(Ordering::Acquire));
            let due = last + timeout;
            if self.in_flight.load(Ordering::Acquire) == 0 && tokio::time::Instant::now() >= due {
                return;
            }
            // Busy: look again a timeout from now; idle: at the due time.
            let next = if self.in_flight.load(Ordering::Acquire) > 0 {
                tokio::time::Instant::now() + timeout
            } else {
                due
            };
            tokio::time::sleep_until(next).await;
        }
    }
}

/// Connections per client address, capped; IPv6 counts by /64 (one host
/// usually holds a whole /64).
struct PerIp {
    cap: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A connection's place in its address's count.
struct ClientSeat {
    key: IpAddr,
    counts: Option<Arc<Mutex<HashMap<IpAddr, usize>>>>,
}

impl PerIp {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            counts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A place for a connection from `ip`, unless its address is at the cap.
    fn enter(&self, ip: IpAddr) -> Option<ClientSeat> {
        if self.cap == 0 {
            return Some(ClientSeat {
                key: ip,
                counts: None,
            });
        }
        let key = pattern_api::middleware::client_network(ip, 64);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(ClientSeat {
            key,
            counts: Some(self.counts.clone()),
        })
    }
}

impl Drop for ClientSeat {
    fn drop(&mut self) {
        if let Some(counts) = &self.counts {
            let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = counts.get_mut(&self.key) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&self.key);
                }
            }
        }
    }
}

/// Once the server is stopping, each HTTP/1 answer says `connection:
/// close`, so a connection serves what it was sent before the stop and no
/// more: the drain's linger takes in requests already on their way without
/// letting keep-alive clients go on sending new ones.
#[derive(Clone)]
struct CloseWhenStopping<S> {
    inner: S,
    /// The connection's requests in flight (for its idle timeout), and
    /// whether the server is stopping.
    activity: Arc<Activity>,
}

impl<S, B> tower::Service<axum::http::Request<B>> for CloseWhenStopping<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = CloseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        self.activity.begin();
        CloseFuture {
            http1: req.version() <= axum::http::Version::HTTP_11,
            inner: self.inner.call(req),
            in_flight: InFlight(self.activity.clone()),
        }
    }
}

pin_project! {
    /// The response future of [`CloseWhenStopping`].
    struct CloseFuture<F> {
        #[pin]
        inner: F,
        http1: bool,
        in_flight: InFlight,
    }
}

/// A request in flight on its connection, until its response is ready or
/// it is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

impl<F, E> Future for CloseFuture<F>
where
    F: Future<Output = Result<axum::response::Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        // A 101 hands the socket over: from now on it watches the cut (set
        // before hyper passes it to the handler, so no read can miss it).
        if response.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
            this.in_flight.0.handed_off.store(true, Ordering::Relaxed);
        }
        // A 101 keeps its `connection: upgrade`: the socket is handed over.
        if *this.http1
            && this.in_flight.0.stopping.load(Ordering::Acquire)
            && response.status() != axum::http::StatusCode::SWITCHING_PROTOCOLS
        {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{Request, Version, header};

    use super::asks_to_upgrade;

    /// `Upgrade` is found among 0 to 40 other headers, first, last or
    /// between, either side of the one-pass limit; an HTTP/2 request never
    /// asks.
    #[test]
    fn an_upgrade_is_found_among_any_number_of_headers() {
        for others in [0, 3, 15, 16, 17, 40] {
            for at in [0, others / 2, others] {
                for (version, upgrade) in [
                    (Version::HTTP_11, true),
                    (Version::HTTP_10, true),
                    (Version::HTTP_11, false),
                    (Version::HTTP_2, true),
                ] {
                    let mut req = Request::builder().version(version);
                    for i in 0..others {
                        if i == at && upgrade {
                            req = req.header(header::UPGRADE, "websocket");
                        }
                        req = req.header(format!("x-other-{i}"), "1");
                    }
                    if at == others && upgrade {
                        req = req.header(header::UPGRADE, "websocket");
                    }
                    let req = req.body(()).unwrap();
                    assert_eq!(
                        asks_to_upgrade(&req),
                        upgrade && version != Version::HTTP_2,
                        "{others} others, at {at}, {version:?}"
                    );
                }
            }
        }
    }
}
