//! The [`Error`] type shared by every crate of the workspace.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::Kind;

/// A type-erased error, as tower services return.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A classified error: a [`Kind`], a message, an optional source chain and
/// recovery hints.
///
/// `Error` is cheap to move (one pointer) and keeps the whole source chain, so
/// context can be added at every layer without losing the root cause or the
/// classification.
///
/// ```
/// use std::time::Duration;
/// use pattern_error::{Error, Kind};
///
/// let err = Error::new(Kind::RateLimited, "too many requests for tenant 7")
///     .with_retry_after(Duration::from_secs(2));
/// assert_eq!(err.kind(), Kind::RateLimited);
/// assert!(err.is_transient());
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
/// assert_eq!(err.to_string(), "too many requests for tenant 7");
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    message: Option<Cow<'static, str>>,
    source: Option<Source>,
    retry_after: Option<Duration>,
    transient: Option<bool>,
}

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: Kind, message: impl Into<Cow<'static, str>>) -> Self {
        Self::build(kind, Some(message.into()), None)
    }

    /// An error of `kind` with no message of its own: it displays as the
    /// kind's [description](Kind::description).
    pub fn from_kind(kind: Kind) -> Self {
        Self::build(kind, None, None)
    }

    /// An error of `kind` caused by `source`.
    ///
    /// The kind given here wins over whatever the source would classify as.
    pub fn with_source(
        kind: Kind,
        message: impl Into<Cow<'static, str>>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::build(
            kind,
            Some(message.into()),
            Some(Source::from_boxed(source.into())),
        )
    }

    /// Wraps any error, classifying it with [`classify`].
    ///
    /// If `source` already is an [`Error`] it is returned unchanged (no
    /// double wrapping); otherwise the new error has no message of its own and
    /// displays as its source.
    pub fn from_std(source: impl Into<BoxError>) -> Self {
        let source = source.into();
        match source.downcast::<Error>() {
            Ok(err) => *err,
            Err(source) => {
                let kind = classify(&*source);
                Self::build(kind, None, Some(Source::Other(source)))
            }
        }
    }

    /// Wraps `source` in a new layer whose message is `context`, keeping the
    /// classification (kind, retry-after, transient override) of the source.
    ///
    /// An [`Error`] source is kept as it is, not boxed again.
    pub(crate) fn wrap<E>(source: E, context: Cow<'static, str>) -> Self
    where
        E: StdError + Send + Sync + 'static,
    {
        let source = Source::new(source);
        let (kind, retry_after, transient) = match &source {
            Source::Ours(err) => (err.inner.kind, err.inner.retry_after, err.inner.transient),
            other => (classify(other.as_dyn()), None, None),
        };
        let mut err = Self::build(kind, Some(context), Some(source));
        err.inner.retry_after = retry_after;
        err.inner.transient = transient;
        err
    }

    fn build(kind: Kind, message: Option<Cow<'static, str>>, source: Option<Source>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message,
                source,
                retry_after: None,
                transient: None,
            }),
        }
    }

    /// Adds a layer of context on top of this error; see [`Context`](crate::Context).
    pub fn context(self, context: impl Into<Cow<'static, str>>) -> Self {
        Self::wrap(self, context.into())
    }

    /// Sets how long the caller should wait before trying again (the
    /// equivalent of HTTP `Retry-After`). Retry honours it.
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.inner.retry_after = Some(after);
        self
    }

    /// Overrides whether this particular error is transient, whatever its kind.
    #[must_use]
    pub fn with_transient(mut self, transient: bool) -> Self {
        self.inner.transient = Some(transient);
        self
    }

    /// Changes the kind, keeping message, source and hints.
    #[must_use]
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.inner.kind = kind;
        self
    }

    /// The classification of this error.
    pub fn kind(&self) -> Kind {
        self.inner.kind
    }

    /// Whether this error's kind is `kind`.
    pub fn is(&self, kind: Kind) -> bool {
        self.inner.kind == kind
    }

    /// Whether trying again can succeed: the override set with
    /// [`with_transient`](Self::with_transient), or else [`Kind::is_transient`].
    pub fn is_transient(&self) -> bool {
        self.inner
            .transient
            .unwrap_or(self.inner.kind.is_transient())
    }

    /// The retry-after hint, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Whether this error is a bare wrapper: no message of its own, only a
    /// source (which its `Display` shows). Reports skip such layers.
    pub(crate) fn is_transparent(&self) -> bool {
        self.inner.message.is_none() && self.inner.source.is_some()
    }

    /// This error's own message: the one given, or the kind's description.
    pub fn message(&self) -> &str {
        match &self.inner.message {
            Some(message) => message,
            None => self.inner.kind.description(),
        }
    }

    /// Iterates over this error and every source below it, outermost first.
    pub fn chain(&self) -> Chain<'_> {
        Chain::new(self)
    }

    /// The innermost error of the chain.
    pub fn root_cause(&self) -> &(dyn StdError + 'static) {
        self.chain().last().unwrap_or(self)
    }

    /// The first error of type `T` in the chain, starting with this one.
    ///
    /// ```
    /// use pattern_error::{Context, Error};
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    /// let err: Error = Err::<(), _>(io).context("connecting to 127.0.0.1:5432").unwrap_err();
    /// let found = err.downcast_ref::<std::io::Error>().unwrap();
    /// assert_eq!(found.kind(), std::io::ErrorKind::ConnectionRefused);
    /// ```
    pub fn downcast_ref<T: StdError + 'static>(&self) -> Option<&T> {
        self.chain().find_map(|e| e.downcast_ref::<T>())
    }

    /// Takes the direct source out of this error, if any.
    pub fn into_source(self) -> Option<BoxError> {
        self.inner.source.map(|source| match source {
            Source::Ours(err) => Box::new(err) as BoxError,
            Source::Io(io) => Box::new(io),
            Source::Other(other) => other,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.inner.message, &self.inner.source) {
            (Some(message), _) => f.write_str(message),
            // No message of its own: show what it wraps, so that a wrapped
            // foreign error reads as itself.
            (None, Some(source)) => fmt::Display::fmt(source.as_dyn(), f),
            (None, None) => f.write_str(self.inner.kind.description()),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(message) = &self.inner.message {
            d.field("message", message);
        }
        if let Some(after) = self.inner.retry_after {
            d.field("retry_after", &after);
        }
        if let Some(transient) = self.inner.transient {
            d.field("transient", &transient);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source.as_dyn());
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner.source.as_ref().map(Source::as_dyn)
    }
}

/// What an [`Error`] wraps: another `Error` or an `io::Error` (the most
/// common foreign source), both kept unboxed, or anything else.
enum Source {
    Ours(Error),
    Io(std::io::Error),
    Other(BoxError),
}

impl Source {
    /// Takes `source` by value; an [`Error`] is recognised without boxing it.
    fn new<E: StdError + Send + Sync + 'static>(source: E) -> Self {
        let mut slot = Some(source);
        let any: &mut dyn std::any::Any = &mut slot;
        if let Some(ours) = any.downcast_mut::<Option<Error>>() {
            return Source::Ours(ours.take().expect("just filled"));
        }
        if let Some(io) = any.downcast_mut::<Option<std::io::Error>>() {
            return Source::Io(io.take().expect("just filled"));
        }
        Source::Other(Box::new(slot.take().expect("not taken")))
    }

    fn from_boxed(source: BoxError) -> Self {
        match source.downcast::<Error>() {
            Ok(err) => Source::Ours(*err),
            Err(other) => Source::Other(other),
        }
    }

    fn as_dyn(&self) -> &(dyn StdError + 'static) {
        match self {
            Source::Ours(err) => err,
            Source::Io(io) => io,
            Source::Other(other) => &**other,
        }
    }
}

