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

mod access;
pub mod deadline;
mod future;
mod metrics;
pub mod panic;
mod problem_json;
mod rate;
pub mod shed;
mod trace;

pub use crate::context::Deadline;
pub use access::{ACCESS_TARGET, AccessRecord};
pub(crate) use deadline::{BodyWatch, TIMEOUT_HEADER_NAME};
pub use deadline::{DeadlineLayer, DeadlineService, TIMEOUT_HEADER};
pub(crate) use future::Finish;
pub use future::ResponseFuture;
pub(crate) use metrics::Record;
pub use metrics::{IN_FLIGHT, Metrics, MetricsLayer, REQUEST_DURATION, REQUESTS_TOTAL};
pub(crate) use panic::answer as panic_answer;
pub use panic::{CatchPanic, CatchPanicLayer};
pub(crate) use problem_json::rewrite;
pub use problem_json::{ProblemJson, ProblemJsonLayer, Rewrite, problem_json};
pub use rate::{RATE_LIMIT_REJECTIONS_TOTAL, RateLimit, RateLimitLayer, client_ip, client_network};
pub use shed::{LoadShed, LoadShedLayer};
pub(crate) use trace::Finished;
pub use trace::{REQUEST_TARGET, Trace, TraceLayer, Traced};
