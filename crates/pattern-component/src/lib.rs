//! Components of a network service and everything around their life.
//!
//! `pattern-component` gives the parts of a service (a database pool, an HTTP
//! server, a background worker, a pipeline) one shape, and the configuration
//! they start from a safe form. It builds on `pattern-error` for its errors.
//!
//! # What is in it
//!
//! | capability | items |
//! | --- | --- |
//! | configuration | [`config::Secret`]: secrets that redact themselves in `Debug`, `Display` and dumps |
//!
//! # Example
//!
//! ```
//! use pattern_component::config::Secret;
//!
//! #[derive(Debug, serde::Deserialize)]
//! struct Database {
//!     url: Secret<String>,
//! }
//!
//! let db: Database = serde_json::from_str(r#"{"url":"postgres://app:pw@127.0.0.1/app"}"#).unwrap();
//! assert!(db.url.expose().starts_with("postgres://"));
//! assert!(!format!("{db:?}").contains("pw@"));
//! ```
//!
//! # Features
//!
//! This crate has no optional features yet.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
