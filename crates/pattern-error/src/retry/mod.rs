//! Retry with exponential backoff, jitter, retry-after hints and a budget.
//!
//! A [`RetryPolicy`] decides, after each failed attempt, whether to try
//! again and how long to wait:
//!
//! - only errors for which [`retry_if`](RetryBuilder::retry_if) holds are
//!   retried; by default the [transient](crate::Error::is_transient) ones
//!   (timeouts, unavailable dependencies, overload, rate limits), so invalid
//!   input is never sent twice;
//! - the delay grows exponentially (backon's exponential backoff, with
//!   jitter), and is at least the error's [retry-after](crate::Error::retry_after)
//!   hint: a rate-limited or circuit-broken call waits as long as it was told;
//! - a hint longer than the policy's maximum delay (or than what the
//!   elapsed limit or the call's [deadline](RetryBuilder::deadline) leaves)
//!   is not slept on: the policy gives up at once, and the error goes up
//!   with its hint;
//! - attempts are capped, and so optionally is the time since the first
//!   attempt started;
//! - a shared [`RetryBudget`] caps retries at a share of first attempts, so a
//!   failing dependency sees at most that much extra load.
//!
//! Use it as an async helper ([`retry`], [`RetryPolicy::run`],
//! [`RetryPolicy::run_checked`] to retry on a result too) or as a tower
//! layer ([`RetryLayer`]). When the policy gives up after retrying, the last
//! error is returned with context saying how many attempts were made; its
//! kind and hints are unchanged.
//!
//! # Cost
//!
//! On the success path the layer clones the request once (to have it for a
//! retry) and the policy's `Arc`, and deposits in the budget (a plain store
//! in a counter of the calling thread's own); it neither allocates nor reads
//! the clock unless an elapsed-time limit is set. The backoff state and the
//! timer are created (boxed) at the first failure.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use pattern_error::{Error, Kind, retry::{RetryBudget, RetryPolicy, retry}};
//!
//! let policy = RetryPolicy::builder("inventory")
//!     .max_attempts(4)
//!     .backoff(Duration::from_millis(50), 2.0, Duration::from_secs(1))
//!     .budget(Arc::new(RetryBudget::default()))
//!     .build()
//!     .unwrap();
//!
//! let calls = AtomicU32::new(0);
//! let stock = retry(&policy, || async {
//!     match calls.fetch_add(1, Ordering::SeqCst) {
//!         0 | 1 => Err(Error::new(Kind::Unavailable, "connection refused")),
//!         _ => Ok(17),
//!     }
//! })
//! .await
//! .unwrap();
//! assert_eq!((stock, calls.load(Ordering::SeqCst)), (17, 3));
//! # }
//! ```
//!
//! As a layer:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use pattern_error::{Error, retry::{RetryLayer, RetryPolicy}};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let policy = RetryPolicy::builder("geo").build().unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::new(policy))
//!     .service(service_fn(|city: &'static str| async move { Ok::<_, Error>(city.len()) }));
//! assert_eq!(svc.oneshot("Oslo").await.unwrap(), 4);
//! # }
//! ```
//!
//! # Metrics
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `retry_attempts_total` | counter | `retry` |
//! | `retry_give_ups_total` | counter | `retry`, `reason` (`attempts`, `elapsed`, `deadline`, `retry_after`, `budget`, `permanent`, `unclonable`) |
//!
//! Each retry is also a `DEBUG` tracing event `retrying` with the policy's
//! name, the attempt about to be made, the delay and the cause.
//!
//! # With a circuit breaker
//!
//! Put the retry outside the breaker (retry, then breaker, then the
//! service): every attempt counts in the breaker's window, and an open
//! breaker answers at once with the time until it lets a probe through as
//! its retry-after. Keep the policy's maximum delay below the breaker's
//! open duration: then a rejection by an open breaker makes the policy give
//! up at once (fail fast), instead of every caller waiting out the open
//! state and arriving together onto its few half-open probes. Only a
//! breaker about to half-open (less than the maximum delay left) is waited
//! for, with jitter.

mod budget;
mod future;
mod layer;
mod policy;
mod service;

use std::future::Future;

pub use budget::RetryBudget;
pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use policy::{ATTEMPTS_TOTAL, GIVE_UPS_TOTAL, RetryBuilder, RetryPolicy};
pub use service::Retry;

use crate::Error;

/// Runs `op` until it succeeds or `policy` gives up.
///
/// `op` is called once per attempt and must build a fresh future each time.
pub async fn retry<F, Fut, T, E>(policy: &RetryPolicy, op: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<Error>,
{
    policy.run(op).await
}

/// Decides whether a successful response should be retried anyway; see
/// [`RetryLayer::retry_response`]. Closures `Fn(&Res) -> bool` implement it.
pub trait CheckResponse<Res> {
    /// Whether to retry after `response`.
    fn retry(&self, response: &Res) -> bool;
}

impl<Res, F: Fn(&Res) -> bool> CheckResponse<Res> for F {
    #[inline]
    fn retry(&self, response: &Res) -> bool {
        self(response)
    }
}

/// Copies a request for another attempt; see [`RetryLayer::clone_request`].
/// Closures `Fn(&Req) -> Option<Req>` implement it; `None` means this
/// request cannot be sent again, and its first answer is final.
pub trait CloneRequest<Req> {
    /// A copy of `request` to send on a later attempt, if it can be made.
    fn clone_request(&self, request: &Req) -> Option<Req>;
}

impl<Req, F: Fn(&Req) -> Option<Req>> CloneRequest<Req> for F {
    #[inline]
    fn clone_request(&self, request: &Req) -> Option<Req> {
        self(request)
    }
}

/// Copies requests with `Clone` (the default of [`RetryLayer`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ByClone;

impl<Req: Clone> CloneRequest<Req> for ByClone {
    #[inline]
    fn clone_request(&self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

/// Retries no successful response (the default of [`RetryLayer`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCheck;

impl<Res> CheckResponse<Res> for NoCheck {
    #[inline]
    fn retry(&self, _: &Res) -> bool {
        false
    }
}
