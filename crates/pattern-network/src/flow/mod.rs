//! Flow control: keeping a producer within what its consumer can take.
//!
//! - [`credit`]: the consumer grants credits and the producer never exceeds them.
//! - [`rate`]: rate limits with governor's GCRA, direct and keyed (with
//!   bounded memory).

pub mod credit;
pub mod rate;
