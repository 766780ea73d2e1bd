//! Circuit breakers: stop calling a dependency that keeps failing, and find
//! out cheaply when it is back.
//!
//! # States
//!
//! ```text
//!            failure or slow-call rate ≥ threshold
//!            (over at least `minimum_calls` calls)
//!   Closed ─────────────────────────────────────────▶ Open
//!     ▲                                               │  open duration passed
//!     │  probes' failure rate < threshold             ▼  (fixed, or growing
//!     └──────────────────────────────────────────  HalfOpen   on consecutive trips)
//!                        probes fail ──▶ Open ◀───────┘
//! ```
//!
//! - **Closed**: calls pass and their outcomes fill a sliding window, either
//!   the last N calls ([`Window::Count`]) or the last T seconds
//!   ([`Window::Time`]). Once the window holds `minimum_calls`, a failure
//!   rate or a slow-call rate at or above its threshold opens the breaker.
//! - **Open**: calls are rejected at once with a [`Rejected`] error saying
//!   when the breaker will try again (it converts to
//!   [`Kind::Unavailable`](crate::Kind::Unavailable) with a retry-after).
//! - **Half-open**: up to `half_open_probes` calls pass as probes; when they
//!   have all finished, their failure rate closes the breaker or opens it
//!   again (for longer, with [`CircuitBreakerBuilder::open_backoff`]). A probe running past
//!   the probe timeout counts as a failure, and a dropped probe gives its slot
//!   back, so the breaker never stays half-open for want of an answer.
//! - **Forced open** and **disabled** are set by hand
//!   ([`CircuitBreaker::force_open`], [`CircuitBreaker::disable`]) and left
//!   with [`CircuitBreaker::reset`].
//!
//! Which errors count as failures is up to [`CircuitBreakerBuilder::failure_if`]; by default
//! the errors that are the caller's fault (invalid input, not found, ...)
//! count as successes, since the dependency answered.
//!
//! # Cost
//!
//! In the closed state a call reads one atomic word and, when it ends,
//! increments a counter in a shard of its own thread; no lock is taken and
//! no cache line is written by two threads. Failures and slow calls (the
//! outcomes that can trip the breaker) also write their position into a ring
//! and re-count the window. Transitions and the half-open state take a mutex.
//! `cargo xtask bench` compares the closed-state overhead with `recloser` and
//! `failsafe`.
//!
//! # Use
//!
//! As a plain call:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use pattern_error::{Error, Kind, breaker::{CircuitBreaker, State}};
//!
//! let breaker = CircuitBreaker::builder("payments")
//!     .count_window(10)
//!     .minimum_calls(4)
//!     .failure_rate(0.5)
//!     .open_duration(Duration::from_secs(5))
//!     .build()
//!     .unwrap();
//!
//! for _ in 0..4 {
//!     let failed = breaker
//!         .call(async { Err::<(), _>(Error::new(Kind::Unavailable, "connection refused")) })
//!         .await;
//!     assert!(failed.is_err());
//! }
//! assert_eq!(breaker.state(), State::Open);
//!
//! let rejected = breaker.call(async { Ok::<_, Error>(()) }).await.unwrap_err();
//! assert_eq!(rejected.kind(), Kind::Unavailable);
//! assert!(rejected.retry_after().unwrap() <= Duration::from_secs(5));
//! # }
//! ```
//!
//! As a tower layer:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use pattern_error::{Error, breaker::{CircuitBreaker, CircuitBreakerLayer}};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let breaker = CircuitBreaker::builder("geo").build().unwrap();
//! let service = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(breaker.clone()))
//!     .service(service_fn(|city: &'static str| async move { Ok::<_, Error>(city.len()) }));
//! assert_eq!(service.oneshot("Lyon").await.unwrap(), 4);
//! # }
//! ```
//!
//! Per key, with a bounded [`Registry`]: it never holds more breakers than
//! its capacity and never evicts one while it holds fewer, and it keeps
//! open breakers while any closed or idle one can go.
//!
//! # Metrics
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `circuit_breaker_state` | gauge ([`State::gauge_value`]; not set by a registry's breakers) | `breaker` |
//! | `circuit_breaker_transitions_total` | counter | `breaker`, `from`, `to` |
//! | `circuit_breaker_rejections_total` | counter | `breaker`, `state` |
//! | `circuit_breaker_registry_breakers` | gauge (breakers held in each state) | `registry`, `state` |
//! | `circuit_breaker_registry_evictions_total` | counter | `registry` |

mod circuit;
mod config;
mod error;
mod event;
mod future;
mod layer;
mod registry;
mod service;
mod state;
mod tagged;

mod window;

pub use circuit::{CircuitBreaker, Permit};
pub use config::{CircuitBreakerBuilder, Window};
pub use error::Rejected;
pub use event::{Event, REJECTIONS_TOTAL, STATE_GAUGE, TRANSITIONS_TOTAL};
pub use future::ResponseFuture;
pub use layer::CircuitBreakerLayer;
pub use registry::{BREAKERS_GAUGE, EVICTIONS_TOTAL, Registry};
pub use service::CircuitBreakerService;
pub use state::State;
pub use window::Snapshot;
