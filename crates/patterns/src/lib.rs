//! Production patterns for network services, in one dependency.
//!
//! `patterns` re-exports the crates of the workspace behind one feature each,
//! so a service can depend on this crate alone and switch on what it uses.
//! Nothing is on by default.
//!
//! # Features
//!
//! | feature | module | crate | what it brings |
//! | --- | --- | --- | --- |
//! | `error` | [`error`] | `pattern-error` | error model, context, reports, recovery, circuit breaker |
//! | `component` | [`component`] | `pattern-component` | components, lifecycle, supervision, health, configuration |
//! | `network` | [`network`] | `pattern-network` | pipelines, balancing, back pressure, scaling, flow control |
//! | `api` | [`api`] | `pattern-api` | problem+json, envelopes, middleware, routing, validation |
//! | `server` | [`server`] | `pattern-server` | HTTP server, drain, docs, registry, bounded tasks |
//! | `full` | all of the above | | |
//! | `prometheus`, `postgres`, `openapi`, `logging`, `tls`, `opentelemetry` | in [`server`] | `pattern-server` | its optional parts: `/metrics`, the PostgreSQL pool, `/openapi.json` and `/docs`, log set-up, HTTPS, trace export (and W3C trace context in [`api`]) |
//!
//! Features switch on what they build on: `api` brings `error` and `network`,
//! `server` brings every other crate.
//!
//! With `error`, the root also offers [`Error`], [`Kind`] and [`Result`], and
//! [`prelude`] gathers what nearly every service names, from each crate
//! switched on.
//!
//! # Example
//!
//! With `features = ["error"]`:
//!
#![cfg_attr(feature = "error", doc = "```")]
#![cfg_attr(not(feature = "error"), doc = "```ignore")]
//! use patterns::error::{Context, Kind};
//!
//! let parsed = "42x".parse::<u32>().context_kind(Kind::InvalidInput, "reading the quantity");
//! assert_eq!(parsed.unwrap_err().kind(), Kind::InvalidInput);
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The error every crate of the workspace returns, its kind, and the
/// `Result` with it (`pattern_error`'s, at the root as sqlx and anyhow
/// offer theirs).
#[cfg(feature = "error")]
#[cfg_attr(docsrs, doc(cfg(feature = "error")))]
pub use pattern_error::{Error, Kind, Result};

/// What nearly every service built on the crates names, for
/// `use patterns::prelude::*;`: the error and its kind, the `Context`
/// methods (imported anonymously), components and systems, the API's error,
/// envelope and validating extractor, the HTTP server. `Result` stays out:
/// a glob import would shadow the standard one.
///
/// ```
/// # #[cfg(feature = "error")]
/// # fn main() {
/// use patterns::prelude::*;
///
/// let parsed = "42x".parse::<u32>().context_kind(Kind::InvalidInput, "reading the quantity");
/// let err: Error = parsed.unwrap_err();
/// assert_eq!(err.kind(), Kind::InvalidInput);
/// # }
/// # #[cfg(not(feature = "error"))]
/// # fn main() {}
/// ```
pub mod prelude {
    #[cfg(feature = "error")]
    pub use pattern_error::{Context as _, Error, Kind};

    #[cfg(feature = "component")]
    pub use pattern_component::component::Component;
    #[cfg(feature = "component")]
    pub use pattern_component::lifecycle::System;

    #[cfg(feature = "api")]
    pub use pattern_api::ApiError;
    #[cfg(feature = "api")]
    pub use pattern_api::extract::Valid;
    #[cfg(feature = "api")]
    pub use pattern_api::response::Envelope;

    #[cfg(feature = "server")]
    pub use pattern_server::http::HttpServer;
}

#[cfg(feature = "error")]
#[cfg_attr(docsrs, doc(cfg(feature = "error")))]
pub use pattern_error as error;

#[cfg(feature = "component")]
#[cfg_attr(docsrs, doc(cfg(feature = "component")))]
pub use pattern_component as component;

#[cfg(feature = "network")]
#[cfg_attr(docsrs, doc(cfg(feature = "network")))]
pub use pattern_network as network;

#[cfg(feature = "api")]
#[cfg_attr(docsrs, doc(cfg(feature = "api")))]
pub use pattern_api as api;

#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use pattern_server as server;
