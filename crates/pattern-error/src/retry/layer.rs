use tower::Layer;

use super::{NoCheck, RetryPolicy, RetryService};

/// Retries calls of the services it wraps under a [`RetryPolicy`].
///
/// Requests must be `Clone` (each attempt sends a copy) and so must the
/// service (a retry calls a clone made ready again).
#[derive(Clone, Debug)]
pub struct RetryLayer<C = NoCheck> {
    policy: RetryPolicy,
    check: C,
}

impl RetryLayer {
    /// A layer retrying errors as `policy` says.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            check: NoCheck,
        }
    }
}

impl<C> RetryLayer<C> {
    /// Also retries successful responses for which `check` is true (a 503
    /// answer, say); when the policy gives up, the last response is returned.
    pub fn retry_response<F>(self, check: F) -> RetryLayer<F> {
        RetryLayer {
            policy: self.policy,
            check,
        }
    }
}

impl<S, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = RetryService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        RetryService::new(inner, self.policy.clone(), self.check.clone())
    }
}
