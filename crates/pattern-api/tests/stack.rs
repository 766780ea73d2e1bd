//! The assembled middleware chain: metrics by route template, timeouts with
//! a visible deadline, limits, panics — all as problem+json.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use pattern_api::middleware::{Deadline, DeadlineLayer};
use pattern_api::stack::ApiStack;
use pattern_api::testing::TestClient;
use serde_json::Value;
use tower::ServiceExt;

fn app(stack: ApiStack) -> Router {
    stack.apply(
        Router::new()
            .route(
                "/v1/items/{id}",
                get(|Path(id): Path<u32>| async move { format!("item {id}") }),
            )
            .route(
                "/v1/slow",
                get(|deadline: Deadline| async move {
                    assert!(deadline.remaining() <= Duration::from_millis(100));
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    "late"
                }),
            )
            .route(
                "/v1/echo",
                axum::routing::post(|body: String| async move { body }),
            )
            .route(
                "/v1/panic",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    ""
                }),
            ),
    )
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let response = TestClient::new(app).request(req).await;
    let json = response.json_value();
    (response.status, response.headers, json)
}

#[test]
fn metrics_are_labelled_by_route_template() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            for id in [1, 2, 3] {
                let req = Request::get(format!("/v1/items/{id}"))
                    .body(Body::empty())
                    .unwrap();
                assert_eq!(send(app(ApiStack::new()), req).await.0, 200);
            }
            let req = Request::get("/nowhere").body(Body::empty()).unwrap();
            assert_eq!(send(app(ApiStack::new()), req).await.0, 404);
        })
    });
    let metrics: Vec<_> = snapshotter.snapshot().into_vec();
    let count = |route: &str, status: &str| {
        metrics
            .iter()
            .find(|(key, _, _, _)| {
                let key = key.key();
                key.name() == "http_requests_total"
                    && key
                        .labels()
                        .any(|l| l.key() == "route" && l.value() == route)
                    && key
                        .labels()
                        .any(|l| l.key() == "status" && l.value() == status)
            })
            .map(|(_, _, _, value)| value)
    };
    assert_eq!(
        count("/v1/items/{id}", "200"),
        Some(&DebugValue::Counter(3))
    );
    assert_eq!(count("unmatched", "404"), Some(&DebugValue::Counter(1)));
    assert!(
        metrics.iter().all(|(key, _, _, _)| !key
            .key()
            .labels()
            .any(|l| l.value().contains("/v1/items/1"))),
        "no raw paths as labels"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_requests_time_out_as_problems() {
    let req = || Request::get("/v1/slow").body(Body::empty()).unwrap();
    let stack = ApiStack::new().timeout(DeadlineLayer::new(Duration::from_millis(100)));
    let (status, headers, body) = send(app(stack), req()).await;
    assert_eq!(status, 504);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["code"], "timeout");
    assert!(headers.contains_key("x-request-id"));

    let stack = ApiStack::new().timeout(DeadlineLayer::new(Duration::from_millis(100)).with_503());
    assert_eq!(send(app(stack), req()).await.0, 503);
}

/// Timeouts at their extremes: `Duration::MAX` (it overflowed the clock
/// and panicked on every request) and zero, through the stack and the
/// standalone layer.
#[tokio::test(start_paused = true)]
async fn timeouts_of_any_length_serve() {
    let req = || Request::get("/v1/items/1").body(Body::empty()).unwrap();
    for timeout in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
        let (status, _, _) = send(
            app(ApiStack::new().timeout(DeadlineLayer::new(timeout))),
            req(),
        )
        .await;
        assert_eq!(status, 200, "{timeout:?}");
        let layered = app(ApiStack::new().timeout(DeadlineLayer::new(timeout)));
        assert_eq!(send(layered, req()).await.0, 200);
        let queued = app(ApiStack::new()
            .concurrency_limit(1)
            .admission_queue(4, timeout)
            .timeout(DeadlineLayer::new(timeout)));
        assert_eq!(send(queued, req()).await.0, 200);
        let standalone = Router::new()
            .route("/v1/items/{id}", get(|| async { "item" }))
            .layer(DeadlineLayer::new(timeout));
        let response = standalone.oneshot(req()).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let (status, _, _) = send(
        app(ApiStack::new().timeout(DeadlineLayer::new(Duration::ZERO))),
        req(),
    )
    .await;
    assert!(status == 200 || status == 504, "{status}");
}

