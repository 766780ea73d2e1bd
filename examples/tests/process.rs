//! The reference service as a process: it prints its real address, and on
//! SIGTERM lets a request in flight finish, then exits 0.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use patterns::api::testing::TestClient;

/// `target/<profile>/examples/reference-service`, next to this test's own
/// binary in `target/<profile>/deps/` (`cargo test` builds the examples).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile
        .join("examples")
        .join(format!("reference-service{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test` (it builds the examples)",
        path.display()
    );
    path
}

/// The service with `env`, its address once ready, and its standard
/// output's lines after the address line.
fn spawn(env: &[(&str, &str)]) -> (KillOnDrop, SocketAddr, Receiver<String>) {
    let mut command = Command::new(binary());
    command
        .env("REFSVC_SERVER__ADDR", "127.0.0.1:0")
        .env("REFSVC_SERVER__DRAIN_TIMEOUT_MS", "5000")
        .env("REFSVC_DEMO__ENABLED", "true")
        .env("REFSVC_CONFIG", "/nonexistent/reference-service.toml")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = KillOnDrop(command.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the service prints its address once ready");
        if let Some(addr) = line.strip_prefix("listening on http://") {
            break addr.parse().unwrap();
        }
    };
    (child, addr, rx)
}

/// Sends SIGTERM and waits for a clean exit.
async fn terminate(child: KillOnDrop) {
    let kill = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || {
        let mut child = child;
        child.0.wait()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_its_address_and_drains_on_sigterm() {
    let (mut child, addr, _lines) = spawn(&[("RUST_LOG", "warn")]);
    assert_ne!(addr.port(), 0, "the real port is printed");

    let client = TestClient::connect(addr);
    client.get("/health/ready").await.assert_status(200);
    let in_flight =
        tokio::spawn(async move { TestClient::connect(addr).get("/v1/demo/delay?ms=800").await });
    // Let the request reach its handler (real time: the service is another process).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let response = in_flight.await.unwrap();
    response.assert_status(200);
    let status = tokio::task::spawn_blocking(move || child.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(6),
        "exited within the drain deadline plus 1 s"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after exit"
    );
}

/// The service process, killed if the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// JSON logs: one object per line, the access event carrying the request's
/// id, status and route path; no colour escapes anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_one_object_per_line_with_the_request_id() {
    let file = std::env::temp_dir().join(format!("refsvc-json-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let (child, addr, _lines) = spawn(&[
        ("REFSVC_LOG__FORMAT", "json"),
        ("REFSVC_LOG__FILE", file.to_str().unwrap()),
    ]);
    let mut headers = http::HeaderMap::new();
    headers.insert("x-request-id", "json-log-check-1".parse().unwrap());
    TestClient::connect(addr)
        .send(http::Method::GET, "/v1/items", headers, Default::default())
        .await
        .assert_status(200);
    terminate(child).await;
    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(!text.contains('\u{1b}'), "no colour escapes in a file");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect();
    let access = events
        .iter()
        .find(|event| {
            event["message"] == "request finished" && event["request_id"] == "json-log-check-1"
        })
        .unwrap_or_else(|| panic!("no access event for the request in {text}"));
    assert_eq!(access["status"], 200, "{access}");
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["target"], "pattern_api::access");
    assert_eq!(access["path"], "/v1/items");
    assert_eq!(access["method"], "GET");
    assert!(access["latency_ms"].is_number());
    assert!(
        events.iter().any(|event| event["message"] == "stopped"),
        "flushed at exit"
    );
}

/// Text logs on a pipe have no colour; the access log can be switched off
/// (or lowered below the filter) on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_on_a_pipe_have_no_colour_and_the_access_log_is_a_setting() {
    for (access, expect_access) in [("info", true), ("debug", false), ("off", false)] {
        let (child, addr, lines) = spawn(&[("REFSVC_LOG__ACCESS", access)]);
        TestClient::connect(addr)
            .get("/v1/items")
            .await
            .assert_status(200);
        terminate(child).await;
        let text: Vec<String> = lines.try_iter().collect();
        let text = text.join("\n");
        assert!(
            !text.contains('\u{1b}'),
            "no colour escapes on a pipe: {text}"
        );
        assert!(text.contains("stopped"), "{text}");
        assert_eq!(
            text.contains("request finished"),
            expect_access,
            "access={access}: {text}"
        );
    }
}

/// The standard `OTEL_*` variables: spans go to the named collector with
/// the named service, sampled as `OTEL_TRACES_SAMPLER` says (here: a
/// caller's sampled trace is continued, no new trace is started), and the
/// access line names the caller's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_the_standard_opentelemetry_variables() {
    use std::sync::{Arc, Mutex};

    // A collector that keeps what it is sent.
    let received: Arc<Mutex<Vec<u8>>> = Arc::default();
    let store = received.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                store.lock().unwrap().extend_from_slice(&body);
                http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let file = std::env::temp_dir().join(format!("refsvc-otel-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let endpoint = format!("http://{collector_addr}");
    let (child, addr, _lines) = spawn(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "otel-variables-check"),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_off"),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=otel-check-env",
        ),
        ("REFSVC_LOG__FORMAT", "json"),
        ("REFSVC_LOG__FILE", file.to_str().unwrap()),
    ]);
    let client = TestClient::connect(addr);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").parse().unwrap(),
    );
    client
        .send(http::Method::GET, "/v1/items", headers, Default::default())
        .await
        .assert_status(200);
    // No caller's trace: always off for new traces, nothing is sent.
    client.get("/v1/items/424242").await.assert_status(404);
    // Stopping sends what is queued.
    terminate(child).await;

    let sent = received.lock().unwrap().clone();
    let contains = |needle: &[u8]| sent.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"otel-variables-check"), "the service's name");
    assert!(
        contains(b"deployment.environment"),
        "OTEL_RESOURCE_ATTRIBUTES"
    );
    assert!(contains(b"otel-check-env"), "OTEL_RESOURCE_ATTRIBUTES");
    assert!(
        contains(b"telemetry.sdk.language"),
        "the SDK's own resource"
    );
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert!(contains(&trace_bytes), "the caller's trace");
    assert!(contains(b"GET /v1/items"), "the span's name");
    assert!(
        !contains(b"/v1/items/424242"),
        "an unsampled new trace was sent"
    );

    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    let access = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["message"] == "request finished" && event["path"] == "/v1/items")
        .unwrap_or_else(|| panic!("no access line in {text}"));
    assert_eq!(access["trace_id"], trace, "{access}");
    assert_eq!(access["route"], "/v1/items", "{access}");
}
