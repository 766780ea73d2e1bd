//! Credit-based flow control between a producer and a consumer.
//!
//! The consumer grants credits; each item the producer sends spends one; with
//! no credit left the producer waits (or, with
//! [`try_send`](Producer::try_send), is told so at once). Credits granted and
//! not yet received never exceed the window given to [`channel`], so the
//! number of items buffered between the two is bounded by the window whatever
//! either side does.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use pattern_network::flow::credit;
//!
//! let (producer, mut consumer) = credit::channel::<u32>(8);
//! assert_eq!(consumer.grant(3), 3);
//! for i in 0..3 {
//!     producer.send(i).await.unwrap();
//! }
//! // No credit left: the producer is told so instead of buffering more.
//! assert!(producer.try_send(3).is_err());
//! assert_eq!(consumer.recv().await, Some(0));
//! # }
//! ```

mod error;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

pub use error::{SendError, TrySendError};

/// Creates a credit-controlled channel whose consumer may have at most
/// `window` credits outstanding (granted and not yet received).
///
/// No credit is granted at first: call [`Consumer::grant`].
///
/// # Panics
///
/// If `window` is 0 or larger than [`Semaphore::MAX_PERMITS`].
pub fn channel<T>(window: usize) -> (Producer<T>, Consumer<T>) {
    assert!(window > 0, "a credit window must be at least 1");
    assert!(window <= Semaphore::MAX_PERMITS, "credit window too large");
    let (tx, rx) = flume::bounded(window);
    let shared = Arc::new(Shared {
        credits: Semaphore::new(0),
        outstanding: AtomicUsize::new(0),
        window,
    });
    (
        Producer {
            tx,
            shared: shared.clone(),
        },
        Consumer { rx, shared },
    )
}

#[derive(Debug)]
struct Shared {
    /// Credits granted and not yet spent by a producer.
    credits: Semaphore,
    /// Credits granted and not yet matched by a received item.
    outstanding: AtomicUsize,
    window: usize,
}

/// The sending side: spends one credit per item. Cloning shares the credits.
#[derive(Debug)]
pub struct Producer<T> {
    tx: flume::Sender<T>,
    shared: Arc<Shared>,
}

impl<T> Clone for Producer<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<T> Producer<T> {
    /// Sends `item`, waiting for a credit if none is left.
    ///
    /// Cancel-safe: dropping the future before it completes spends no credit
    /// and sends nothing. Fails when the consumer is gone.
    pub async fn send(&self, item: T) -> Result<(), SendError<T>> {
        match self.shared.credits.acquire().await {
            Ok(permit) => {
                permit.forget();
                self.push(item).map_err(SendError)
            }
            Err(_closed) => Err(SendError(item)),
        }
    }

    /// Sends `item` only if a credit is available now.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        match self.shared.credits.try_acquire() {
            Ok(permit) => {
                permit.forget();
                self.push(item).map_err(TrySendError::Closed)
            }
            Err(tokio::sync::TryAcquireError::NoPermits) => Err(TrySendError::NoCredit(item)),
            Err(tokio::sync::TryAcquireError::Closed) => Err(TrySendError::Closed(item)),
        }
    }

    /// Credits this producer (and its clones) may spend right now.
    pub fn credits(&self) -> usize {
        self.shared.credits.available_permits()
    }

    fn push(&self, item: T) -> Result<(), T> {
        // The queue holds `window` items and at most `window` credits are
        // outstanding, so a spent credit always finds room.
        self.tx.try_send(item).map_err(|e| e.into_inner())
    }
}

/// The receiving side: grants credits and receives items.
#[derive(Debug)]
pub struct Consumer<T> {
    rx: flume::Receiver<T>,
    shared: Arc<Shared>,
}

impl<T> Consumer<T> {
    /// Grants up to `n` credits, never letting the outstanding credits exceed
    /// the window. Returns how many were granted.
    pub fn grant(&self, n: usize) -> usize {
        let window = self.shared.window;
        let mut granted = 0;
        let _ = self.shared.outstanding.fetch_update(
            Ordering::AcqRel,
            Ordering::Acquire,
            |outstanding| {
                granted = n.min(window - outstanding);
                Some(outstanding + granted)
            },
        );
        if granted > 0 {
            self.shared.credits.add_permits(granted);
        }
        granted
    }

    /// Receives the next item; `None` once every producer is gone and the
    /// queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        let item = self.rx.recv_async().await.ok()?;
        self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
        Some(item)
    }

    /// Credits granted and not yet matched by a received item.
    pub fn outstanding(&self) -> usize {
        self.shared.outstanding.load(Ordering::Acquire)
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        // Wake producers waiting for a credit that will never come.
        self.shared.credits.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_is_capped_by_window() {
        let (_p, c) = channel::<()>(4);
        assert_eq!(c.grant(3), 3);
        assert_eq!(c.grant(3), 1);
        assert_eq!(c.grant(1), 0);
        assert_eq!(c.outstanding(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn producer_waits_for_credit() {
        let (p, mut c) = channel::<u32>(2);
        let sender = tokio::spawn(async move {
            for i in 0..5 {
                p.send(i).await.unwrap();
            }
        });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished());
        let mut got = Vec::new();
        while got.len() < 5 {
            c.grant(1);
            got.push(c.recv().await.unwrap());
            assert!(c.outstanding() <= 2);
        }
        sender.await.unwrap();
        assert_eq!(got, [0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn dropped_consumer_fails_waiting_producer() {
        let (p, c) = channel::<u32>(1);
        let waiting = tokio::spawn(async move { p.send(7).await });
        tokio::task::yield_now().await;
        drop(c);
        assert_eq!(waiting.await.unwrap().unwrap_err().0, 7);
    }

    #[tokio::test]
    async fn recv_ends_when_producers_are_gone() {
        let (p, mut c) = channel::<u32>(1);
        c.grant(1);
        p.send(1).await.unwrap();
        drop(p);
        assert_eq!(c.recv().await, Some(1));
        assert_eq!(c.recv().await, None);
    }
}
