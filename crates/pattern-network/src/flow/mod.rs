//! Flow control: keeping a producer within what its consumer can take.
//!
//! [`credit`]: the consumer grants credits and the producer never exceeds them.

pub mod credit;
