//! What the chain does: the settings every request's service and future
//! share.

use axum::body::Body;
use pattern_error::bulkhead::Bulkhead;

use crate::client_addr::TrustedProxies;
use crate::middleware::{DeadlineLayer, MetricsLayer, RateLimitLayer};

/// What the chain does, shared by every request's service and future.
#[derive(Debug)]
pub(crate) struct Chain {
    pub(crate) request_id: bool,
    pub(crate) trace: bool,
    pub(crate) access_log: Option<tracing::Level>,
    pub(crate) span_level: tracing::Level,
    pub(crate) metrics: Option<MetricsLayer>,
    pub(crate) problem_json: bool,
    pub(crate) catch_panic: bool,
    pub(crate) shed: Option<Bulkhead>,
    pub(crate) rate_limit: Option<RateLimitLayer<Body>>,
    pub(crate) timeout: Option<DeadlineLayer>,
    pub(crate) body_limit: Option<usize>,
    /// Paths that skip admission (probes).
    pub(crate) exempt: Box<[String]>,
    pub(crate) proxies: TrustedProxies,
}
