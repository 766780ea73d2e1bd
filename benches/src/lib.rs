//! Criterion benches of the patterns crates against their peers.
//!
//! Each bench file defines groups whose functions are named `ours` and after
//! the peer crate; `cargo xtask bench` runs them all and prints, per group,
//! the ratio `ours / peer` of the mean times measured in the same run.
