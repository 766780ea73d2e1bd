//! Moving work through a service without drowning it.
//!
//! `pattern-network` holds the patterns that decide how much work flows where:
//! pipelines, fan-out and fan-in, load balancing, back pressure, scaling,
//! partitioning and flow control. Every queue it creates is bounded, and a
//! full one answers with `pattern-error`'s overloaded or rate-limited kinds.
//!
//! # What is in it
//!
//! | capability | items |
//! | --- | --- |
//! | pipelines | [`pipeline`]: typed stages with worker counts, ordered or unordered, dead letters, graceful drain, per-stage metrics |
//! | load balancing | [`balance`]: round-robin, smooth weighted, least pending, P2C peak EWMA (failures penalised), consistent hash; endpoints added and removed live; outlier ejection |
//! | fan-out / fan-in | [`fan`]: broadcast, round-robin distribution, merge, scatter-gather with a deadline and a quorum |
//! | back pressure | [`limit`]: a concurrency limit that rejects instead of queueing, and an adaptive limit (AIMD, Vegas) as a tower layer |
//! | dynamic scaling | [`scale`]: a worker pool growing from queue depth and busy workers and shrinking when idle, with a cooldown; event-driven |
//! | partitioning | [`partition`]: a consistent-hash ring with virtual nodes, and a partitioner keeping per-key order that reports the share moved on a change |
//! | flow control | [`flow::credit`]: credit-based flow control between a producer and a consumer; [`flow::rate`]: governor GCRA limits, direct and keyed with bounded memory; [`flow::pace`]: pacing a burst into a rate |
//!
//! # Example
//!
//! A consumer that takes items in batches of four grants four credits at a
//! time; the producer can never run ahead of it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use pattern_network::flow::credit;
//!
//! let (producer, mut consumer) = credit::channel::<u64>(4);
//! let producing = tokio::spawn(async move {
//!     for i in 0..12 {
//!         producer.send(i).await.expect("consumer alive");
//!     }
//! });
//! let mut total = 0;
//! for _batch in 0..3 {
//!     consumer.grant(4);
//!     for _ in 0..4 {
//!         total += consumer.recv().await.unwrap();
//!     }
//! }
//! producing.await.unwrap();
//! assert_eq!(total, (0..12).sum());
//! # }
//! ```
//!
//! # Features
//!
//! This crate has no optional features yet.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod balance;
pub mod fan;
pub mod flow;
pub mod limit;
pub mod partition;
pub mod pipeline;
pub mod scale;

/// The channel crate behind pipelines and fan-out/fan-in, re-exported so
/// that the receivers [`fan`] takes and returns need no dependency of your
/// own (and always match this crate's version).
pub use flume;
