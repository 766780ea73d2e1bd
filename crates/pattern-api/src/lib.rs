//! API conventions for axum services: one shape for every answer.
//!
//! `pattern-api` fixes how a service answers: RFC 9457 problem details for
//! every error, with one table from `pattern-error` kinds to HTTP statuses, so
//! a timeout deep in a dependency and a bad field in a request come out the
//! same way at the edge.
//!
//! # What is in it
//!
//! | capability | items |
//! | --- | --- |
//! | error responses | [`problem::Problem`] (problem+json), [`problem::status_for`] (kind → status), [`ApiError`] (a handler's error, answered as problem+json with `Retry-After` where it applies) |
//! | response structures | [`response::Envelope`]: `{"data", "meta": {"request_id", "next_cursor"}}` |
//! | request validation | [`extract::Valid`] (JSON body), [`extract::ValidQuery`]: garde validation, 422 listing every field; 400/413/415 for the rest |
//! | resource management | [`extract::Scoped`]: a resource acquired per request within its deadline (503 when none is free), [`middleware::Deadline`] for handlers |
//! | every rejection as problem+json | [`middleware::ProblemJsonLayer`] (a tower layer, no allocation per request), or [`middleware::problem_json`] for `axum::middleware::map_response` |
//! | route setup | [`routes::Routes`]: versioned groups with their own middleware, health and metrics routes, a printable route table |
//! | middleware chain | [`stack::ApiStack`]: request id, trace, metrics, problem+json, panic, load shedding, rate limit, timeout, body limit, in one order, each switchable |
//! | middleware | [`middleware`]: keyed rate limiting (429 + `Retry-After`), load shedding (503 + `Retry-After`), timeouts with a deadline (504/503), panic catching (500, no internals), metrics by route template, a tracing span and an access event per request, its values offered typed to log layers ([`middleware::AccessRecord`]) |
//! | testing approaches | [`testing::TestClient`]: the same requests in process or over a real socket, with status, envelope and problem assertions |
//! | client addresses | [`client_addr::ClientAddr`] (an extractor), [`client_addr::TrustedProxies`]: `X-Forwarded-For` or `Forwarded` believed only from proxies you trust, by network or hop count |
//! | request ids | [`request_id::RequestIdLayer`]: propagate or generate `x-request-id`, echo it, expose it to handlers and errors |
//!
//! # Example
//!
//! A versioned route with a validated body, the whole middleware chain, and
//! the test client checking both a success envelope and a problem.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use garde::Validate;
//! use pattern_api::extract::Valid;
//! use pattern_api::response::Envelope;
//! use pattern_api::routes::Routes;
//! use pattern_api::stack::ApiStack;
//! use pattern_api::testing::TestClient;
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//!
//! #[derive(Deserialize, Serialize, Validate)]
//! struct NewItem {
//!     #[garde(length(min = 1, max = 100))]
//!     name: String,
//!     #[garde(range(max = 1_000_000))]
//!     quantity: u32,
//! }
//!
//! let (routes, table) = Routes::new()
//!     .group("/v1", |v1| {
//!         v1.post("/items", |Valid(item): Valid<NewItem>| async move { Envelope::created(item) })
//!     })
//!     .build();
//! println!("{table}");
//! let client = TestClient::new(ApiStack::new().apply(routes));
//!
//! let created = client.post_json("/v1/items", &json!({"name": "bolt", "quantity": 5})).await;
//! created.assert_status(201);
//! assert_eq!(created.data()["name"], "bolt");
//!
//! let problem = client
//!     .post_json("/v1/items", &json!({"name": "", "quantity": 5}))
//!     .await
//!     .assert_problem(422, "invalid_input");
//! assert_eq!(problem["errors"][0]["field"], "name");
//! assert!(problem["request_id"].is_string());
//! # }
//! ```
//!
//! # Features
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `opentelemetry` | `trace_context`: a server span per request, sampled before anything else is spent, continuing the caller's W3C trace (`traceparent`) and named and described after OpenTelemetry's HTTP conventions; problems and the access log carry its trace id; `inject` and `ClientTraceLayer` for outgoing calls |
//! | `openapi` | [`openapi`]: schemas of [`Envelope`](response::Envelope), [`Problem`](problem::Problem) and [`FieldError`] (utoipa), and [`ApiStack::document`](stack::ApiStack::document), which adds every error answer the stack gives to each operation of a document |
//!
//! # An OpenAPI contract true to the wire
//!
//! With `openapi`, a service's document describes what it sends, not what
//! its handlers alone return:
//! - declare success bodies as `Envelope<T>` (`body = Envelope<Item>`);
//!   errors need no declaration beyond their own (a 404, a 409);
//! - state each garde rule in the schema too (`#[schema(min_length = 1,
//!   max_length = 100)]` beside `#[garde(length(min = 1, max = 100))]`)
//!   and test that they agree at every bound, and read the integers of
//!   JSON bodies with [`extract::integer`] (a schema's `integer` allows
//!   `7.0`);
//! - register routes once, for the router and the document
//!   (utoipa-axum's `OpenApiRouter`), and finish the document with
//!   [`ApiStack::document`](stack::ApiStack::document) on the stack that
//!   serves it: 400, 408, 413, 415, 422, 429, 503 (with `Retry-After`),
//!   504 and 500 appear where the stack can answer them, each a
//!   [`Problem`](problem::Problem);
//! - serve the problem types (`pattern-server`'s `docs::routes` serves
//!   `/problems/{code}`, the `type` of every problem).
//!
//! The reference service does all of this; `cargo xtask contract` checks it
//! with schemathesis (every check, every phase) and openapi-spec-validator.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client_addr;
mod context;
mod error;
pub mod extract;
pub mod middleware;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod openapi;
pub mod problem;
pub mod request_id;
pub mod response;
pub mod routes;
pub mod stack;
pub mod testing;
#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
pub mod trace_context;

pub use error::ApiError;
pub use problem::FieldError;
