//! Fallback: answer with a value or another computation when a call fails
//! with chosen kinds of error.
//!
//! A predicate picks the errors ([`Kinds`] for a set of kinds, or any
//! `Fn(&Error) -> bool`); a handler turns them into an answer (a fixed
//! [`Value`], or any `Fn(Error) -> Result<Res, Error>`, which may fail in
//! turn). Other errors pass through unchanged.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use pattern_error::{Error, Kind, fallback::{FallbackLayer, Kinds, Value}};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! // Recommendations are optional: when the service is down, show none.
//! let svc = ServiceBuilder::new()
//!     .layer(FallbackLayer::new(
//!         Kinds::of([Kind::Unavailable, Kind::Timeout]),
//!         Value(Vec::<String>::new()),
//!     ))
//!     .service(service_fn(|_user: u64| async {
//!         Err::<Vec<String>, _>(Error::new(Kind::Unavailable, "recommender down"))
//!     }));
//! assert!(svc.oneshot(7).await.unwrap().is_empty());
//!
//! // The same without a service.
//! let answer = pattern_error::fallback::call(
//!     async { Err::<u32, _>(Error::from_kind(Kind::Timeout)) },
//!     Kinds::of([Kind::Timeout]),
//!     |_err| Ok(0),
//! )
//! .await;
//! assert_eq!(answer.unwrap(), 0);
//! # }
//! ```

mod future;
mod layer;
mod service;

use std::future::Future;

pub use future::ResponseFuture;
pub use layer::FallbackLayer;
pub use service::Fallback;

use crate::{Error, Kind};

/// Chooses the errors a fallback answers.
pub trait Predicate {
    /// Whether `error` gets the fallback.
    fn matches(&self, error: &Error) -> bool;
}

impl<F: Fn(&Error) -> bool> Predicate for F {
    fn matches(&self, error: &Error) -> bool {
        self(error)
    }
}

/// A set of [`Kind`]s, as a [`Predicate`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kinds(u32);

impl Kinds {
    /// The set of `kinds`.
    pub fn of(kinds: impl IntoIterator<Item = Kind>) -> Self {
        Kinds(kinds.into_iter().fold(0, |set, k| set | k.bit()))
    }

    /// Whether `kind` is in the set.
    pub fn contains(&self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }
}

impl Predicate for Kinds {
    fn matches(&self, error: &Error) -> bool {
        self.contains(error.kind())
    }
}

/// Turns a chosen error into an answer.
pub trait Handler<Res> {
    /// The answer for `error` (or another error).
    fn handle(&self, error: Error) -> Result<Res, Error>;
}

impl<Res, F: Fn(Error) -> Result<Res, Error>> Handler<Res> for F {
    fn handle(&self, error: Error) -> Result<Res, Error> {
        self(error)
    }
}

/// A fixed fallback answer, cloned for each use.
#[derive(Clone, Debug)]
pub struct Value<V>(pub V);

impl<V: Clone> Handler<V> for Value<V> {
    fn handle(&self, _: Error) -> Result<V, Error> {
        Ok(self.0.clone())
    }
}

/// Awaits `future`, answering the errors `predicate` picks with `handler`.
pub async fn call<F, T, E, P, H>(future: F, predicate: P, handler: H) -> Result<T, Error>
where
    F: Future<Output = Result<T, E>>,
    E: Into<Error>,
    P: Predicate,
    H: Handler<T>,
{
    match future.await.map_err(Into::into) {
        Err(err) if predicate.matches(&err) => handler.handle(err),
        other => other,
    }
}
