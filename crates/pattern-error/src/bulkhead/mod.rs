//! Bulkhead: a bounded number of concurrent calls, so one slow dependency
//! cannot take every task, connection or thread.
//!
//! A call beyond the bound is rejected at once with
//! [`Kind::Overloaded`], or, with
//! [`Bulkhead::wait_up_to`], waits for a free slot up to a timeout and is
//! rejected then. The wait queue is bounded too
//! ([`Bulkhead::max_waiting`], as many as there are slots unless set): a
//! call that finds it full is rejected at once. A slot is held until the call's future completes or is
//! dropped: cancelling a call gives its slot back.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use pattern_error::{Error, Kind, bulkhead::Bulkhead};
//!
//! let reports = Bulkhead::new("reports", 1);
//! let held = reports.try_acquire().unwrap();
//! let err = reports.call(async { Ok::<_, Error>(()) }).await.unwrap_err();
//! assert_eq!(err.kind(), Kind::Overloaded);
//! drop(held);
//! reports.call(async { Ok::<_, Error>(()) }).await.unwrap();
//! # }
//! ```
//!
//! As a layer, [`BulkheadLayer`]; the service must be `Clone` (a call that
//! waits for a slot calls a clone once it has one).
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `bulkhead_rejections_total` | counter | `bulkhead` |
//! | `bulkhead_waiting` | gauge | `bulkhead` |
//!
//! Both are registered (at zero) when the bulkhead is made, so a query sees
//! them before the first rejection.

mod future;
mod layer;
mod service;

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use future::ResponseFuture;
pub use layer::BulkheadLayer;
pub use service::BulkheadService;

use crate::{Error, Kind};

/// Counter of calls a bulkhead turned away, labelled `bulkhead`.
pub const REJECTIONS_TOTAL: &str = "bulkhead_rejections_total";
/// Gauge of calls waiting for a slot, labelled `bulkhead` (moved only by
/// bulkheads that let calls wait).
pub const WAITING_GAUGE: &str = "bulkhead_waiting";

/// A bound on concurrent calls; cloning shares the bound.
#[derive(Clone, Debug)]
pub struct Bulkhead {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: metrics::SharedString,
    slots: Slots,
    max: usize,
    wait: Option<Duration>,
    max_waiting: usize,
    waiting: Arc<AtomicUsize>,
}

/// The slots of a bulkhead.
#[derive(Clone, Debug)]
enum Slots {
    /// No call ever waits: a count of slots in use is all it takes, and
    /// giving a slot back is one atomic decrement (no lock).
    Counted(Arc<AtomicUsize>),
    /// Calls may wait: a fair semaphore serves them in arrival order.
    Queued(Arc<Semaphore>),
}

/// A slot in a [`Bulkhead`], given back when dropped.
#[derive(Debug)]
pub struct BulkheadPermit {
    slot: Slot,
}

