//! The properties the fuzz targets check, shared by their two forms.
//!
//! Three inputs reach the reference service from outside: request bodies,
//! the errors its handlers answer with, and its configuration file. Each has
//! a check here that takes an input, runs it through the real code path and
//! returns a [`Violation`] when a property does not hold:
//!
//! | check | code path | properties |
//! | --- | --- | --- |
//! | [`check_body`] | `pattern_api::extract::Valid<NewItem>` | accepted values obey the validation rules; every rejection is 400, 413, 415 or 422 problem+json, the status the input deserves |
//! | [`check_problem`] | `pattern_api::ApiError` → `IntoResponse` | the status of the kind (or the explicit one), a well-formed problem, no internal text in a 5xx, `Retry-After` where it applies |
//! | [`check_config`] | [`Config::load`](crate::reference::Config::load) | a loaded value is valid; a refusal lists its problems; a secret set in the file never shows in errors or dumps |
//!
//! Panics are failures too: a check lets them through.
//!
//! The two forms: the cargo-fuzz targets in `fuzz/` feed the checks with
//! coverage-guided input (`cargo +nightly fuzz run body_validation`), and
//! `examples/tests/fuzz_props.rs` feeds them with proptest generators,
//! bounded and seeded, as part of `cargo xtask ci`.

use std::fmt;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

/// Returns a [`Violation`] from the enclosing check unless `$cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::fuzzing::Violation::new(format!($($arg)+)));
        }
    };
}

mod body;
mod config;
mod problem;

pub use body::{BodyOutcome, check_body};
pub use config::{ConfigOutcome, check_config};
pub use problem::{ProblemCase, ProblemInput, check_problem};

/// A property that did not hold, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    message: String,
}

impl Violation {
    fn new(message: String) -> Self {
        Self { message }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Violation {}

/// The runtime the async parts of the checks run on: one current-thread
/// runtime per process, built on first use (a fuzz target calls a check
/// millions of times).
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime with no drivers always builds")
    })
}

/// A response body, collected.
fn collect(body: axum::body::Body) -> Result<Vec<u8>, Violation> {
    runtime()
        .block_on(axum::body::to_bytes(body, usize::MAX))
        .map(|bytes| bytes.to_vec())
        .map_err(|e| Violation::new(format!("the response body could not be read: {e}")))
}

/// A response body that must be a problem+json object whose `status` is
/// `status`.
fn problem_body(
    headers: &axum::http::HeaderMap,
    status: u16,
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, Violation> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    ensure!(
        content_type == Some(patterns::api::problem::CONTENT_TYPE),
        "content type {content_type:?}, not problem+json"
    );
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Violation::new(format!(
            "the problem is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        ))
    })?;
    let serde_json::Value::Object(object) = value else {
        return Err(Violation::new(format!(
            "the problem is not an object: {value}"
        )));
    };
    ensure!(
        object.get("status").and_then(serde_json::Value::as_u64) == Some(u64::from(status)),
        "the problem's status {:?} is not the response's {status}",
        object.get("status")
    );
    ensure!(
        object
            .get("title")
            .is_some_and(serde_json::Value::is_string),
        "the problem has no title: {object:?}"
    );
    Ok(object)
}
