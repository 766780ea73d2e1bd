//! Configuration: typed, layered, validated, with secrets kept secret.
//!
//! [`Loader`] merges defaults, a TOML file and environment variables
//! (figment), validates the result (garde) and reports every problem at
//! once with its path and origin. [`Secret`] keeps passwords, tokens and
//! DSNs out of logs, `Debug` output and configuration dumps
//! ([`Loaded::dump`]) while still loading from files and the environment.

mod loader;
mod secret;

pub use loader::{ConfigError, ConfigProblem, Loaded, Loader, Origin};
pub use secret::{REDACTED, Secret};
