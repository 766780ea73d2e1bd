//! Runnable examples live beside this file as `[[example]]` targets.
