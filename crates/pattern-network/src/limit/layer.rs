use tower::Layer;

use super::{AdaptiveLimit, AdaptiveLimitService};

/// Wraps services in one shared [`AdaptiveLimit`].
#[derive(Clone, Debug)]
pub struct AdaptiveLimitLayer {
    limit: AdaptiveLimit,
}

impl AdaptiveLimitLayer {
    /// A layer around `limit`.
    pub fn new(limit: AdaptiveLimit) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for AdaptiveLimitLayer {
    type Service = AdaptiveLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimitService::new(inner, self.limit.clone())
    }
}
