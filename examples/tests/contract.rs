//! The reference service's HTTP contract, over real sockets on 127.0.0.1:
//! in memory, and with PostgreSQL (the throwaway cluster `cargo xtask ci`
//! starts; skipped without `DATABASE_URL` outside CI).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use examples::reference::{Config, Service};
use garde::Validate;
use http::{HeaderMap, HeaderValue, Method};
use patterns::api::testing::{TestClient, TestResponse};
use patterns::component::config::Secret;
use patterns::server::postgres::PostgresConfig;
use serde_json::{Value, json};

const TOKEN: &str = "contract-test-admin-token";

fn config() -> Config {
    let mut config = Config::default();
    config.server.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.server.request_timeout_ms = 300;
    config.server.http.drain_timeout_ms = 2_000;
    config.admin.token = Some(Secret::new(TOKEN.to_owned()));
    config.demo.enabled = true;
    config
}

/// Every response carries a request id; every error is problem+json with
/// status, title and request id.
fn check_common(response: &TestResponse) {
    let id = response
        .header("x-request-id")
        .expect("x-request-id on every response");
    assert!(!id.is_empty());
    if response.status.as_u16() >= 400 {
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json"),
            "{} {:?}",
            response.status,
            response.body
        );
        let problem: Value = response.json();
        assert_eq!(problem["status"], response.status.as_u16());
        assert!(problem["title"].is_string(), "{problem}");
        assert_eq!(problem["request_id"], id, "{problem}");
    }
}

