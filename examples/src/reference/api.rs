//! The `/v1` routes, described for OpenAPI as they are declared.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use garde::Validate;
use patterns::api::extract::{Valid, ValidQuery};
use patterns::api::response::Envelope;
use patterns::api::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{Item, NewItem, Store};

/// The document's fixed parts; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "reference-service",
        description = "An inventory API built from the patterns crates. Successes are `{\"data\", \"meta\"}` envelopes; errors are RFC 9457 `application/problem+json`, each `type` described at `/problems/{code}`.",
        version = env!("CARGO_PKG_VERSION")
    ),
    tags((name = "items", description = "The inventory"), (name = "demo", description = "Timeouts and panics, on purpose"))
)]
pub(crate) struct ApiDoc;

/// The `/v1` routes and their OpenAPI document; the demo routes only when
/// `demo` is on.
pub(crate) fn routes(store: Store, demo: bool) -> OpenApiRouter {
    let routes = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_item, list_items))
        .routes(routes!(get_item, delete_item));
    let routes = if demo {
        routes.routes(routes!(delay)).routes(routes!(panic))
    } else {
        routes
    };
    routes.with_state(store)
}

/// Creates an item.
#[utoipa::path(
    post, path = "/v1/items", tag = "items",
    request_body = NewItem,
    responses(
        (status = 201, description = "Created; `data` is the item", body = Envelope<Item>),
        (status = 503, description = "The store is full, or unavailable; try again after `Retry-After` seconds", content_type = "application/problem+json"),
    )
)]
async fn create_item(
    State(store): State<Store>,
    Valid(new): Valid<NewItem>,
) -> Result<Envelope<Item>, ApiError> {
    Ok(Envelope::created(store.create(new).await?))
}

/// Reads an item.
#[utoipa::path(
    get, path = "/v1/items/{id}", tag = "items",
    params(("id" = i64, Path, description = "The item's id", example = 1)),
    responses(
        (status = 200, description = "`data` is the item", body = Envelope<Item>),
        (status = 404, description = "No such item", content_type = "application/problem+json"),
    )
)]
async fn get_item(
    State(store): State<Store>,
    Path(id): Path<i64>,
) -> Result<Envelope<Item>, ApiError> {
    Ok(Envelope::ok(store.get(id).await?))
}

/// Deletes an item.
#[utoipa::path(
    delete, path = "/v1/items/{id}", tag = "items",
    params(("id" = i64, Path, description = "The item's id", example = 1)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such item", content_type = "application/problem+json"),
    )
)]
async fn delete_item(
    State(store): State<Store>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    store.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The query of `GET /v1/items`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Items per page, 1 to 100 (20 when absent).
    #[garde(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100, example = 20)]
    limit: Option<i64>,
    /// `meta.next_cursor` of the previous page.
    #[garde(skip)]
    #[param(pattern = "^[0-9]{1,18}$", example = "0")]
    cursor: Option<String>,
}

/// Lists items in creation order, a page at a time.
#[utoipa::path(
    get, path = "/v1/items", tag = "items",
    params(ListQuery),
    responses(
        (status = 200, description = "`data` is a page of items; `meta.next_cursor` continues it (null on the last page)", body = Envelope<Vec<Item>>),
        (status = 422, description = "`limit` or `cursor` invalid", content_type = "application/problem+json"),
    )
)]
async fn list_items(
    State(store): State<Store>,
    ValidQuery(query): ValidQuery<ListQuery>,
) -> Result<Envelope<Vec<Item>>, ApiError> {
    let after = match &query.cursor {
        None => 0,
        Some(cursor) => parse_cursor(cursor).ok_or_else(|| {
            ApiError::invalid(vec![FieldError {
                field: "cursor".to_owned(),
                message: "not a cursor this service gave out".to_owned(),
                code: "value".to_owned(),
            }])
        })?,
    };
    let limit = query
        .limit
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(20);
    let page = store.list(after, limit).await?;
    Ok(Envelope::page(
        page.items,
        page.next_after.map(|id| id.to_string()),
    ))
}

/// A cursor, as the schema states it (`^[0-9]{1,18}$`): 1 to 18 digits
/// and nothing else (no sign: Rust's parse takes `+1`).
fn parse_cursor(text: &str) -> Option<i64> {
    let digits = (1..=18).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

/// The query of `GET /v1/demo/delay`.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DelayQuery {
    /// How long to wait, 0 to 10 000 ms.
    #[garde(range(min = 0, max = 10_000))]
    #[param(minimum = 0, maximum = 10_000)]
    ms: i64,
}

