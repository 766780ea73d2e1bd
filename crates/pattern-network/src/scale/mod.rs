//! Dynamic scaling: a worker pool that grows under load and shrinks when
//! idle.
//!
//! A [`WorkerPool`] runs between `min` and `max` workers over one bounded
//! queue. It is event-driven, with no polling loop:
//!
//! - **Up**: a submission that finds the queue at or above the scale-up
//!   depth, or every worker busy, adds a worker (at most one per cooldown).
//! - **Down**: the pool watches how many of its workers were busy at once
//!   over each idle-timeout period. When a period ends with fewer busy at
//!   the peak than there are workers, and nothing waiting in the queue, an
//!   idle worker leaves (one per cooldown, down to `min`). So a trickle of
//!   load that one worker handles shrinks the pool, even though every
//!   worker gets an item now and then; a pool left idle starts shrinking
//!   within two periods (the one the last job ended in, then an idle one).
//!   A worker at `min` waits with no timer at all.
//!
//! What the pool guarantees:
//!
//! - never more than `max` workers, never fewer than `min` (at least one)
//!   until stopped;
//! - a job that fails or panics is that item's failure: counted in the
//!   [`WorkerPoolReport`], logged, and the worker goes on (a [`call`](WorkerPool::call)
//!   gets [`Kind::Internal`](pattern_error::Kind::Internal) for a panic);
//! - every item submitted before the pool is stopped is processed
//!   ([`stop`](WorkerPool::stop)), or counted as abandoned when a
//!   deadline cuts the drain short
//!   ([`stop_timeout`](WorkerPool::stop_timeout));
//! - a [`call`](WorkerPool::call) dropped before a worker takes its item
//!   cancels it: the job does not run (as tower's buffer does).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use pattern_error::Error;
//! use pattern_network::scale::WorkerPool;
//!
//! let pool = WorkerPool::builder("thumbnails", 1, 4)
//!     .queue(32)
//!     .cooldown(Duration::from_millis(10))
//!     .spawn(|job: u32| async move {
//!         tokio::time::sleep(Duration::from_millis(100)).await;
//!         Ok::<_, Error>(job * 2)
//!     });
//! for job in 0..20 {
//!     pool.submit(job).await.unwrap();
//! }
//! assert!(pool.workers() > 1, "a burst adds workers");
//! assert_eq!(pool.call(21).await.unwrap(), 42, "call waits for the job's output");
//! let report = pool.stop_timeout(Duration::from_secs(30)).await;
//! assert_eq!(report.processed, 21);
//! # }
//! ```
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `worker_pool_workers` | gauge | `pool` |
//! | `worker_pool_busy` | gauge (workers running a job; over `worker_pool_workers`, the pool's saturation) | `pool` |
//! | `worker_pool_queue_wait_seconds` | histogram (from submission to a worker taking the item) | `pool` |
//! | `worker_pool_scale_events_total` | counter | `pool`, `direction` (`up`, `down`) |
//! | `worker_pool_jobs_total` | counter | `pool`, `outcome` (`ok`, `failed`, `panicked`, `abandoned`) |

mod builder;
mod pool;
mod worker;

pub use builder::WorkerPoolBuilder;
pub use pool::{WorkerPool, WorkerPoolReport};

/// Gauge of running workers, labelled `pool`.
pub const WORKERS_GAUGE: &str = "worker_pool_workers";
/// Counter of scaling decisions, labelled `pool` and `direction`.
pub const SCALE_EVENTS_TOTAL: &str = "worker_pool_scale_events_total";
/// Counter of jobs by how they ended, labelled `pool` and `outcome`.
pub const JOBS_TOTAL: &str = "worker_pool_jobs_total";
/// Gauge of workers running a job, labelled `pool`.
pub const BUSY_GAUGE: &str = "worker_pool_busy";
/// Histogram of the time items waited in the queue, in seconds, labelled
/// `pool`.
pub const QUEUE_WAIT: &str = "worker_pool_queue_wait_seconds";
