//! Fan-out and fan-in over bounded channels.
//!
//! - [`Broadcast`]: every consumer gets every item; the slowest consumer
//!   sets the pace (nothing is buffered without bound, nothing dropped).
//! - [`Distribute`]: each item goes to one of N workers, round-robin (for
//!   keyed distribution, where a key's items must stay together, use
//!   [`Partitioner`](crate::partition::Partitioner)).
//! - [`merge`]: N receivers into one (with flume, simply clone the sender
//!   for many producers; `merge` joins receivers you already have).
//! - [`scatter_gather`]: N requests at once, the first k answers within a
//!   deadline.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use pattern_network::fan::{Broadcast, Distribute, merge};
//!
//! let (broadcast, consumers) = Broadcast::new(3, 8);
//! broadcast.send("config changed".to_owned()).await.unwrap();
//! for consumer in &consumers {
//!     assert_eq!(consumer.recv_async().await.unwrap(), "config changed");
//! }
//!
//! let (work, workers) = Distribute::round_robin(2, 8);
//! for job in 0..4 {
//!     work.send(job).await.unwrap();
//! }
//! assert_eq!(workers[0].drain().collect::<Vec<_>>(), [0, 2]);
//! drop(work);
//! let all = merge(workers, 8);
//! assert_eq!(all.recv_async().await.unwrap(), 1);
//! # }
//! ```

mod scatter;

use std::sync::atomic::{AtomicUsize, Ordering};

use pattern_error::{Error, Kind};
pub use scatter::{Gathered, scatter_gather};

fn gone() -> Error {
    Error::new(Kind::Unavailable, "every consumer is gone")
}

/// Sends every item to every consumer; see the [module docs](self).
#[derive(Debug)]
pub struct Broadcast<T> {
    senders: Vec<flume::Sender<T>>,
}

impl<T: Clone> Broadcast<T> {
    /// `consumers` receivers, each with a queue of `capacity` items.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    pub fn new(consumers: usize, capacity: usize) -> (Self, Vec<flume::Receiver<T>>) {
        assert!(capacity > 0, "a queue needs room for one item");
        let (senders, receivers) = (0..consumers).map(|_| flume::bounded(capacity)).unzip();
        (Self { senders }, receivers)
    }

    /// Sends `item` to every consumer still there, waiting for room in each
    /// queue. Fails only when no consumer is left.
    pub async fn send(&self, item: T) -> Result<(), Error> {
        let mut delivered = false;
        for sender in &self.senders {
            delivered |= sender.send_async(item.clone()).await.is_ok();
        }
        if delivered { Ok(()) } else { Err(gone()) }
    }
}

/// Sends each item to one worker, in turn; see the [module docs](self).
#[derive(Debug)]
pub struct Distribute<T> {
    senders: Vec<flume::Sender<T>>,
    next: AtomicUsize,
}

impl<T> Distribute<T> {
    /// `workers` receivers, each with a queue of `capacity` items, served
    /// round-robin.
    ///
    /// # Panics
    ///
    /// If `workers` or `capacity` is 0.
    pub fn round_robin(workers: usize, capacity: usize) -> (Self, Vec<flume::Receiver<T>>) {
        assert!(
            workers > 0 && capacity > 0,
            "need at least one worker with room for one item"
        );
        let (senders, receivers) = (0..workers).map(|_| flume::bounded(capacity)).unzip();
        (
            Self {
                senders,
                next: AtomicUsize::new(0),
            },
            receivers,
        )
    }

    /// Sends `item` to the next worker, waiting for room in its queue. A
    /// worker that is gone is skipped; fails only when all are.
    pub async fn send(&self, mut item: T) -> Result<(), Error> {
        for _ in 0..self.senders.len() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
            match self.senders[i].send_async(item).await {
                Ok(()) => return Ok(()),
                Err(flume::SendError(back)) => item = back,
            }
        }
        Err(gone())
    }
}

/// Forwards every item of `receivers` into one receiver with a queue of
/// `capacity`; it ends when all of them have ended. Spawns one forwarding
/// task per receiver on the current tokio runtime.
///
/// # Panics
///
/// If `capacity` is 0, or outside a tokio runtime.
pub fn merge<T: Send + 'static>(
    receivers: Vec<flume::Receiver<T>>,
    capacity: usize,
) -> flume::Receiver<T> {
    assert!(capacity > 0, "a queue needs room for one item");
    let (tx, rx) = flume::bounded(capacity);
    for receiver in receivers {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(item) = receiver.recv_async().await {
                if tx.send_async(item).await.is_err() {
                    return; // the merged receiver is gone
                }
            }
        });
    }
    rx
}
