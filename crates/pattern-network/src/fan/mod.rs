//! Fan-out and fan-in over bounded channels.
//!
//! - [`Broadcast`]: every consumer gets every item, all or none: a send
//!   first takes a place in every consumer's queue, then delivers to all
//!   at once, so a send given up while it waits for room has delivered to
//!   no one, and every consumer sees items in the same order. The slowest
//!   consumer sets the pace (nothing is buffered without bound, nothing
//!   dropped).
//! - [`Distribute`]: each item goes to one of N workers: the next in turn,
//!   or, when its queue is full, the next with room; when every queue is
//!   full, the first to make room takes it (one slow worker never holds
//!   the others idle). For keyed distribution, where a key's items must
//!   stay together, use [`Partitioner`](crate::partition::Partitioner).
//! - [`merge`]: N receivers into one (with flume, simply clone the sender
//!   for many producers; `merge` joins receivers you already have, flume's
//!   or tokio's).
//! - [`scatter_gather`]: N requests at once, the first k answers within a
//!   deadline.
//!
//! Broadcast and Distribute queue with tokio's bounded `mpsc` channels,
//! whose `reserve` takes a place in a queue before sending (and gives it
//! back if dropped): what all-or-nothing delivery and "the first with
//! room" need, and flume does not offer.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use pattern_network::fan::{Broadcast, Distribute, merge};
//!
//! let (broadcast, mut consumers) = Broadcast::new(3, 8);
//! broadcast.send("config changed".to_owned()).await.unwrap();
//! for consumer in &mut consumers {
//!     assert_eq!(consumer.recv().await.unwrap(), "config changed");
//! }
//!
//! let (work, mut workers) = Distribute::round_robin(2, 8);
//! for job in 0..4 {
//!     work.send(job).await.unwrap();
//! }
//! assert_eq!(workers[0].try_recv().unwrap(), 0);
//! assert_eq!(workers[0].try_recv().unwrap(), 2);
//! drop(work);
//! let all = merge(workers, 8);
//! assert_eq!(all.recv_async().await.unwrap(), 1);
//! # }
//! ```

mod scatter;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use futures_util::future::select_all;
use pattern_error::{Error, Kind};
use tokio::sync::mpsc;

pub use scatter::{Gathered, ScatterError, scatter_gather};

fn gone() -> Error {
    Error::new(Kind::Unavailable, "every consumer is gone")
}

/// Sends every item to every consumer; see the [module docs](self).
#[derive(Debug)]
pub struct Broadcast<T> {
    senders: Vec<mpsc::Sender<T>>,
    /// Held while delivering, so every queue gets items in one order.
    delivering: Mutex<()>,
}

impl<T: Clone> Broadcast<T> {
    /// `consumers` receivers, each with a queue of `capacity` items.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    pub fn new(consumers: usize, capacity: usize) -> (Self, Vec<mpsc::Receiver<T>>) {
        assert!(capacity > 0, "a queue needs room for one item");
        let (senders, receivers) = (0..consumers).map(|_| mpsc::channel(capacity)).unzip();
        (
            Self {
                senders,
                delivering: Mutex::new(()),
            },
            receivers,
        )
    }

    /// Sends `item` to every consumer still there: waits for room in every
    /// queue, then delivers to all at once. Fails only when no consumer is
    /// left.
    ///
    /// Cancel-safe: a send dropped while it waits has delivered to no one.
    pub async fn send(&self, item: T) -> Result<(), Error> {
        let mut places = Vec::with_capacity(self.senders.len());
        for sender in &self.senders {
            // A consumer that is gone is skipped.
            if let Ok(place) = sender.reserve().await {
                places.push(place);
            }
        }
        let Some(last) = places.pop() else {
            return Err(gone());
        };
        let _order = self
            .delivering
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for place in places {
            place.send(item.clone());
        }
        last.send(item);
        Ok(())
    }
}

/// Sends each item to one worker: the next in turn, or the next with
/// room; see the [module docs](self).
#[derive(Debug)]
pub struct Distribute<T> {
    senders: Vec<mpsc::Sender<T>>,
    next: AtomicUsize,
}

impl<T> Distribute<T> {
    /// `workers` receivers, each with a queue of `capacity` items, served
    /// in turn.
    ///
    /// # Panics
    ///
    /// If `workers` or `capacity` is 0.
    pub fn round_robin(workers: usize, capacity: usize) -> (Self, Vec<mpsc::Receiver<T>>) {
        assert!(
            workers > 0 && capacity > 0,
            "need at least one worker with room for one item"
        );
        let (senders, receivers) = (0..workers).map(|_| mpsc::channel(capacity)).unzip();
        (
            Self {
                senders,
                next: AtomicUsize::new(0),
            },
            receivers,
        )
    }

    /// Sends `item` to the worker whose turn it is, or, if its queue is
    /// full, to the next with room; when every queue is full, to the first
    /// that makes room. A worker that is gone is skipped; fails only when
    /// all are.
    ///
    /// Cancel-safe: a send dropped while it waits has sent nothing.
    pub async fn send(&self, mut item: T) -> Result<(), Error> {
        let n = self.senders.len();
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut full = Vec::new();
        for k in 0..n {
            let sender = &self.senders[(turn + k) % n];
            match sender.try_send(item) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(back)) => {
                    full.push(sender);
                    item = back;
                }
                Err(mpsc::error::TrySendError::Closed(back)) => item = back,
            }
        }
        // Every queue left is full: the first to make room takes it.
        let mut waits: Vec<_> = full.into_iter().map(|s| Box::pin(s.reserve())).collect();
        while !waits.is_empty() {
            let (place, _, rest) = select_all(waits).await;
            match place {
                Ok(place) => {
                    place.send(item);
                    return Ok(());
                }
                Err(_) => waits = rest, // that worker went meanwhile
            }
        }
        Err(gone())
    }
}

/// A receiver [`merge`] can read: flume's and tokio's bounded ones.
pub trait Source<T>: Send + 'static {
    /// The next item; `None` once the sending side is gone and drained.
    fn next_item(&mut self) -> impl Future<Output = Option<T>> + Send;
}

impl<T: Send + 'static> Source<T> for flume::Receiver<T> {
    async fn next_item(&mut self) -> Option<T> {
        self.recv_async().await.ok()
    }
}

impl<T: Send + 'static> Source<T> for mpsc::Receiver<T> {
    fn next_item(&mut self) -> impl Future<Output = Option<T>> + Send {
        self.recv()
    }
}

/// Forwards every item of `receivers` into one receiver with a queue of
/// `capacity`; it ends when all of them have ended. Spawns one forwarding
/// task per receiver on the current tokio runtime.
///
/// # Panics
///
/// If `capacity` is 0, or outside a tokio runtime.
pub fn merge<T: Send + 'static, S: Source<T>>(
    receivers: impl IntoIterator<Item = S>,
    capacity: usize,
) -> flume::Receiver<T> {
    assert!(capacity > 0, "a queue needs room for one item");
    let (tx, rx) = flume::bounded(capacity);
    for mut receiver in receivers {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(item) = receiver.next_item().await {
                if tx.send_async(item).await.is_err() {
                    return; // the merged receiver is gone
                }
            }
        });
    }
    rx
}
