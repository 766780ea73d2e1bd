//! Extractors that validate, and answer every rejection as problem+json.
//!
//! [`Valid`] reads a JSON body, [`ValidQuery`] the query string; both then
//! validate with garde and answer 422 listing every field error. The
//! rejections of the underlying axum extractors keep their status and
//! become problem+json: malformed JSON 400, a body of the wrong shape 422, a
//! missing or wrong content type 415, a body over the limit 413. Under a
//! request timeout ([`TimeoutLayer`](crate::middleware::TimeoutLayer) or
//! [`ApiStack`](crate::stack::ApiStack)), a body still arriving at the
//! deadline is answered 408 Request Timeout, as with any extractor: the
//! client is late, not the handler.
//!
//! ```
//! use garde::Validate;
//! use pattern_api::extract::Valid;
//! use pattern_api::response::Envelope;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, Serialize, Validate)]
//! struct NewItem {
//!     #[garde(length(min = 1, max = 100))]
//!     name: String,
//!     #[garde(range(min = 0, max = 1_000_000))]
//!     quantity: u32,
//! }
//!
//! async fn create(Valid(item): Valid<NewItem>) -> Envelope<NewItem> {
//!     Envelope::created(item)
//! }
//! let _app: axum::Router = axum::Router::new().route("/v1/items", axum::routing::post(create));
//! ```

use axum::Json;
mod resource;

pub use resource::{Acquire, Scoped};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use http::StatusCode;
use http::request::Parts;
use pattern_error::{Error, Kind};
use serde::de::DeserializeOwned;

use crate::{ApiError, FieldError};

/// A JSON body, parsed and validated; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct Valid<T>(pub T);

/// A query string, parsed and validated; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct ValidQuery<T>(pub T);

impl<S, T> FromRequest<S> for Valid<T>
where
    S: Send + Sync,
    T: DeserializeOwned + garde::Validate,
    T::Context: Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A body still arriving at the request's deadline is answered 408
        // by the timeout (it sees the read waiting), not here.
        let read = Json::<T>::from_request(req, state).await;
        let Json(value) = read.map_err(|rejection| from_json_rejection(&rejection))?;
        validate(&value)?;
        Ok(Valid(value))
    }
}

impl<S, T> FromRequestParts<S> for ValidQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + garde::Validate,
    T::Context: Default,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await.map_err(
            |rejection: QueryRejection| {
                ApiError::from(Error::new(Kind::Malformed, rejection.body_text()))
            },
        )?;
        validate(&value)?;
        Ok(ValidQuery(value))
    }
}

/// Validates `value`, collecting every field error.
pub fn validate<T>(value: &T) -> Result<(), ApiError>
where
    T: garde::Validate,
    T::Context: Default,
{
    value.validate().map_err(|report| {
        ApiError::invalid(
            report
                .iter()
                .map(|(path, error)| FieldError {
                    field: path.to_string(),
                    message: error.message().to_string(),
                    code: "invalid".to_owned(),
                })
                .collect(),
        )
    })
}

/// The problem for an axum JSON rejection, keeping its status.
pub fn from_json_rejection(rejection: &JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::from(Error::new(Kind::Malformed, detail))
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::from(Error::new(Kind::TooLarge, detail)),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::from(Error::new(Kind::InvalidInput, detail)),
        _ => ApiError::from(Error::new(Kind::Malformed, detail)),
    }
}
