//! Errors that know what they mean, and the strategies that recover from them.
//!
//! `pattern-error` is the bottom of the `patterns` workspace: every other crate
//! classifies its failures with the [`Kind`] defined here, so that an HTTP edge
//! can map them to status codes, recovery can tell a transient failure from a
//! permanent one, and metrics can count them with bounded labels.
//!
//! # What is in it
//!
//! | capability | items |
//! | --- | --- |
//! | error model | [`Kind`], [`Error`], [`BoxError`], [`Result`], [`classify`] |
//! | wrapping and propagation | [`Context`] on `Result` and `Option`, [`Error::chain`], [`Error::downcast_ref`] |
//! | reporting and logging | [`Report`] (one line or many), [`report::trace`] (tracing fields) |
//! | metrics | [`metrics`] (`errors_total{kind,component}`) |
//! | retry | [`retry`]: backoff with jitter, retry-after, attempts and time limits, budget; helper and tower layer |
//! | timeout | [`timeout`]: a deadline per call that fails with [`Kind::Timeout`] |
//! | fallback | [`fallback`]: a value or a function for chosen kinds of error |
//! | bulkhead | [`bulkhead`]: bounded concurrent calls, rejecting at once or after a wait |
//! | circuit breaker | [`breaker`]: count and time windows, slow calls, half-open probes, registry, tower layer |
//! | testing error conditions | [`fault`]: seeded injection of errors, latency and outcomes |
//!
//! # Example
//!
//! ```
//! use pattern_error::{Context, Error, Kind, Result};
//!
//! fn parse_quantity(raw: &str) -> Result<u32> {
//!     raw.parse::<u32>()
//!         .context_kind(Kind::InvalidInput, format!("quantity {raw:?} is not a number"))
//! }
//!
//! fn handle(raw: &str) -> Result<u32> {
//!     parse_quantity(raw).context("creating item")
//! }
//!
//! let err = handle("ten").unwrap_err();
//! assert_eq!(err.kind(), Kind::InvalidInput);
//! assert!(!err.is_transient());
//! assert_eq!(
//!     err.report().to_string(),
//!     "creating item: quantity \"ten\" is not a number: invalid digit found in string",
//! );
//! ```
//!
//! # Features
//!
//! This crate has no optional features; everything above is always available.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod breaker;
pub mod bulkhead;
mod context;
mod error;
pub mod fallback;
pub mod fault;
mod kind;
pub mod metrics;
pub mod report;
pub mod retry;
mod shard;
pub mod timeout;

pub use context::Context;
pub use error::{BoxError, Chain, Error, Result, classify};
pub use kind::Kind;
pub use report::Report;
