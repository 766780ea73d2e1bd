//! Adding context to errors as they travel up.

use std::borrow::Cow;
use std::error::Error as StdError;

use crate::{Error, Kind};

/// Adds context to a failed `Result` or an empty `Option`, producing an
/// [`Error`].
///
/// On a `Result`, the original error becomes the source of the new one and its
/// classification is kept: a timeout wrapped in "loading order 42" is still a
/// [`Kind::Timeout`], still transient, and keeps any retry-after hint.
///
/// On an `Option`, `None` becomes an error of [`Kind::Internal`] (use
/// [`context_kind`](Context::context_kind) to say what the absence means).
///
/// ```
/// use pattern_error::{Context, Error, Kind};
///
/// fn load(id: u32) -> Result<String, Error> {
///     let io = std::io::Error::from(std::io::ErrorKind::TimedOut);
///     Err(io).with_context(|| format!("loading order {id}"))
/// }
///
/// let err = load(42).unwrap_err();
/// assert_eq!(err.kind(), Kind::Timeout);
/// assert_eq!(err.report().to_string(), "loading order 42: timed out");
///
/// let missing: Option<u32> = None;
/// let err = missing.context_kind(Kind::NotFound, "order 42").unwrap_err();
/// assert_eq!(err.kind(), Kind::NotFound);
/// ```
pub trait Context<T>: sealed::Sealed {
    /// Wraps the error (or the absence) with a message.
    fn context(self, context: impl Into<Cow<'static, str>>) -> Result<T, Error>;

    /// Like [`context`](Context::context), building the message only on failure.
    fn with_context<C, F>(self, f: F) -> Result<T, Error>
    where
        C: Into<Cow<'static, str>>,
        F: FnOnce() -> C;

    /// Wraps with a message and sets the kind, whatever the source said.
    fn context_kind(self, kind: Kind, context: impl Into<Cow<'static, str>>) -> Result<T, Error>;
}

impl<T, E> Context<T> for Result<T, E>
where
    E: StdError + Send + Sync + 'static,
{
    fn context(self, context: impl Into<Cow<'static, str>>) -> Result<T, Error> {
        self.map_err(|e| Error::wrap(e, context.into()))
    }

    fn with_context<C, F>(self, f: F) -> Result<T, Error>
    where
        C: Into<Cow<'static, str>>,
        F: FnOnce() -> C,
    {
        self.map_err(|e| Error::wrap(e, f().into()))
    }

    fn context_kind(self, kind: Kind, context: impl Into<Cow<'static, str>>) -> Result<T, Error> {
        self.map_err(|e| Error::wrap(e, context.into()).with_kind(kind))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Into<Cow<'static, str>>) -> Result<T, Error> {
        self.ok_or_else(|| Error::new(Kind::Internal, context))
    }

    fn with_context<C, F>(self, f: F) -> Result<T, Error>
    where
        C: Into<Cow<'static, str>>,
        F: FnOnce() -> C,
    {
        self.ok_or_else(|| Error::new(Kind::Internal, f()))
    }

    fn context_kind(self, kind: Kind, context: impl Into<Cow<'static, str>>) -> Result<T, Error> {
        self.ok_or_else(|| Error::new(kind, context))
    }
}

mod sealed {
    pub trait Sealed {}
    impl<T, E> Sealed for Result<T, E> {}
    impl<T> Sealed for Option<T> {}
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn context_keeps_kind_hints_and_chain() {
        let base = Error::new(Kind::RateLimited, "tenant 7 over quota")
            .with_retry_after(Duration::from_secs(3));
        let err = Err::<(), _>(base)
            .context("calling billing")
            .context("handling order 42")
            .unwrap_err();
        assert_eq!(err.kind(), Kind::RateLimited);
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        let messages: Vec<String> = err.chain().map(|e| e.to_string()).collect();
        assert_eq!(
            messages,
            [
                "handling order 42",
                "calling billing",
                "tenant 7 over quota"
            ]
        );
        assert_eq!(err.root_cause().to_string(), "tenant 7 over quota");
    }

    #[test]
    fn context_kind_reclassifies() {
        let err = Err::<(), _>(std::fmt::Error)
            .context_kind(Kind::InvalidInput, "rendering the template")
            .unwrap_err();
        assert_eq!(err.kind(), Kind::InvalidInput);
        assert!(err.downcast_ref::<std::fmt::Error>().is_some());
    }

    #[test]
    fn with_context_is_lazy() {
        let ok: Result<u8, std::fmt::Error> = Ok(1);
        let value = ok
            .with_context(|| -> String { panic!("must not build the message on success") })
            .unwrap();
        assert_eq!(value, 1);
    }
}
