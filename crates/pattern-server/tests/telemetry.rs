//! Trace export end to end: an OTLP receiver started here (a hyper server
//! decoding the protobuf with opentelemetry-proto) gets the request spans
//! of a served app, with the caller's parent, the HTTP attributes and the
//! status; a retried call's attempts are client spans under the caller's,
//! each the parent of the server span it got; the trace id is in the
//! problem body and the JSON log line; an unsampled caller's trace is not
//! sent, and the calls made while serving it carry it unsampled; a
//! handler's spans and events are the server span's; 64 concurrent
//! requests each keep their own context; a request dropped before its
//! answer ends as cancelled; with the collector gone, requests stay fast
//! and the spans are dropped and counted.

#![cfg(feature = "opentelemetry")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use pattern_api::ApiError;
use pattern_api::stack::ApiStack;
use pattern_api::testing::TestClient;
use pattern_api::trace_context::ClientTraceLayer;
use pattern_error::retry::{RetryLayer, RetryPolicy};
use pattern_error::{Error, Kind};
use pattern_server::logging::{LogConfig, LogFormat};
use pattern_server::telemetry::{Sampler, TelemetryConfig};
use prost::Message as _;
use tokio::net::TcpListener;
use tower::{Service as _, ServiceBuilder, ServiceExt as _};
use tracing::Instrument as _;

/// What the receiver got: each span, with its resource's `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// An OTLP/HTTP receiver on 127.0.0.1; dropping the handle stops it.
async fn receiver() -> (SocketAddr, Received, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let store = received.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        assert_eq!(req.uri().path(), "/v1/traces");
                        assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                        let body = req.into_body().collect().await?.to_bytes();
                        let export =
                            ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                        for resource in export.resource_spans {
                            let service = resource
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .find(|kv| kv.key == "service.name")
                                .and_then(|kv| string(kv.value.as_ref()?.value.as_ref()?))
                                .unwrap_or_default();
                            for scope in resource.scope_spans {
                                for span in scope.spans {
                                    store.lock().unwrap().push((service.clone(), span));
                                }
                            }
                        }
                        let answer = ExportTraceServiceResponse::default().encode_to_vec();
                        Ok::<_, hyper::Error>(
                            http::Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::from(answer)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received, task)
}

fn string(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(text) => Some(text.clone()),
        _ => None,
    }
}

fn attribute(span: &Span, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server spans received so far for `trace_id`.
fn spans_of(received: &Received, trace_id: &str) -> Vec<Span> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, span)| hex(&span.trace_id) == trace_id)
        .map(|(_, span)| span.clone())
        .collect()
}

/// One HTTP/1.1 request on a fresh connection; the whole answer.
async fn send(req: Request<Full<Bytes>>) -> Result<http::Response<Bytes>, Error> {
    let uri = req.uri().clone();
    let addr = format!("{}:{}", uri.host().unwrap(), uri.port_u16().unwrap());
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| Error::with_source(Kind::Unavailable, "connecting", e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::with_source(Kind::Unavailable, "handshake", e))?;
    tokio::spawn(connection);
    let (mut parts, body) = req.into_parts();
    parts
        .headers
        .insert("host", uri.authority().unwrap().as_str().parse().unwrap());
    parts.uri = uri.path().parse().unwrap();
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(|e| Error::with_source(Kind::Unavailable, "sending", e))?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| Error::with_source(Kind::Unavailable, "reading", e))?
        .to_bytes();
    Ok(http::Response::from_parts(parts, body))
}

