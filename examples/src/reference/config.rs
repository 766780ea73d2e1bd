//! The reference service's settings: defaults, then an optional
//! `reference-service.toml`, then `REFSVC_` environment variables (`__`
//! nests: `REFSVC_SERVER__ADDR=127.0.0.1:0`).

use std::path::Path;
use std::time::Duration;

use garde::Validate;
use patterns::api::client_addr::{ForwardedHeader, TrustedProxies};
use patterns::component::config::{ConfigError, Loaded, Loader, Secret};
use patterns::server::http::ServerConfig;
use patterns::server::logging::LogConfig;
use patterns::server::ops::PrometheusConfig;
use patterns::server::postgres::PostgresConfig;
use patterns::server::telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};

/// Everything the service reads at start.
#[derive(Clone, Debug, Default, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct Config {
    /// Listening, timeouts and limits of the HTTP edge.
    #[garde(dive)]
    pub server: Server,
    /// Rate limiting per client IP, and the proxies that may name it.
    #[garde(dive)]
    pub limits: Limits,
    /// PostgreSQL; without it items are kept in memory.
    #[garde(dive)]
    pub database: Option<PostgresConfig>,
    /// The admin routes; off without a token.
    #[garde(dive)]
    pub admin: Admin,
    /// The item store and its expiry sweeper.
    #[garde(dive)]
    pub store: Store,
    /// The demo routes (`/v1/demo/delay`, `/v1/demo/panic`).
    #[garde(dive)]
    pub demo: Demo,
    /// A listener of its own for probes, metrics, docs and admin.
    #[garde(dive)]
    pub management: Management,
    /// Logs: format (`text`, `json`), filter, access-log level, colour,
    /// file, queue bound.
    #[garde(dive)]
    pub log: LogConfig,
    /// Metrics: the histograms' buckets (every one, or by name) and how
    /// often samples are folded in.
    #[garde(dive)]
    pub metrics: PrometheusConfig,
    /// Trace export: the OTLP collector's address (none: no export),
    /// sampler and queue; the standard `OTEL_*` variables apply over it.
    #[garde(dive)]
    pub telemetry: TelemetryConfig,
}

/// Probes, metrics, docs and admin on a listener of their own
/// (`REFSVC_MANAGEMENT__ENABLED=true`, `REFSVC_MANAGEMENT__ADDR=…`), with
/// small limits and no rate limit, out of the API's shedding: a busy API
/// never fails a probe. Off (the default), they share the API's port and
/// are exempt from its shedding and rate limits.
#[derive(Clone, Debug, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct Management {
    /// Serve them on their own listener.
    #[garde(skip)]
    pub enabled: bool,
    /// Address, protocols, connection limit and timeouts of the listener.
    #[serde(flatten)]
    #[garde(dive)]
    pub http: ServerConfig,
    /// Management requests handled at once; the excess is shed with 503.
    #[garde(range(min = 1, max = 10_000))]
    pub concurrency_limit: usize,
    /// Management requests slower than this are answered 504.
    #[garde(range(min = 1, max = 600_000))]
    pub request_timeout_ms: u64,
}

impl Default for Management {
    /// Off; when on: 127.0.0.1:9090, 64 connections, 16 requests at once,
    /// 5 s per request.
    fn default() -> Self {
        Self {
            enabled: false,
            http: ServerConfig {
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], 9090)),
                max_connections: 64,
                ..ServerConfig::default()
            },
            concurrency_limit: 16,
            request_timeout_ms: 5_000,
        }
    }
}

/// The demo routes, which show timeouts and panics on purpose: off by
/// default, since `/v1/demo/delay` lets any client hold a slot for the
/// whole request timeout (`REFSVC_DEMO__ENABLED=true` turns them on).
#[derive(Clone, Debug, Default, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct Demo {
    /// Serve the demo routes.
    #[garde(skip)]
    pub enabled: bool,
}

/// The HTTP edge: the server's own settings plus the request chain's.
#[derive(Clone, Debug, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct Server {
    /// Address, protocols, connection limit, header timeout, drain deadline.
    #[serde(flatten)]
    #[garde(dive)]
    pub http: ServerConfig,
    /// Requests slower than this are answered 504.
    #[garde(range(min = 1, max = 600_000))]
    pub request_timeout_ms: u64,
    /// The largest request body accepted (413 beyond).
    #[garde(range(min = 1, max = 104_857_600))]
    pub body_limit_bytes: usize,
    /// Requests handled at once; the excess is shed with 503.
    #[garde(range(min = 1, max = 1_000_000))]
    pub concurrency_limit: usize,
    /// Requests beyond the limit that may wait for a slot (0: none wait,
    /// the excess is shed at once).
    #[garde(range(max = 1_000_000))]
    pub queue_depth: usize,
    /// How long a queued request waits for a slot before it is shed.
    #[garde(range(min = 1, max = 60_000))]
    pub queue_wait_ms: u64,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            http: ServerConfig::default(),
            request_timeout_ms: 5_000,
            body_limit_bytes: 64 * 1024,
            concurrency_limit: 512,
            queue_depth: 0,
            queue_wait_ms: 100,
        }
    }
}

