//! What the request a task is handling carries with it, for code that does
//! not see the request: its id (for problem bodies and logs) and deadline.

use crate::middleware::Deadline;
use crate::request_id::RequestId;

/// The request's id and deadline, as the layers in front of it set them.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestContext {
    pub(crate) id: Option<RequestId>,
    pub(crate) deadline: Option<Deadline>,
}

tokio::task_local! {
    pub(crate) static CURRENT: RequestContext;
}

/// Reads the current context; `None` outside every scope.
pub(crate) fn with<T>(read: impl FnOnce(&RequestContext) -> Option<T>) -> Option<T> {
    CURRENT.try_with(read).ok().flatten()
}

/// The extractors of what a request carries (`RequestId`, `Deadline`):
/// `$find` looks in the request's extensions, then with the task. Required,
/// a missing one is answered 500 (a wiring mistake: `$missing` says which);
/// as `Option<_>`, it is `None`.
macro_rules! carried_extractor {
    ($type:ty, $find:path, $missing:literal) => {
        impl<S: Send + Sync> axum::extract::FromRequestParts<S> for $type {
            type Rejection = crate::ApiError;

            async fn from_request_parts(
                parts: &mut http::request::Parts,
                _: &S,
            ) -> Result<Self, Self::Rejection> {
                $find(&parts.extensions).ok_or_else(|| {
                    crate::ApiError::from(pattern_error::Error::new(
                        pattern_error::Kind::Internal,
                        $missing,
                    ))
                })
            }
        }

        impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for $type {
            type Rejection = std::convert::Infallible;

            async fn from_request_parts(
                parts: &mut http::request::Parts,
                _: &S,
            ) -> Result<Option<Self>, Self::Rejection> {
                Ok($find(&parts.extensions))
            }
        }
    };
}

pub(crate) use carried_extractor;
