use std::fmt;

/// The consumer is gone; the item is handed back.
#[derive(PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the consumer is gone")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why [`Producer::try_send`](super::Producer::try_send) did not send; the
/// item is handed back.
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// No credit is available now.
    NoCredit(T),
    /// The consumer is gone.
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The item that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::NoCredit(item) | TrySendError::Closed(item) => item,
        }
    }
}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::NoCredit(_) => f.write_str("NoCredit(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::NoCredit(_) => f.write_str("no credit available"),
            TrySendError::Closed(_) => f.write_str("the consumer is gone"),
        }
    }
}

impl<T> std::error::Error for TrySendError<T> {}

impl<T> From<TrySendError<T>> for pattern_error::Error {
    fn from(err: TrySendError<T>) -> Self {
        use pattern_error::{Error, Kind};
        match err {
            TrySendError::NoCredit(_) => Error::new(Kind::Overloaded, "no credit available"),
            TrySendError::Closed(_) => Error::new(Kind::Unavailable, "the consumer is gone"),
        }
    }
}
