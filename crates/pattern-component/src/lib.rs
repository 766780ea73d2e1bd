//! Components of a network service and everything around their life.
//!
//! `pattern-component` gives the parts of a service (a database pool, an HTTP
//! server, a background worker, a pipeline) one shape, starts and stops them
//! in dependency order, supervises them as Erlang/OTP does, aggregates their
//! health and hands them their listening ports. It builds on `pattern-error`
//! for its errors.
//!
//! # What is in it
//!
//! | capability | items |
//! | --- | --- |
//! | component structure | [`component::Component`], [`component::Running`], [`component::from_fn`] (an async fn as a component) |
//! | lifecycle | [`lifecycle::System`]: dependency-ordered start, rollback on a failed start, reverse stop with timeouts, a [`lifecycle::StopReport`], SIGINT/SIGTERM or a stop token |
//! | supervision | [`supervision`]: restart policies, one-for-one / one-for-all / rest-for-one, intensity limit and escalation, backoff, panics as failures; [`supervision::Supervisor`] for named children added and removed at run time, nested supervisors |
//! | health | [`health`]: ok / degraded / failing per component, liveness and readiness for the system |
//! | port management | [`ports`]: declared addresses checked for conflicts, bound once and handed over, port 0 resolved |
//! | configuration | [`config::Loader`] (defaults, TOML, environment; garde validation; every problem with its path and origin), [`config::Secret`] |
//! | deadlines | [`time::deadline`]: a timeout as long as `Duration::MAX` from now, without overflow |
//! | testing strategies | [`testing::TestSystem`]: a system on ephemeral ports, ready before the test goes on; a test that panics still cancels its stop token (what has not stopped when the runtime ends is dropped with it) |
//!
//! # Example
//!
//! A database component and a worker that needs it; the worker crashes
//! once and is restarted by its supervisor.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), pattern_error::Error> {
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use pattern_component::component::from_fn;
//! use pattern_component::lifecycle::System;
//! use pattern_error::{Error, Kind};
//!
//! let runs = Arc::new(AtomicU32::new(0));
//! let counter = runs.clone();
//! let system = System::builder()
//!     .component(from_fn("db", |ctx| async move {
//!         ctx.stop_token().cancelled().await;
//!         Ok(())
//!     }))
//!     .component(
//!         from_fn("worker", move |ctx| {
//!             let run = counter.fetch_add(1, Ordering::SeqCst);
//!             async move {
//!                 if run == 0 {
//!                     return Err(Error::new(Kind::Internal, "crashed on its first run"));
//!                 }
//!                 ctx.stop_token().cancelled().await;
//!                 Ok(())
//!             }
//!         })
//!         .depends_on("db"),
//!     )
//!     .restart_backoff(Duration::from_millis(100), Duration::from_secs(5))
//!     .build()?;
//!
//! let running = system.start().await?;
//! tokio::time::sleep(Duration::from_secs(1)).await;
//! assert_eq!(runs.load(Ordering::SeqCst), 2, "restarted once");
//! assert!(running.health().ready);
//! assert!(running.stop().await.is_clean());
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `openapi` | OpenAPI schemas (utoipa) of [`supervision::ChildInfo`] and [`supervision::ChildState`], for routes that report children |
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod component;
pub mod config;
pub mod health;
pub mod lifecycle;
pub mod ports;
pub mod supervision;
pub mod testing;
pub mod time;
