//! Errors through `ApiError` and `IntoResponse`.

use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use patterns::api::problem::status_for;
use patterns::api::{ApiError, FieldError};
use patterns::error::{Error, Kind};
use serde_json::Value;

use super::{Violation, collect, problem_body};

/// How the error of a [`ProblemCase`] is made.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ProblemInput {
    /// `ApiError::from(error)` for an [`Error`] of `kind`.
    Error {
        /// The error's kind.
        kind: Kind,
        /// Its message; `None` for [`Error::from_kind`] (the kind's
        /// description).
        message: Option<String>,
        /// The text of an `std::io::Error` set as its source; it must never
        /// reach a response.
        source: Option<String>,
        /// Its retry-after hint.
        retry_after: Option<Duration>,
    },
    /// [`ApiError::invalid`] with these field errors.
    Invalid(Vec<FieldError>),
}

/// One error for [`check_problem`].
#[derive(Clone, Debug)]
pub struct ProblemCase {
    /// The error.
    pub input: ProblemInput,
    /// A status set with [`ApiError::with_status`]; the check expects an
    /// error status (400 to 599) here.
    pub status: Option<StatusCode>,
}

/// Turns the case into an [`ApiError`], answers with it and checks the
/// response:
///
/// - its status is the explicit one, or else `status_for(kind)`, and is
///   4xx or 5xx;
/// - it is `application/problem+json`: `type` the code's (`/problems/{code}`), `title` the
///   type's title, `status` the response's, `code` the kind's
///   name, nothing else but `detail`, `request_id` and `errors`;
/// - `detail` is the error's message when both the response's status and
///   the kind's are 4xx, and absent otherwise;
/// - a 5xx body carries neither the message nor the source's text (unless
///   short, under 8 characters, or part of the title or code anyway);
///   no body ever carries the source's text;
/// - `errors` lists the field errors as given, and is absent without them;
/// - `Retry-After` is set exactly for rate-limited, overloaded and
///   unavailable errors: the hint in whole seconds rounded up, at least 1,
///   and 1 without a hint.
pub fn check_problem(case: &ProblemCase) -> Result<u16, Violation> {
    let (error, fields) = match &case.input {
        ProblemInput::Error {
            kind,
            message,
            source,
            retry_after,
        } => {
            let mut error = match (message, source) {
                (Some(message), Some(source)) => Error::with_source(
                    *kind,
                    message.clone(),
                    std::io::Error::other(source.clone()),
                ),
                (Some(message), None) => Error::new(*kind, message.clone()),
                (None, Some(source)) => {
                    Error::from_std(std::io::Error::other(source.clone())).with_kind(*kind)
                }
                (None, None) => Error::from_kind(*kind),
            };
            if let Some(after) = retry_after {
                error = error.with_retry_after(*after);
            }
            (ApiError::from(error), &[][..])
        }
        ProblemInput::Invalid(fields) => (ApiError::invalid(fields.clone()), &fields[..]),
    };
    let error = match case.status {
        Some(status) => error.with_status(status),
        None => error,
    };
    let kind = error.error().kind();
    let message = error.error().message().to_owned();
    let retry_after = error.error().retry_after();
    let expected = case.status.unwrap_or_else(|| status_for(kind));
    ensure!(
        error.status() == expected,
        "ApiError::status is {}, expected {expected}",
        error.status()
    );

    let response = error.into_response();
    let status = response.status();
    ensure!(status == expected, "answered {status}, expected {expected}");
    ensure!(
        status.is_client_error() || status.is_server_error(),
        "answered {status}, not an error status"
    );

    let after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().map(str::to_owned));
    if matches!(
        kind,
        Kind::RateLimited | Kind::Overloaded | Kind::Unavailable
    ) {
        let wanted = retry_after_secs(retry_after.unwrap_or(Duration::from_secs(1)));
        ensure!(
            matches!(&after, Some(Ok(secs)) if *secs == wanted.to_string()),
            "Retry-After {after:?} for {kind} with hint {retry_after:?}, expected {wanted}"
        );
    } else {
        ensure!(after.is_none(), "Retry-After {after:?} for {kind}");
    }

    let (parts, body) = response.into_parts();
    let problem = problem_body(&parts.headers, status.as_u16(), &collect(body)?)?;
    for key in problem.keys() {
        ensure!(
            matches!(
                key.as_str(),
                "type" | "title" | "status" | "detail" | "code" | "request_id" | "errors"
            ),
            "unexpected member {key:?} in {problem:?}"
        );
    }
    let title = patterns::api::problem::title_for(kind.as_str())
        .or(status.canonical_reason())
        .unwrap_or("Error");
    let str_of = |key: &str| problem.get(key).and_then(Value::as_str);
    let type_uri = patterns::api::problem::type_uri(kind.as_str());
    ensure!(
        str_of("type") == Some(type_uri.as_str()),
        "type: {problem:?}"
    );
    ensure!(
        str_of("title") == Some(title),
        "title, expected {title}: {problem:?}"
    );
    ensure!(
        str_of("code") == Some(kind.as_str()),
        "code, expected {kind}: {problem:?}"
    );

    let kind_is_server_error = status_for(kind).is_server_error();
    let detail = problem.get("detail");
    if status.is_server_error() || kind_is_server_error {
        ensure!(
            detail.is_none(),
            "a detail {detail:?} in a {status} for {kind}"
        );
    } else {
        ensure!(
            detail.and_then(Value::as_str) == Some(message.as_str()),
            "detail {detail:?}, expected the message {message:?}"
        );
    }

    // What the body may legitimately contain: the title, the code, the type
    // and whatever the caller put in field errors.
    let public = |text: &str| {
        title.contains(text)
            || kind.as_str().contains(text)
            || type_uri.contains(text)
            || fields.iter().any(|f| {
                f.field.contains(text) || f.message.contains(text) || f.code.contains(text)
            })
    };
    let mut secrets = Vec::new();
    if status.is_server_error() {
        secrets.push(message.as_str());
    }
    if let ProblemInput::Error {
        source: Some(source),
        ..
    } = &case.input
    {
        secrets.push(source.as_str());
    }
    let detail_allowed = detail.is_some();
    for secret in secrets {
        if secret.chars().count() < 8
            || public(secret)
            || (detail_allowed && message.contains(secret))
        {
            continue;
        }
        let shown = problem
            .iter()
            .filter(|(key, _)| *key != "errors")
            .any(|(_, value)| value.as_str().is_some_and(|s| s.contains(secret)));
        ensure!(
            !shown,
            "a {status} body shows internal text {secret:?}: {problem:?}"
        );
    }

    let listed = problem.get("errors");
    if fields.is_empty() {
        ensure!(listed.is_none(), "errors {listed:?} with no field errors");
    } else {
        let expected = serde_json::to_value(fields)
            .map_err(|e| Violation::new(format!("field errors do not serialize: {e}")))?;
        ensure!(
            listed == Some(&expected),
            "errors {listed:?}, expected {expected}"
        );
    }
    Ok(status.as_u16())
}

/// Seconds rounded up, at least 1, saturating at `u64::MAX`.
fn retry_after_secs(after: Duration) -> u64 {
    let secs = u128::from(after.as_secs()) + u128::from(after.subsec_nanos() > 0);
    u64::try_from(secs).unwrap_or(u64::MAX).max(1)
}
