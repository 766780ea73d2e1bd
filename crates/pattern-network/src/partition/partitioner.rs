use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use pattern_error::{Error, Kind};

use super::HashRing;

/// Routes items to workers by key over bounded channels; see the
/// [module docs](super).
///
/// Changing the workers takes `&mut self`; share a partitioner between
/// tasks behind a lock if they change it while sending.
///
/// During a change, items of a moved key already queued at its old worker
/// are still handled there: drain the old worker (or accept the overlap)
/// before relying on order across the change.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use pattern_network::partition::Partitioner;
///
/// let mut partitioner = Partitioner::new(100);
/// let (a, _) = partitioner.add_worker("a", 16);
/// let (b, _) = partitioner.add_worker("b", 16);
/// for seq in 0..4 {
///     partitioner.send(&"customer-7", ("customer-7", seq)).await.unwrap();
/// }
/// // Every item of the key went to one worker, in order.
/// let worker = if a.len() == 4 { a } else { b };
/// let seqs: Vec<_> = worker.drain().map(|(_, seq)| seq).collect();
/// assert_eq!(seqs, [0, 1, 2, 3]);
/// # }
/// ```
pub struct Partitioner<T> {
    ring: HashRing<String>,
    senders: HashMap<String, flume::Sender<T>>,
}

/// What a change of workers did.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Rebalance {
    /// The share of the key space (0 to 1) now owned by another worker.
    pub moved_share: f64,
    /// Workers after the change.
    pub workers: usize,
}

impl<T> Partitioner<T> {
    /// A partitioner with no worker, placing each at `vnodes` ring points.
    pub fn new(vnodes: usize) -> Self {
        Self {
            ring: HashRing::new(vnodes),
            senders: HashMap::new(),
        }
    }

    /// Adds a worker named `name` with a queue of `capacity` items; returns
    /// the receiving end for the worker to consume, and what moved.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    pub fn add_worker(
        &mut self,
        name: impl Into<String>,
        capacity: usize,
    ) -> (flume::Receiver<T>, Rebalance) {
        assert!(capacity > 0, "a worker queue needs room for one item");
        let name = name.into();
        let (tx, rx) = flume::bounded(capacity);
        let before = self.ring.clone();
        self.ring.add(name.clone());
        self.senders.insert(name, tx);
        (rx, self.rebalance(&before))
    }

    /// Removes a worker: no new item goes to it, and its receiver ends once
    /// it has taken what was queued. `None` if there was no such worker.
    pub fn remove_worker(&mut self, name: &str) -> Option<Rebalance> {
        let before = self.ring.clone();
        if !self.ring.remove(&name.to_owned()) {
            return None;
        }
        self.senders.remove(name);
        Some(self.rebalance(&before))
    }

    fn rebalance(&self, before: &HashRing<String>) -> Rebalance {
        let moved_share = before.moved_share(&self.ring);
        tracing::info!(
            moved_share,
            workers = self.ring.len(),
            "partitions rebalanced"
        );
        Rebalance {
            moved_share,
            workers: self.ring.len(),
        }
    }

    /// The worker `key` goes to.
    pub fn worker_for<K: Hash + ?Sized>(&self, key: &K) -> Option<&str> {
        self.ring.get(key).map(String::as_str)
    }

    fn sender<K: Hash + ?Sized>(&self, key: &K) -> Result<&flume::Sender<T>, Error> {
        self.ring
            .get(key)
            .and_then(|name| self.senders.get(name))
            .ok_or_else(|| Error::new(Kind::Unavailable, "no worker to partition to"))
    }

    /// Sends `item` to `key`'s worker, waiting while its queue is full.
    ///
    /// The worker is chosen when this is called; the future it returns
    /// does not borrow the partitioner, so a partitioner shared behind a
    /// lock can be released (and its workers changed) while the send
    /// waits for room.
    pub fn send<K: Hash + ?Sized>(
        &self,
        key: &K,
        item: T,
    ) -> impl Future<Output = Result<(), Error>> + use<T, K> {
        let sender = self.sender(key).cloned();
        async move {
            sender?
                .send_async(item)
                .await
                .map_err(|_| Error::new(Kind::Unavailable, "the worker is gone"))
        }
    }

    /// Sends `item` to `key`'s worker if its queue has room, else fails at
    /// once with [`Kind::Overloaded`].
    pub fn try_send<K: Hash + ?Sized>(&self, key: &K, item: T) -> Result<(), Error> {
        self.sender(key)?.try_send(item).map_err(|e| match e {
            flume::TrySendError::Full(_) => {
                Error::new(Kind::Overloaded, "the worker's queue is full")
            }
            flume::TrySendError::Disconnected(_) => {
                Error::new(Kind::Unavailable, "the worker is gone")
            }
        })
    }
}

impl<T> fmt::Debug for Partitioner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partitioner")
            .field("workers", &self.ring.nodes())
            .finish_non_exhaustive()
    }
}
