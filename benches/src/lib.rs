//! Criterion benches of the patterns crates against their peers.
//!
//! Each bench file defines groups whose functions are named `ours` and after
//! the peer crate; `cargo xtask bench` runs them all and prints, per group,
//! the ratio `ours / peer` of the mean times measured in the same run.
//!
//! This library holds the helpers the bench files share.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `future` to completion on this thread. Ready futures cost one
/// poll with a no-op waker; a pending one parks the thread until woken, so
/// peers that wait (on a lock, say) are measured fairly instead of failing.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    if let Poll::Ready(out) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        return out;
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Runs `per_thread(iters)` on `threads` threads started together and
/// returns the wall time until all are done: one iteration is then one call
/// on every thread at once.
pub fn threaded<F>(threads: usize, iters: u64, per_thread: F) -> Duration
where
    F: Fn(u64) + Sync,
{
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                per_thread(iters);
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}
