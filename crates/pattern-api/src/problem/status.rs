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

/// 499, the de-facto status for a request the client abandoned.
pub const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => panic!("499 is a valid status code"),
};

#[cfg(test)]
mod tests {
    use super::*;

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
