//! Route groups, per-group middleware, health and metrics routes, over the
//! test client both in process and on a real socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use pattern_api::middleware::LoadShedLayer;
use pattern_api::response::Envelope;
use pattern_api::routes::Routes;
use pattern_api::testing::TestClient;
use serde_json::json;

fn app(ready: Arc<AtomicBool>) -> (Router, String) {
    let (router, table) = Routes::new()
        .group("/v1", |v1| {
            v1.get("/items", || async { Envelope::page(vec![1, 2], None) })
                .post("/items", || async { Envelope::created(json!({"id": 3})) })
                .get("/items/{id}", || async { Envelope::ok(json!({"id": 1})) })
                // Only this group is shed; health stays reachable.
                .layer(LoadShedLayer::new(64))
        })
        .health(
            || (true, json!({})),
            move || {
                let ok = ready.load(Ordering::SeqCst);
                (ok, json!({"db": if ok { "ok" } else { "down" }}))
            },
        )
        .metrics(|| "http_requests_total 0\n".to_owned())
        .build();
    (router, table.to_string())
}

#[tokio::test]
async fn groups_health_metrics_and_the_route_table() {
    let ready = Arc::new(AtomicBool::new(true));
    let (router, table) = app(ready.clone());
    assert_eq!(
        table,
        "GET        /health/live\nGET        /health/ready\nGET        /metrics\nGET, POST  /v1/items\nGET        /v1/items/{id}\n"
    );
    for client in [
        TestClient::new(router.clone()),
        TestClient::serve(router).await,
    ] {
        client.get("/v1/items").await.assert_status(200);
        client
            .post_json("/v1/items", &json!({}))
            .await
            .assert_status(201);
        assert_eq!(client.get("/v1/items/1").await.data(), json!({"id": 1}));
        client.get("/health/live").await.assert_status(200);
        ready.store(false, Ordering::SeqCst);
        let not_ready = client.get("/health/ready").await;
        not_ready.assert_status(503);
        assert_eq!(
            not_ready.json::<serde_json::Value>()["detail"]["db"],
            "down"
        );
        ready.store(true, Ordering::SeqCst);
        let metrics = client.get("/metrics").await;
        metrics.assert_status(200);
        assert!(
            metrics
                .header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
    }
}