#[tokio::test]
async fn bodies_over_the_limit_and_panics_are_problems() {
    let req = Request::post("/v1/echo")
        .body(Body::from(vec![b'x'; 2048]))
        .unwrap();
    let (status, headers, body) = send(app(ApiStack::new().body_limit(1024)), req).await;
    assert_eq!(status, 413);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["status"], 413);

    let req = Request::get("/v1/panic").body(Body::empty()).unwrap();
    let (status, _, body) = send(app(ApiStack::new()), req).await;
    assert_eq!(status, 500);
    assert!(!body.to_string().contains("boom"));
}

#[tokio::test]
async fn cors_and_compression_when_switched_on() {
    use tower_http::cors::{Any, CorsLayer};
    let stack = ApiStack::new()
        .cors(CorsLayer::new().allow_origin(Any))
        .compression(true);
    let app = stack.apply(Router::new().route("/big", get(|| async { "x".repeat(4096) })));
    let req = Request::get("/big")
        .header("origin", "http://127.0.0.1:3000")
        .header("accept-encoding", "gzip")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.into_body().collect().await.unwrap().to_bytes();
    assert!(compressed.len() < 4096 / 10, "{} bytes", compressed.len());

    // A rejection answered by the chain still carries CORS headers.
    let req = Request::get("/nowhere")
        .header("origin", "http://127.0.0.1:3000")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(req).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
}

