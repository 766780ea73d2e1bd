//! Envelopes, problem+json errors and request ids through a real axum
//! router (oneshot, no socket).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use pattern_api::request_id::RequestIdLayer;
use pattern_api::response::Envelope;
use pattern_api::{ApiError, FieldError};
use pattern_error::{Context, Error, Kind};
use serde_json::{Value, json};
use tower::ServiceExt;

fn app() -> Router {
    Router::new()
        .route(
            "/item",
            get(|| async { Envelope::ok(json!({"id": 1, "name": "bolt"})) }),
        )
        .route(
            "/items",
            get(|| async { Envelope::page(vec![1, 2], Some("next-2".to_owned())) }),
        )
        .route(
            "/missing",
            get(|| async {
                Err::<(), _>(ApiError::from(Error::new(
                    Kind::NotFound,
                    "item 42 does not exist",
                )))
            }),
        )
        .route(
            "/broken",
            get(|| async {
                let io = std::io::Error::other("password=hunter2 refused by db.internal");
                Err::<(), ApiError>(
                    Err::<(), _>(io)
                        .context("loading item 42")
                        .unwrap_err()
                        .into(),
                )
            }),
        )
        .route(
            "/limited",
            get(|| async {
                Err::<(), ApiError>(
                    Error::new(Kind::RateLimited, "slow down")
                        .with_retry_after(Duration::from_millis(1500))
                        .into(),
                )
            }),
        )
        .route(
            "/invalid",
            get(|| async {
                Err::<(), _>(ApiError::invalid(vec![
                    FieldError {
                        field: "name".into(),
                        message: "must not be empty".into(),
                        code: "length".into(),
                    },
                    FieldError {
                        field: "quantity".into(),
                        message: "must be at most 1000000".into(),
                        code: "range".into(),
                    },
                ]))
            }),
        )
        .layer(RequestIdLayer)
}

async fn call(path: &str, request_id: Option<&str>) -> (StatusCode, http::HeaderMap, Value) {
    let mut req = Request::get(path);
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    let response = app()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, headers, body)
}

#[tokio::test]
async fn success_envelope_carries_the_request_id() {
    let (status, headers, body) = call("/item", Some("req-abc")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-request-id"], "req-abc", "echoed");
    assert_eq!(
        body,
        json!({"data": {"id": 1, "name": "bolt"}, "meta": {"request_id": "req-abc"}})
    );

    let (_, headers, body) = call("/items", None).await;
    let generated = headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 16, "generated when absent");
    assert_eq!(body["meta"]["request_id"], generated.as_str());
    assert_eq!(body["meta"]["next_cursor"], "next-2");
    assert_eq!(body["data"], json!([1, 2]));
}

#[tokio::test]
async fn errors_are_problem_json_with_the_request_id() {
    let (status, headers, body) = call("/missing", Some("r1")).await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["title"], "Not found");
    assert_eq!(body["status"], 404);
    assert_eq!(body["detail"], "item 42 does not exist");
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["request_id"], "r1");
}

#[tokio::test]
async fn server_errors_hide_internal_messages() {
    let (status, _, body) = call("/broken", Some("r2")).await;
    assert_eq!(status, 500);
    let text = body.to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("loading item"),
        "{text}"
    );
    assert_eq!(body["request_id"], "r2", "the id leads to the logged chain");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let (status, headers, body) = call("/limited", None).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "2", "1.5 s rounds up");
    assert_eq!(body["code"], "rate_limited");
}

#[tokio::test]
async fn validation_errors_list_every_field() {
    let (status, _, body) = call("/invalid", None).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "quantity"]);
    assert_eq!(body["errors"][1]["code"], "range");
}