async fn send(
    client: &TestClient,
    method: Method,
    path: &str,
    headers: &[(&'static str, &str)],
    body: impl Into<Bytes>,
) -> TestResponse {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    let response = client.send(method, path, map, body.into()).await;
    check_common(&response);
    response
}

async fn get(client: &TestClient, path: &str) -> TestResponse {
    send(client, Method::GET, path, &[], Bytes::new()).await
}

async fn post(client: &TestClient, body: Value) -> TestResponse {
    let json = [("content-type", "application/json")];
    send(client, Method::POST, "/v1/items", &json, body.to_string()).await
}

async fn check_contract(service: &Service) {
    let client = TestClient::connect(service.addr());
    let json = [("content-type", "application/json")];

    // Health.
    get(&client, "/health/live").await.assert_status(200);
    let ready = get(&client, "/health/ready").await;
    ready.assert_status(200);
    let ready: Value = ready.json();
    let names: Vec<&str> = ready["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"http") && names.contains(&"processes"),
        "{ready}"
    );
    if service.storage() == "postgres" {
        assert!(names.contains(&"database"), "{ready}");
    }

    // A name PostgreSQL could not store is refused in either store, as the
    // schema says (it was a 500 on PostgreSQL).
    post(&client, json!({"name": "a\u{0}b", "quantity": 1}))
        .await
        .assert_problem(422, "invalid_input");

    // Create, read, list, delete.
    let created = post(&client, json!({"name": "bolt", "quantity": 3})).await;
    created.assert_status(201);
    let body: Value = created.json();
    let item = &body["data"];
    assert_eq!(item["name"], "bolt");
    assert_eq!(item["quantity"], 3);
    assert!(
        item["created_at"].as_str().unwrap().ends_with('Z'),
        "{item}"
    );
    assert_eq!(
        body["meta"]["request_id"],
        created.header("x-request-id").unwrap()
    );
    let id = item["id"].as_i64().unwrap();

    let read = get(&client, &format!("/v1/items/{id}")).await;
    read.assert_status(200);
    assert_eq!(read.data(), *item);
    get(&client, "/v1/items/999999999")
        .await
        .assert_problem(404, "not_found");

    for n in 0..4 {
        post(&client, json!({"name": format!("nut {n}"), "quantity": n}))
            .await
            .assert_status(201);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/items?limit=2".to_owned();
    for _ in 0..10 {
        let page = get(&client, &path).await;
        page.assert_status(200);
        let page: Value = page.json();
        let items = page["data"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["id"].as_i64().unwrap()));
        assert!(page["meta"]["request_id"].is_string());
        match page["meta"]["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/items?limit=2&cursor={cursor}"),
            None => {
                assert!(page["meta"]["next_cursor"].is_null(), "{page}");
                break;
            }
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "pages in id order, no repeats: {seen:?}"
    );
    assert!(seen.contains(&id) && seen.len() >= 5, "{seen:?}");
    for bad in ["limit=0", "limit=101", "limit=-1", "cursor=nonsense"] {
        let problem = get(&client, &format!("/v1/items?{bad}"))
            .await
            .assert_problem(422, "invalid_input");
        assert!(
            !problem["errors"].as_array().unwrap().is_empty(),
            "{bad}: {problem}"
        );
    }

    let delete = send(
        &client,
        Method::DELETE,
        &format!("/v1/items/{id}"),
        &[],
        Bytes::new(),
    )
    .await;
    delete.assert_status(204);
    send(
        &client,
        Method::DELETE,
        &format!("/v1/items/{id}"),
        &[],
        Bytes::new(),
    )
    .await
    .assert_problem(404, "not_found");
    get(&client, &format!("/v1/items/{id}"))
        .await
        .assert_status(404);

    // Bad input.
    let invalid = post(&client, json!({"name": "", "quantity": 2_000_000})).await;
    let problem = invalid.assert_problem(422, "invalid_input");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "quantity"], "{problem}");
    let long = "x".repeat(101);
    post(&client, json!({"name": long, "quantity": 1}))
        .await
        .assert_status(422);
    post(&client, json!({"name": "ü".repeat(100), "quantity": 1}))
        .await
        .assert_status(201);
    send(
        &client,
        Method::POST,
        "/v1/items",
        &json,
        "{\"name\": \"bolt\",",
    )
    .await
    .assert_status(400);
    post(&client, json!({"name": "bolt", "quantity": "three"}))
        .await
        .assert_status(422);
    send(
        &client,
        Method::POST,
        "/v1/items",
        &[("content-type", "text/plain")],
        "{}",
    )
    .await
    .assert_status(415);
    send(&client, Method::POST, "/v1/items", &[], "{}")
        .await
        .assert_status(415);
    let huge = format!(
        "{{\"name\": \"{}\", \"quantity\": 1}}",
        "x".repeat(70 * 1024)
    );
    send(&client, Method::POST, "/v1/items", &json, huge)
        .await
        .assert_status(413);

    // Routing.
    get(&client, "/v1/nowhere").await.assert_status(404);
    let wrong = send(&client, Method::PUT, "/v1/items", &[], Bytes::new()).await;
    wrong.assert_status(405);

    // Request ids are echoed.
    let echoed = send(
        &client,
        Method::GET,
        "/health/live",
        &[("x-request-id", "trace-me-42")],
        Bytes::new(),
    )
    .await;
    assert_eq!(echoed.header("x-request-id"), Some("trace-me-42"));

    // Deadlines and panics.
    let quick = get(&client, "/v1/demo/delay?ms=10").await;
    quick.assert_status(200);
    assert_eq!(quick.data()["waited_ms"], 10);
    let slow = get(&client, "/v1/demo/delay?ms=2000").await;
    assert!(matches!(slow.status.as_u16(), 503 | 504), "{}", slow.status);
    get(&client, "/v1/demo/delay?ms=10001")
        .await
        .assert_status(422);
    let panic = get(&client, "/v1/demo/panic").await;
    panic.assert_status(500);
    let text = String::from_utf8_lossy(&panic.body);
    assert!(
        !text.contains("DEADBEEF") && !text.contains("demo panic"),
        "{text}"
    );

    // Admin.
    get(&client, "/admin/processes").await.assert_status(401);
    let bearer = format!("Bearer {TOKEN}");
    send(
        &client,
        Method::GET,
        "/admin/processes",
        &[("authorization", "Bearer wrong-token-0123456789")],
        Bytes::new(),
    )
    .await
    .assert_status(401);
    let processes = send(
        &client,
        Method::GET,
        "/admin/processes",
        &[("authorization", &bearer)],
        Bytes::new(),
    )
    .await;
    processes.assert_status(200);
    let sweeper = processes
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "expiry-sweeper")
        .cloned();
    assert_eq!(
        sweeper.expect("the sweeper is registered")["state"],
        "running"
    );

    // Documents and metrics.
    let openapi = get(&client, "/openapi.json").await;
    openapi.assert_status(200);
    let doc: Value = openapi.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    for path in [
        "/v1/items",
        "/v1/items/{id}",
        "/v1/demo/delay",
        "/v1/demo/panic",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the document"
        );
    }
    // The document tells the truth about the wire: envelopes, problems,
    // the stack's answers on every operation, the admin routes' scheme.
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let created = &doc["paths"]["/v1/items"]["post"]["responses"];
    let success = created["201"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let envelope = &doc["components"]["schemas"][success.rsplit('/').next().unwrap()];
    assert!(
        envelope["properties"]["data"].is_object() && envelope["properties"]["meta"].is_object(),
        "{envelope}"
    );
    for status in [
        "400", "408", "413", "415", "422", "429", "500", "503", "504",
    ] {
        assert_eq!(
            created[status]["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "POST /v1/items {status}"
        );
    }
    assert!(created["429"]["headers"]["Retry-After"].is_object());
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "{doc}"
    );
    let admin = &doc["paths"]["/admin/processes"]["get"];
    assert_eq!(admin["security"][0]["bearer"], json!([]));
    assert!(admin["responses"]["401"].is_object());
    // A problem's type is a page on the service.
    let missing = get(&client, "/v1/items/999999").await;
    let missing: Value = missing.json();
    assert_eq!(missing["type"], "/problems/not_found");
    get(&client, "/problems/not_found").await.assert_status(200);

    let docs = get(&client, "/docs").await;
    let docs = if docs.status.is_redirection() {
        get(&client, "/docs/").await
    } else {
        docs
    };
    docs.assert_status(200);
    assert!(
        docs.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8_lossy(&docs.body);
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "the docs page loads nothing remote"
    );

    let metrics = get(&client, "/metrics").await;
    metrics.assert_status(200);
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/v1/items/{id}",status="200"}"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_request_duration_seconds_bucket{method="POST",route="/v1/items",status="201""#
        ) || text.contains(
            r#"http_request_duration_seconds{method="POST",route="/v1/items",status="201""#
        ),
        "{text}"
    );
    assert!(
        !text.contains("route=\"/v1/items/1\""),
        "no raw paths in labels"
    );
    check_metric_names(&text);
}