fn traced(path: &str, traceparent: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("traceparent", traceparent)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_an_otlp_receiver() {
    let (collector, received, receiving) = receiver().await;
    let log = std::env::temp_dir().join(format!("telemetry-test-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let logs = LogConfig {
        format: LogFormat::Json,
        file: Some(log.clone()),
        ..LogConfig::default()
    };
    let telemetry = TelemetryConfig {
        endpoint: Some(format!("http://{collector}")),
        service_name: "inventory".to_owned(),
        sampler: Sampler::ParentBasedAlwaysOn,
        max_queue_spans: 64,
        max_batch_spans: 16,
        export_interval_ms: 20,
        export_timeout_ms: 500,
        ..TelemetryConfig::default()
    };
    let (_guard, export) = pattern_server::logging::init_with_telemetry(&logs, &telemetry).unwrap();
    let export = export.expect("an endpoint, so an export");

    // Fails twice with 503, then answers.
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let calls = flaky_calls.clone();
    let app = ApiStack::new().apply(
        Router::new()
            .route("/v1/items/{id}", get(|| async { "item" }))
            .route(
                "/v1/flaky",
                get(move || {
                    let calls = calls.clone();
                    async move {
                        if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                            http::StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            http::StatusCode::OK
                        }
                    }
                }),
            )
            .route("/v1/hang", get(std::future::pending::<()>))
            .route(
                "/v1/panic",
                get(|| async {
                    if true {
                        panic!("a handler's bug");
                    }
                }),
            )
            .route(
                "/v1/complain",
                get(|| async {
                    tracing::error!("the cache is gone");
                    "served anyway"
                }),
            )
            .route(
                "/v1/echo",
                get(|| async {
                    // Other requests are served between these polls: each
                    // keeps its own context.
                    let mut seen = Vec::new();
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                        let mut headers = http::HeaderMap::new();
                        pattern_api::trace_context::inject(&mut headers);
                        seen.push(
                            headers
                                .get("traceparent")
                                .map(|v| v.to_str().unwrap().to_owned())
                                .unwrap_or_default(),
                        );
                    }
                    seen.join(" ")
                }),
            )
            .route(
                "/v1/nested",
                get(|| async {
                    // Outside any span of its own: an event of the server
                    // span's.
                    tracing::warn!(attempt = 2, "slow path");
                    // A span of the handler's: a child of the server span.
                    let lookup = tracing::info_span!("lookup");
                    lookup.in_scope(|| tracing::info!(rows = 3, "looked up"));
                    drop(lookup);
                    // What an outgoing call would carry.
                    let mut headers = http::HeaderMap::new();
                    pattern_api::trace_context::inject(&mut headers);
                    headers
                        .get("traceparent")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default()
                }),
            )
            .route(
                "/v1/boom",
                get(|| async {
                    Err::<(), _>(ApiError::from(Error::new(Kind::Internal, "db gone")))
                }),
            ),
    );
    let client = TestClient::serve(app).await;

    // A caller's sampled trace: the server span is its child.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    client
        .request(traced("/v1/items/7", &format!("00-{trace}-{parent}-01")))
        .await
        .assert_status(200);
    // A 5xx without a caller's trace: a new trace, whose id the problem
    // names.
    let problem = client.get("/v1/boom").await.assert_problem(500, "internal");
    let boom_trace = problem["trace_id"]
        .as_str()
        .expect("a trace id in the problem")
        .to_owned();
    assert_eq!(boom_trace.len(), 32, "{problem}");
    // A problem the stack makes itself (no route): its trace id too.
    let missing = client
        .request(traced("/v1/nowhere", &format!("00-{trace}-{parent}-01")))
        .await;
    let missing = missing.assert_problem(404, "not_found");
    assert_eq!(missing["trace_id"], trace, "{missing}");
    // A caller that did not sample: parent-based, nothing is sent, and
    // the calls made while serving it carry its trace, unsampled.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    client
        .request(traced(
            "/v1/items/8",
            &format!("00-{unsampled}-b7ad6b7169203331-00"),
        ))
        .await
        .assert_status(200);
    let onward = client
        .request(traced(
            "/v1/nested",
            &format!("00-{unsampled}-b7ad6b7169203331-00"),
        ))
        .await;
    let onward = onward.assert_status(200).text();
    let parts: Vec<&str> = onward.split('-').collect();
    assert_eq!(parts.len(), 4, "{onward}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", unsampled, "00"));
    assert_ne!(
        parts[2], "b7ad6b7169203331",
        "the caller's span is not ours"
    );
    // A sampled one: the handler's span and events are the server span's.
    let nested_trace = "11112222333344445555666677778888";
    let onward = client
        .request(traced(
            "/v1/nested",
            &format!("00-{nested_trace}-{parent}-01"),
        ))
        .await;
    let onward = onward.assert_status(200).text();
    // An ERROR logged while answering 200: the span is an error.
    let complained = "99990000999900009999000099990000";
    client
        .request(traced(
            "/v1/complain",
            &format!("00-{complained}-{parent}-01"),
        ))
        .await
        .assert_status(200);
    export.flush().await.unwrap();

    let spans = spans_of(&received, trace);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let span = spans
        .iter()
        .find(|s| s.name == "GET /v1/items/{id}")
        .expect("the item's span");
    assert_eq!(hex(&span.parent_span_id), parent);
    assert_eq!(span.name, "GET /v1/items/{id}");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(
        attribute(span, "http.request.method"),
        Some(Value::StringValue("GET".into()))
    );
    assert_eq!(
        attribute(span, "http.route"),
        Some(Value::StringValue("/v1/items/{id}".into()))
    );
    assert_eq!(
        attribute(span, "url.path"),
        Some(Value::StringValue("/v1/items/7".into()))
    );
    assert_eq!(
        attribute(span, "server.address"),
        Some(Value::StringValue("127.0.0.1".into()))
    );
    let port = i64::from(client.addr().unwrap().port());
    assert_eq!(attribute(span, "server.port"), Some(Value::IntValue(port)));
    assert_eq!(
        attribute(span, "http.response.status_code"),
        Some(Value::IntValue(200))
    );
    assert_eq!(attribute(span, "error.type"), None);
    assert_ne!(
        span.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    let service = received.lock().unwrap()[0].0.clone();
    assert_eq!(service, "inventory");

    let spans = spans_of(&received, &boom_trace);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let boom = &spans[0];
    assert!(boom.parent_span_id.is_empty(), "a root span");
    assert_eq!(boom.name, "GET /v1/boom");
    assert_eq!(
        attribute(boom, "http.response.status_code"),
        Some(Value::IntValue(500))
    );
    assert_eq!(
        attribute(boom, "error.type"),
        Some(Value::StringValue("500".into()))
    );
    assert_eq!(
        boom.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );

    assert!(
        spans_of(&received, unsampled).is_empty(),
        "an unsampled trace was sent"
    );
    let nested = spans_of(&received, nested_trace);
    assert_eq!(nested.len(), 2, "{nested:#?}");
    let server_span = nested
        .iter()
        .find(|s| s.name == "GET /v1/nested")
        .expect("the server span");
    let lookup = nested
        .iter()
        .find(|s| s.name == "lookup")
        .expect("the handler's span");
    assert_eq!(lookup.parent_span_id, server_span.span_id);
    assert_eq!(hex(&server_span.parent_span_id), parent);
    assert_eq!(
        onward,
        format!("00-{nested_trace}-{}-01", hex(&server_span.span_id)),
        "an outgoing call names the server span"
    );
    let slow = server_span
        .events
        .iter()
        .find(|e| e.name == "slow path")
        .unwrap_or_else(|| panic!("the handler's event: {server_span:#?}"));
    let event_attribute = |key: &str| {
        slow.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.clone())
    };
    assert_eq!(event_attribute("attempt"), Some(Value::IntValue(2)));
    assert_eq!(
        event_attribute("level"),
        Some(Value::StringValue("WARN".into()))
    );
    assert!(
        lookup.events.iter().any(|e| e.name == "looked up"),
        "{lookup:#?}"
    );
    assert!(server_span.events.iter().all(|e| e.name != "looked up"));
    let complaint = spans_of(&received, complained);
    assert_eq!(complaint.len(), 1, "{complaint:#?}");
    assert_eq!(
        complaint[0].status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert_eq!(
        attribute(&complaint[0], "http.response.status_code"),
        Some(Value::IntValue(200))
    );
    assert!(
        complaint[0]
            .events
            .iter()
            .any(|e| e.name == "the cache is gone")
    );
    assert_eq!(export.dropped(), 0);
    assert_eq!(export.exported(), 6);

    // The access lines carry the trace ids.
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut lines = lines;
    while !lines.contains("/v1/boom") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        lines = std::fs::read_to_string(&log).unwrap_or_default();
    }
    let access: Vec<serde_json::Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &serde_json::Value| l["target"] == pattern_api::middleware::ACCESS_TARGET)
        .collect();
    let line = |path: &str| {
        access
            .iter()
            .find(|l| l["path"] == path)
            .unwrap_or_else(|| panic!("no access line for {path}:\n{lines}"))
            .clone()
    };
    assert_eq!(line("/v1/items/7")["trace_id"], trace, "{lines}");
    assert_eq!(line("/v1/items/7")["route"], "/v1/items/{id}", "{lines}");
    assert_eq!(line("/v1/boom")["trace_id"], boom_trace.as_str(), "{lines}");
    // Other events in a traced request name its trace too (the 500's
    // error, logged while serving it).
    let logged = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["target"] != pattern_api::middleware::ACCESS_TARGET && l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error logged for the 500:\n{lines}"));
    assert_eq!(logged["trace_id"], boom_trace.as_str(), "{logged}");

    // A retried call: each attempt a client span under the caller's span,
    // each server span a child of its attempt's.
    let server = client.addr().unwrap();
    let policy = RetryPolicy::builder("flaky")
        .max_attempts(3)
        .backoff(Duration::from_millis(1), 2.0, Duration::from_millis(5))
        .build()
        .unwrap();
    let mut calls = ServiceBuilder::new()
        .layer(
            RetryLayer::new(policy)
                .retry_response(|res: &http::Response<Bytes>| res.status() == 503)
                .clone_request(|req: &Request<Full<Bytes>>| {
                    let mut copy = Request::new(req.body().clone());
                    *copy.uri_mut() = req.uri().clone();
                    Some(copy)
                }),
        )
        .layer(ClientTraceLayer::new())
        .service(tower::service_fn(send));
    let caller = tracing::info_span!("job");
    let uri: http::Uri = format!("http://{server}/v1/flaky").parse().unwrap();
    let request = Request::builder()
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .unwrap();
    // The whole call in the caller's span, as an instrumented task makes it.
    let answer = async { calls.ready().await?.call(request).await }
        .instrument(caller.clone())
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(flaky_calls.load(Ordering::SeqCst), 3);
    drop(caller);
    export.flush().await.unwrap();
    let all: Vec<Span> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| s.clone())
        .collect();
    let job = all
        .iter()
        .find(|s| s.name == "job")
        .expect("the caller's span");
    let attempts: Vec<&Span> = all
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32 && s.trace_id == job.trace_id)
        .collect();
    assert_eq!(attempts.len(), 3, "{all:#?}");
    let mut statuses = Vec::new();
    for attempt in &attempts {
        assert_eq!(
            attempt.parent_span_id, job.span_id,
            "each attempt under the caller"
        );
        assert_eq!(attempt.name, "GET");
        let served: Vec<&Span> = all
            .iter()
            .filter(|s| s.kind == SpanKind::Server as i32 && s.parent_span_id == attempt.span_id)
            .collect();
        assert_eq!(served.len(), 1, "one server span per attempt");
        assert_eq!(served[0].name, "GET /v1/flaky");
        statuses.push(attribute(attempt, "http.response.status_code"));
    }
    statuses.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        statuses,
        [
            Some(Value::IntValue(200)),
            Some(Value::IntValue(503)),
            Some(Value::IntValue(503))
        ]
    );
    let distinct: std::collections::HashSet<&Vec<u8>> =
        attempts.iter().map(|s| &s.span_id).collect();
    assert_eq!(distinct.len(), 3);

    // Many callers at once, their polls interleaved on the server's
    // threads: each request keeps its own trace, and a request without a
    // caller's starts a new one (no context is left behind).
    let calls = (0..64u32).map(|i| {
        let client = &client;
        async move {
            let trace = format!("{:032x}", 0xabc0_0000_u64 + u64::from(i) + 1);
            let flags = if i % 2 == 0 { "01" } else { "00" };
            let answer = client
                .request(traced("/v1/echo", &format!("00-{trace}-{parent}-{flags}")))
                .await;
            (trace, flags, answer.assert_status(200).text())
        }
    });
    let mut traces = std::collections::HashSet::new();
    for (trace, flags, seen) in futures_util::future::join_all(calls).await {
        let seen: Vec<&str> = seen.split(' ').collect();
        assert_eq!(seen.len(), 3);
        for traceparent in &seen {
            assert!(
                traceparent.starts_with(&format!("00-{trace}-"))
                    && traceparent.ends_with(&format!("-{flags}")),
                "{traceparent} in a request of trace {trace}"
            );
            assert_eq!(traceparent, &seen[0], "one server span per request");
        }
        traces.insert(trace);
    }
    // A handler that panics: a 500 naming its trace, the span an error,
    // and no context left behind for the next request.
    let panicked_trace = "77778888777788887777888877778888";
    let problem = client
        .request(traced(
            "/v1/panic",
            &format!("00-{panicked_trace}-{parent}-01"),
        ))
        .await
        .assert_problem(500, "internal");
    assert_eq!(problem["trace_id"], panicked_trace, "{problem}");
    let fresh = client.get("/v1/echo").await.assert_status(200).text();
    let fresh_trace = fresh.split('-').nth(1).expect("a traceparent");
    assert_eq!(fresh_trace.len(), 32, "{fresh}");
    assert!(
        !traces.contains(fresh_trace),
        "{fresh} continues another request's trace"
    );
    // A request dropped before its answer: its span ends as cancelled.
    let hanging = client.request(traced(
        "/v1/hang",
        &format!("00-{nested_trace}-{parent}-01"),
    ));
    assert!(
        tokio::time::timeout(Duration::from_millis(100), hanging)
            .await
            .is_err()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let cancelled = loop {
        export.flush().await.unwrap();
        if let Some(span) = spans_of(&received, nested_trace)
            .into_iter()
            .find(|s| s.name == "GET /v1/hang")
        {
            break span;
        }
        assert!(Instant::now() < deadline, "no span for the dropped request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        attribute(&cancelled, "error.type"),
        Some(Value::StringValue("cancelled".into()))
    );
    assert_eq!(
        cancelled.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert_eq!(attribute(&cancelled, "http.response.status_code"), None);
    let panicked = spans_of(&received, panicked_trace);
    assert_eq!(panicked.len(), 1, "{panicked:#?}");
    assert_eq!(
        attribute(&panicked[0], "error.type"),
        Some(Value::StringValue("500".into()))
    );
    let exported_before_outage = export.exported();

    // The collector gone: requests stay fast; their spans are dropped and
    // counted, never waited for.
    receiving.abort();
    let _ = receiving.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut slowest = Duration::ZERO;
    for i in 0..200 {
        let started = Instant::now();
        client
            .get(&format!("/v1/items/{i}"))
            .await
            .assert_status(200);
        slowest = slowest.max(started.elapsed());
    }
    let _ = export.flush().await;
    assert!(
        slowest < Duration::from_millis(200),
        "a request took {slowest:?}"
    );
    assert!(export.dropped() >= 150, "dropped {}", export.dropped());
    assert_eq!(export.exported(), exported_before_outage);
    let _ = std::fs::remove_file(&log);
}
