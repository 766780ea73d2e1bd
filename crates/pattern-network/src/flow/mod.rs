//! Flow control: keeping a producer within what its consumer can take.
//!
//! - [`credit`]: the consumer grants credits and the producer never exceeds them.
//! - [`rate`]: rate limits with governor's GCRA, direct and keyed (with
//!   bounded memory).
//! - [`pace`]: pacing that smooths a burst into a rate.

pub mod credit;
pub mod pace;
pub mod rate;
