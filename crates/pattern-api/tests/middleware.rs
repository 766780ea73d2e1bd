//! Rate limiting, load shedding and panic catching answer in problem+json.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use pattern_api::middleware::{CatchPanicLayer, LoadShedLayer, RateLimitLayer};
use pattern_api::request_id::RequestIdLayer;
use pattern_api::testing::TestClient;
use pattern_network::flow::rate::Quota;
use serde_json::Value;
use tokio::sync::Notify;

async fn send(app: &Router, path: &str, key: &str) -> (StatusCode, http::HeaderMap, Value) {
    let req = Request::get(path)
        .header("x-api-key", key)
        .body(Body::empty())
        .unwrap();
    let response = TestClient::new(app.clone()).request(req).await;
    let json = response.json_value();
    (response.status, response.headers, json)
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_per_key() {
    let quota =
        Quota::per_second(NonZeroU32::new(1).unwrap()).allow_burst(NonZeroU32::new(2).unwrap());
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RateLimitLayer::per_key(
            quota,
            1000,
            |req: &Request<Body>| {
                req.headers()
                    .get("x-api-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("anonymous")
                    .to_owned()
            },
        ))
        .layer(RequestIdLayer);
    assert_eq!(send(&app, "/", "alice").await.0, 200);
    assert_eq!(send(&app, "/", "alice").await.0, 200);
    let (status, headers, body) = send(&app, "/", "alice").await;
    assert_eq!(status, 429);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["code"], "rate_limited");
    assert!(body["request_id"].is_string());
    assert_eq!(
        send(&app, "/", "bob").await.0,
        200,
        "other keys are not limited"
    );
}

#[tokio::test]
async fn load_shedding_answers_503_at_once() {
    let release = Arc::new(Notify::new());
    let held = release.clone();
    let shed = LoadShedLayer::new(1);
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let held = held.clone();
                async move {
                    held.notified().await;
                    "done"
                }
            }),
        )
        .layer(shed.clone());
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, "/slow", "a").await.0 }
    });
    while shed.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let started = tokio::time::Instant::now();
    let (status, headers, body) = send(&app, "/slow", "b").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "rejected at once"
    );
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["code"], "overloaded");
    release.notify_one();
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(shed.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_bounded_admission_queue_waits_then_sheds() {
    let release = Arc::new(Notify::new());
    let held = release.clone();
    let shed = LoadShedLayer::new(1).queue(1, Duration::from_millis(200));
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let held = held.clone();
                async move {
                    held.notified().await;
                    "done"
                }
            }),
        )
        .route("/quick", get(|| async { "quick" }))
        .layer(shed.clone());
    let spawn = |path: &'static str| {
        let app = app.clone();
        tokio::spawn(async move { send(&app, path, "k").await.0 })
    };
    let first = spawn("/slow");
    while shed.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    // The slot is taken: this one waits in the queue...
    let queued = spawn("/quick");
    while shed.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    // ...and the queue is full: this one is shed at once.
    let started = tokio::time::Instant::now();
    let (status, headers, body) = send(&app, "/quick", "k").await;
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["code"], "overloaded");
    // The slot frees within the wait: the queued request is served.
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.notify_one();
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(queued.await.unwrap(), 200);

    // Past the wait, a queued request is shed.
    let first = spawn("/slow");
    while shed.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let started = tokio::time::Instant::now();
    let (status, ..) = send(&app, "/quick", "k").await;
    assert_eq!(status, 503);
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    release.notify_one();
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!((shed.in_flight(), shed.waiting()), (0, 0));
}

/// Behind a request deadline, a request still waiting in the standalone
/// layer's queue when the deadline comes is shed (503 with `Retry-After`,
/// just before it), as in the fused stack; the one holding the slot times
/// out.
#[tokio::test(start_paused = true)]
async fn the_request_deadline_bounds_the_wait_in_the_queue() {
    use pattern_api::middleware::DeadlineLayer;

    let shed = LoadShedLayer::new(1).queue(4, Duration::from_secs(10));
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                "late"
            }),
        )
        .layer(shed.clone())
        .layer(DeadlineLayer::new(Duration::from_millis(100)));
    let first = {
        let app = app.clone();
        tokio::spawn(async move { send(&app, "/slow", "k").await })
    };
    while shed.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let started = tokio::time::Instant::now();
    let (status, headers, body) = send(&app, "/slow", "k").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "overloaded", "shed, not timed out: {body}");
    assert_eq!(headers["retry-after"], "1");
    assert!(started.elapsed() < Duration::from_millis(100));
    let (status, _, body) = first.await.unwrap();
    assert_eq!(body["code"], "timeout", "{status}: {body}");
    assert_eq!((shed.in_flight(), shed.waiting()), (0, 0));
}

#[tokio::test]
async fn a_panic_is_a_500_without_its_text() {
    let app = Router::new()
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("secret table users_v2 is corrupt");
                }
                "unreachable"
            }),
        )
        .layer(CatchPanicLayer::new())
        .layer(RequestIdLayer);
    let (status, headers, body) = send(&app, "/panic", "k").await;
    assert_eq!(status, 500);
    assert_eq!(headers["content-type"], "application/problem+json");
    let text = body.to_string();
    assert!(
        !text.contains("secret") && !text.contains("users_v2"),
        "{text}"
    );
    assert!(body["request_id"].is_string());
}
