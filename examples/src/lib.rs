//! Code shared by the runnable examples (`cargo run --example NAME`): the
//! reference service lives here as a library module so that its example
//! binary and its contract test run the same code.

pub mod fuzzing;
pub mod reference;
