//! Configuration: values that redact themselves.
//!
//! [`Secret`] keeps passwords, tokens and DSNs out of logs, `Debug` output and
//! configuration dumps while still loading from files and the environment.

mod secret;

pub use secret::{REDACTED, Secret};
