//! When the request a task is handling must be answered by.

use std::time::Duration;

use tokio::time::Instant;

/// When the request must be answered by. Handlers take it as an extractor
/// (`deadline: Deadline`, or `Option<Deadline>` where a timeout may be
/// off) to bound their own calls, and pass it on with
/// [`Deadline::header_value`]. [`DeadlineLayer`](crate::middleware::DeadlineLayer) puts it in the request's
/// extensions; [`ApiStack`](crate::stack::ApiStack) keeps it with the task
/// ([`Deadline::current`]), which the extractor reads too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// The deadline of the request this task is handling, if it runs
    /// inside [`ApiStack`](crate::stack::ApiStack) with a timeout.
    pub fn current() -> Option<Deadline> {
        super::with(|context| context.deadline)
    }

    /// The deadline of a request with these extensions: the timeout
    /// layer's, else the task's.
    pub(crate) fn find(extensions: &http::Extensions) -> Option<Deadline> {
        extensions.get::<Deadline>().copied().or_else(Self::current)
    }

    /// Time left (zero when past).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// The time left as a [`TIMEOUT_HEADER`](crate::middleware::TIMEOUT_HEADER) value for a downstream call.
    pub fn header_value(&self) -> http::HeaderValue {
        http::HeaderValue::from(u64::try_from(self.remaining().as_millis()).unwrap_or(u64::MAX))
    }
}
