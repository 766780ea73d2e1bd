//! Documentation serving: the OpenAPI document at `/openapi.json`, an
//! interactive page at `/docs` that needs no internet, and the problem
//! types at `/problems` (feature `openapi`).
//!
//! Describe routes with utoipa (`#[utoipa::path]` on handlers, collected
//! with `utoipa_axum::router::OpenApiRouter`), complete the document with
//! the answers the middleware gives
//! ([`ApiStack::document`](pattern_api::stack::ApiStack::document)), then
//! mount [`routes`]. The docs page is Swagger UI with its assets compiled
//! into the binary (`utoipa-swagger-ui`'s `vendored` build): it loads
//! nothing from a CDN. Every problem's `type` (`/problems/{code}`) is a
//! page describing it, as RFC 9457 asks of a problem type.
//!
//! ```
//! use pattern_server::docs;
//! use utoipa::OpenApi;
//!
//! #[derive(OpenApi)]
//! #[openapi(info(title = "inventory", version = "1"))]
//! struct Api;
//!
//! let app: axum::Router = docs::routes(Api::openapi());
//! ```

use std::fmt::Write as _;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use pattern_api::problem::{PROBLEM_TYPES, ProblemType};
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// `/openapi.json` (the document), `/docs` (Swagger UI, vendored), and
/// [`problem_routes`].
pub fn routes(openapi: OpenApi) -> Router {
    Router::new()
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .merge(problem_routes())
}

/// `/problems` and `/problems/{code}`: the problem types, a page each.
/// They belong on the listener whose answers carry them (a service whose
/// documents are served apart, on a management listener, mounts these on
/// its API listener too).
pub fn problem_routes() -> Router {
    Router::new()
        .route("/problems", get(|| async { Html(index()) }))
        .route("/problems/{code}", get(problem_type))
}

async fn problem_type(Path(code): Path<String>) -> Response {
    match PROBLEM_TYPES.iter().find(|t| t.code == code) {
        Some(found) => Html(page(found)).into_response(),
        // A plain 404 (a problem+json one under pattern-api's stack).
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such problem type\n",
        )
            .into_response(),
    }
}

fn index() -> String {
    let mut html = head("Problem types");
    html.push_str("<h1>Problem types</h1>\n<p>Every error answer is an RFC 9457 problem (<code>application/problem+json</code>) whose <code>type</code> is one of these.</p>\n<dl>\n");
    for t in PROBLEM_TYPES {
        let _ = writeln!(
            html,
            "<dt id=\"{code}\"><a href=\"/problems/{code}\"><code>{code}</code></a> ({status}) {title}</dt><dd>{description}</dd>",
            code = t.code,
            status = t.status,
            title = escape(t.title),
            description = escape(t.description),
        );
    }
    html.push_str("</dl>\n</body></html>\n");
    html
}

fn page(t: &ProblemType) -> String {
    let mut html = head(t.title);
    let _ = writeln!(
        html,
        "<h1>{title}</h1>\n<p>Type <code>/problems/{code}</code>, code <code>{code}</code>, usually status {status}.</p>\n<p>{description}</p>\n<p><a href=\"/problems\">Every problem type</a></p>\n</body></html>",
        title = escape(t.title),
        code = t.code,
        status = t.status,
        description = escape(t.description),
    );
    html
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n",
        escape(title)
    )
}

/// Text for HTML: `&`, `<`, `>` and `"` escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}
