//! The admin routes of the process registry, behind a bearer token.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
#[cfg(not(feature = "openapi"))]
use axum::routing::{get, post};
use pattern_api::ApiError;
use pattern_api::response::Envelope;
use pattern_component::config::Secret;
use pattern_error::{Error, Kind};

use super::{ChildInfo, ProcessRegistry};

#[derive(Clone)]
struct Admin {
    registry: ProcessRegistry,
    token: Secret<String>,
}

/// `GET /admin/processes`, `POST /admin/processes/{name}/stop` and
/// `POST /admin/processes/{name}/restart`, each requiring
/// `Authorization: Bearer <token>` (the scheme in any case, RFC 9110; the
/// token compared in time that depends on neither what was sent nor how
/// long it is); without it, 401 problem+json with `WWW-Authenticate:
/// Bearer` (RFC 6750: `error="invalid_token"` when a token was sent).
pub fn admin_router(registry: ProcessRegistry, token: Secret<String>) -> Router {
    #[cfg(feature = "openapi")]
    {
        admin_routes(registry, token).0
    }
    #[cfg(not(feature = "openapi"))]
    {
        Router::new()
            .route("/admin/processes", get(list))
            .route("/admin/processes/{name}/stop", post(stop))
            .route("/admin/processes/{name}/restart", post(restart))
            .with_state(Admin { registry, token })
    }
}

/// [`admin_router`] and its OpenAPI description, registered together: the
/// three operations, the `bearer` security scheme they require and their
/// 401 (feature `openapi`). Merge the description into the service's
/// document when the routes are served on its listener.
#[cfg(feature = "openapi")]
pub fn admin_routes(
    registry: ProcessRegistry,
    token: Secret<String>,
) -> (Router, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;

    OpenApiRouter::with_openapi(AdminDoc::openapi())
        .routes(routes!(list))
        .routes(routes!(stop))
        .routes(routes!(restart))
        .with_state(Admin { registry, token })
        .split_for_parts()
}

/// The security scheme of the admin routes.
#[cfg(feature = "openapi")]
#[derive(utoipa::OpenApi)]
#[openapi(
    modifiers(&BearerScheme),
    tags((name = "admin", description = "The process registry, behind a bearer token"))
)]
struct AdminDoc;

#[cfg(feature = "openapi")]
struct BearerScheme;

#[cfg(feature = "openapi")]
impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// Whether `presented` equals `expected`, in time that depends only on
/// `expected`'s length: every byte of it is compared, whatever was sent
/// and however long (a length check first would tell an attacker the
/// token's length).
fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(presented.len() != expected.len());
    for (i, byte) in expected.iter().enumerate() {
        let sent = presented.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(sent ^ byte);
    }
    diff == 0
}

/// The token of an `Authorization: Bearer <token>` header, the scheme
/// matched in any case; `None` without one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Why an admin request failed.
enum AdminError {
    /// No token (`false`) or a wrong one (`true`).
    Unauthorized {
        sent: bool,
    },
    Api(ApiError),
}

impl<E: Into<ApiError>> From<E> for AdminError {
    fn from(err: E) -> Self {
        AdminError::Api(err.into())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::Unauthorized { sent } => {
                let mut response = ApiError::from(Error::new(
                    Kind::Unauthenticated,
                    "a valid bearer token is required",
                ))
                .into_response();
                let challenge = if sent {
                    r#"Bearer realm="admin", error="invalid_token""#
                } else {
                    r#"Bearer realm="admin""#
                };
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
                response
            }
            AdminError::Api(err) => err.into_response(),
        }
    }
}

fn authorize(admin: &Admin, headers: &HeaderMap) -> Result<(), AdminError> {
    match bearer(headers) {
        Some(token) if constant_time_eq(token.as_bytes(), admin.token.expose().as_bytes()) => {
            Ok(())
        }
        presented => Err(AdminError::Unauthorized {
            sent: presented.is_some(),
        }),
    }
}

/// Lists the processes.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/admin/processes", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`data` is every process, by name", body = pattern_api::response::Envelope<Vec<ChildInfo>>),
        (status = 401, description = "No valid bearer token", headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"admin\"`"))),
    )
))]
async fn list(
    State(admin): State<Admin>,
    headers: HeaderMap,
) -> Result<Envelope<Vec<ChildInfo>>, AdminError> {
    authorize(&admin, &headers)?;
    Ok(Envelope::ok(admin.registry.list()))
}

/// Stops a process (at most its stop timeout, then aborts it).
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/admin/processes/{name}/stop", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The process's name", example = "expiry-sweeper")),
    responses(
        (status = 200, description = "`data` is the process, stopped", body = pattern_api::response::Envelope<ChildInfo>),
        (status = 401, description = "No valid bearer token", headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"admin\"`"))),
        (status = 404, description = "No process of that name"),
    )
))]
async fn stop(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Envelope<ChildInfo>, AdminError> {
    authorize(&admin, &headers)?;
    admin.registry.stop(&name).await?;
    Ok(Envelope::ok(
        admin.registry.get(&name).ok_or(Kind::NotFound)?,
    ))
}

/// Restarts a process (stops it first if it runs).
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/admin/processes/{name}/restart", tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The process's name", example = "expiry-sweeper")),
    responses(
        (status = 200, description = "`data` is the process, started again", body = pattern_api::response::Envelope<ChildInfo>),
        (status = 401, description = "No valid bearer token", headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"admin\"`"))),
        (status = 404, description = "No process of that name"),
        (status = 409, description = "A stop came while the old instance was ending: it stays stopped"),
    )
))]
async fn restart(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Envelope<ChildInfo>, AdminError> {
    authorize(&admin, &headers)?;
    admin.registry.restart(&name).await?;
    Ok(Envelope::ok(
        admin.registry.get(&name).ok_or(Kind::NotFound)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::{bearer, constant_time_eq};

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"), "a prefix");
        assert!(!constant_time_eq(b"s3cretX", b"s3cret"), "longer");
        assert!(!constant_time_eq(b"", b"s3cret"));
        assert!(
            !constant_time_eq(b"s3cret\0", b"s3cret"),
            "a trailing zero byte"
        );
    }

    #[test]
    fn the_bearer_scheme_matches_in_any_case() {
        let with = |value: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("authorization", value.parse().unwrap());
            bearer(&headers).map(str::to_owned)
        };
        assert_eq!(with("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("BEARER  abc ").as_deref(), Some("abc"));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(with("Bearerabc"), None);
    }
}
