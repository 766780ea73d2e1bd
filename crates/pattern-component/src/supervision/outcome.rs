//! How a stop went, and what a panic said.

/// How the stop of a component or a child went.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopOutcome {
    /// It stopped within its timeout.
    Stopped,
    /// Its `stop` returned an error (it was still waited for).
    Failed(String),
    /// It did not stop in time; its task was aborted and it was left behind.
    Abandoned,
    /// It was not running (never restarted after a failure, say).
    NotRunning,
}

/// The text of a panic's payload, as a run's failure: `panicked: …`.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
    format!("panicked: {text}")
}
