//! RFC 9457 problem details (`application/problem+json`).
//!
//! [`Problem`] is the body every error response of the workspace carries, and
//! [`status_for`] the one table from `pattern-error` kinds to statuses;
//! [`kind_for`] and [`error_for`] read an upstream's answer back as an
//! error, for clients.
//!
//! A problem with a code has the type `/problems/{code}` (a reference
//! relative to the service: [`type_uri`]); [`PROBLEM_TYPES`] describes each
//! code the workspace answers with, and `pattern-server`'s docs routes
//! serve those descriptions at that address, as RFC 9457 asks of a type.

mod media;
mod status;
mod types;

use http::StatusCode;
use pattern_error::{Error, Kind};
use serde::{Deserialize, Serialize};

pub use types::{PROBLEM_TYPES, ProblemType, TYPE_PREFIX, title_for, type_uri};

pub(crate) use media::is_json_media_type;
pub use status::{CLIENT_CLOSED_REQUEST, error_for, kind_for, status_for};

/// The media type of problem details.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The field's path (`quantity`, `items[2].name`).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// A stable code: the validation rule that failed (`length`, `range`,
    /// `pattern`, `email`, `ascii`, … `custom` for a custom rule), or what
    /// did not fit in a JSON body (`type`, `required`, `unknown_field`,
    /// `value`, `length`).
    pub code: String,
}

/// A problem details object (RFC 9457) with this workspace's extensions.
///
/// ```
/// use pattern_api::problem::Problem;
/// use pattern_error::{Error, Kind};
///
/// let err = Error::new(Kind::NotFound, "item 42 does not exist");
/// let problem = Problem::from_error(&err).with_request_id("req-1");
/// let json = serde_json::to_value(&problem).unwrap();
/// assert_eq!(json["status"], 404);
/// assert_eq!(json["title"], "Not found");
/// assert_eq!(json["detail"], "item 42 does not exist");
/// assert_eq!(json["code"], "not_found");
/// assert_eq!(json["type"], "/problems/not_found");
/// assert_eq!(json["request_id"], "req-1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Problem {
    /// A URI reference naming the problem type: `/problems/{code}` (its
    /// description, relative to the service), or `about:blank` when the
    /// status says it all.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(format = "uri-reference"))]
    pub type_uri: String,
    /// A short summary of the problem type: its title in
    /// [`PROBLEM_TYPES`], the same for every occurrence; for a code of
    /// the service's own, or none, the status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    #[cfg_attr(feature = "openapi", schema(minimum = 400, maximum = 599))]
    pub status: u16,
    /// What went wrong for this occurrence. Never set for 5xx answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A URI naming this occurrence (usually the request path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// A stable machine-readable code (an error kind name, or a more precise one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The id of the request, to find the full story in the logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The id of the request's trace (32 hex digits), to find it in a
    /// tracing backend; set when the request belongs to an OpenTelemetry
    /// trace (feature `opentelemetry`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Every invalid field, for a validation problem (`invalid_input`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem with `status`, titled by its reason phrase.
    pub fn new(status: StatusCode) -> Self {
        Self {
            type_uri: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: None,
            instance: None,
            code: None,
            request_id: None,
            trace_id: None,
            errors: Vec::new(),
        }
    }

    /// The problem for `error`: status from its kind, code from its kind name,
    /// and the error's message as detail unless the status is 5xx (internal
    /// messages never reach the caller).
    pub fn from_error(error: &Error) -> Self {
        let status = status_for(error.kind());
        let mut problem = Self::new(status).with_code(error.kind().as_str());
        if !status.is_server_error() {
            problem.detail = Some(error.message().to_owned());
        }
        problem
    }

    /// The problem for a bare kind, with no detail.
    pub fn from_kind(kind: Kind) -> Self {
        Self::new(status_for(kind)).with_code(kind.as_str())
    }

    /// Sets the detail.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the instance.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Sets the code, the type that names it ([`type_uri`]) and, for a
    /// code of [`PROBLEM_TYPES`], the type's title.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        let code = code.into();
        self.type_uri = type_uri(&code);
        if let Some(title) = title_for(&code) {
            title.clone_into(&mut self.title);
        }
        self.code = Some(code);
        self
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Sets the request id, and the current trace id when there is one
    /// (feature `opentelemetry`): what
    /// every error the stack answers carries.
    #[must_use]
    pub fn with_ids(mut self, request_id: Option<&str>) -> Self {
        self.request_id = request_id.map(str::to_owned);
        self.trace_id = current_trace_id();
        self
    }

    /// The status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The current span's trace id, with the feature on.
fn current_trace_id() -> Option<String> {
    #[cfg(feature = "opentelemetry")]
    {
        crate::trace_context::current_trace_id()
    }
    #[cfg(not(feature = "opentelemetry"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pattern_error::Context;

    #[test]
    fn server_errors_carry_no_internal_message() {
        let err = Err::<(), _>(std::io::Error::other("password=hunter2 at db.internal"))
            .context("loading order")
            .unwrap_err();
        let problem = Problem::from_error(&err);
        assert_eq!(problem.status, 500);
        let json = serde_json::to_string(&problem).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(!json.contains("loading order"), "{json}");
    }
}
