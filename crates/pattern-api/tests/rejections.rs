//! Every rejection comes out as problem+json with the right status
//! (table-driven, oneshot through a real axum router).

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::middleware::map_response;
use axum::routing::{get, post};
use garde::Validate;
use http::{Request, StatusCode};
use pattern_api::extract::{Valid, ValidQuery};
use pattern_api::middleware::problem_json;
use pattern_api::request_id::RequestIdLayer;
use pattern_api::response::Envelope;
use pattern_api::testing::TestClient;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Deserialize, Serialize, Validate)]
struct NewItem {
    #[garde(length(min = 1, max = 100))]
    name: String,
    #[garde(range(min = 0, max = 1_000_000))]
    quantity: u32,
}

#[derive(Debug, Deserialize, Validate)]
struct Page {
    #[garde(range(min = 1, max = 100))]
    limit: u32,
}

fn app() -> Router {
    Router::new()
        .route(
            "/items",
            post(|Valid(item): Valid<NewItem>| async move { Envelope::created(item) }),
        )
        .route(
            "/items",
            get(|ValidQuery(page): ValidQuery<Page>| async move { Envelope::ok(page.limit) }),
        )
        .layer(DefaultBodyLimit::max(64))
        .layer(map_response(problem_json))
        .layer(RequestIdLayer)
}

async fn send(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, http::HeaderMap, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("x-request-id", "t-1");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let response = TestClient::new(app())
        .request(req.body(Body::from(body.to_owned())).unwrap())
        .await;
    let json = response.json_value();
    (response.status, response.headers, json)
}

#[tokio::test]
async fn rejections_are_problem_json() {
    const JSON: Option<&str> = Some("application/json");
    let cases: &[(&str, &str, Option<&str>, &str, u16)] = &[
        (
            "POST",
            "/items",
            JSON,
            r#"{"name":"bolt","quantity":3}"#,
            201,
        ),
        ("POST", "/items", JSON, r#"{"name": "bolt", "#, 400),
        ("POST", "/items", JSON, r#"{"name": 7, "quantity": 3}"#, 422),
        (
            "POST",
            "/items",
            Some("text/plain"),
            r#"{"name":"bolt","quantity":3}"#,
            415,
        ),
        (
            "POST",
            "/items",
            None,
            r#"{"name":"bolt","quantity":3}"#,
            415,
        ),
        (
            "POST",
            "/items",
            JSON,
            &format!(r#"{{"name":"{}","quantity":3}}"#, "x".repeat(100)),
            413,
        ),
        (
            "POST",
            "/items",
            JSON,
            r#"{"name":"","quantity":2000000}"#,
            422,
        ),
        ("GET", "/items?limit=10", None, "", 200),
        ("GET", "/items?limit=0", None, "", 422),
        ("GET", "/items?limit=ten", None, "", 400),
        ("GET", "/nowhere", None, "", 404),
        ("DELETE", "/items", None, "", 405),
    ];
    for (method, path, ct, body, expected) in cases {
        let (status, headers, json) = send(method, path, *ct, body).await;
        assert_eq!(status.as_u16(), *expected, "{method} {path} {body}: {json}");
        assert_eq!(headers["x-request-id"], "t-1");
        if *expected >= 400 {
            assert_eq!(
                headers["content-type"], "application/problem+json",
                "{method} {path}"
            );
            assert_eq!(json["status"], *expected, "{method} {path}: {json}");
            assert_eq!(json["request_id"], "t-1", "{method} {path}: {json}");
            assert!(json["title"].is_string());
        }
    }
}

#[tokio::test]
async fn validation_lists_every_bad_field() {
    let (status, _, json) = send(
        "POST",
        "/items",
        Some("application/json"),
        r#"{"name":"","quantity":2000000}"#,
    )
    .await;
    assert_eq!(status, 422);
    let mut fields: Vec<&str> = json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["name", "quantity"]);
    for error in json["errors"].as_array().unwrap() {
        let want = if error["field"] == "name" {
            "length"
        } else {
            "range"
        };
        assert_eq!(error["code"], want, "{error}");
        assert!(
            !error["message"].as_str().unwrap().contains('\u{1f}'),
            "{error}"
        );
    }
}

/// A JSON body that does not fit the type is a 422 naming the field's path
/// and what is wrong (it was one 422 with no `errors[]`); a body that is
/// not JSON is 400.
#[tokio::test]
async fn body_errors_name_the_field_and_kind() {
    #[derive(Debug, Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    struct Order {
        #[garde(dive)]
        lines: Vec<Line>,
        #[garde(skip)]
        #[expect(dead_code, reason = "a field the body may carry")]
        note: Option<String>,
    }
    #[derive(Debug, Deserialize, Validate)]
    struct Line {
        #[garde(length(min = 1), ascii)]
        sku: String,
        #[garde(range(min = 1))]
        count: u32,
    }
    let app = Router::new()
        .route(
            "/orders",
            post(|Valid(order): Valid<Order>| async move { Envelope::ok(order.lines.len()) }),
        )
        .layer(map_response(problem_json));
    let client = TestClient::new(app);
    let post_json = |body: &'static str| {
        let req = Request::post("/orders")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        client.request(req)
    };
    for (body, field, code) in [
        (
            r#"{"lines":[{"sku":"ab","count":"two"}]}"#,
            "lines[0].count",
            "type",
        ),
        (
            r#"{"lines":[{"sku":"ab","count":1},{"count":2}]}"#,
            "lines[1].sku",
            "required",
        ),
        (r#"{}"#, "lines", "required"),
        (r#"{"lines":[],"extra":1}"#, "extra", "unknown_field"),
        (
            r#"{"lines":[{"sku":"ab","count":-1}]}"#,
            "lines[0].count",
            "value",
        ),
        (
            r#"{"lines":[{"sku":"ä","count":1}]}"#,
            "lines[0].sku",
            "ascii",
        ),
        (
            r#"{"lines":[{"sku":"","count":1}]}"#,
            "lines[0].sku",
            "length",
        ),
        (
            r#"{"lines":[{"sku":"ab","count":0}]}"#,
            "lines[0].count",
            "range",
        ),
        (r#""just a string""#, "", "type"),
    ] {
        let response = post_json(body).await;
        assert_eq!(response.status, 422, "{body}: {}", response.text());
        let problem = response.assert_problem(422, "invalid_input");
        let errors = problem["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}: {problem}"));
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field && e["code"] == code),
            "{body}: want {field}/{code} in {problem}"
        );
        assert!(
            !problem.to_string().contains("line 1 column"),
            "no parser positions: {problem}"
        );
    }
    for body in [r#"{"lines": ["#, r#"{"lines":[]} trailing"#, ""] {
        post_json(body).await.assert_status(400);
    }
}

