//! Helpers shared by this crate's behaviour tests.
// Each test binary uses a part of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// A current-thread runtime with paused time (for tests that build their
/// runtime themselves: property tests, runs on their own thread).
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Runs `test` on a paused-time runtime on a thread of its own: a hang (a
/// deadlock, a task that spins so paused time never moves) fails after
/// `limit` of real time, saying `hang`, instead of hanging the test run; a
/// panic inside fails the test as it is.
pub(crate) fn within<T, F, Fut>(limit: Duration, hang: &str, test: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let (done, finished) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = done.send(paused_runtime().block_on(test()));
    });
    match finished.recv_timeout(limit) {
        Ok(value) => value,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("{hang}"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
    }
}

/// Keeps panics whose message starts with `prefix` (the tests' own,
/// expected ones) out of the output; any other panic is reported as
/// usual. Set once per test binary.
pub(crate) fn quiet_panics(prefix: &'static str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.starts_with(prefix)) {
                default(info);
            }
        }));
    });
}
