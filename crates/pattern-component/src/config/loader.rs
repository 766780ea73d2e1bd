//! Typed configuration from defaults, a TOML file and the environment.

use std::fmt;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Uncased;
use pattern_error::{Error, Kind};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Loads a configuration of type `T` from layers, later ones winning:
///
/// 1. the defaults (a `T` value),
/// 2. a TOML file, if one is named (optional unless [`require_file`](Self::require_file)),
/// 3. environment variables with a prefix, `__` separating nested keys
///    (`APP_SERVER__ADDR` sets `server.addr`).
///
/// Then validates it with garde. Every problem is reported at once, each
/// with the path of the value and where the value came from (the file, or
/// the environment variable's name); see [`ConfigError`].
///
/// ```
/// use garde::Validate;
/// use pattern_component::config::Loader;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, Validate)]
/// struct Config {
///     #[garde(dive)]
///     server: Server,
/// }
///
/// #[derive(Debug, Serialize, Deserialize, Validate)]
/// struct Server {
///     #[garde(skip)]
///     addr: std::net::SocketAddr,
///     #[garde(range(min = 1, max = 60_000))]
///     request_timeout_ms: u64,
/// }
///
/// let defaults = Config {
///     server: Server { addr: "127.0.0.1:8080".parse().unwrap(), request_timeout_ms: 5_000 },
/// };
/// let loaded = Loader::new(defaults).env_prefix("DOCTEST_APP_").load().unwrap();
/// assert_eq!(loaded.value().server.request_timeout_ms, 5_000);
/// ```
#[derive(Debug)]
#[must_use]
pub struct Loader<T> {
    defaults: T,
    file: Option<PathBuf>,
    require_file: bool,
    env_prefix: Option<String>,
}

impl<T> Loader<T>
where
    T: Serialize + DeserializeOwned + garde::Validate,
    T::Context: Default,
{
    /// Starts from `defaults`.
    pub fn new(defaults: T) -> Self {
        Self {
            defaults,
            file: None,
            require_file: false,
            env_prefix: None,
        }
    }

    /// Reads this TOML file if it exists.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Fails when the file does not exist.
    pub fn require_file(mut self) -> Self {
        self.require_file = true;
        self
    }

    /// Reads environment variables starting with `prefix` (e.g. `"APP_"`),
    /// `__` separating nested keys.
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_prefix = Some(prefix.into());
        self
    }

    /// Merges the layers, extracts `T` and validates it.
    pub fn load(self) -> Result<Loaded<T>, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(&self.defaults));
        if let Some(path) = &self.file {
            if path.exists() {
                figment = figment.merge(Toml::file_exact(path));
            } else if self.require_file {
                return Err(ConfigError {
                    problems: vec![Problem {
                        path: String::new(),
                        message: format!("the file {} does not exist", path.display()),
                        origin: Some(Origin::File(path.clone())),
                    }],
                });
            }
        }
        if let Some(prefix) = &self.env_prefix {
            figment = figment.merge(Env::prefixed(prefix).split("__"));
        }
        let value: T = figment.extract().map_err(|errors| ConfigError {
            problems: errors
                .into_iter()
                .map(|e| {
                    let path = e.path.join(".");
                    let origin = self.origin(&figment, &path);
                    Problem {
                        message: e.kind.to_string(),
                        path,
                        origin,
                    }
                })
                .collect(),
        })?;
        if let Err(report) = value.validate() {
            return Err(ConfigError {
                problems: report
                    .iter()
                    .map(|(path, error)| {
                        let path = path.to_string();
                        Problem {
                            message: error.message().to_string(),
                            origin: self.origin(&figment, &path),
                            path,
                        }
                    })
                    .collect(),
            });
        }
        Ok(Loaded { value, figment })
    }

    /// Where the value at `path` came from.
    fn origin(&self, figment: &Figment, path: &str) -> Option<Origin> {
        let metadata = figment.find_metadata(path)?;
        if let Some(figment::Source::File(file)) = &metadata.source {
            return Some(Origin::File(file.clone()));
        }
        if metadata.name.contains("environment") {
            let prefix = self.env_prefix.as_deref().unwrap_or_default();
            let name = path
                .split('.')
                .map(|k| Uncased::from(k).as_str().to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join("__");
            return Some(Origin::Env(format!("{prefix}{name}")));
        }
        Some(Origin::Default)
    }
}

/// A loaded, valid configuration.
pub struct Loaded<T> {
    value: T,
    figment: Figment,
}

impl<T: fmt::Debug> fmt::Debug for Loaded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The figment holds every raw value, secrets in clear: leave it out.
        f.debug_struct("Loaded")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize> Loaded<T> {
    /// The configuration.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// Takes the configuration.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The configuration as TOML, for logs and `--print-config`: every
    /// [`Secret`](super::Secret) shows as `[redacted]`.
    pub fn dump(&self) -> String {
        toml::to_string_pretty(&self.value).unwrap_or_else(|e| format!("<cannot render: {e}>"))
    }

    /// Where the value at `path` (`"server.addr"`) came from: the file,
    /// an environment variable, or the defaults.
    pub fn origin_of(&self, path: &str) -> Option<String> {
        let metadata = self.figment.find_metadata(path)?;
        Some(match &metadata.source {
            Some(figment::Source::File(file)) => format!("file {}", file.display()),
            _ => metadata.name.to_string(),
        })
    }
}

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The defaults in code.
    Default,
    /// A TOML file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// One configuration problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The value's path (`server.addr`); empty for the whole configuration.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Where the value came from, when known.
    pub origin: Option<Origin>,
}

/// Every problem found in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, at least one.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({} problem", self.problems.len())?;
        if self.problems.len() != 1 {
            f.write_str("s")?;
        }
        f.write_str(")")?;
        for p in &self.problems {
            let path = if p.path.is_empty() { "(root)" } else { &p.path };
            write!(f, "; {path}: {}", p.message)?;
            if let Some(origin) = &p.origin {
                write!(f, " (from {origin})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Error::with_source(Kind::InvalidInput, "loading the configuration", err)
    }
}
