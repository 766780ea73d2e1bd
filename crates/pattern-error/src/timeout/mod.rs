//! A deadline on every call, failing with [`Kind::Timeout`].
//!
//! Unlike tower's timeout, whose error is an opaque `Elapsed` in a
//! `BoxError`, this layer answers with a classified [`Error`]:
//! transient, so retry retries it, and mapped to 504 at an HTTP edge.
//! The inner future is dropped when the deadline passes, releasing whatever
//! it held.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use pattern_error::{Error, Kind, timeout::TimeoutLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_millis(100)))
//!     .service(service_fn(|()| async {
//!         tokio::time::sleep(Duration::from_secs(5)).await;
//!         Ok::<_, Error>(())
//!     }));
//! let err = svc.oneshot(()).await.unwrap_err();
//! assert_eq!(err.kind(), Kind::Timeout);
//! assert!(err.is_transient());
//! # }
//! ```

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::TimeoutLayer;
pub use service::Timeout;

use std::time::Duration;

use crate::{Error, Kind};

/// The error of a call that ran out of time.
pub(crate) fn elapsed(after: Duration) -> Error {
    Error::new(Kind::Timeout, format!("timed out after {after:?}"))
}