/// What `GET /v1/demo/delay` answers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Waited {
    /// How long it waited.
    waited_ms: i64,
}

/// Waits, then answers; past the request timeout the answer is 504.
#[utoipa::path(
    get, path = "/v1/demo/delay", tag = "demo",
    params(DelayQuery),
    responses(
        (status = 200, description = "Waited", body = Envelope<Waited>),
        (status = 504, description = "Slower than the request timeout", content_type = "application/problem+json"),
    )
)]
async fn delay(ValidQuery(query): ValidQuery<DelayQuery>) -> Envelope<Waited> {
    tokio::time::sleep(Duration::from_millis(query.ms.unsigned_abs())).await;
    Envelope::ok(Waited {
        waited_ms: query.ms,
    })
}

/// Panics; the answer is a 500 problem that says nothing of the panic.
#[utoipa::path(
    get, path = "/v1/demo/panic", tag = "demo",
    responses((status = 500, description = "The handler panicked", content_type = "application/problem+json"))
)]
async fn panic() -> StatusCode {
    panic!("demo panic: internal state 0xDEADBEEF must not leak")
}

#[cfg(test)]
mod tests {
    use garde::Validate;
    use serde_json::Value;
    use utoipa::{IntoParams, PartialSchema};

    use super::{ListQuery, parse_cursor};
    use crate::reference::store::NewItem;

    fn number(schema: &Value, key: &str) -> i64 {
        schema[key]
            .as_i64()
            .unwrap_or_else(|| panic!("no {key} in {schema}"))
    }

    /// The schema states the validation rules: at each bound it gives, the
    /// value passes validation, and one past it fails (a rule changed in
    /// one place only fails this).
    #[test]
    fn the_schema_and_the_validation_agree_at_every_bound() {
        let schema = serde_json::to_value(NewItem::schema()).unwrap();
        let (name, quantity) = (
            &schema["properties"]["name"],
            &schema["properties"]["quantity"],
        );
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(required, ["name", "quantity"]);
        let (short, long) = (number(name, "minLength"), number(name, "maxLength"));
        let (low, high) = (number(quantity, "minimum"), number(quantity, "maximum"));
        let valid = |chars: i64, quantity: i64| {
            NewItem {
                // Characters, as JSON Schema counts them (not bytes).
                name: "é".repeat(usize::try_from(chars).unwrap()),
                quantity,
            }
            .validate()
            .is_ok()
        };
        assert!(valid(short, low) && valid(long, high));
        assert!(!valid(short - 1, low), "shorter than minLength {short}");
        assert!(!valid(long + 1, low), "longer than maxLength {long}");
        assert!(!valid(short, low - 1), "below minimum {low}");
        assert!(!valid(short, high + 1), "above maximum {high}");

        let params = serde_json::to_value(ListQuery::into_params(|| None)).unwrap();
        let limit = params
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["in"], "query");
        assert_ne!(limit["required"], true);
        let (low, high) = (
            number(&limit["schema"], "minimum"),
            number(&limit["schema"], "maximum"),
        );
        let valid = |limit: i64| {
            ListQuery {
                limit: Some(limit),
                cursor: None,
            }
            .validate()
            .is_ok()
        };
        assert!(valid(low) && valid(high) && !valid(low - 1) && !valid(high + 1));

        // The cursor's pattern, and the parse that stands for it.
        let cursor = params
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "cursor")
            .unwrap();
        assert_eq!(cursor["schema"]["pattern"], "^[0-9]{1,18}$");
        for good in ["0", "7", "007", "999999999999999999"] {
            assert!(parse_cursor(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "+1",
            "-1",
            "1e3",
            " 1",
            "1 ",
            "0x1",
            "1000000000000000000",
        ] {
            assert!(parse_cursor(bad).is_none(), "{bad}");
        }
        // And the name's: no NUL.
        assert_eq!(name["pattern"], "^[^\\x00]*$");
        let nul = NewItem {
            name: "a\0b".to_owned(),
            quantity: 1,
        };
        assert!(nul.validate().is_err());
    }
}
