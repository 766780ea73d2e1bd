//! Handlers take the request id as an extractor, under the stack (task-local
//! only) and under the standalone layer (extension), and it is the id the
//! response echoes.

use axum::Router;
use axum::routing::get;
use http::{HeaderMap, HeaderValue, Method};
use pattern_api::request_id::{RequestId, RequestIdLayer};
use pattern_api::stack::ApiStack;
use pattern_api::testing::TestClient;

async fn echo_id(id: RequestId) -> String {
    id.to_string()
}

async fn maybe_id(id: Option<RequestId>) -> String {
    id.map_or_else(|| "none".to_owned(), |id| id.to_string())
}

fn routes() -> Router {
    Router::new()
        .route("/id", get(echo_id))
        .route("/maybe", get(maybe_id))
}

fn with_id(id: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", HeaderValue::from_static(id));
    headers
}

#[tokio::test]
async fn the_extractor_sees_the_id_the_response_echoes() {
    for app in [
        ApiStack::new().apply(routes()),
        routes().layer(RequestIdLayer),
    ] {
        let client = TestClient::new(app);
        let generated = client.get("/id").await;
        generated.assert_status(200);
        let echoed = generated.header("x-request-id").unwrap().to_owned();
        assert_eq!(generated.text(), echoed);
        assert_eq!(echoed.len(), 16);

        let propagated = client
            .send(Method::GET, "/id", with_id("abc-123"), Default::default())
            .await;
        assert_eq!(propagated.text(), "abc-123");
        assert_eq!(propagated.header("x-request-id"), Some("abc-123"));

        // New with each request: never indexed by HTTP/2's header
        // compression, which would fill its table with them.
        for response in [&generated, &propagated] {
            assert!(response.headers["x-request-id"].is_sensitive());
        }
    }
}

#[tokio::test]
async fn outside_a_request_id_layer_the_extractor_fails_loudly() {
    let client = TestClient::new(routes());
    client.get("/id").await.assert_problem(500, "internal");
    assert_eq!(client.get("/maybe").await.text(), "none");
}
