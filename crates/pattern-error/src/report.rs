//! Printing and logging whole error chains.

use std::error::Error as StdError;
use std::fmt;

use crate::error::Chain;
use crate::{Error, Kind, classify};

/// Formats an error with every cause below it.
///
/// `{}` prints one line, the messages joined by `": "`; `{:#}` prints the
/// outermost message, then one numbered line per cause. Layers that only wrap
/// another error without a message of their own are not printed twice.
///
/// ```
/// use pattern_error::{Context, Kind, ErrorReport};
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let err = Err::<(), _>(io)
///     .context("connecting to the database")
///     .context("loading order 42")
///     .unwrap_err();
///
/// assert_eq!(
///     ErrorReport::new(&err).to_string(),
///     "loading order 42: connecting to the database: connection refused",
/// );
/// assert_eq!(
///     format!("{:#}", err.report()),
///     "loading order 42\n\
///      caused by:\n    \
///      0: connecting to the database\n    \
///      1: connection refused",
/// );
/// ```
#[derive(Clone, Copy)]
pub struct ErrorReport<'a> {
    error: &'a (dyn StdError + 'static),
}

impl Error {
    /// A formatter for the whole chain; see [`ErrorReport`].
    pub fn report(&self) -> ErrorReport<'_> {
        ErrorReport::new(self)
    }
}

impl<'a> ErrorReport<'a> {
    /// A report of `error` and its sources.
    pub fn new(error: &'a (dyn StdError + 'static)) -> Self {
        Self { error }
    }

    /// The layers that carry a message of their own, outermost first.
    fn layers(&self) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
        Chain::new(self.error).filter(|e| {
            e.downcast_ref::<Error>()
                .is_none_or(|err| !err.is_transparent())
        })
    }
}

impl fmt::Display for ErrorReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut layers = self.layers();
        let Some(first) = layers.next() else {
            // Only transparent layers: nothing is left to print but the top.
            return write!(f, "{}", self.error);
        };
        write!(f, "{first}")?;
        if f.alternate() {
            for (i, cause) in layers.enumerate() {
                if i == 0 {
                    f.write_str("\ncaused by:")?;
                }
                write!(f, "\n    {i}: {cause}")?;
            }
        } else {
            for cause in layers {
                write!(f, ": {cause}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:#}")
    }
}

/// Emits a tracing event for `error` with its classification as fields.
///
/// Fields: `error.kind` (the [`Kind`] name), `error.transient`,
/// `error.message` (the outermost message) and `error.chain` (the one-line
/// [`ErrorReport`]). The level follows the kind: `ERROR` for internal errors,
/// `WARN` for the transient ones (timeouts, unavailable dependencies,
/// overload, rate limits), `DEBUG` for errors the caller caused.
///
/// Foreign errors are classified with [`classify`].
///
/// ```
/// use pattern_error::{Error, Kind, report};
///
/// let err = Error::new(Kind::Unavailable, "inventory service refused the connection");
/// report::trace(&err);
/// ```
pub fn trace(error: &(dyn StdError + 'static)) {
    let (kind, transient) = match error.downcast_ref::<Error>() {
        Some(err) => (err.kind(), err.is_transient()),
        None => {
            let kind = classify(error);
            (kind, kind.is_transient())
        }
    };
    let chain = ErrorReport::new(error);
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(
                $level,
                error.kind = kind.as_str(),
                error.transient = transient,
                error.message = %error,
                error.chain = %chain,
                "{}", error,
            )
        };
    }
    match kind {
        Kind::Internal => emit!(tracing::Level::ERROR),
        _ if transient => emit!(tracing::Level::WARN),
        _ if kind.is_caller_fault() => emit!(tracing::Level::DEBUG),
        _ => emit!(tracing::Level::WARN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_error_prints_alone() {
        let err = Error::new(Kind::NotFound, "order 42");
        assert_eq!(err.report().to_string(), "order 42");
        assert_eq!(format!("{:#}", err.report()), "order 42");
    }

    #[test]
    fn transparent_layers_are_skipped() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline");
        let err = Error::from(io).context("fetching price");
        assert_eq!(err.report().to_string(), "fetching price: deadline");
    }
}
