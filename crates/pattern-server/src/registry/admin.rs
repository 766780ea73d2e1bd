//! The admin routes of the process registry, behind a bearer token.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use pattern_api::ApiError;
use pattern_api::response::Envelope;
use pattern_component::config::Secret;
use pattern_error::{Error, Kind};

use super::{ProcessInfo, ProcessRegistry};

#[derive(Clone)]
struct Admin {
    registry: ProcessRegistry,
    token: Secret<String>,
}

/// `GET /admin/processes`, `POST /admin/processes/{name}/stop` and
/// `POST /admin/processes/{name}/restart`, each requiring
/// `Authorization: Bearer <token>` (compared in constant time); without it,
/// 401 problem+json.
pub fn admin_router(registry: ProcessRegistry, token: Secret<String>) -> Router {
    Router::new()
        .route("/admin/processes", get(list))
        .route("/admin/processes/{name}/stop", post(stop))
        .route("/admin/processes/{name}/restart", post(restart))
        .with_state(Admin { registry, token })
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(admin: &Admin, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !presented.is_empty()
        && constant_time_eq(presented.as_bytes(), admin.token.expose().as_bytes())
    {
        Ok(())
    } else {
        Err(ApiError::from(Error::new(
            Kind::Unauthenticated,
            "a valid bearer token is required",
        )))
    }
}

async fn list(
    State(admin): State<Admin>,
    headers: HeaderMap,
) -> Result<Envelope<Vec<ProcessInfo>>, ApiError> {
    authorize(&admin, &headers)?;
    Ok(Envelope::ok(admin.registry.list()))
}

async fn stop(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Envelope<ProcessInfo>, ApiError> {
    authorize(&admin, &headers)?;
    admin.registry.stop(&name).await?;
    Ok(Envelope::ok(
        admin.registry.get(&name).ok_or(Kind::NotFound)?,
    ))
}

async fn restart(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Envelope<ProcessInfo>, ApiError> {
    authorize(&admin, &headers)?;
    admin.registry.restart(&name).await?;
    Ok(Envelope::ok(
        admin.registry.get(&name).ok_or(Kind::NotFound)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
    }
}
