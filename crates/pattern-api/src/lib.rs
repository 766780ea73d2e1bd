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
//! | every rejection as problem+json | [`problem::problem_json`] (for `axum::middleware::map_response`) |
//! | route setup | [`routes::Routes`]: versioned groups with their own middleware, health and metrics routes, a printable route table |
//! | middleware chain | [`stack::ApiStack`]: request id, trace, metrics, problem+json, panic, load shedding, rate limit, timeout, body limit, in one order, each switchable |
//! | middleware | [`middleware`]: keyed rate limiting (429 + `Retry-After`), load shedding (503 + `Retry-After`), panic catching (500, no internals) |
//! | testing approaches | [`testing::TestClient`]: the same requests in process or over a real socket, with status, envelope and problem assertions |
//! | request ids | [`request_id::RequestIdLayer`]: propagate or generate `x-request-id`, echo it, expose it to handlers and errors |
//!
//! # Example
//!
//! ```
//! use pattern_api::problem::{Problem, status_for};
//! use pattern_error::{Error, Kind};
//!
//! let err = Error::new(Kind::Overloaded, "queue full: 1024 waiting");
//! assert_eq!(status_for(err.kind()).as_u16(), 503);
//!
//! // 5xx problems never echo internal messages.
//! let problem = Problem::from_error(&err).with_request_id("01J9Z");
//! assert_eq!(problem.detail, None);
//! assert_eq!(problem.code.as_deref(), Some("overloaded"));
//! ```
//!
//! # Features
//!
//! This crate has no optional features yet.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
pub mod extract;
pub mod middleware;
pub mod problem;
pub mod request_id;
pub mod response;
pub mod routes;
pub mod stack;
pub mod testing;

pub use error::{ApiError, FieldError};
