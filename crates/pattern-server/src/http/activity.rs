//! What a connection is doing: its requests in flight, from each head
//! read to its answer's last byte, and when the last one ended (for the
//! header read and idle timeouts).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use hyper::body::{Body as HttpBody, Frame, SizeHint};

/// Requests in flight on one connection, and when it last finished
/// writing: a request counts from its head read to its answer's body
/// taken whole (or dropped), and what it wrote counts until flushed. The
/// connection is quiet while neither is the case, from the last flush
/// that followed writes (or its start).
pub(super) struct Activity {
    /// Whether the server is stopping (shared by every connection).
    pub(super) stopping: Arc<AtomicBool>,
    /// Set when the connection is upgraded (its 101 sent): the socket's
    /// reads and writes watch the drain's cut from then on.
    pub(super) handed_off: AtomicBool,
    in_flight: AtomicUsize,
    /// Whether bytes were written since the last flush.
    unflushed: AtomicBool,
    /// Nanoseconds from `since` to the last flush that followed writes
    /// (or to the end of a request that wrote nothing).
    last: AtomicU64,
    since: tokio::time::Instant,
}

impl Activity {
    pub(super) fn new(stopping: Arc<AtomicBool>) -> Self {
        Self {
            stopping,
            handed_off: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            unflushed: AtomicBool::new(false),
            last: AtomicU64::new(0),
            since: tokio::time::Instant::now(),
        }
    }

    /// Bytes written to the socket: they count until flushed.
    pub(super) fn wrote(&self) {
        self.unflushed.store(true, Ordering::Relaxed);
    }

    /// The socket flushed: what was written is sent, and the connection
    /// is quiet from now on if no request is in flight. One clock read per
    /// flush that followed writes, none for the others.
    pub(super) fn flushed(&self) {
        if self.unflushed.load(Ordering::Relaxed) {
            self.unflushed.store(false, Ordering::Relaxed);
            self.touch();
        }
    }

    /// Marks now as the connection's last activity.
    fn touch(&self) {
        let at = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(at, Ordering::Release);
    }

    /// Resolves once the connection has been quiet for `timeout`: no
    /// request in flight, nothing written and unflushed; never without a
    /// timeout. From the connection's start or its last answer sent, this
    /// is the time the next request's head has taken so far: with the
    /// header read timeout, a client that sends part of a head (or
    /// nothing) and stalls is found with one timer per connection,
    /// re-armed only when it fires, not one set and cancelled per request.
    pub(super) async fn quiet_for(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let busy = self.in_flight.load(Ordering::Acquire) > 0
                || self.unflushed.load(Ordering::Relaxed);
            let last = self.since + Duration::from_nanos(self.last.load(Ordering::Acquire));
            let due = last + timeout;
            let now = tokio::time::Instant::now();
            if !busy && now >= due {
                return;
            }
            // Busy: look again a timeout from now; quiet: at the due time.
            tokio::time::sleep_until(if busy { now + timeout } else { due }).await;
        }
    }
}

/// A request in flight on its connection: until its answer's body is
/// taken whole by the connection (it then counts as written until
/// flushed), or it is dropped unanswered.
pub(super) struct InFlight(Option<Arc<Activity>>);

impl InFlight {
    /// `activity`'s request whose head was just read.
    pub(super) fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Some(activity.clone()))
    }

    /// The connection's activity.
    pub(super) fn activity(&self) -> Option<&Activity> {
        self.0.as_deref()
    }

    /// `body`, keeping the request in flight until the connection drops
    /// it (a streamed answer that pauses is not a client late with its
    /// next head). Not boxed again: hyper is handed this type itself.
    pub(super) fn until_sent(mut self, body: Body) -> Sending {
        Sending {
            body,
            activity: self.0.take(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Dropped unanswered: nothing may be written for it, so it ends now.
        if let Some(activity) = self.0.take() {
            activity.touch();
            activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// An answer's body, its request in flight until the connection drops it
/// (the flush after its last bytes marks the connection's activity).
pub(super) struct Sending {
    body: Body,
    activity: Option<Arc<Activity>>,
}

impl Sending {
    /// `body` with no request to keep in flight.
    pub(super) fn untracked(body: Body) -> Self {
        Self {
            body,
            activity: None,
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl HttpBody for Sending {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
