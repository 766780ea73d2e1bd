//! The client address behind proxies, over a real socket: forwarded
//! addresses are believed from trusted proxies only, and the rate limit
//! keys clients by them.

use std::num::NonZeroU32;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use pattern_api::client_addr::{ClientAddr, ClientAddrLayer, ForwardedHeader, TrustedProxies};
use pattern_api::middleware::RateLimitLayer;
use pattern_api::stack::ApiStack;
use pattern_api::testing::{TestClient, TestResponse};
use pattern_network::flow::rate::Quota;

fn routes() -> Router {
    Router::new().route(
        "/whoami",
        get(|client: Option<ClientAddr>| async move {
            client.map_or_else(|| "unknown".to_owned(), |ClientAddr(ip)| ip.to_string())
        }),
    )
}

/// One request a second per client, burst one.
fn limited(stack: ApiStack) -> Router {
    let quota = Quota::per_second(NonZeroU32::new(1).unwrap());
    stack
        .rate_limit(RateLimitLayer::per_client_ip(quota, 64))
        .apply(routes())
}

async fn get_as(client: &TestClient, header: Option<(&str, &str)>) -> TestResponse {
    let mut req = Request::get("/whoami");
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    client.request(req.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_have_their_own_bucket() {
    let proxies = TrustedProxies::networks(["127.0.0.0/8"]).unwrap();
    let client = TestClient::serve(limited(ApiStack::new().trusted_proxies(proxies))).await;
    let a = Some(("x-forwarded-for", "203.0.113.1"));
    let b = Some(("x-forwarded-for", "198.51.100.7, 203.0.113.2"));
    let first = get_as(&client, a).await;
    first.assert_status(200);
    assert_eq!(first.text(), "203.0.113.1");
    get_as(&client, a).await.assert_problem(429, "rate_limited");
    let other = get_as(&client, b).await;
    other.assert_status(200);
    assert_eq!(
        other.text(),
        "203.0.113.2",
        "the address the proxy saw, not the client's own claim"
    );
    // The proxy's own requests are the proxy's.
    let own = get_as(&client, None).await;
    own.assert_status(200);
    assert_eq!(own.text(), "127.0.0.1");
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_peers_change_nothing() {
    // Nobody trusted (the default), or only another network: a client
    // cannot take a fresh bucket by sending a header.
    for stack in [
        ApiStack::new(),
        ApiStack::new().trusted_proxies(TrustedProxies::networks(["10.0.0.0/8"]).unwrap()),
    ] {
        let client = TestClient::serve(limited(stack)).await;
        let first = get_as(&client, Some(("x-forwarded-for", "203.0.113.1"))).await;
        first.assert_status(200);
        assert_eq!(first.text(), "127.0.0.1");
        get_as(&client, Some(("x-forwarded-for", "203.0.113.99")))
            .await
            .assert_problem(429, "rate_limited");
        get_as(&client, Some(("forwarded", "for=203.0.113.98")))
            .await
            .assert_problem(429, "rate_limited");
    }
}

#[tokio::test]
async fn hop_counts_and_the_forwarded_header() {
    let proxies = TrustedProxies::hops(2).header(ForwardedHeader::Forwarded);
    let client = TestClient::serve(ApiStack::new().trusted_proxies(proxies).apply(routes())).await;
    let response = get_as(
        &client,
        Some((
            "forwarded",
            "for=192.0.2.1, for=\"[2001:db8::7]:443\", for=10.1.1.1",
        )),
    )
    .await;
    assert_eq!(response.text(), "2001:db8::7");
    // X-Forwarded-For is not the configured header.
    let response = get_as(&client, Some(("x-forwarded-for", "192.0.2.1"))).await;
    assert_eq!(response.text(), "127.0.0.1");
}

#[tokio::test]
async fn the_standalone_layer_resolves_for_a_rate_limit_inside_it() {
    let quota = Quota::per_second(NonZeroU32::new(1).unwrap());
    let app = routes()
        .layer(RateLimitLayer::per_client_ip(quota, 64))
        .layer(ClientAddrLayer::new(TrustedProxies::hops(1)));
    let client = TestClient::serve(app).await;
    get_as(&client, Some(("x-forwarded-for", "203.0.113.1")))
        .await
        .assert_status(200);
    let other = get_as(&client, Some(("x-forwarded-for", "203.0.113.2"))).await;
    other.assert_status(200);
    assert_eq!(other.text(), "203.0.113.2");
    get_as(&client, Some(("x-forwarded-for", "203.0.113.2")))
        .await
        .assert_status(429);
    // In process there is no peer: no address.
    let response = TestClient::new(routes().layer(ClientAddrLayer::new(TrustedProxies::hops(1))))
        .get("/whoami")
        .await;
    assert_eq!(response.text(), "unknown");
}
