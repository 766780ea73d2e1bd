//! Server plumbing: the parts that keep a service tidy from start to stop.
//!
//! `pattern-server` assembles the other crates of the workspace into a running
//! HTTP service and owns what happens around it: how many tasks may run, and
//! that none is left behind at shutdown.
//!
//! # What is in it
//!
//! | capability | items |
//! | --- | --- |
//! | concurrency management | [`tasks::TaskSet`]: bounded spawning, cancelled together on shutdown |
//! | health and metrics routes | [`ops`]: `/health/live`, `/health/ready` (503 with per-component detail), `/metrics` (Prometheus, feature `prometheus`) |
//! | process registry | [`registry::ProcessRegistry`]: named tasks with state, restarts, last error and start time; stop or restart by name; [`registry::admin_router`] behind a bearer token |
//! | server configuration and serving | [`http::HttpServer`]: hyper-util serving an axum router as a component, validated [`http::ServerConfig`], connection limit, header read timeout, graceful drain with a deadline |
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use pattern_error::Kind;
//! use pattern_server::tasks::TaskSet;
//!
//! let tasks = TaskSet::new(1);
//! tasks.try_spawn(|stop| async move { stop.cancelled().await }).unwrap();
//! // The set is full: a second task is refused, not queued without bound.
//! let refused = tasks.try_spawn(|_| async {}).unwrap_err();
//! assert_eq!(refused.kind(), Kind::Overloaded);
//! assert_eq!(tasks.shutdown(Duration::from_millis(100)).await.aborted, 0);
//! # }
//! ```
//!
//! # Features
//!
//! | feature | brings |
//! | --- | --- |
//! | `prometheus` | [`ops::install_prometheus`]: the Prometheus recorder behind `/metrics` |
//! | `postgres` | `postgres`: a deadpool-postgres pool as a component, bounded waits (503), readiness, pool metrics |
//! | `openapi` | `docs`: `/openapi.json` and an offline `/docs` page (utoipa, vendored Swagger UI) |
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod docs;
pub mod http;
pub mod ops;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
pub mod registry;
pub mod tasks;