#[tokio::test]
async fn wrong_method_keeps_the_allow_header() {
    let (status, headers, _) = send("DELETE", "/items", None, "").await;
    assert_eq!(status, 405);
    let allow = headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

/// A replaced body loses the headers that described it (its encoding), and
/// error bodies of any JSON media type pass as they are — through the
/// stack and through the standalone rewrite alike.
#[tokio::test]
async fn rewritten_bodies_drop_their_encoding_and_json_bodies_pass() {
    use axum::response::IntoResponse;
    use pattern_api::middleware::ProblemJsonLayer;
    use pattern_api::stack::ApiStack;

    let routes = || {
        Router::new()
            .route(
                "/gzipped",
                get(|| async {
                    (
                        StatusCode::BAD_GATEWAY,
                        [
                            ("content-encoding", "gzip"),
                            ("content-type", "text/plain"),
                            ("etag", "\"v1\""),
                        ],
                        "not really gzip",
                    )
                        .into_response()
                }),
            )
            .route(
                "/vnd",
                get(|| async {
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        [("content-type", "application/vnd.api+json")],
                        r#"{"errors":[{"status":"422"}]}"#,
                    )
                        .into_response()
                }),
            )
    };
    for app in [
        ApiStack::new().apply(routes()),
        routes().layer(ProblemJsonLayer),
    ] {
        let client = TestClient::new(app);
        let gzipped = client.get("/gzipped").await;
        gzipped.assert_problem(502, "unavailable");
        assert_eq!(
            gzipped.header("content-encoding"),
            None,
            "the problem is not gzip"
        );
        assert_eq!(gzipped.header("etag"), None);
        let vnd = client.get("/vnd").await;
        vnd.assert_status(422);
        assert_eq!(vnd.header("content-type"), Some("application/vnd.api+json"));
        assert_eq!(
            vnd.json_value()["errors"][0]["status"],
            "422",
            "passed as it was"
        );
    }
}
