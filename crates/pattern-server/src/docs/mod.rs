//! Documentation serving: the OpenAPI document at `/openapi.json` and an
//! interactive page at `/docs` that needs no internet (feature `openapi`).
//!
//! Describe routes with utoipa (`#[utoipa::path]` on handlers, collected
//! with `utoipa_axum::router::OpenApiRouter`), then mount [`routes`]. The
//! docs page is Swagger UI with its assets compiled into the binary
//! (`utoipa-swagger-ui`'s `vendored` build): it loads nothing from a CDN.
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

use axum::Router;
use utoipa::openapi::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// `/openapi.json` (the document) and `/docs` (Swagger UI, vendored).
pub fn routes(openapi: OpenApi) -> Router {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
}