#[tokio::test(start_paused = true)]
async fn a_caller_deadline_header_tightens_the_timeout() {
    let app = ApiStack::new()
        .timeout(DeadlineLayer::new(Duration::from_secs(30)))
        .apply(Router::new().route(
            "/wait",
            get(|deadline: Deadline| async move {
                // Passed on downstream as what is left.
                let left: u64 = deadline.header_value().to_str().unwrap().parse().unwrap();
                assert!(left <= 50, "{left}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                "late"
            }),
        ));
    let req = Request::get("/wait")
        .header("x-request-timeout-ms", "50")
        .body(Body::empty())
        .unwrap();
    let started = tokio::time::Instant::now();
    let (status, _, body) = send(app, req).await;
    assert_eq!(status, 504);
    assert_eq!(body["code"], "timeout");
    assert!(
        started.elapsed() <= Duration::from_millis(60),
        "{:?}",
        started.elapsed()
    );
}

/// The caller's id and deadline headers are read among few headers and
/// among many (either side of the count up to which one pass finds both),
/// in any order, the first value of each when sent twice.
#[tokio::test(start_paused = true)]
async fn the_id_and_deadline_headers_are_found_among_few_or_many() {
    // With the four id and deadline values: 4, 7, 16 and 17 (either side
    // of the one-pass limit) and 44 values.
    for extra in [0, 3, 12, 13, 40] {
        for id_first in [true, false] {
            let app = ApiStack::new()
                .timeout(DeadlineLayer::new(Duration::from_secs(30)))
                .apply(Router::new().route(
                    "/wait",
                    get(|| async {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        "late"
                    }),
                ));
            let mut req = Request::get("/wait");
            for n in 0..extra {
                req = req.header(format!("x-extra-{n}"), "1");
            }
            let pairs = [("x-request-id", "first-id"), ("x-request-timeout-ms", "50")];
            let (a, b) = if id_first {
                (pairs[0], pairs[1])
            } else {
                (pairs[1], pairs[0])
            };
            req = req.header(a.0, a.1).header(b.0, b.1);
            // Second values: ignored.
            req = req
                .header("x-request-id", "second-id")
                .header("x-request-timeout-ms", "20000");
            let req = req.body(Body::empty()).unwrap();
            let started = tokio::time::Instant::now();
            let (status, headers, body) = send(app, req).await;
            assert_eq!(status, 504, "extra {extra}");
            assert_eq!(headers["x-request-id"], "first-id", "extra {extra}");
            assert_eq!(body["request_id"], "first-id", "extra {extra}");
            assert!(
                started.elapsed() <= Duration::from_millis(60),
                "extra {extra}"
            );
        }
    }
}

/// Rejections made while the chain is being called (the rate limit's 429,
/// load shedding's 503), not while it is polled, still carry the request
/// id in their problem body, the same as the echoed header.
#[tokio::test]
async fn rejections_in_the_chain_carry_the_request_id() {
    use std::num::NonZeroU32;

    use pattern_api::middleware::RateLimitLayer;
    use pattern_network::flow::rate::Quota;

    let quota = Quota::per_second(NonZeroU32::new(1).unwrap());
    let limited = app(
        ApiStack::new().rate_limit(RateLimitLayer::per_key(quota, 16, |_| {
            "one client".to_owned()
        })),
    );
    let request = || {
        Request::get("/v1/items/7")
            .header("x-request-id", "client-id-1")
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, _) = send(limited.clone(), request()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, problem) = send(limited, request()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["x-request-id"], "client-id-1");
    assert_eq!(problem["request_id"], "client-id-1", "{problem}");

    // One slot, held by a request that never ends: the next one is shed,
    // with its generated id.
    let shed = ApiStack::new()
        .concurrency_limit(1)
        .apply(Router::new().route("/v1/hold", get(std::future::pending::<&'static str>)));
    let holder = tokio::spawn(
        shed.clone()
            .oneshot(Request::get("/v1/hold").body(Body::empty()).unwrap()),
    );
    tokio::task::yield_now().await;
    let (status, headers, problem) =
        send(shed, Request::get("/v1/hold").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let id = headers["x-request-id"].to_str().unwrap();
    assert_eq!(problem["request_id"], id, "{problem}");
    holder.abort();
}

/// The rate limit comes before the concurrency gate: with the only slot
/// held, a client over its rate gets its own 429, not the 503 of a full
/// server (it took a slot or a queue place first, and under load everyone
/// got 503).
#[tokio::test]
async fn an_over_limit_client_gets_429_even_when_the_server_is_full() {
    use std::num::NonZeroU32;

    use pattern_api::middleware::RateLimitLayer;
    use pattern_network::flow::rate::Quota;

    let quota = Quota::per_second(NonZeroU32::new(1).unwrap());
    for queue in [false, true] {
        let mut stack = ApiStack::new()
            .concurrency_limit(1)
            .rate_limit(RateLimitLayer::per_key(quota, 16, |req: &Request<Body>| {
                req.headers()
                    .get("x-client")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("anonymous")
                    .to_owned()
            }));
        if queue {
            stack = stack.admission_queue(4, Duration::from_millis(50));
        }
        let full =
            stack.apply(Router::new().route("/v1/hold", get(std::future::pending::<&'static str>)));
        let from = |client: &str| {
            Request::get("/v1/hold")
                .header("x-client", client)
                .body(Body::empty())
                .unwrap()
        };
        let holder = tokio::spawn(full.clone().oneshot(from("holder")));
        tokio::task::yield_now().await;
        // "greedy" spends its one request a second on a 503 (or a wait)...
        let first = send(full.clone(), from("greedy")).await.0;
        assert_eq!(first, StatusCode::SERVICE_UNAVAILABLE, "queue {queue}");
        // ... and its next is its own 429, whatever the server's load.
        let (status, _, problem) = send(full.clone(), from("greedy")).await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "queue {queue}: {problem}"
        );
        holder.abort();
    }
}

/// Per client IP, IPv6 clients count by their /64: addresses of one /64
/// share a bucket (each address had its own, so one host could bypass the
/// limit), another /64 has its own, and IPv4 clients are one by one.
#[tokio::test]
async fn ipv6_clients_are_limited_by_their_64() {
    use std::net::SocketAddr;
    use std::num::NonZeroU32;

    use axum::extract::ConnectInfo;
    use pattern_api::middleware::RateLimitLayer;
    use pattern_network::flow::rate::Quota;

    let quota = Quota::per_second(NonZeroU32::new(1).unwrap());
    let limited = app(ApiStack::new().rate_limit(RateLimitLayer::per_client_ip(quota, 64)));
    let from = |addr: &str| {
        let mut req = Request::get("/v1/items/1").body(Body::empty()).unwrap();
        let addr: SocketAddr = addr.parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        req
    };
    assert_eq!(
        send(limited.clone(), from("[2001:db8:1:2::1]:4000"))
            .await
            .0,
        200
    );
    assert_eq!(
        send(limited.clone(), from("[2001:db8:1:2::ffff]:4000"))
            .await
            .0,
        429,
        "same /64, same bucket"
    );
    assert_eq!(
        send(limited.clone(), from("[2001:db8:1:3::1]:4000"))
            .await
            .0,
        200
    );
    assert_eq!(send(limited.clone(), from("10.0.0.1:4000")).await.0, 200);
    assert_eq!(send(limited, from("10.0.0.2:4000")).await.0, 200);
}

/// A client that never finishes sending a JSON body gets 408 Request
/// Timeout at the request's deadline (its fault), not the 504 a slow
/// handler gets.
#[tokio::test(start_paused = true)]
async fn a_body_that_never_ends_is_a_408_at_the_deadline() {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use axum::body::Bytes;
    use http_body::Frame;

    /// One chunk of JSON, then nothing, forever.
    struct Endless(bool);

    impl http_body::Body for Endless {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if std::mem::replace(&mut self.0, false) {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{\"nam")))))
            } else {
                Poll::Pending
            }
        }
    }

    #[derive(serde::Deserialize, garde::Validate)]
    struct Item {
        #[garde(length(min = 1))]
        name: String,
    }

    let routes = || {
        Router::new()
            .route(
                "/v1/items",
                axum::routing::post(
                    |pattern_api::extract::Valid(item): pattern_api::extract::Valid<Item>| async move {
                        item.name
                    },
                ),
            )
            .route("/v1/text", axum::routing::post(|body: String| async move { body }))
    };
    let timeout = Duration::from_millis(100);
    // Whatever reads the body, under the stack or the standalone layer.
    for (app, path) in [
        (
            ApiStack::new()
                .timeout(DeadlineLayer::new(timeout))
                .apply(routes()),
            "/v1/items",
        ),
        (
            ApiStack::new()
                .timeout(DeadlineLayer::new(timeout))
                .apply(routes()),
            "/v1/text",
        ),
        (routes().layer(DeadlineLayer::new(timeout)), "/v1/text"),
    ] {
        let start = tokio::time::Instant::now();
        let (status, headers, problem) = send(
            app,
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::new(Endless(true)))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{path}: {problem}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(problem["status"], 408);
        // At the deadline, by the one timer.
        assert_eq!(start.elapsed(), timeout);
    }

    // A handler that has its body and is slow itself is still a 504.
    let slow = ApiStack::new()
        .timeout(DeadlineLayer::new(timeout))
        .apply(Router::new().route(
            "/v1/slow",
            axum::routing::post(|body: String| async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                body
            }),
        ));
    let (status, _, _) = send(
        slow,
        Request::post("/v1/slow").body(Body::from("done")).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

/// A body over the limit is refused by the extractor before the handler
/// runs, whether its size is declared or it is streamed; a limit above
/// axum's own 2 MB default lifts that default.
#[tokio::test]
async fn the_body_limit_holds_for_declared_and_streamed_bodies() {
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = |limit: usize| {
        let reached = reached.clone();
        ApiStack::new().body_limit(limit).apply(Router::new().route(
            "/upload",
            axum::routing::post(move |body: axum::body::Bytes| async move {
                reached.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                body.len().to_string()
            }),
        ))
    };

    // Declared (exact size known): 413, the handler never reached.
    let req = Request::post("/upload")
        .body(Body::from(vec![b'x'; 2048]))
        .unwrap();
    let (status, _, body) = send(app(1024), req).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);

    // Streamed (size unknown until read): the extractor stops at the limit.
    let chunks = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 512]))),
    );
    let req = Request::post("/upload")
        .body(Body::from_stream(chunks))
        .unwrap();
    let (status, headers, _) = send(app(1024), req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers["content-type"], "application/problem+json");

    // Within the limit, streamed or not, the handler gets it all.
    let chunks = futures_util::stream::iter(
        (0..2).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 512]))),
    );
    let req = Request::post("/upload")
        .body(Body::from_stream(chunks))
        .unwrap();
    let response = app(1024).oneshot(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let size = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&size[..], b"1024");

    // A 3 MB limit takes a 2.5 MB body that axum's default would refuse.
    let big = 5 * 512 * 1024;
    let req = Request::post("/upload")
        .body(Body::from(vec![b'x'; big]))
        .unwrap();
    let response = app(3 * 1024 * 1024).oneshot(req).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_deadline_extractor_reads_the_layer_or_the_stack() {
    async fn left(deadline: Option<Deadline>) -> String {
        deadline.map_or_else(
            || "none".to_owned(),
            |d| d.remaining().as_secs().to_string(),
        )
    }
    let routes = || Router::new().route("/left", get(left));
    for app in [
        ApiStack::new()
            .timeout(DeadlineLayer::new(Duration::from_secs(30)))
            .apply(routes()),
        routes().layer(DeadlineLayer::new(Duration::from_secs(30))),
    ] {
        let response = app
            .oneshot(Request::get("/left").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let secs: u64 = std::str::from_utf8(&body).unwrap().parse().unwrap();
        assert!((29..=30).contains(&secs), "{secs}");
    }
    let untimed = ApiStack::new().timeout(None).apply(routes());
    let response = untimed
        .oneshot(Request::get("/left").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"none");
}

/// A panic while the chain admits a request (here in a rate-limit key
/// function) is a 500 problem, like one in a handler.
#[tokio::test]
async fn a_panic_in_a_key_function_is_a_500() {
    use pattern_api::middleware::RateLimitLayer;
    use pattern_network::flow::rate::Quota;
    let quota = Quota::per_second(std::num::NonZeroU32::new(10).unwrap());
    let app = ApiStack::new()
        .rate_limit(RateLimitLayer::per_key(quota, 16, |req: &Request<Body>| {
            req.headers()["x-api-key"].to_str().unwrap().to_owned()
        }))
        .apply(Router::new().route("/", get(|| async { "ok" })));
    let (status, headers, problem) =
        send(app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 500);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(problem["request_id"].is_string(), "{problem}");
}

/// With its own request id off, the stack keeps the id of a layer further
/// out in its problems.
#[tokio::test]
async fn an_outer_request_id_stays_current() {
    let app = ApiStack::new()
        .request_id(false)
        .apply(Router::new().route(
            "/v1/missing",
            get(|| async {
                pattern_api::ApiError::from(pattern_error::Error::new(
                    pattern_error::Kind::NotFound,
                    "nothing here",
                ))
            }),
        ))
        .layer(pattern_api::request_id::RequestIdLayer);
    let req = Request::get("/v1/missing")
        .header("x-request-id", "outer-7")
        .body(Body::empty())
        .unwrap();
    let (status, _, problem) = send(app, req).await;
    assert_eq!(status, 404);
    assert_eq!(problem["request_id"], "outer-7");
}

/// A request still waiting in the admission queue when its deadline comes
/// is shed (503 with `Retry-After`), not timed out; the one holding the
/// slot times out (504).
#[tokio::test(start_paused = true)]
async fn a_deadline_in_the_queue_is_a_503_with_retry_after() {
    let app = ApiStack::new()
        .concurrency_limit(1)
        .admission_queue(4, Duration::from_secs(10))
        .timeout(DeadlineLayer::new(Duration::from_millis(100)))
        .apply(Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                "late"
            }),
        ));
    let first = tokio::spawn(send(
        app.clone(),
        Request::get("/slow").body(Body::empty()).unwrap(),
    ));
    tokio::task::yield_now().await;
    let start = tokio::time::Instant::now();
    let (status, headers, problem) =
        send(app, Request::get("/slow").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(problem["code"], "overloaded");
    assert!(start.elapsed() < Duration::from_millis(100));
    assert_eq!(first.await.unwrap().0, 504);
}

