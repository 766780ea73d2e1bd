//! HTTP middleware that answers in problem+json: keyed rate limiting (429
//! with `Retry-After`), load shedding (503 with `Retry-After`), request
//! timeouts (503 or 504, with a [`Deadline`] handlers can read), panic
//! catching (500 without the panic's text), and request metrics labelled by
//! route template.
//!
//! Each is a tower layer over `Request -> Response` services, usable on any
//! axum `Router` (`Router::layer`).
//!
//! ```
//! use std::num::NonZeroU32;
//! use axum::{Router, routing::get};
//! use pattern_api::middleware::{CatchPanicLayer, LoadShedLayer, RateLimitLayer};
//! use pattern_network::flow::rate::Quota;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .layer(RateLimitLayer::per_client_ip(Quota::per_second(NonZeroU32::new(100).unwrap()), 100_000))
//!     .layer(LoadShedLayer::new(512))
//!     .layer(CatchPanicLayer::new());
//! ```

mod deadline;
mod future;
mod metrics;
mod panic;
mod problem_json;
mod rate;
mod shed;
mod trace;

pub use crate::context::Deadline;
pub(crate) use deadline::BodyWatch;
pub use deadline::{DeadlineFuture, DeadlineLayer, DeadlineService, TIMEOUT_HEADER};
pub use future::{Finish, ResponseFuture};
pub use metrics::{
    IN_FLIGHT, MetricsLayer, MetricsService, REQUEST_DURATION, REQUESTS_TOTAL, Record,
};
pub(crate) use panic::answer as panic_answer;
pub use panic::{CatchPanicFuture, CatchPanicLayer, CatchPanicService};
pub(crate) use problem_json::rewrite;
pub use problem_json::{ProblemJsonLayer, ProblemJsonService, Rewrite, problem_json};
pub use rate::{RateLimitLayer, RateLimitService, client_ip, client_network};
pub use shed::Slot;
pub use shed::{AdmitFuture, LoadShedLayer, LoadShedService};
pub use trace::Finished;
pub use trace::{ACCESS_TARGET, TraceLayer, TraceService};
