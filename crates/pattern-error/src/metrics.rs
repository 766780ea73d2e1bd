//! Error metrics through the [`metrics`] facade.
//!
//! Names follow the workspace conventions (`snake_case`, `_total` for
//! counters, bounded labels). Install any `metrics` recorder (for example
//! `metrics-exporter-prometheus`) to collect them; without one they cost a
//! relaxed atomic load.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `errors_total` | counter | `kind`, `component` |

use crate::Error;

/// Counter of errors by kind and component.
pub const ERRORS_TOTAL: &str = "errors_total";

/// Counts `error` in [`ERRORS_TOTAL`] under the given component label.
///
/// `component` must come from a bounded set (a component or route name,
/// never a user-supplied value).
///
/// ```
/// use pattern_error::{Error, Kind};
///
/// let err = Error::from_kind(Kind::Timeout);
/// pattern_error::metrics::record(&err, "inventory-client");
/// ```
pub fn record(error: &Error, component: &'static str) {
    metrics::counter!(ERRORS_TOTAL, "kind" => error.kind().as_str(), "component" => component)
        .increment(1);
}
