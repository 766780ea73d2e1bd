//! The Prometheus recorder exports histograms (buckets that add up across
//! instances), with the buckets its settings give, and keeps the request
//! metrics' series bounded whatever paths and methods clients send.

#![cfg(feature = "prometheus")]

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use pattern_api::middleware::RateLimitLayer;
use pattern_api::stack::ApiStack;
use pattern_api::testing::TestClient;
use pattern_error::Kind;
use pattern_network::flow::rate::Quota;
use pattern_server::ops::{Prometheus, PrometheusConfig};
use std::num::NonZeroU32;

#[tokio::test]
async fn histograms_with_configured_buckets_and_bounded_series() {
    // Bad bounds are refused, and nothing is installed.
    let bad = PrometheusConfig {
        buckets: vec![0.5, 0.1],
        ..PrometheusConfig::default()
    };
    let err = Prometheus::install_with(&bad).unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidInput, "{err}");

    let mut config = PrometheusConfig::default();
    config.buckets_for.insert(
        pattern_api::middleware::REQUEST_DURATION.to_owned(),
        vec![0.05, 0.5],
    );
    let prometheus = Prometheus::install_with(&config).unwrap();
    // One recorder per process.
    let again = Prometheus::install().unwrap_err();
    assert_eq!(again.kind(), Kind::Conflict, "{again}");
    // The default buckets for every other histogram.
    metrics::histogram!("test_step_seconds").record(0.003);

    let render = prometheus.clone();
    let health = pattern_component::lifecycle::HealthHandle::detached();
    let app = ApiStack::new().apply(
        Router::new()
            .route("/v1/items/{id}", get(|| async { "item" }))
            .merge(pattern_server::ops::with_metrics(health, move || {
                render.render()
            })),
    );
    let client = TestClient::serve(app).await;
    // Many distinct paths, routed and not, and many distinct methods.
    for i in 0..200 {
        client
            .get(&format!("/v1/items/{i}"))
            .await
            .assert_status(200);
        client
            .get(&format!("/nowhere/{i}"))
            .await
            .assert_status(404);
        let req = Request::builder()
            .method(format!("VERB{i}").as_str())
            .uri(format!("/v1/items/{i}"))
            .body(Body::empty())
            .unwrap();
        client.request(req).await.assert_status(405);
    }
    let text = client.get("/metrics").await.text();

    let duration = pattern_api::middleware::REQUEST_DURATION;
    let bucket = format!("{duration}_bucket{{");
    assert!(
        !text.contains("quantile="),
        "a summary, not a histogram:\n{text}"
    );
    for le in ["0.05", "0.5", "+Inf"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&bucket) && l.contains(&format!("le=\"{le}\""))),
            "no {le} bucket:\n{text}"
        );
    }
    let bounds = |prefix: &str| -> Vec<String> {
        let mut les: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| Some(l.split("le=\"").nth(1)?.split('"').next()?.to_owned()))
            .collect();
        les.sort();
        les.dedup();
        les
    };
    assert_eq!(
        bounds(&bucket).len(),
        3,
        "the configured bounds and +Inf:\n{text}"
    );
    assert_eq!(
        bounds("test_step_seconds_bucket").len(),
        pattern_server::ops::DEFAULT_BUCKETS.len() + 1,
        "{text}"
    );

    // 600 requests with 400 paths and 201 methods: a handful of series.
    let series = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .count();
    assert!(
        series <= 4,
        "{series} series of http_requests_total:\n{text}"
    );
    assert!(
        text.contains(
            r#"http_requests_total{method="other",route="/v1/items/{id}",status="405"} 200"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"route="unmatched",status="404"} 200"#),
        "{text}"
    );
    // A scrape asks for health first: the gauges read as the probes answer
    // (a detached handle is live, not ready).
    assert!(text.lines().any(|l| l == "system_ready 0"), "{text}");
    assert!(text.lines().any(|l| l == "system_live 1"), "{text}");

    // Rate limits count what they refuse, in one series per limit whatever
    // the keys; the shedding bulkhead's series exist at zero.
    let quota = Quota::per_second(NonZeroU32::new(1).unwrap());
    let limited = ApiStack::new()
        .concurrency_limit(4)
        .rate_limit(
            RateLimitLayer::per_key(quota, 16, |req: &Request<Body>| req.uri().path().to_owned())
                .named("per_path"),
        )
        .apply(Router::new().route("/k/{key}", get(|| async { "ok" })));
    let limited = TestClient::serve(limited).await;
    for key in 0..100 {
        limited.get(&format!("/k/{key}")).await.assert_status(200);
        limited.get(&format!("/k/{key}")).await.assert_status(429);
    }
    let text = client.get("/metrics").await.text();
    let rejections = pattern_api::middleware::RATE_LIMIT_REJECTIONS_TOTAL;
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with(rejections)).collect();
    assert_eq!(
        series,
        [format!(r#"{rejections}{{limiter="per_path"}} 100"#)],
        "{text}"
    );
    assert!(
        text.contains(r#"bulkhead_rejections_total{bulkhead="http"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"bulkhead_waiting{bulkhead="http"} 0"#),
        "{text}"
    );
}
