//! [`ApiError`]: what handlers return when they fail; answered as
//! problem+json.
//!
//! The status comes from the error's [`Kind`] (one table:
//! [`status_for`](crate::problem::status_for)). A rate-limited or
//! overloaded error with a retry-after hint gets a `Retry-After` header.
//! The body carries the request id (from [`RequestId::current`]) and, for
//! validation failures, every field error. A 5xx body never carries the
//! error's message: the whole chain goes to the log instead, under the same
//! request id. Internal errors are logged each time; the ones that come in
//! floods under overload (overloaded, timed out, unavailable) at most once
//! a second per kind, then with the count of those left out (the metrics
//! count every one).
//!
//! ```
//! use axum::response::IntoResponse;
//! use pattern_api::ApiError;
//! use pattern_error::{Error, Kind};
//!
//! let response = ApiError::from(Error::new(Kind::NotFound, "item 42 does not exist")).into_response();
//! assert_eq!(response.status(), 404);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! ```

mod throttle;

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use pattern_error::{Error, Kind};

use crate::problem::{self, FieldError, Problem};
use crate::request_id::RequestId;

/// A failed request: an [`Error`] and, for validation failures, the field
/// errors. Handlers return `Result<T, ApiError>`; `?` converts any
/// [`Error`] (and whatever converts into one).
#[derive(Debug)]
pub struct ApiError {
    error: Error,
    fields: Vec<FieldError>,
    status: Option<StatusCode>,
}

impl ApiError {
    /// An error whose status comes from its kind.
    pub fn new(error: Error) -> Self {
        Self {
            error,
            fields: Vec::new(),
            status: None,
        }
    }

    /// A validation failure (422) listing every bad field.
    pub fn invalid(fields: Vec<FieldError>) -> Self {
        let count = fields.len();
        Self {
            error: Error::new(
                Kind::InvalidInput,
                format!("{count} invalid field{}", if count == 1 { "" } else { "s" }),
            ),
            fields,
            status: None,
        }
    }

    /// Answers with `status` instead of the kind's (for the few HTTP
    /// conditions with no kind of their own: 405, 415).
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// The error.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
            .unwrap_or_else(|| problem::status_for(self.error.kind()))
    }
}

impl<E: Into<Error>> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self::new(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let request_id = RequestId::current();
        if status.is_server_error() {
            throttle::trace(&self.error);
        }
        let mut problem = Problem::from_error(&self.error);
        problem.status = status.as_u16();
        if problem::title_for(self.error.kind().as_str()).is_none() {
            problem.title = status.canonical_reason().unwrap_or("Error").to_owned();
        }
        if status.is_server_error() {
            // An explicit 5xx status on a caller-fault kind: still no message.
            problem.detail = None;
        }
        problem = problem.with_ids(request_id.as_ref().map(RequestId::as_str));
        problem.errors = self.fields;
        let body = serde_json::to_vec(&problem)
            .unwrap_or_else(|_| b"{\"title\":\"Internal Server Error\",\"status\":500}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(problem::CONTENT_TYPE),
        );
        if matches!(
            self.error.kind(),
            Kind::RateLimited | Kind::Overloaded | Kind::Unavailable
        ) {
            let after = self.error.retry_after().unwrap_or(Duration::from_secs(1));
            // Whole seconds, rounded up, at least 1 (saturating: `Duration::MAX` must not overflow).
            let secs = after
                .as_secs()
                .saturating_add(u64::from(after.subsec_nanos() > 0));
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
