//! Extractors that validate, and answer every rejection as problem+json.
//!
//! [`Valid`] reads a JSON body, [`ValidQuery`] the query string; both then
//! validate with garde and answer 422 listing every field error. The
//! rejections of the underlying axum extractors keep their status and
//! become problem+json: malformed JSON 400, a body of the wrong shape 422, a
//! missing or wrong content type 415, a body over the limit 413. Under a
//! request timeout ([`DeadlineLayer`](crate::middleware::DeadlineLayer) or
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

mod carried;
mod codes;
mod integer;
mod resource;

pub use integer::integer;
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
        let json = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(crate::problem::is_json_media_type);
        if !json {
            return Err(ApiError::from(Error::new(
                Kind::Malformed,
                "expected a request with `Content-Type: application/json`",
            ))
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        // A body still arriving at the request's deadline is answered 408
        // by the timeout (it sees the read waiting), not here. The body
        // limit answers 413.
        let body =
            bytes::Bytes::from_request(req, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => {
                        ApiError::from(Error::new(Kind::TooLarge, rejection.body_text()))
                    }
                    _ => ApiError::from(Error::new(Kind::Malformed, rejection.body_text())),
                })?;
        let value = parse_json(&body)?;
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

/// A JSON body as `T`: 400 when it is not JSON, 422 with the failing
/// field's path and kind when it does not fit `T` (`type`, `required`,
/// `unknown_field`, `value`, `length`).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|err| json_error(&err.path().to_string(), err.inner()))?;
    // Anything after the value (a second value, garbage) is malformed.
    deserializer.end().map_err(|err| json_error("", &err))?;
    Ok(value)
}

/// The answer for a JSON body that failed at `path`.
fn json_error(path: &str, err: &serde_json::Error) -> ApiError {
    if !err.is_data() {
        return ApiError::from(Error::new(
            Kind::Malformed,
            format!("the body is not valid JSON: {err}"),
        ));
    }
    let message = strip_position(&err.to_string());
    let (code, missing) = data_error_kind(&message);
    let mut field = if path == "." {
        String::new()
    } else {
        path.to_owned()
    };
    if let Some(missing) = missing {
        field = if field.is_empty() {
            missing
        } else {
            format!("{field}.{missing}")
        };
    }
    ApiError::invalid(vec![FieldError {
        field,
        message,
        code: code.to_owned(),
    }])
}

/// serde's message without serde_json's ` at line L column C`.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains(" column ") => message[..at].to_owned(),
        _ => message.to_owned(),
    }
}

/// The code of a serde data error, and the missing field's name.
fn data_error_kind(message: &str) -> (&'static str, Option<String>) {
    if let Some(rest) = message.strip_prefix("missing field `") {
        return ("required", rest.split('`').next().map(str::to_owned));
    }
    let code = if message.starts_with("invalid type") {
        "type"
    } else if message.starts_with("unknown field") {
        "unknown_field"
    } else if message.starts_with("invalid length") {
        "length"
    } else if message.starts_with("unknown variant") || message.starts_with("invalid value") {
        "value"
    } else {
        "invalid"
    };
    (code, None)
}

/// Validates `value`, collecting every field error, each with its rule's
/// code (`length`, `range`, `pattern`, `required`, `email`, …; `custom`
/// for a custom rule).
pub fn validate<T>(value: &T) -> Result<(), ApiError>
where
    T: garde::Validate,
    T::Context: Default,
{
    garde::with_i18n(codes::Coded, || value.validate()).map_err(|report| {
        ApiError::invalid(
            report
                .iter()
                .map(|(path, error)| {
                    let (code, message) = codes::split(error.message());
                    FieldError {
                        field: path.to_string(),
                        message: message.to_owned(),
                        code: code.to_owned(),
                    }
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
