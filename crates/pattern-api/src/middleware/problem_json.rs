//! Turning plain error responses into problem+json.

use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Request, header};
use tower::{Layer, Service};

use super::{Finish, ResponseFuture};
use crate::problem::{CONTENT_TYPE, Problem, is_json_media_type};
use crate::request_id::RequestId;

/// Rewrites an error response (status 400 or above) that is not already
/// JSON (`application/json`, problem+json, any `application/…+json`) into a
/// problem for its status, keeping its headers (`Allow`, `Retry-After`)
/// but those that described the old body (`Content-Encoding`, a range, a
/// validator). Use it with `axum::middleware::map_response`
/// on the whole router, so that what axum and tower-http answer on their
/// own (unknown route, wrong method, body too large, timeout) comes out as
/// problem+json too.
///
/// ```
/// use axum::{Router, middleware, routing::get};
/// use pattern_api::middleware::problem_json;
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(middleware::map_response(problem_json));
/// ```
pub async fn problem_json(mut response: Response) -> Response {
    rewrite(&mut response);
    response
}

/// Rewrites `response` in place as [`problem_json`] describes.
pub(crate) fn rewrite(response: &mut Response) {
    let status = response.status();
    if status.as_u16() < 400 {
        return;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json_media_type);
    if is_json {
        return;
    }
    let mut problem = Problem::new(status);
    // The code a handler's error of the same status would carry.
    if let Some(kind) = crate::problem::kind_for(status) {
        problem = problem.with_code(kind.as_str());
    }
    problem = problem.with_ids(RequestId::current().as_ref().map(RequestId::as_str));
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    // What described the old body no longer holds for the new one (an
    // encoding, a range, a validator); `Allow`, `Retry-After` and
    // `WWW-Authenticate` stay.
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::CONTENT_RANGE,
        header::CONTENT_LANGUAGE,
        header::ETAG,
        header::LAST_MODIFIED,
    ] {
        headers.remove(name);
    }
    *response.body_mut() = Body::from(body);
}

/// Rewrites error responses into problem+json as [`problem_json`] does, as
/// a tower layer whose future is a named type: no allocation per request
/// (`axum::middleware::map_response` boxes one). [`ApiStack`] does the
/// same rewrite in its own service.
///
/// [`ApiStack`]: crate::stack::ApiStack
///
/// ```
/// use axum::{Router, routing::get};
/// use pattern_api::middleware::ProblemJsonLayer;
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hi" }))
///     .layer(ProblemJsonLayer);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ProblemJsonLayer;

impl<S> Layer<S> for ProblemJsonLayer {
    type Service = ProblemJson<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProblemJson { inner }
    }
}

/// The service of [`ProblemJsonLayer`].
#[derive(Clone, Copy, Debug)]
pub struct ProblemJson<S> {
    inner: S,
}

/// The rewrite, run on the inner service's response.
#[derive(Clone, Copy, Debug)]
pub struct Rewrite(());

impl Finish for Rewrite {
    fn finish(self, response: &mut Response) {
        rewrite(response);
    }
}

impl<S, B> Service<Request<B>> for ProblemJson<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Rewrite>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ResponseFuture::inner(self.inner.call(request), Rewrite(()))
    }
}