/// Rate limiting per client IP address.
#[derive(Clone, Debug, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct Limits {
    /// Sustained requests per second per client.
    #[garde(range(min = 1, max = 10_000_000))]
    pub requests_per_second: u32,
    /// Requests a client may send at once above the sustained rate.
    #[garde(range(min = 1, max = 10_000_000))]
    pub burst: u32,
    /// Clients tracked at most (the least recently seen are forgotten).
    #[garde(range(min = 1, max = 10_000_000))]
    pub max_clients: usize,
    /// IPv6 clients are counted by this many leading bits of their
    /// address (one host usually holds a whole /64).
    #[garde(range(min = 16, max = 128))]
    pub ipv6_prefix: u8,
    /// Networks of the proxies in front of the service (`10.0.0.0/8`,
    /// `fd00::/8`): the client address they forward is believed, a header
    /// from anyone else is ignored. Empty: the client is the peer.
    #[garde(length(max = 256), inner(custom(is_network)))]
    pub trusted_proxies: Vec<String>,
    /// Or: how many proxies stand in front of every request (their
    /// addresses unknown); 0: none. Not both.
    #[garde(range(max = 16), custom(not_both(&self.trusted_proxies)))]
    pub proxy_hops: usize,
    /// The header the proxies write: `x-forwarded-for` or `forwarded`.
    #[garde(skip)]
    pub forwarded_header: ForwardedHeaderName,
}

/// The forwarding header the proxies write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeaderName {
    /// `X-Forwarded-For`.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    Forwarded,
}

#[expect(clippy::ptr_arg, reason = "garde passes the field as it is")]
fn is_network(text: &String, _: &()) -> garde::Result {
    text.parse::<patterns::api::client_addr::Cidr>()
        .map(drop)
        .map_err(|err| garde::Error::new(err.to_string()))
}

fn not_both(networks: &[String]) -> impl FnOnce(&usize, &()) -> garde::Result + '_ {
    move |hops, _| {
        if *hops > 0 && !networks.is_empty() {
            return Err(garde::Error::new(
                "set trusted_proxies or proxy_hops, not both",
            ));
        }
        Ok(())
    }
}

impl Limits {
    /// The proxies whose forwarded client address is believed.
    pub fn trusted_proxies(&self) -> Result<TrustedProxies, patterns::error::Error> {
        let proxies = if self.proxy_hops > 0 {
            TrustedProxies::hops(self.proxy_hops)
        } else {
            TrustedProxies::networks(&self.trusted_proxies)?
        };
        Ok(proxies.header(match self.forwarded_header {
            ForwardedHeaderName::XForwardedFor => ForwardedHeader::XForwardedFor,
            ForwardedHeaderName::Forwarded => ForwardedHeader::Forwarded,
        }))
    }
}

impl Default for Limits {
    /// Generous: 1000 per second with bursts of 2000, 100 000 clients.
    fn default() -> Self {
        Self {
            requests_per_second: 1_000,
            burst: 2_000,
            max_clients: 100_000,
            ipv6_prefix: 64,
            trusted_proxies: Vec::new(),
            proxy_hops: 0,
            forwarded_header: ForwardedHeaderName::default(),
        }
    }
}

/// The admin routes.
#[derive(Clone, Debug, Default, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct Admin {
    /// The bearer token `/admin/processes` requires; no token, no routes.
    #[garde(custom(long_enough))]
    pub token: Option<Secret<String>>,
}

/// A token short enough to guess is refused at start.
fn long_enough(token: &Option<Secret<String>>, _: &()) -> garde::Result {
    match token {
        Some(token) if token.expose().len() < 16 => Err(garde::Error::new(
            "the admin token must have at least 16 characters",
        )),
        _ => Ok(()),
    }
}

/// The item store.
#[derive(Clone, Debug, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct Store {
    /// Items kept at most in memory (a create beyond answers 503).
    #[garde(range(min = 1, max = 100_000_000))]
    pub max_items: usize,
    /// Items older than this are removed by the sweeper (ten years at
    /// most).
    #[garde(range(min = 1, max = 315_360_000))]
    pub item_ttl_secs: u64,
    /// How often the sweeper runs.
    #[garde(range(min = 10, max = 86_400_000))]
    pub sweep_interval_ms: u64,
}

impl Default for Store {
    /// 100 000 items, kept a day, swept every minute.
    fn default() -> Self {
        Self {
            max_items: 100_000,
            item_ttl_secs: 86_400,
            sweep_interval_ms: 60_000,
        }
    }
}

impl Config {
    /// Loads defaults, `file` if it exists, and `REFSVC_` variables, then
    /// validates; every problem is reported with its origin.
    pub fn load(file: impl AsRef<Path>) -> Result<Loaded<Self>, ConfigError> {
        Loader::new(Self::default())
            .file(file.as_ref())
            .env_prefix("REFSVC_")
            // `REFSVC_CONFIG` names the file; it is not a setting.
            .ignore_keys(["config"])
            .load()
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.server.request_timeout_ms)
    }
}
