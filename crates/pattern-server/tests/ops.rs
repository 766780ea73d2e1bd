//! `/metrics` renders Prometheus text with the request metrics labelled by
//! route template; `/health/ready` details failing components.

#![cfg(feature = "prometheus")]

use axum::Router;
use axum::routing::get;
use pattern_api::stack::ApiStack;
use pattern_api::testing::TestClient;
use pattern_component::component::from_fn;
use pattern_component::lifecycle::System;
use pattern_error::{Error, Kind};

#[tokio::test]
async fn metrics_and_readiness() {
    let prometheus = pattern_server::ops::install_prometheus().unwrap();
    let system = System::builder()
        .component(from_fn("db", |ctx| async move {
            ctx.stop_token().cancelled().await;
            Ok(())
        }))
        .component_with(
            from_fn("flaky", |_ctx| async {
                Err(Error::new(Kind::Unavailable, "broker down"))
            }),
            pattern_component::lifecycle::ComponentConfig::default()
                .restart(pattern_component::supervision::Restart::Never),
        )
        .build()
        .unwrap();
    let health = system.health_handle();
    let app = ApiStack::new().apply(
        Router::new()
            .route("/v1/items/{id}", get(|| async { "item" }))
            .merge(pattern_server::ops::with_metrics(health, move || {
                prometheus.render()
            })),
    );
    let client = TestClient::serve(app).await;
    let running = system.start().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    client.get("/v1/items/1").await.assert_status(200);
    client.get("/v1/items/2").await.assert_status(200);
    let metrics = client.get("/metrics").await;
    metrics.assert_status(200);
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/v1/items/{id}",status="200"} 2"#),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds"), "{text}");

    let ready = client.get("/health/ready").await;
    ready.assert_status(503);
    let body: serde_json::Value = ready.json();
    let flaky = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "flaky")
        .unwrap()
        .clone();
    assert_eq!(flaky["status"], "failing");
    assert!(
        flaky["message"].as_str().unwrap().contains("broker down"),
        "{flaky}"
    );
    client.get("/health/live").await.assert_status(200);
    running.stop().await;
}
