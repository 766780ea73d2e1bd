//! Request ids: propagate `x-request-id`, or make one, and make it visible
//! to handlers, error responses and logs.
//!
//! [`RequestIdLayer`] reads `x-request-id` from the request (when it is a
//! sane value: at most 128 visible ASCII characters) or generates one,
//! stores it in the request's extensions as [`RequestId`] and in a task-local
//! for the duration of the call ([`RequestId::current`]), so that a
//! [`ApiError`](crate::ApiError) can put it in its problem body without
//! seeing the request, and echoes it on the response.
//! [`ApiStack`](crate::stack::ApiStack) does the same but keeps the id in
//! the task-local only (one extension less per request).
//!
//! Handlers take it as an extractor, which finds it either way:
//!
//! ```
//! use axum::{Router, routing::get};
//! use pattern_api::request_id::RequestId;
//! use pattern_api::stack::ApiStack;
//!
//! async fn who(id: RequestId) -> String {
//!     format!("you are request {id}")
//! }
//!
//! let app: Router = ApiStack::new().apply(Router::new().route("/", get(who)));
//! ```
//!
//! Generated ids are 16 hex digits: a process-unique counter mixed with a
//! per-process random seed, cheap to make (no lock, no system call).

mod layer;

pub use layer::{RequestIdLayer, RequestIdService, ResponseFuture};
pub(crate) use layer::{echo, identify_from};

/// The header carrying the request id.
pub const HEADER: &str = "x-request-id";

/// [`HEADER`] as a parsed name: lookups and inserts skip parsing it.
pub(crate) const HEADER_NAME: http::HeaderName = http::HeaderName::from_static(HEADER);

pub use crate::context::RequestId;
