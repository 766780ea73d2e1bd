//! The log writer: lines go into a bounded buffer in memory; a thread of
//! its own writes the buffer out in large writes. A request never waits
//! for the disk or the terminal, and never wakes the writer per line: the
//! writer is woken when the buffer stops being empty (then waits a moment
//! for more) or passes half full.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer waits for more lines once some have come.
const GATHER: Duration = Duration::from_millis(20);

struct Shared {
    buffer: Mutex<Vec<u8>>,
    /// Bytes the buffer holds at most.
    capacity: usize,
    wake: Condvar,
    closed: AtomicBool,
    dropped: AtomicU64,
}

/// Where log lines are written (cloned into the log layer).
#[derive(Clone)]
pub(super) struct Sink {
    shared: Arc<Shared>,
}

/// The writer thread; stopping it writes out what is buffered.
pub(super) struct Worker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// A sink buffering at most `capacity` bytes, and the thread writing them
/// to `out`.
pub(super) fn spawn(mut out: Box<dyn Write + Send>, capacity: usize) -> io::Result<(Sink, Worker)> {
    let shared = Arc::new(Shared {
        buffer: Mutex::new(Vec::with_capacity(capacity.min(1024 * 1024))),
        capacity,
        wake: Condvar::new(),
        closed: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
    });
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || {
                let mut spare = Vec::new();
                loop {
                    let closed = {
                        let mut buffer =
                            shared.buffer.lock().unwrap_or_else(PoisonError::into_inner);
                        while buffer.is_empty() && !shared.closed.load(Ordering::Acquire) {
                            buffer = shared
                                .wake
                                .wait(buffer)
                                .unwrap_or_else(PoisonError::into_inner);
                        }
                        // Some lines: wait a moment for more, unless the
                        // buffer is filling or the sink is closing.
                        if buffer.len() < shared.capacity / 2
                            && !shared.closed.load(Ordering::Acquire)
                        {
                            buffer = shared
                                .wake
                                .wait_timeout(buffer, GATHER)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0;
                        }
                        std::mem::swap(&mut *buffer, &mut spare);
                        shared.closed.load(Ordering::Acquire) && spare.is_empty()
                    };
                    if !spare.is_empty() {
                        // A failing destination loses these lines; there is
                        // nowhere to report it but standard error.
                        if let Err(err) = out.write_all(&spare).and_then(|()| out.flush()) {
                            eprintln!("log writer: {err}");
                        }
                        spare.clear();
                    }
                    if closed {
                        return;
                    }
                }
            })?
    };
    Ok((
        Sink {
            shared: shared.clone(),
        },
        Worker {
            shared,
            thread: Some(thread),
        },
    ))
}

impl Sink {
    /// Lines dropped because the buffer was full.
    pub(super) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Write for &Sink {
    /// Takes one whole line (each log event is written in one call), or
    /// drops and counts it when the buffer has no room for it.
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let shared = &self.shared;
        let mut buffer = shared.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        // Full, or the writer has stopped: dropped, and counted.
        if buffer.len() + line.len() > shared.capacity || shared.closed.load(Ordering::Acquire) {
            drop(buffer);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        let was_empty = buffer.is_empty();
        buffer.extend_from_slice(line);
        let half = buffer.len() >= shared.capacity / 2;
        drop(buffer);
        if was_empty || half {
            shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for Sink {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        (&*self).write(line)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    /// A borrow: no reference count moved per line.
    type Writer = &'a Sink;

    fn make_writer(&'a self) -> &'a Sink {
        self
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        {
            // Under the lock: the writer is either before its check (and
            // sees it) or waiting (and is woken); never in between.
            let _buffer = self
                .shared
                .buffer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.shared.closed.store(true, Ordering::Release);
        }
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::spawn;

    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);

    impl Write for Out {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_whole_and_in_order_by_the_stop() {
        let out = Out::default();
        let (sink, worker) = spawn(Box::new(out.clone()), 1 << 20).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let mut sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        sink.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        drop(worker);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let mut next = [0; 4];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines in order, none lost");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
        assert_eq!(sink.dropped(), 0);
    }

    #[test]
    fn a_line_longer_than_the_buffer_is_dropped_and_the_rest_written() {
        let out = Out::default();
        let (mut sink, worker) = spawn(Box::new(out.clone()), 16).unwrap();
        sink.write_all(&[b'x'; 17]).unwrap();
        sink.write_all(b"short\n").unwrap();
        drop(worker);
        assert_eq!(sink.dropped(), 1);
        assert_eq!(out.0.lock().unwrap().as_slice(), b"short\n");
        // After the writer stopped: dropped and counted, never blocks.
        sink.write_all(b"late\n").unwrap();
        assert_eq!(sink.dropped(), 2);
    }

    #[test]
    fn a_full_buffer_drops_and_counts_lines_never_blocks() {
        /// A destination that never finishes a write until told.
        struct Stuck(Arc<(Mutex<bool>, std::sync::Condvar)>);
        impl Write for Stuck {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                let (open, cv) = &*self.0;
                let mut open = open.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (mut sink, worker) = spawn(Box::new(Stuck(gate.clone())), 100).unwrap();
        let line = [b'x'; 9];
        for _ in 0..1_000 {
            sink.write_all(&line).unwrap();
        }
        // At most 100 bytes buffered plus what the writer took before it
        // stuck: the rest was dropped and counted.
        assert!(sink.dropped() >= 1_000 - 2 * 100 / 9, "{}", sink.dropped());
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        drop(worker);
    }
}
