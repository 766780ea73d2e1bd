use std::time::Duration;

use tower::Layer;

use super::Timeout;

/// Applies a deadline to every call of the services it wraps.
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    /// Calls taking longer than `timeout` fail with [`Kind::Timeout`](crate::Kind::Timeout).
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout::new(inner, self.timeout)
    }
}
