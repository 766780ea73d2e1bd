use std::path::PathBuf;

use garde::Validate;
use serde::{Deserialize, Serialize};
use tracing::Level;

/// How a service logs; see the [module docs](super).
#[derive(Clone, Debug, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct LogConfig {
    /// Text for people, JSON (one object per line) for collectors.
    #[garde(skip)]
    pub format: LogFormat,
    /// Which events are logged: `info`, `warn,my_crate=debug` (the syntax of
    /// `RUST_LOG`, which takes its place when set).
    #[garde(custom(is_filter))]
    pub filter: String,
    /// The level of the access log (one event per request), or `off`.
    #[garde(skip)]
    pub access: AccessLog,
    /// Colour escapes in text logs: on a terminal only (`auto`), `always`,
    /// `never`.
    #[garde(skip)]
    pub colour: Colour,
    /// Append to this file instead of writing to standard output.
    #[garde(skip)]
    pub file: Option<PathBuf>,
    /// Bytes of lines buffered for the writer at most; beyond, lines are
    /// dropped (and counted), never waited for.
    #[garde(range(min = 4096, max = 1_073_741_824))]
    pub buffer_bytes: usize,
}

impl Default for LogConfig {
    /// Text, `info`, access log at INFO, colour on a terminal, standard
    /// output, 16 MiB buffered.
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".to_owned(),
            access: AccessLog::Info,
            colour: Colour::Auto,
            file: None,
            buffer_bytes: 16 * 1024 * 1024,
        }
    }
}

fn is_filter(text: &str, _: &()) -> garde::Result {
    super::parse_filter(text, "the filter")
        .map(drop)
        .map_err(|err| garde::Error::new(err.to_string()))
}

/// The log format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the
    /// event's fields (`message` among them), and `span` with the current
    /// request's `method`, `path` and `request_id`.
    Json,
}

/// When to colour text logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    /// On a terminal only.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The access log's level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    /// No access events.
    Off,
    /// At ERROR.
    Error,
    /// At WARN.
    Warn,
    /// At INFO.
    #[default]
    Info,
    /// At DEBUG: hidden by an `info` filter.
    Debug,
    /// At TRACE.
    Trace,
}

impl AccessLog {
    /// The level, `None` when off.
    pub fn level(self) -> Option<Level> {
        match self {
            Self::Off => None,
            Self::Error => Some(Level::ERROR),
            Self::Warn => Some(Level::WARN),
            Self::Info => Some(Level::INFO),
            Self::Debug => Some(Level::DEBUG),
            Self::Trace => Some(Level::TRACE),
        }
    }
}

#[cfg(test)]
mod tests {
    use garde::Validate;

    use super::{AccessLog, LogConfig};

    #[test]
    fn filters_and_queue_bounds_are_validated() {
        assert!(LogConfig::default().validate().is_ok());
        for filter in ["info", "warn,pattern_api::access=off", "debug,hyper=info"] {
            let config = LogConfig {
                filter: filter.to_owned(),
                ..LogConfig::default()
            };
            assert!(config.validate().is_ok(), "{filter}");
        }
        for filter in ["my_crate=loud", "info,x=y=z", "[{"] {
            let config = LogConfig {
                filter: filter.to_owned(),
                ..LogConfig::default()
            };
            assert!(config.validate().is_err(), "{filter} accepted");
        }
        for (bytes, ok) in [
            (0, false),
            (4095, false),
            (4096, true),
            (1 << 30, true),
            ((1 << 30) + 1, false),
        ] {
            let config = LogConfig {
                buffer_bytes: bytes,
                ..LogConfig::default()
            };
            assert_eq!(config.validate().is_ok(), ok, "{bytes}");
        }
    }

    #[test]
    fn access_levels() {
        assert_eq!(AccessLog::Off.level(), None);
        assert_eq!(AccessLog::default().level(), Some(tracing::Level::INFO));
        let parsed: LogConfig =
            serde_json::from_str(r#"{"access":"debug","format":"json"}"#).unwrap();
        assert_eq!(parsed.access.level(), Some(tracing::Level::DEBUG));
    }
}