#[derive(Debug)]
enum Slot {
    Counted(Arc<AtomicUsize>),
    Queued(#[allow(dead_code)] OwnedSemaphorePermit), // held for its Drop
}

impl BulkheadPermit {
    fn queued(permit: OwnedSemaphorePermit) -> Self {
        Self {
            slot: Slot::Queued(permit),
        }
    }
}

impl Drop for BulkheadPermit {
    fn drop(&mut self) {
        if let Slot::Counted(in_use) = &self.slot {
            in_use.fetch_sub(1, Ordering::Release);
        }
    }
}

impl Bulkhead {
    /// A bulkhead of `max` concurrent calls that rejects the excess at once.
    ///
    /// # Panics
    ///
    /// If `max` is 0 ([`wait_up_to`](Self::wait_up_to) also panics if it is
    /// above [`Semaphore::MAX_PERMITS`]).
    pub fn new(name: impl Into<Cow<'static, str>>, max: usize) -> Self {
        assert!(max > 0, "a bulkhead needs at least one slot");
        let name = metrics::SharedString::from(name.into());
        // Registered at zero: a rate over them is 0, not absent.
        metrics::counter!(REJECTIONS_TOTAL, "bulkhead" => name.clone()).increment(0);
        metrics::gauge!(WAITING_GAUGE, "bulkhead" => name.clone()).increment(0.0);
        Self {
            inner: Arc::new(Inner {
                name,
                slots: Slots::Counted(Arc::new(AtomicUsize::new(0))),
                max,
                wait: None,
                max_waiting: max,
                waiting: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    /// Lets calls wait up to `timeout` for a slot before rejecting them (at
    /// most [`max_waiting`](Self::max_waiting) of them at once).
    ///
    /// # Panics
    ///
    /// If the bulkhead has more than [`Semaphore::MAX_PERMITS`] slots.
    #[must_use]
    pub fn wait_up_to(self, timeout: Duration) -> Self {
        self.with(|inner| inner.wait = Some(timeout))
    }

    /// Lets at most `max` calls wait for a slot at once; more are rejected
    /// at once. Without a wait ([`wait_up_to`](Self::wait_up_to)) no call
    /// waits.
    #[must_use]
    pub fn max_waiting(self, max: usize) -> Self {
        self.with(|inner| inner.max_waiting = max)
    }

    /// The same slots and queue with other settings; the first wait set
    /// puts the slots behind a fair semaphore (new slots: set waits before
    /// sharing a bulkhead).
    fn with(self, change: impl FnOnce(&mut Inner)) -> Self {
        let old = &self.inner;
        let mut inner = Inner {
            name: old.name.clone(),
            slots: old.slots.clone(),
            max: old.max,
            wait: old.wait,
            max_waiting: old.max_waiting,
            waiting: old.waiting.clone(),
        };
        change(&mut inner);
        if inner.wait.is_some() && matches!(inner.slots, Slots::Counted(_)) {
            inner.slots = Slots::Queued(Arc::new(Semaphore::new(inner.max)));
        }
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Calls waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        match &self.inner.slots {
            Slots::Counted(in_use) => in_use.load(Ordering::Relaxed),
            Slots::Queued(slots) => self.inner.max - slots.available_permits(),
        }
    }

    /// The most calls that run at once.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Takes a slot if one is free now.
    pub fn try_acquire(&self) -> Result<BulkheadPermit, Error> {
        self.try_acquire_quiet().map_err(|()| self.rejected())
    }

    /// Takes a slot if one is free now (`Ok(Some)`); otherwise says
    /// whether the caller may wait for one with [`acquire`](Self::acquire)
    /// (`Ok(None)`: a wait is configured and the queue has room) or is
    /// rejected (`Err`). For callers with a fast path that must not
    /// allocate, such as a middleware.
    pub fn try_acquire_or_queue(&self) -> Result<Option<BulkheadPermit>, Error> {
        if let Ok(permit) = self.try_acquire_quiet() {
            return Ok(Some(permit));
        }
        if self.inner.wait.is_some() && self.waiting() < self.inner.max_waiting {
            Ok(None)
        } else {
            Err(self.rejected())
        }
    }

    /// Takes a slot, waiting for one up to the configured timeout (or not
    /// at all without one).
    pub async fn acquire(&self) -> Result<BulkheadPermit, Error> {
        if let Ok(permit) = self.try_acquire_quiet() {
            return Ok(permit);
        }
        let Some(wait) = self.inner.wait else {
            return Err(self.rejected());
        };
        let (Some(_place), Some(slots)) = (QueuePlace::enter(self), self.semaphore()) else {
            return Err(self.rejected());
        };
        match tokio::time::timeout(wait, slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(BulkheadPermit::queued(slot)),
            _ => Err(self.rejected()),
        }
    }

    /// The semaphore calls wait on (there is one once a wait is set).
    fn semaphore(&self) -> Option<&Arc<Semaphore>> {
        match &self.inner.slots {
            Slots::Queued(slots) => Some(slots),
            Slots::Counted(_) => None,
        }
    }

    /// Runs `future` in a slot; see [`acquire`](Self::acquire).
    pub async fn call<F, T, E>(&self, future: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<Error>,
    {
        let _permit = self.acquire().await?;
        future.await.map_err(Into::into)
    }

    fn try_acquire_quiet(&self) -> Result<BulkheadPermit, ()> {
        match &self.inner.slots {
            Slots::Counted(in_use) => {
                let max = self.inner.max;
                in_use
                    .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                        (n < max).then_some(n + 1)
                    })
                    .map(|_| BulkheadPermit {
                        slot: Slot::Counted(in_use.clone()),
                    })
                    .map_err(|_| ())
            }
            Slots::Queued(slots) => slots
                .clone()
                .try_acquire_owned()
                .map(BulkheadPermit::queued)
                .map_err(|_| ()),
        }
    }

    fn rejected(&self) -> Error {
        metrics::counter!(REJECTIONS_TOTAL, "bulkhead" => self.inner.name.clone()).increment(1);
        Error::new(
            Kind::Overloaded,
            format!(
                "bulkhead {:?} is full ({} calls running)",
                &*self.inner.name, self.inner.max
            ),
        )
    }
}

/// A place in the wait queue, left when dropped (also when the waiting
/// call is cancelled). Owned, so a tower future can hold it.
pub(super) struct QueuePlace(Bulkhead);

impl QueuePlace {
    /// A place, if the queue has room.
    pub(super) fn enter(bulkhead: &Bulkhead) -> Option<Self> {
        let waiting = &bulkhead.inner.waiting;
        if waiting.fetch_add(1, Ordering::AcqRel) >= bulkhead.inner.max_waiting {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        metrics::gauge!(WAITING_GAUGE, "bulkhead" => bulkhead.inner.name.clone()).increment(1.0);
        Some(Self(bulkhead.clone()))
    }

    /// The bulkhead it waits for.
    pub(super) fn bulkhead(&self) -> &Bulkhead {
        &self.0
    }
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.0.inner.waiting.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(WAITING_GAUGE, "bulkhead" => self.0.inner.name.clone()).decrement(1.0);
    }
}