/// Every metric the service exports follows the naming rules: snake case,
/// counters in `_total`, latencies as histograms in seconds (no summary:
/// quantiles do not add up across instances), and labels from a bounded
/// set (never a path, an id or a client).
fn check_metric_names(text: &str) {
    // Each a name the code or the configuration gives (a breaker's, a
    // stage's), a status or a state: never what a client sends.
    const LABELS: &[&str] = &[
        "method",
        "route",
        "status",
        "le",
        "component",
        "breaker",
        "bulkhead",
        "limiter",
        "retry",
        "fault",
        "pool",
        "registry",
        "stage",
        "state",
        "from",
        "to",
        "kind",
        "reason",
        "outcome",
        "direction",
    ];
    let mut kinds = 0;
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declared.split_once(' ').expect("# TYPE name kind");
            kinds += 1;
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && name.starts_with(|c: char| c.is_ascii_lowercase()),
                "{name}: not snake case"
            );
            match kind {
                "counter" => assert!(name.ends_with("_total"), "counter {name} ends in _total"),
                "histogram" => assert!(name.ends_with("_seconds"), "histogram {name} in seconds"),
                "gauge" => assert!(!name.ends_with("_total"), "gauge {name} named as a counter"),
                other => panic!("{name} is a {other}: latencies are histograms"),
            }
        } else if let Some((_, labels)) = line.split_once('{') {
            let labels = labels.rsplit_once('}').expect("closed labels").0;
            for pair in labels.split("\",").filter(|pair| !pair.is_empty()) {
                let key = pair.split_once('=').expect("label=value").0;
                assert!(LABELS.contains(&key), "unbounded label {key:?} in {line}");
            }
        }
    }
    assert!(kinds >= 3, "metrics declared:\n{text}");
}

#[tokio::test]
async fn contract_in_memory() {
    let service = Service::start(config()).await.unwrap();
    assert_eq!(service.storage(), "memory");
    check_contract(&service).await;
    assert!(service.stop().await.is_clean());
}

