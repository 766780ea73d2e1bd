//! A value that never shows itself by accident.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The text every redacted secret prints as.
pub const REDACTED: &str = "[redacted]";

/// A secret (a password, a token, a DSN) that redacts itself in `Debug`,
/// `Display` and serialized output.
///
/// It deserializes from the plain value, so configuration files and
/// environment variables can carry it, but every way of printing or dumping it
/// shows [`REDACTED`]. Read the value on purpose with [`expose`](Secret::expose).
///
/// ```
/// use pattern_component::config::Secret;
///
/// let token: Secret<String> = serde_json::from_str(r#""s3cr3t""#).unwrap();
/// assert_eq!(token.expose(), "s3cr3t");
/// assert_eq!(format!("{token:?}"), "Secret([redacted])");
/// assert_eq!(token.to_string(), "[redacted]");
/// assert_eq!(serde_json::to_string(&token).unwrap(), r#""[redacted]""#);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value itself. Call it only where the value is used, never
    /// to print it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Serialize> Serialize for Secret<T> {
    /// [`REDACTED`], except inside the configuration loader, which hands
    /// the defaults to its layers in clear (a default secret must load as
    /// itself, not as the text `[redacted]`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if REVEALING.get() {
            self.0.serialize(serializer)
        } else {
            serializer.serialize_str(REDACTED)
        }
    }
}

thread_local! {
    /// Set while the loader serializes the defaults.
    static REVEALING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with secrets serializing in clear on this thread (and restores
/// redaction afterwards, even if `f` panics).
pub(crate) fn revealing<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            REVEALING.set(self.0);
        }
    }
    let _restore = Restore(REVEALING.replace(true));
    f()
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Db {
        host: String,
        password: Secret<String>,
    }

    #[test]
    fn nested_secret_is_redacted_in_debug_and_dumps() {
        let db: Db = serde_json::from_str(r#"{"host":"127.0.0.1","password":"hunter2"}"#).unwrap();
        assert_eq!(db.password.expose(), "hunter2");
        let debug = format!("{db:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let dump = serde_json::to_string(&db).unwrap();
        assert!(!dump.contains("hunter2"), "{dump}");
        assert!(dump.contains(REDACTED));
    }
}
