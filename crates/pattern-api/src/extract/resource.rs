//! Request-scoped resources: acquired for the request, within its deadline.

use std::future::Future;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use http::request::Parts;
use pattern_error::{Error, Kind};

use crate::ApiError;
use crate::middleware::Deadline;

/// Something that hands out resources for a request (a database pool, a
/// client with a connection limit).
pub trait Acquire: Send + Sync + 'static {
    /// What a request gets.
    type Resource: Send;

    /// Gets one, waiting if none is free. Cancel-safe: the future may be
    /// dropped (at the deadline).
    fn acquire(&self) -> impl Future<Output = Result<Self::Resource, Error>> + Send;

    /// The longest a request waits when it has no deadline of its own.
    fn max_wait(&self) -> Duration {
        Duration::from_secs(5)
    }
}

/// A resource acquired for the request from the `A` in the router's state.
///
/// The wait is bounded by the request's [`Deadline`] (set by the timeout
/// middleware) or the source's `max_wait`; a source that cannot deliver in
/// time answers 503 (unavailable, with `Retry-After`), never a hung request.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, extract::FromRef, routing::get};
/// use pattern_api::extract::{Acquire, Scoped};
/// use pattern_error::{Error, Kind};
/// use tokio::sync::{OwnedSemaphorePermit, Semaphore};
///
/// /// Ten "connections".
/// #[derive(Clone)]
/// struct Pool(Arc<Semaphore>);
///
/// impl Acquire for Pool {
///     type Resource = OwnedSemaphorePermit;
///     async fn acquire(&self) -> Result<OwnedSemaphorePermit, Error> {
///         self.0.clone().acquire_owned().await.map_err(|_| Error::from_kind(Kind::Unavailable))
///     }
/// }
///
/// let app: Router = Router::new()
///     .route("/", get(|Scoped(_conn): Scoped<Pool>| async { "used a connection" }))
///     .with_state(Pool(Arc::new(Semaphore::new(10))));
/// ```
pub struct Scoped<A: Acquire>(pub A::Resource);

impl<A: Acquire> std::fmt::Debug for Scoped<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped").finish_non_exhaustive()
    }
}

impl<S, A> FromRequestParts<S> for Scoped<A>
where
    S: Send + Sync,
    A: Acquire + FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let source = A::from_ref(state);
        let wait = Deadline::find(&parts.extensions)
            .as_ref()
            .map_or_else(|| source.max_wait(), Deadline::remaining);
        match tokio::time::timeout(wait, source.acquire()).await {
            Ok(Ok(resource)) => Ok(Scoped(resource)),
            Ok(Err(err)) => Err(ApiError::from(err)),
            Err(_) => Err(ApiError::from(Error::new(
                Kind::Unavailable,
                format!("no resource free within {wait:?}"),
            ))),
        }
    }
}