#[tokio::test]
async fn rate_limit_per_client_and_admin_off_without_token() {
    let mut config = config();
    config.limits.requests_per_second = 1;
    config.limits.burst = 3;
    config.admin.token = None;
    let service = Service::start(config).await.unwrap();
    let client = TestClient::connect(service.addr());
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let response = get(&client, "/v1/items").await;
        statuses.push(response.status.as_u16());
        if response.status == 429 {
            limited = Some(response);
        }
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    let limited = limited.unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    limited.assert_problem(429, "rate_limited");
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    tokio::time::sleep(Duration::from_millis(1100)).await; // real time: the limiter is real-time
    get(&client, "/admin/processes").await.assert_status(404);
    service.stop().await;
}

/// Behind a trusted proxy each forwarded client has its own bucket; a
/// client sending the header itself (not trusted) cannot take a fresh one.
/// Settings that cannot work are refused at start.
#[tokio::test]
async fn rate_limit_per_forwarded_client_behind_trusted_proxies() {
    let mut config = config();
    config.limits.requests_per_second = 1;
    config.limits.burst = 1;
    config.limits.trusted_proxies = vec!["127.0.0.0/8".to_owned()];
    let service = Service::start(config.clone()).await.unwrap();
    let client = TestClient::connect(service.addr());
    let from = |ip: &'static str| {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", ip.parse().unwrap());
        headers
    };
    let send = |ip| client.send(http::Method::GET, "/v1/items", from(ip), Default::default());
    send("203.0.113.1").await.assert_status(200);
    send("203.0.113.1")
        .await
        .assert_problem(429, "rate_limited");
    send("203.0.113.2").await.assert_status(200);
    service.stop().await;

    let mut untrusted = config.clone();
    untrusted.limits.trusted_proxies = vec!["10.0.0.0/8".to_owned()];
    let service = Service::start(untrusted).await.unwrap();
    let client = TestClient::connect(service.addr());
    let send = |ip| client.send(http::Method::GET, "/v1/items", from(ip), Default::default());
    send("203.0.113.1").await.assert_status(200);
    send("203.0.113.2")
        .await
        .assert_problem(429, "rate_limited");
    service.stop().await;

    for bad in [
        |c: &mut Config| c.limits.trusted_proxies = vec!["10.0.0.0/33".to_owned()],
        |c: &mut Config| c.limits.proxy_hops = 1,
        |c: &mut Config| c.limits.ipv6_prefix = 129,
        |c: &mut Config| c.store.item_ttl_secs = u64::MAX,
    ] {
        let mut config = config.clone();
        bad(&mut config);
        assert!(config.validate().is_err(), "{:?}", config.limits);
    }
}

