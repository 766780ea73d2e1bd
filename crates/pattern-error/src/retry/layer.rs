use tower::Layer;

use super::{ByClone, NoCheck, Retry, RetryPolicy};

/// Retries calls of the services it wraps under a [`RetryPolicy`].
///
/// Each attempt sends a copy of the request: made with `Clone` by default,
/// or by [`clone_request`](Self::clone_request) for requests that are not
/// `Clone` (an `http::Request` with a body). The service must be `Clone`
/// (a retry calls a clone made ready again).
#[derive(Clone, Debug)]
pub struct RetryLayer<C = NoCheck, R = ByClone> {
    policy: RetryPolicy,
    check: C,
    cloner: R,
}

impl RetryLayer {
    /// A layer retrying errors as `policy` says.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            check: NoCheck,
            cloner: ByClone,
        }
    }
}

impl<C, R> RetryLayer<C, R> {
    /// Also retries successful responses for which `check` is true (a 503
    /// answer, say); when the policy gives up, the last response is returned.
    pub fn retry_response<F>(self, check: F) -> RetryLayer<F, R> {
        RetryLayer {
            policy: self.policy,
            check,
            cloner: self.cloner,
        }
    }

    /// Copies each request for a later attempt with `cloner`, a
    /// `Fn(&Req) -> Option<Req>` (as tower's `Policy::clone_request`):
    /// called before each attempt that may be followed by another (not
    /// before the last the policy allows); `None` makes that attempt the
    /// last, its answer final.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use pattern_error::{Error, Kind, retry::{RetryLayer, RetryPolicy}};
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    ///
    /// /// Not `Clone`: a streamed body can be read once.
    /// enum Body {
    ///     Bytes(Vec<u8>),
    ///     Stream(std::sync::mpsc::Receiver<Vec<u8>>),
    /// }
    ///
    /// let policy = RetryPolicy::builder("upload").build().unwrap();
    /// let service = ServiceBuilder::new()
    ///     .layer(RetryLayer::new(policy).clone_request(|body: &Body| match body {
    ///         Body::Bytes(bytes) => Some(Body::Bytes(bytes.clone())),
    ///         Body::Stream(_) => None, // sent once, whatever happens
    ///     }))
    ///     .service(service_fn(|_: Body| async {
    ///         Err::<(), _>(Error::new(Kind::Unavailable, "try again"))
    ///     }));
    /// let err = service.oneshot(Body::Bytes(b"order".to_vec())).await.unwrap_err();
    /// assert!(err.report().to_string().contains("3 attempts"));
    /// # }
    /// ```
    pub fn clone_request<F>(self, cloner: F) -> RetryLayer<C, F> {
        RetryLayer {
            policy: self.policy,
            check: self.check,
            cloner,
        }
    }
}

impl<S, C: Clone, R: Clone> Layer<S> for RetryLayer<C, R> {
    type Service = Retry<S, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::new(
            inner,
            self.policy.clone(),
            self.check.clone(),
            self.cloner.clone(),
        )
    }
}
