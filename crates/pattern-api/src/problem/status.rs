//! The one table from error kinds to HTTP status codes.

use http::StatusCode;
use pattern_error::Kind;

/// The HTTP status for an error of `kind`.
///
/// | kind | status |
/// | --- | --- |
/// | malformed | 400 Bad Request |
/// | unauthenticated | 401 Unauthorized |
/// | forbidden | 403 Forbidden |
/// | not found | 404 Not Found |
/// | conflict | 409 Conflict |
/// | too large | 413 Content Too Large |
/// | invalid input | 422 Unprocessable Content |
/// | rate limited | 429 Too Many Requests |
/// | cancelled | 499 (client closed request) |
/// | internal | 500 Internal Server Error |
/// | overloaded, unavailable | 503 Service Unavailable |
/// | timeout | 504 Gateway Timeout |
///
/// Kinds added to `pattern-error` later map to 500 until they get a row.
///
/// ```
/// use http::StatusCode;
/// use pattern_api::problem::status_for;
/// use pattern_error::Kind;
///
/// assert_eq!(status_for(Kind::RateLimited), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(status_for(Kind::InvalidInput), StatusCode::UNPROCESSABLE_ENTITY);
/// ```
pub fn status_for(kind: Kind) -> StatusCode {
    match kind {
        Kind::Malformed => StatusCode::BAD_REQUEST,
        Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
        Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Kind::Cancelled => CLIENT_CLOSED_REQUEST,
        Kind::Overloaded | Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error kind of an answer with `status`, for a client that turns an
/// upstream's HTTP answers into errors; `None` for success and redirects.
/// Where [`status_for`] has a row, the kind found maps back to the same
/// status; 502 and 503 are unavailable, 408 and 504 timeouts (transient:
/// retried, and failures to a breaker or a balancer), 415 malformed, other
/// 4xx invalid input, other 5xx internal.
///
/// ```
/// use http::StatusCode;
/// use pattern_api::problem::kind_for;
/// use pattern_error::Kind;
///
/// assert_eq!(kind_for(StatusCode::SERVICE_UNAVAILABLE), Some(Kind::Unavailable));
/// assert_eq!(kind_for(StatusCode::NOT_FOUND), Some(Kind::NotFound));
/// assert_eq!(kind_for(StatusCode::OK), None);
/// ```
pub fn kind_for(status: StatusCode) -> Option<Kind> {
    let kind = match status.as_u16() {
        400 => Kind::Malformed,
        401 => Kind::Unauthenticated,
        403 => Kind::Forbidden,
        404 | 410 => Kind::NotFound,
        408 | 504 => Kind::Timeout,
        409 | 412 => Kind::Conflict,
        413 => Kind::TooLarge,
        415 => Kind::Malformed,
        429 => Kind::RateLimited,
        499 => Kind::Cancelled,
        502 | 503 => Kind::Unavailable,
        code if code < 400 => return None,
        _ if status.is_client_error() => Kind::InvalidInput,
        _ => Kind::Internal,
    };
    Some(kind)
}

/// The error for an upstream's answer with `status` and `headers`
/// ([`kind_for`]), carrying its `Retry-After` (in seconds) when it gives
/// one; `None` for success and redirects.
///
/// ```
/// use std::time::Duration;
/// use http::{HeaderMap, StatusCode};
/// use pattern_api::problem::error_for;
/// use pattern_error::Kind;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "2".parse().unwrap());
/// let err = error_for(StatusCode::TOO_MANY_REQUESTS, &headers).unwrap();
/// assert_eq!(err.kind(), Kind::RateLimited);
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
/// ```
pub fn error_for(status: StatusCode, headers: &http::HeaderMap) -> Option<pattern_error::Error> {
    let kind = kind_for(status)?;
    let error = pattern_error::Error::new(kind, format!("upstream answered {status}"));
    let retry_after = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.trim().parse().ok())
        .map(std::time::Duration::from_secs);
    Some(match retry_after {
        Some(after) => error.with_retry_after(after),
        None => error,
    })
}

/// 499, the de-facto status for a request the client abandoned.
pub const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => panic!("499 is a valid status code"),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_found_map_back_to_their_status() {
        for kind in Kind::ALL {
            let status = status_for(kind);
            let found = kind_for(status).expect("an error status");
            assert_eq!(status_for(found), status, "{kind} -> {status} -> {found}");
        }
        for code in [100, 200, 204, 301, 304] {
            assert_eq!(kind_for(StatusCode::from_u16(code).unwrap()), None);
        }
        assert_eq!(kind_for(StatusCode::IM_A_TEAPOT), Some(Kind::InvalidInput));
        assert_eq!(kind_for(StatusCode::NOT_IMPLEMENTED), Some(Kind::Internal));
    }

    #[test]
    fn only_caller_faults_are_4xx() {
        for kind in Kind::ALL {
            let status = status_for(kind);
            assert_eq!(
                status.is_client_error(),
                kind.is_caller_fault(),
                "{kind} -> {status}"
            );
        }
    }
}