/// Probes and metrics are never shed nor rate limited: with the only slot
/// held and the client's rate spent, the API answers 503 and 429 while
/// `/health/live`, `/health/ready` and `/metrics` answer 200 (all three
/// answered 503 before).
#[tokio::test]
async fn probes_and_metrics_bypass_shedding_and_rate_limits() {
    let mut config = config();
    config.server.concurrency_limit = 1;
    config.server.request_timeout_ms = 5_000;
    config.limits.requests_per_second = 1;
    config.limits.burst = 2;
    let service = Service::start(config).await.unwrap();
    let addr = service.addr();
    let holder = tokio::spawn(async move {
        TestClient::connect(addr)
            .get("/v1/demo/delay?ms=1500")
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await; // real time: a real server
    let client = TestClient::connect(addr);
    let shed = get(&client, "/v1/items").await;
    assert!(
        shed.status == 503 || shed.status == 429,
        "the API is busy: {}",
        shed.status
    );
    for _ in 0..5 {
        for path in ["/health/live", "/health/ready", "/metrics"] {
            client.get(path).await.assert_status(200);
        }
    }
    holder.await.unwrap().assert_status(200);
    service.stop().await;
}

/// With a management listener, probes, metrics, docs and admin live there
/// and not on the API's port; they answer while the API is saturated and
/// shedding, and on stop readiness turns false there while the
/// API drains its last request.
#[tokio::test]
async fn management_listener_serves_ops_apart_from_the_api() {
    let mut config = config();
    config.server.concurrency_limit = 1;
    config.server.request_timeout_ms = 5_000;
    config.limits.requests_per_second = 1;
    config.limits.burst = 8;
    config.management.enabled = true;
    config.management.http.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let service = Service::start(config).await.unwrap();
    let (api, ops) = (
        service.addr(),
        service.management_addr().expect("its own port"),
    );
    assert_ne!(api, ops);
    let (api_client, ops_client) = (TestClient::connect(api), TestClient::connect(ops));
    for path in [
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
        "/docs/",
    ] {
        get(&api_client, path).await.assert_status(404);
        get(&ops_client, path).await.assert_status(200);
    }
    get(&ops_client, "/admin/processes")
        .await
        .assert_status(401);
    get(&api_client, "/v1/items").await.assert_status(200);
    // The problem types are pages where problems are answered, too.
    get(&api_client, "/problems/not_found")
        .await
        .assert_status(200);
    get(&ops_client, "/problems/not_found")
        .await
        .assert_status(200);

    // The API's only slot held: probes still answer.
    let holder =
        tokio::spawn(async move { TestClient::connect(api).get("/v1/demo/delay?ms=1500").await });
    tokio::time::sleep(Duration::from_millis(300)).await; // real time: a real server
    let busy = get(&api_client, "/v1/items").await;
    assert!(busy.status == 503 || busy.status == 429, "{}", busy.status);
    for _ in 0..10 {
        get(&ops_client, "/health/ready").await.assert_status(200);
        get(&ops_client, "/metrics").await.assert_status(200);
    }

    // Stopping: the API drains its request; the management port says
    // "not ready" meanwhile, and stays live.
    let stopping = tokio::spawn(service.stop());
    tokio::time::sleep(Duration::from_millis(200)).await; // real time: a real server
    ops_client.get("/health/ready").await.assert_status(503);
    ops_client.get("/health/live").await.assert_status(200);
    holder.await.unwrap().assert_status(200);
    assert!(stopping.await.unwrap().is_clean());
}

/// The demo routes are off unless turned on: not served, not documented.
#[tokio::test]
async fn demo_routes_are_off_by_default() {
    let mut config = config();
    config.demo = examples::reference::Demo::default();
    let service = Service::start(config).await.unwrap();
    let client = TestClient::connect(service.addr());
    get(&client, "/v1/demo/delay?ms=10")
        .await
        .assert_status(404);
    get(&client, "/v1/demo/panic").await.assert_status(404);
    let doc: Value = get(&client, "/openapi.json").await.json();
    assert!(
        doc["paths"]["/v1/demo/delay"].is_null(),
        "undocumented when off"
    );
    get(&client, "/v1/items").await.assert_status(200);
    service.stop().await;
}

/// A database of its own for this test binary, on the throwaway cluster.
async fn fresh_database(url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to DATABASE_URL");
    tokio::spawn(connection);
    let name = "refsvc_contract";
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = url.rsplit_once('/').expect("a URL with a database name").0;
    format!("{base}/{name}")
}

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("DATABASE_URL must be set under CI=true (cargo xtask ci sets it)")
        }
        Err(_) => {
            eprintln!("skipped: DATABASE_URL is not set (run through `cargo xtask ci`)");
            None
        }
    }
}

#[tokio::test]
async fn contract_with_postgres() {
    let Some(url) = database_url() else { return };
    let mut config = config();
    config.database = Some(PostgresConfig {
        url: Secret::new(fresh_database(&url).await),
        ..PostgresConfig::default()
    });
    let service = Service::start(config.clone()).await.unwrap();
    assert_eq!(service.storage(), "postgres");
    check_contract(&service).await;
    let client = TestClient::connect(service.addr());
    let created = post(&client, json!({"name": "kept", "quantity": 7})).await;
    created.assert_status(201);
    let id = created.data()["id"].as_i64().unwrap();
    assert!(service.stop().await.is_clean());

    // Items outlive the process; migrations are not applied twice.
    let service = Service::start(config).await.unwrap();
    let client = TestClient::connect(service.addr());
    let read = get(&client, &format!("/v1/items/{id}")).await;
    read.assert_status(200);
    assert_eq!(read.data()["name"], "kept");
    service.stop().await;
}
