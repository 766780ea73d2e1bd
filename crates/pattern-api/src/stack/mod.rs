//! The whole middleware chain, in one documented order.

mod chain;
mod future;
mod service;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;

use crate::client_addr::TrustedProxies;
use crate::middleware::{DeadlineLayer, LoadShedLayer, MetricsLayer, RateLimitLayer};

use chain::Chain;
pub use future::ResponseFuture;
pub use service::{Stack, StackLayer};

/// Assembles the standard middleware on a router. From the outside in:
///
/// 1. request id (propagate or generate, echo);
/// 2. tracing span per request, and its access-log event;
/// 3. metrics (`http_requests_total`, `http_request_duration_seconds`,
///    `http_requests_in_flight`, by route template);
/// 4. problem+json for every error response produced below;
/// 5. panic catching (500);
/// 6. body size limit (413, enforced by axum's body extractors; a route's
///    own `DefaultBodyLimit` still wins);
/// 7. keyed rate limit (429 with `Retry-After`), if configured: before the
///    concurrency gate, so a client over its limit gets its own 429 without
///    taking a slot or a queue place;
/// 8. load shedding (503 with `Retry-After`), with an optional bounded
///    admission queue;
/// 9. request timeout (504, or 503; 408 when the handler is still waiting
///    for the request's body), with a
///    [`Deadline`](crate::middleware::Deadline) for handlers. The deadline
///    starts on arrival: a request still in the admission queue when it
///    comes is shed (503).
///
/// Optional, outside the chain: gzip compression and CORS (tower-http).
/// Each piece can be switched off.
///
/// The pieces run fused in one service ([`StackLayer`]) with one response
/// future: a request clones one shared pointer, reads the clock once for
/// both its metrics and its deadline (which starts on arrival, so time
/// spent in the admission queue counts), and keeps its id and deadline
/// with the task instead of in the request's extensions (handlers take
/// them with the [`RequestId`](crate::request_id::RequestId) and
/// [`Deadline`](crate::middleware::Deadline) extractors; code that reads
/// `Extension<RequestId>` or the request's extensions directly finds
/// nothing under the stack). What the stack does not set itself (its
/// request id or timeout switched off) stays as a layer further out set
/// it.
///
/// # Cost
///
/// Measured by `cargo xtask bench --bench api_stack` (in process, one
/// request through a router with the piece alone, minus the same router
/// with the chain but every piece off; a 2-core machine; metrics without a
/// recorder installed). The chain's one `Router::layer` costs about 110 ns
/// over a bare router (axum boxes and clones the layered service per
/// request) and is in no row but the last.
///
/// | piece | cost per request |
/// | --- | --- |
/// | request id (read or make, echo header, task-local) | 114 ns |
/// | metrics (counter, histogram, in-flight gauge; two clock reads) | 88 ns |
/// | timeout (deadline, task-local; a timer only if the handler waits) | 77 ns |
/// | panic catching | 9 ns |
/// | load shedding | 7 ns |
/// | body limit (a body of known size) | 3 ns |
/// | tracing span (no subscriber) | under 5 ns |
/// | problem+json conversion (a success passes through) | under 5 ns |
/// | the whole chain together, over a bare router | 1.89× a bare router's time |
///
/// Over loopback, with the reference service's settings (rate limit
/// included, a Prometheus recorder installed, no log subscriber), `cargo
/// xtask bench --http --rounds 5` (server on one pinned core with a
/// one-thread runtime, wrk with 64 keep-alive connections on the other)
/// measures the stack at 0.90× of bare axum's requests per second (the
/// median of the per-round ratios, which went from 0.83× to 1.05×).
///
/// ```
/// use std::time::Duration;
/// use axum::{Router, routing::get};
/// use pattern_api::middleware::DeadlineLayer;
/// use pattern_api::stack::ApiStack;
///
/// let app: Router = ApiStack::new()
///     .timeout(DeadlineLayer::new(Duration::from_secs(5)))
///     .body_limit(64 * 1024)
///     .concurrency_limit(256)
///     .apply(Router::new().route("/", get(|| async { "ok" })));
/// ```
#[derive(Debug)]
#[must_use]
pub struct ApiStack {
    request_id: bool,
    trace: bool,
    access_log: Option<tracing::Level>,
    span_level: tracing::Level,
    metrics: bool,
    pub(crate) problem_json: bool,
    catch_panic: bool,
    concurrency_limit: Option<usize>,
    queue: Option<(usize, Duration)>,
    pub(crate) rate_limit: Option<RateLimitLayer<Body>>,
    pub(crate) timeout: Option<DeadlineLayer>,
    pub(crate) body_limit: Option<usize>,
    cors: Option<CorsLayer>,
    compression: bool,
    exempt: Vec<String>,
    proxies: TrustedProxies,
}

impl Default for ApiStack {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiStack {
    /// Everything on: a 30 s timeout (504), a 1 MiB body limit, 1024
    /// requests at once; no rate limit until one is given.
    pub fn new() -> Self {
        Self {
            request_id: true,
            trace: true,
            access_log: Some(tracing::Level::INFO),
            span_level: tracing::Level::INFO,
            metrics: true,
            problem_json: true,
            catch_panic: true,
            concurrency_limit: Some(1024),
            queue: None,
            rate_limit: None,
            timeout: Some(DeadlineLayer::new(Duration::from_secs(30))),
            body_limit: Some(1024 * 1024),
            cors: None,
            compression: false,
            exempt: Vec::new(),
            proxies: TrustedProxies::none(),
        }
    }

    /// The request timeout: a [`DeadlineLayer`] (`DeadlineLayer::new(d)`,
    /// answered 504, or `.with_503()`), or `None` for none. 30 s by default.
    pub fn timeout(mut self, layer: impl Into<Option<DeadlineLayer>>) -> Self {
        self.timeout = layer.into();
        self
    }

