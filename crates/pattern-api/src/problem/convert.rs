//! Turning plain error responses into problem+json.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

use super::{CONTENT_TYPE, Problem};
use crate::request_id::RequestId;

/// Rewrites an error response (status 400 or above) that is not already
/// problem+json or JSON into a problem for its status, keeping its headers
/// (`Allow`, `Retry-After`). Use it with `axum::middleware::map_response`
/// on the whole router, so that what axum and tower-http answer on their
/// own (unknown route, wrong method, body too large, timeout) comes out as
/// problem+json too.
///
/// ```
/// use axum::{Router, middleware, routing::get};
/// use pattern_api::problem::problem_json;
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(middleware::map_response(problem_json));
/// ```
pub async fn problem_json(response: Response) -> Response {
    let status = response.status();
    if status.as_u16() < 400 {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(CONTENT_TYPE) || ct.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, _plain_body) = response.into_parts();
    let mut problem = Problem::new(status);
    if let Some(id) = RequestId::current() {
        problem = problem.with_request_id(id.as_str());
    }
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body)).into_response()
}