impl From<Kind> for Error {
    fn from(kind: Kind) -> Self {
        Error::from_kind(kind)
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::from_std(err)
    }
}

impl From<tokio::time::error::Elapsed> for Error {
    fn from(err: tokio::time::error::Elapsed) -> Self {
        Error::build(Kind::Timeout, None, Some(Source::Other(Box::new(err))))
    }
}

impl From<BoxError> for Error {
    fn from(err: BoxError) -> Self {
        Error::from_std(err)
    }
}

/// Iterator over an error and its sources; see [`Error::chain`].
#[derive(Clone, Debug)]
pub struct Chain<'a> {
    next: Option<&'a (dyn StdError + 'static)>,
}

impl<'a> Chain<'a> {
    /// Starts at `error`.
    pub fn new(error: &'a (dyn StdError + 'static)) -> Self {
        Self { next: Some(error) }
    }
}

impl<'a> Iterator for Chain<'a> {
    type Item = &'a (dyn StdError + 'static);

    fn next(&mut self) -> Option<Self::Item> {
        let current = self.next?;
        self.next = current.source();
        Some(current)
    }
}

/// Classifies any error by walking its chain.
///
/// The first error in the chain that carries a classification decides:
/// an [`Error`] gives its kind; `std::io::Error` maps by its
/// [`ErrorKind`](std::io::ErrorKind): timed out → timeout; refused, reset or
/// aborted connections, unreachable hosts and networks, a network down, an
/// interrupted or would-block call, a busy resource → unavailable (all
/// transient: trying again can succeed); not found; permission denied →
/// forbidden; already exists → conflict; file too large → too large;
/// invalid data or input, an unexpected end → malformed. tokio's and tower's timeout errors
/// give [`Kind::Timeout`] and tower's load-shed error [`Kind::Overloaded`].
/// Anything else is [`Kind::Internal`].
///
/// ```
/// use pattern_error::{classify, Kind};
///
/// let io = std::io::Error::from(std::io::ErrorKind::TimedOut);
/// assert_eq!(classify(&io), Kind::Timeout);
/// ```
pub fn classify(error: &(dyn StdError + 'static)) -> Kind {
    Chain::new(error)
        .find_map(classify_one)
        .unwrap_or(Kind::Internal)
}

fn classify_one(error: &(dyn StdError + 'static)) -> Option<Kind> {
    use std::io::ErrorKind as Io;
    if let Some(err) = error.downcast_ref::<Error>() {
        return Some(err.kind());
    }
    if let Some(err) = error.downcast_ref::<std::io::Error>() {
        return match err.kind() {
            Io::TimedOut => Some(Kind::Timeout),
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::BrokenPipe
            | Io::AddrNotAvailable
            | Io::HostUnreachable
            | Io::NetworkUnreachable
            | Io::NetworkDown
            // An interrupted or would-block call did not fail: the same
            // call again can succeed (it is not the caller giving up).
            | Io::Interrupted
            | Io::WouldBlock
            | Io::ResourceBusy => Some(Kind::Unavailable),
            Io::NotFound => Some(Kind::NotFound),
            Io::PermissionDenied => Some(Kind::Forbidden),
            Io::AlreadyExists => Some(Kind::Conflict),
            Io::FileTooLarge => Some(Kind::TooLarge),
            Io::InvalidData | Io::InvalidInput | Io::UnexpectedEof => Some(Kind::Malformed),
            // An io::Error that wraps another error (`io::Error::other`): its
            // `source()` skips the wrapped error, so classify that directly.
            _ => Some(
                err.get_ref()
                    .map_or(Kind::Internal, |inner| classify(inner)),
            ),
        };
    }
    if error.is::<tokio::time::error::Elapsed>() || error.is::<tower::timeout::error::Elapsed>() {
        return Some(Kind::Timeout);
    }
    if error.is::<tower::load_shed::error::Overloaded>() {
        return Some(Kind::Overloaded);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn from_std_does_not_double_wrap() {
        let err = Error::new(Kind::Conflict, "version 3 is stale");
        let boxed: BoxError = Box::new(err);
        let back = Error::from_std(boxed);
        assert_eq!(back.kind(), Kind::Conflict);
        assert_eq!(back.chain().count(), 1);
    }

    #[test]
    fn messageless_wrapper_displays_source_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer reset");
        let err = Error::from(io);
        assert_eq!(err.kind(), Kind::Unavailable);
        assert_eq!(err.to_string(), "peer reset");
        assert_eq!(err.report().to_string(), "peer reset");
        assert!(err.downcast_ref::<std::io::Error>().is_some());
    }

    #[test]
    fn classify_walks_through_foreign_wrappers() {
        let inner = Error::new(Kind::NotFound, "order 42");
        let io = std::io::Error::other(inner);
        assert_eq!(classify(&io), Kind::NotFound);
        let plain = std::fmt::Error;
        assert_eq!(classify(&plain), Kind::Internal);
    }

    #[test]
    fn io_errors_are_classified_by_what_trying_again_can_do() {
        use std::io::ErrorKind as Io;
        let table = [
            (Io::TimedOut, Kind::Timeout),
            (Io::ConnectionRefused, Kind::Unavailable),
            (Io::ConnectionReset, Kind::Unavailable),
            (Io::HostUnreachable, Kind::Unavailable),
            (Io::NetworkUnreachable, Kind::Unavailable),
            (Io::NetworkDown, Kind::Unavailable),
            (Io::Interrupted, Kind::Unavailable),
            (Io::WouldBlock, Kind::Unavailable),
            (Io::ResourceBusy, Kind::Unavailable),
            (Io::NotFound, Kind::NotFound),
            (Io::PermissionDenied, Kind::Forbidden),
            (Io::AlreadyExists, Kind::Conflict),
            (Io::FileTooLarge, Kind::TooLarge),
            (Io::InvalidData, Kind::Malformed),
            (Io::OutOfMemory, Kind::Internal),
        ];
        for (io, kind) in table {
            let err = Error::from(std::io::Error::from(io));
            assert_eq!(err.kind(), kind, "{io:?}");
            assert_eq!(err.is_transient(), kind.is_transient(), "{io:?}");
        }
        for io in [
            Io::HostUnreachable,
            Io::NetworkUnreachable,
            Io::NetworkDown,
            Io::Interrupted,
        ] {
            assert!(
                Error::from(std::io::Error::from(io)).is_transient(),
                "{io:?}"
            );
        }
    }

    #[test]
    fn transient_override_wins() {
        let err = Error::new(Kind::Internal, "flaky").with_transient(true);
        assert!(err.is_transient());
        let err = Error::from_kind(Kind::Timeout).with_transient(false);
        assert!(!err.is_transient());
    }
}
