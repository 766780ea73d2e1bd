//! Partitioning: the same key always goes to the same worker, and a change
//! of workers moves only the keys it must.
//!
//! [`HashRing`] is the consistent-hash ring. [`Partitioner`] puts a worker
//! behind each node: items are sent to their key's worker over a bounded
//! channel, so every key's items are handled in order by one worker, and a
//! slow worker pushes back on the senders of its keys only.

mod partitioner;
mod ring;

pub use partitioner::{Partitioner, Rebalance};
pub use ring::HashRing;
