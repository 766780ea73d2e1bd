//! Upgraded connections (WebSocket and other `Upgrade:` protocols) under
//! the server's limits and drain.
//!
//! Once a connection is upgraded, hyper hands its socket to the handler and
//! the HTTP connection ends; the socket keeps the connection's slot (and
//! its place in the per-address count) for as long as it lives, the drain
//! waits for it, handlers learn that the drain began from [`Draining`],
//! and at the drain deadline its reads and writes fail.
//!
//! Before that, while the connection serves HTTP, its writes have the
//! server's write timeout: a write that cannot go on (the client reads
//! nothing) for that long fails, and hyper closes the connection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::OptionalFromRequestParts;
use axum::http::request::Parts;
use pattern_component::time::deadline;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Tells an upgrade handler that the server is draining: close the
/// upgraded connection gracefully (a WebSocket close frame), or it is cut
/// at the drain deadline. `HttpServer` puts it in the extensions of every
/// request that asks for an upgrade; extract it as `Option<Draining>`.
#[derive(Clone, Debug)]
pub struct Draining(pub(crate) CancellationToken);

impl Draining {
    /// Resolves once the drain begins.
    pub async fn started(&self) {
        self.0.cancelled().await;
    }

    /// Whether the drain has begun.
    pub fn has_started(&self) -> bool {
        self.0.is_cancelled()
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Draining {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}

/// A connection's socket with what it holds (its connection slot, its
/// place in the per-address count, its place in the drain's tracker):
/// released when the socket is dropped, by hyper at the end of the
/// connection or, once upgraded, by the handler.
pub(super) struct Tracked<T, H> {
    inner: T,
    /// Set when the HTTP connection handed the socket on (upgraded): from
    /// then on reads and writes watch the cut.
    handed_off: Arc<AtomicBool>,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
    stall: Option<Stall>,
    _holds: H,
}

/// The write timeout: armed when a write cannot go on, disarmed by the
/// next write that does.
struct Stall {
    timeout: Duration,
    /// Made at the first stall, kept for the next ones.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether the last write waited (the timer counts from its first wait).
    waiting: bool,
}

impl Stall {
    /// After a write that waits: an error once the timeout has passed
    /// since the first wait with no write going through.
    fn waited(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.waiting {
            self.waiting = true;
            let deadline = deadline(tokio::time::Instant::now(), self.timeout);
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        if let Some(sleep) = &mut self.sleep
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took none of the answer within the write timeout",
            ));
        }
        Ok(())
    }
}

impl<T, H> Tracked<T, H> {
    pub(super) fn new(
        inner: T,
        cut: CancellationToken,
        handed_off: Arc<AtomicBool>,
        write_timeout: Option<Duration>,
        holds: H,
    ) -> Self {
        Self {
            inner,
            handed_off,
            cut: Box::pin(cut.cancelled_owned()),
            stall: write_timeout.map(|timeout| Stall {
                timeout,
                sleep: None,
                waiting: false,
            }),
            _holds: holds,
        }
    }

    /// Runs the write timeout over a write's outcome: a write that waits
    /// arms it (or fails once it has passed), one that goes through
    /// disarms it. Upgraded sockets have none.
    fn timed<R>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        let Some(stall) = &mut self.stall else {
            return outcome;
        };
        match outcome {
            Poll::Pending if !self.handed_off.load(Ordering::Relaxed) => {
                stall.waited(cx)?;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
            ready => {
                stall.waiting = false;
                ready
            }
        }
    }

    /// An error once the drain deadline cut an upgraded connection.
    fn check_cut(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.handed_off.load(Ordering::Relaxed) && self.cut.as_mut().poll(cx).is_ready() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "cut at the server's drain deadline",
            ));
        }
        Ok(())
    }
}

impl<T: AsyncRead + Unpin, H: Unpin> AsyncRead for Tracked<T, H> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check_cut(cx)?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin, H: Unpin> AsyncWrite for Tracked<T, H> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_cut(cx)?;
        let outcome = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.timed(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check_cut(cx)?;
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.timed(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_cut(cx)?;
        let outcome = Pin::new(&mut self.inner).poll_flush(cx);
        self.timed(cx, outcome)
    }

    /// Over TLS a shutdown writes the close notification: a client that
    /// reads nothing holds it like any write.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.timed(cx, outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
    use tokio_util::sync::CancellationToken;

    use super::Tracked;

    /// A peer that takes nothing: every write, flush and shutdown waits.
    struct Full;

    impl AsyncRead for Full {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for Full {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    /// Writes, flushes and shutdowns that cannot go on fail a write
    /// timeout after they began, while serving HTTP; once handed off
    /// (upgraded), with no timeout, or with one past the clock, they wait.
    #[tokio::test(start_paused = true)]
    async fn stalled_writes_flushes_and_shutdowns_time_out() {
        for (timeout, upgraded, fails) in [
            (Some(Duration::from_secs(1)), false, true),
            (Some(Duration::from_secs(1)), true, false),
            (None, false, false),
            // Past what the clock holds: never, and no overflow.
            (Some(Duration::MAX), false, false),
        ] {
            for op in 0..3 {
                let handed_off = Arc::new(AtomicBool::new(false));
                let mut socket = Tracked::new(
                    Full,
                    CancellationToken::new(),
                    handed_off.clone(),
                    timeout,
                    (),
                );
                handed_off.store(upgraded, Ordering::Relaxed);
                let start = tokio::time::Instant::now();
                let outcome = tokio::time::timeout(Duration::from_secs(5), async {
                    match op {
                        0 => socket.write_all(b"x").await,
                        1 => socket.flush().await,
                        _ => socket.shutdown().await,
                    }
                })
                .await;
                if fails {
                    let err = outcome
                        .expect("timed out by the write timeout")
                        .unwrap_err();
                    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
                    assert_eq!(start.elapsed(), Duration::from_secs(1), "op {op}");
                } else {
                    assert!(outcome.is_err(), "op {op} ended: {timeout:?} {upgraded}");
                }
            }
        }
    }
}