/// A handler that gives up reading its body and then is slow itself is a
/// 504: the client is not waited on any more.
#[tokio::test(start_paused = true)]
async fn a_body_read_given_up_does_not_make_the_handler_late_a_408() {
    let app = ApiStack::new()
        .timeout(DeadlineLayer::new(Duration::from_millis(100)))
        .apply(Router::new().route(
            "/v1/impatient",
            axum::routing::post(|body: Body| async move {
                let read = http_body_util::BodyExt::collect(body);
                let _ = tokio::time::timeout(Duration::from_millis(10), read).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                "late"
            }),
        ));
    let endless = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let req = Request::post("/v1/impatient")
        .body(Body::from_stream(endless))
        .unwrap();
    let (status, _, problem) = send(app, req).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{problem}");
}

/// A layer inside the stack that answers while its `call` runs (a route's
/// own rate limit) still has the request id current.
#[tokio::test]
async fn an_inner_layer_answering_in_call_sees_the_id() {
    use pattern_api::middleware::RateLimitLayer;
    use pattern_network::flow::rate::Quota;
    let quota = Quota::per_second(std::num::NonZeroU32::new(1).unwrap());
    let app = ApiStack::new().apply(Router::new().route("/", get(|| async { "ok" })).layer(
        RateLimitLayer::per_key(quota, 16, |_: &Request<Body>| "all".to_owned()),
    ));
    let req = || {
        Request::get("/")
            .header("x-request-id", "inner-9")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(app.clone(), req()).await.0, 200);
    let (status, _, problem) = send(app, req()).await;
    assert_eq!(status, 429);
    assert_eq!(problem["request_id"], "inner-9");
}

/// A concurrency limit of 0 is refused where it is set, with a message
/// that names the setting (it panicked later, inside the bulkhead, when the
/// stack was built); 1 serves one request at a time, and `None` none at all.
#[test]
fn a_concurrency_limit_of_zero_is_refused_where_it_is_set() {
    let refused = std::panic::catch_unwind(|| ApiStack::new().concurrency_limit(0));
    let message = refused
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned())
        .expect("a limit of 0 panics at once");
    assert!(message.contains("ApiStack::concurrency_limit"), "{message}");
    let _ = ApiStack::new().concurrency_limit(1).layer();
    let _ = ApiStack::new().concurrency_limit(None).layer();
}
