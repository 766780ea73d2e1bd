use std::sync::Arc;

use tower::Layer;

use super::Fallback;

/// Answers chosen errors of the services it wraps with a fallback.
#[derive(Debug)]
pub struct FallbackLayer<P, H> {
    shared: Arc<(P, H)>,
}

impl<P, H> FallbackLayer<P, H> {
    /// Errors `predicate` picks are answered by `handler`.
    pub fn new(predicate: P, handler: H) -> Self {
        Self {
            shared: Arc::new((predicate, handler)),
        }
    }
}

impl<P, H> Clone for FallbackLayer<P, H> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S, P, H> Layer<S> for FallbackLayer<P, H> {
    type Service = Fallback<S, P, H>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback::new(inner, self.shared.clone())
    }
}
