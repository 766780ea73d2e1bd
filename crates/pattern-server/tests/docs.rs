//! `/openapi.json` lists the routes; `/docs` is served with its assets from
//! the binary, loading nothing from the internet.

#![cfg(feature = "openapi")]

use pattern_api::testing::TestClient;
use utoipa::OpenApi;

/// List items.
#[utoipa::path(get, path = "/v1/items", responses((status = 200, description = "a page of items")))]
#[allow(dead_code)] // only its OpenAPI description is used here
async fn list_items() {}

#[derive(OpenApi)]
#[openapi(info(title = "inventory", version = "1"), paths(list_items))]
struct Api;

#[tokio::test]
async fn openapi_document_and_offline_docs_page() {
    let client = TestClient::serve(pattern_server::docs::routes(Api::openapi())).await;
    let doc = client.get("/openapi.json").await;
    doc.assert_status(200);
    let json: serde_json::Value = doc.json();
    assert!(json["openapi"].as_str().unwrap().starts_with("3."));
    assert!(json["paths"]["/v1/items"]["get"].is_object(), "{json}");

    let page = client.get("/docs/").await;
    page.assert_status(200);
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(html.contains("swagger"), "{html}");
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "no external assets: {html}"
    );
    let script = client.get("/docs/swagger-ui-bundle.js").await;
    script.assert_status(200);
    assert!(
        script.body.len() > 100_000,
        "the bundle is served from the binary"
    );
}

/// Every problem's type is a page that describes it: the type URI of a
/// problem the stack answers with resolves on the service.
#[tokio::test]
async fn problem_types_are_pages() {
    use pattern_api::problem::{PROBLEM_TYPES, Problem, type_uri};
    use pattern_error::{Error, Kind};

    let client = TestClient::serve(pattern_server::docs::routes(Api::openapi())).await;
    let index = client.get("/problems").await;
    index.assert_status(200);
    let html = String::from_utf8_lossy(&index.body).into_owned();
    for t in PROBLEM_TYPES {
        assert!(
            html.contains(&format!("href=\"/problems/{}\"", t.code)),
            "{}",
            t.code
        );
        let page = client.get(&type_uri(t.code)).await;
        page.assert_status(200);
        assert!(
            page.header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        let text = String::from_utf8_lossy(&page.body).into_owned();
        assert!(text.contains(&t.status.to_string()), "{text}");
    }
    let problem = Problem::from_error(&Error::new(Kind::RateLimited, "slow down"));
    client.get(&problem.type_uri).await.assert_status(200);
    let unknown = client.get("/problems/no_such_code").await;
    unknown.assert_status(404);
    assert!(
        unknown
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
}
