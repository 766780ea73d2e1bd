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
//! | reporting and logging | [`ErrorReport`] (one line or many), [`report::trace`] (tracing fields) |
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
//! # Recovery, stacked
//!
//! Every strategy is a tower layer whose errors are this crate's [`Error`],
//! so they stack in any order. The usual one, outermost first: a fallback
//! as the last resort, retry, the circuit breaker (so retries of a broken
//! dependency are rejected at once, with a retry-after the retry honours),
//! and a timeout per attempt. Fault injection goes innermost, in tests.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), pattern_error::Error> {
//! use std::time::Duration;
//! use pattern_error::breaker::{CircuitBreaker, CircuitBreakerLayer};
//! use pattern_error::fallback::{FallbackLayer, Kinds, Value};
//! use pattern_error::fault::FaultLayer;
//! use pattern_error::retry::{RetryLayer, RetryPolicy};
//! use pattern_error::timeout::TimeoutLayer;
//! use pattern_error::{Error, Kind};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let breaker = CircuitBreaker::builder("prices").build()?;
//! let prices = ServiceBuilder::new()
//!     .layer(FallbackLayer::new(Kinds::of([Kind::Unavailable, Kind::Timeout]), Value(0u64)))
//!     .layer(RetryLayer::new(RetryPolicy::builder("prices").max_attempts(3).build()?))
//!     .layer(CircuitBreakerLayer::new(breaker.clone()))
//!     .layer(TimeoutLayer::new(Duration::from_millis(200)))
//!     // A third of the calls fail, as a flaky dependency would.
//!     .layer(FaultLayer::builder().seed(7).error(0.3, || Error::from_kind(Kind::Unavailable)).build()?)
//!     .service(service_fn(|sku: u32| async move { Ok::<u64, Error>(u64::from(sku) * 100) }));
//!
//! let mut answered = 0;
//! for sku in 1..=100 {
//!     // Retries hide most faults; the fallback answers the rest.
//!     let price = prices.clone().oneshot(sku).await?;
//!     assert!(price == u64::from(sku) * 100 || price == 0);
//!     answered += 1;
//! }
//! assert_eq!(answered, 100);
//! # Ok(())
//! # }
//! ```
//!
//! # Performance
//!
//! Measured by `cargo xtask bench` (criterion, peers built in the same run,
//! 2-core machine); the ratio is ours / peer, below 1 is faster.
//!
//! | what (closed breaker, ready inner call) | threads | ours | peer | ours / peer |
//! | --- | --- | --- | --- | --- |
//! | breaker, `try_acquire` + record vs `recloser` `call(closure)` | 1 | 11.5 ns | 8.9 ns | 1.30 |
//! | same vs `failsafe` `call(closure)` | 1 | 11.5 ns | 72.7 ns | 0.16 |
//! | same vs `recloser` | 2 | 11.6 ns | 106.6 ns | 0.11 |
//! | same vs `failsafe` | 2 | 11.6 ns | 176.1 ns | 0.07 |
//! | breaker, async `call` vs `recloser` `AsyncRecloser::call` | 1 | 32.6 ns | 33.2 ns | 0.98 |
//! | same vs `failsafe` futures `call` | 1 | 32.6 ns | 94.0 ns | 0.35 |
//! | same vs `recloser` | 2 | 32.6 ns | 264.5 ns | 0.12 |
//! | same vs `failsafe` | 2 | 32.6 ns | 229.3 ns | 0.14 |
//! | breaker tower layer vs `tower-resilience-circuitbreaker` | 1 | 39.7 ns | 207.3 ns | 0.19 |
//! | same | 2 | 41.5 ns | 24.4 µs | 0.002 |
//! | retry layer (with budget), success path, vs tower's `Retry` with `TpsBudget` | 1 | 14.3 ns | 45.2 ns | 0.32 |
//! | same, over the bare service (1.1 ns) | 1 | +13.2 ns | | |
//! | two `.context()` layers on an `io::Error` + one-line report vs `anyhow` | 1 | 212.2 ns | 184.4 ns | 1.15 |
//!
//! With two threads the times are per call on each thread, both running at
//! once on one shared breaker. `tower-resilience`'s breaker takes a lock that
//! makes a contending thread wait (it parks), hence microseconds.
//!
//! The breaker's closed state takes no lock and writes no cache line that
//! another thread writes; the retry layer's success path clones the request
//! and the policy's `Arc` and allocates nothing (a test counts allocations).
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
pub use report::ErrorReport;
