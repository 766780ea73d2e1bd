//! The extractors of what a request carries: its id and its deadline,
//! found in the request's extensions or with the task.

use crate::context::{Deadline, RequestId};

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

// The request's id as an extractor (also `Option<RequestId>`): a handler
// outside every request id layer is answered 500.
carried_extractor!(
    RequestId,
    RequestId::find,
    "RequestId extracted outside a request id layer"
);

// The request's deadline as an extractor; a handler outside every timeout
// is answered 500 (take `Option<Deadline>` where none may be set).
carried_extractor!(
    Deadline,
    Deadline::find,
    "Deadline extracted outside a request timeout"
);
