//! `ApiStack::document`: every error answer the stack gives, on the
//! operations that can get it, with the problem schema and `Retry-After`
//! where the stack sends one.

#![cfg(feature = "openapi")]

use std::num::NonZeroU32;
use std::time::Duration;

use pattern_api::middleware::{DeadlineLayer, RateLimitLayer};
use pattern_api::stack::ApiStack;
use pattern_network::flow::rate::Quota;
use serde_json::Value;
use utoipa::OpenApi;

/// Creates a thing.
#[utoipa::path(post, path = "/things", request_body = String,
    responses(
        (status = 201, description = "Created"),
        (status = 404, description = "No such shelf"),
        (status = 409, description = "A thing of that name", body = String, content_type = "application/json"),
        (status = 503, description = "The shelf is full"),
    ))]
#[allow(dead_code)]
async fn create() {}

/// Reads the health.
#[utoipa::path(get, path = "/status", responses((status = 200, description = "Fine")))]
#[allow(dead_code)]
async fn status() {}

#[derive(OpenApi)]
#[openapi(paths(create, status))]
struct Api;

fn statuses(document: &Value, path: &str, method: &str) -> Vec<String> {
    document["paths"][path][method]["responses"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn documented(stack: &ApiStack) -> Value {
    let mut document = Api::openapi();
    stack.document(&mut document);
    serde_json::to_value(&document).unwrap()
}

#[test]
fn every_answer_of_the_stack_is_documented() {
    let quota = Quota::per_second(NonZeroU32::new(5).unwrap());
    let stack = ApiStack::new().rate_limit(RateLimitLayer::per_client_ip(quota, 64));
    let document = documented(&stack);
    assert_eq!(
        statuses(&document, "/things", "post"),
        [
            "201", "400", "404", "408", "409", "413", "415", "422", "429", "500", "503", "504"
        ]
    );
    // A JSON error body the handler sends itself stays as declared (the
    // stack leaves JSON bodies alone).
    let conflict = &document["paths"]["/things"]["post"]["responses"]["409"]["content"];
    assert!(conflict["application/json"].is_object(), "{conflict}");
    assert!(conflict["application/problem+json"].is_null(), "{conflict}");
    // Nothing to parse, no body: only what any request may get.
    assert_eq!(
        statuses(&document, "/status", "get"),
        ["200", "429", "500", "503", "504"]
    );
    let post = &document["paths"]["/things"]["post"]["responses"];
    // Error answers carry a problem; declared ones keep their words.
    for status in ["400", "404", "500", "503"] {
        assert_eq!(
            post[status]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{status}"
        );
    }
    assert_eq!(post["503"]["description"], "The shelf is full");
    // A declared 503 gets the header the stack sends with it.
    assert!(post["503"]["headers"]["Retry-After"].is_object());
    assert!(post["429"]["headers"]["Retry-After"].is_object());
    assert!(post["504"]["headers"]["Retry-After"].is_null());
    let schemas = &document["components"]["schemas"];
    assert!(schemas["Problem"]["properties"]["errors"].is_object());
    assert_eq!(
        schemas["Problem"]["properties"]["type"]["format"],
        "uri-reference"
    );
    assert!(schemas["FieldError"]["properties"]["code"].is_object());
}

#[test]
fn what_the_stack_leaves_out_is_not_documented() {
    let stack = ApiStack::new().timeout(None).body_limit(None);
    let document = documented(&stack);
    // Without the stack's limit the extractors' default still answers 413.
    assert_eq!(
        statuses(&document, "/things", "post"),
        [
            "201", "400", "404", "409", "413", "415", "422", "500", "503"
        ]
    );
    // Without problem+json the statuses come bare.
    let document = documented(&ApiStack::new().problem_json(false));
    let post = &document["paths"]["/things"]["post"]["responses"];
    assert!(post["500"]["content"].is_null(), "{post}");
    // A timeout answered with 503 adds no 504.
    let stack = ApiStack::new().timeout(DeadlineLayer::new(Duration::from_secs(1)).with_503());
    let document = documented(&stack);
    assert!(!statuses(&document, "/status", "get").contains(&"504".to_owned()));
}