    /// The largest body accepted, in bytes (413 past it), or `None` for the
    /// stack's none (axum's extractors still apply their 2 MB). 1 MiB by
    /// default.
    pub fn body_limit(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.body_limit = bytes.into();
        self
    }

    /// The most requests served at once (503 past it, or a wait in the
    /// [admission queue](Self::admission_queue)), or `None` for no limit.
    /// 1024 by default.
    ///
    /// # Panics
    ///
    /// On `Some(0)`: a limit that serves nothing is a mistake in the
    /// settings, caught here rather than when the stack is built.
    pub fn concurrency_limit(mut self, max: impl Into<Option<usize>>) -> Self {
        let max = max.into();
        assert_ne!(
            max,
            Some(0),
            "ApiStack::concurrency_limit: at least 1 request at once (None switches the limit off)"
        );
        self.concurrency_limit = max;
        self
    }

    /// Lets up to `max_waiting` requests beyond the concurrency limit wait
    /// up to `wait` (and never past their deadline) for a slot before they
    /// are shed (by default none wait).
    pub fn admission_queue(mut self, max_waiting: usize, wait: Duration) -> Self {
        self.queue = Some((max_waiting, wait));
        self
    }

    /// The rate limit per key (429 past it), or `None`. None by default.
    pub fn rate_limit(mut self, layer: impl Into<Option<RateLimitLayer<Body>>>) -> Self {
        self.rate_limit = layer.into();
        if let Some(layer) = &self.rate_limit {
            layer.register();
        }
        self
    }

    /// Believes the client address that these proxies forward (see
    /// [`TrustedProxies`]): the rate limit keys clients by it and handlers
    /// read it with [`ClientAddr`](crate::client_addr::ClientAddr). Nobody
    /// is trusted by default: the client is the connection's peer.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Requests to exactly these paths skip admission: the concurrency
    /// limit, its queue and the rate limit (they keep the request id,
    /// tracing, metrics, problem+json, panic catching, timeout and body
    /// limit). For health probes and metrics served on the API's port: a
    /// busy service must shed its API, never the probe that keeps it
    /// alive (a shed liveness probe gets a busy pod restarted, which
    /// cascades).
    pub fn exempt_from_admission<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        self.exempt.extend(paths.into_iter().map(Into::into));
        self
    }

    /// CORS: preflights answered and headers added as `cors` says
    /// (tower-http's layer), or `None`. None by default.
    pub fn cors(mut self, cors: impl Into<Option<CorsLayer>>) -> Self {
        self.cors = cors.into();
        self
    }

    /// Whether responses are compressed with gzip when the client accepts
    /// it (tower-http's layer). Off by default.
    pub fn compression(mut self, on: bool) -> Self {
        self.compression = on;
        self
    }

    /// Whether each request gets an id (the client's `x-request-id`, or a
    /// new one), echoed on its response. On by default.
    pub fn request_id(mut self, on: bool) -> Self {
        self.request_id = on;
        self
    }

    /// Whether plain error responses are rewritten as problem+json. On by
    /// default.
    pub fn problem_json(mut self, on: bool) -> Self {
        self.problem_json = on;
        self
    }

    /// Whether each request gets a tracing span (and an access event). On
    /// by default.
    pub fn trace(mut self, on: bool) -> Self {
        self.trace = on;
        self
    }

    /// Whether requests are counted and timed by route. On by default.
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Whether a panicking handler is answered 500 (without the panic's
    /// text). On by default.
    pub fn catch_panic(mut self, on: bool) -> Self {
        self.catch_panic = on;
        self
    }

    /// The access log's level (INFO by default; `None`: no access events,
    /// the spans stay); see [`TraceLayer`](crate::middleware::TraceLayer).
    pub fn access_log(mut self, level: Option<tracing::Level>) -> Self {
        self.access_log = level;
        self
    }

    /// The request span's level (INFO by default); see
    /// [`TraceLayer::span_level`](crate::middleware::TraceLayer::span_level).
    pub fn span_level(mut self, level: tracing::Level) -> Self {
        self.span_level = level;
        self
    }

    /// The chain (body limit included) as one tower layer, for
    /// `Router::layer` on any axum router; CORS and compression, which
    /// change the response type, are left to [`apply`](Self::apply).
    pub fn layer(&self) -> StackLayer {
        StackLayer {
            chain: Arc::new(Chain {
                request_id: self.request_id,
                trace: self.trace,
                access_log: self.access_log,
                span_level: self.span_level,
                metrics: self.metrics.then(MetricsLayer::new),
                problem_json: self.problem_json,
                catch_panic: self.catch_panic,
                shed: self.concurrency_limit.map(|max| {
                    let shed = LoadShedLayer::new(max);
                    let shed = match self.queue {
                        Some((waiting, wait)) => shed.queue(waiting, wait),
                        None => shed,
                    };
                    shed.bulkhead().clone()
                }),
                rate_limit: self.rate_limit.clone(),
                timeout: self.timeout,
                body_limit: self.body_limit,
                exempt: self.exempt.clone().into_boxed_slice(),
                proxies: self.proxies.clone(),
            }),
        }
    }

    /// Applies the chain to `router` as one tower layer (one boxed service
    /// per route, not one per piece), axum's body limit included.
    pub fn apply<S: Clone + Send + Sync + 'static>(self, mut router: Router<S>) -> Router<S> {
        router = router.layer(self.layer());
        // These change the response type, so they wrap the chain on their
        // own; CORS outermost, so even rejections carry its headers.
        if self.compression {
            router = router.layer(CompressionLayer::new());
        }
        if let Some(cors) = self.cors {
            router = router.layer(cors);
        }
        router
    }
}
