//! The pool's handle: submitting, calling, shutting down.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pattern_error::{Error, Kind};
use tokio::sync::oneshot;

use super::WorkerPoolBuilder;
use super::worker::{Message, Shared};

/// A pool of workers that scales with its queue; see the [module docs](super).
///
/// `T` is the item a job takes, `R` what it gives back to a
/// [`call`](Self::call). Clones submit to the same pool (share it between
/// producers); its queue closes once every clone is stopped or dropped.
pub struct WorkerPool<T, R = ()> {
    tx: flume::Sender<Message<T, R>>,
    shared: Arc<Shared<T, R>>,
}

impl<T, R> Clone for WorkerPool<T, R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// What [`WorkerPool::stop`] found, over the pool's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerPoolReport {
    /// Jobs that succeeded.
    pub processed: u64,
    /// Jobs that returned an error.
    pub failed: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Items a stop timeout cut off: jobs stopped midway and items
    /// still queued. Items whose [`call`](WorkerPool::call) was dropped
    /// before they started are not counted anywhere.
    pub abandoned: u64,
}

impl WorkerPool<()> {
    /// A pool named `name` (the `pool` metrics label) of `min` to `max`
    /// workers (at least one; `max` is raised to `min` if below it); the
    /// item and output types come from the job given to
    /// [`WorkerPoolBuilder::spawn`].
    pub fn builder(name: &'static str, min: usize, max: usize) -> WorkerPoolBuilder {
        WorkerPoolBuilder::new(name, min, max)
    }
}

impl<T: Send + 'static, R: Send + 'static> WorkerPool<T, R> {
    pub(super) fn from_parts(tx: flume::Sender<Message<T, R>>, shared: Arc<Shared<T, R>>) -> Self {
        Self { tx, shared }
    }

    /// Submits `item`, waiting while the queue is full; may add a worker.
    /// The job's output is dropped (see [`call`](Self::call)).
    pub async fn submit(&self, item: T) -> Result<(), Error> {
        self.send(Message::new(item, None)).await
    }

    /// Submits `item` if the queue has room, else fails at once with
    /// [`Kind::Overloaded`]; may add a worker.
    pub fn try_submit(&self, item: T) -> Result<(), Error> {
        self.admit()?;
        self.tx
            .try_send(Message::new(item, None))
            .map_err(|e| match e {
                flume::TrySendError::Full(_) => {
                    Error::new(Kind::Overloaded, "the pool's queue is full")
                }
                flume::TrySendError::Disconnected(_) => stopped(),
            })?;
        self.after_send()
    }

    /// Submits `item` (waiting while the queue is full) and waits for the
    /// job's output: its error if it failed, [`Kind::Internal`] if it
    /// panicked, [`Kind::Unavailable`] if the pool stopped before running
    /// it. Dropping the returned future before a worker takes the item
    /// cancels the job.
    pub async fn call(&self, item: T) -> Result<R, Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Message::new(item, Some(reply))).await?;
        tokio::select! {
            // An answer that came wins over a stop that came after it.
            biased;
            answer = answer => answer.unwrap_or_else(|_| Err(stopped())),
            // Past a stop timeout nothing runs what is still queued.
            () = self.shared.stop.cancelled() => Err(stopped()),
        }
    }

    async fn send(&self, message: Message<T, R>) -> Result<(), Error> {
        self.admit()?;
        tokio::select! {
            biased;
            sent = self.tx.send_async(message) => sent.map_err(|_| stopped())?,
            () = self.shared.stop.cancelled() => return Err(stopped()),
        }
        self.after_send()
    }

    /// An item that went in as a stop timeout ran out is never run:
    /// drop what is queued, counted as abandoned, and say so.
    fn after_send(&self) -> Result<(), Error> {
        if self.shared.stop.is_cancelled() {
            self.shared.abandon_queued();
            return Err(stopped());
        }
        Ok(())
    }

    /// Refuses once the pool is stopped; else may add a worker.
    fn admit(&self) -> Result<(), Error> {
        if self.shared.stop.is_cancelled() {
            return Err(stopped());
        }
        self.shared.maybe_scale_up(self.tx.len());
        Ok(())
    }

    /// Workers running now.
    pub fn workers(&self) -> usize {
        self.shared.workers.load(Ordering::Acquire)
    }

    /// Items waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// Stops taking items, lets the workers finish everything queued, and
    /// waits for them (and so for every clone of this pool to be stopped
    /// or dropped: until then, the queue stays open). Waits as long as the
    /// jobs take: see [`stop_timeout`](Self::stop_timeout).
    pub async fn stop(self) -> WorkerPoolReport {
        let shared = self.shared.clone();
        drop(self);
        shared.tasks.close();
        shared.tasks.wait().await;
        shared.report()
    }

    /// Like [`stop`](Self::stop), but once `timeout` has passed the
    /// workers stop: jobs still running are dropped at their next await
    /// point, items still queued are dropped, both counted as
    /// [`abandoned`](WorkerPoolReport::abandoned), and clones of the pool can
    /// submit no more.
    pub async fn stop_timeout(self, timeout: Duration) -> WorkerPoolReport {
        let shared = self.shared.clone();
        drop(self);
        shared.tasks.close();
        if tokio::time::timeout(timeout, shared.tasks.wait())
            .await
            .is_err()
        {
            shared.stop.cancel();
            shared.tasks.wait().await;
            shared.abandon_queued();
            tracing::warn!(
                pool = shared.name,
                abandoned = shared.report().abandoned,
                "worker pool stopped at its stop timeout"
            );
        }
        shared.report()
    }
}

fn stopped() -> Error {
    Error::new(Kind::Unavailable, "the worker pool is stopped")
}

impl<T, R> std::fmt::Debug for WorkerPool<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("name", &self.shared.name)
            .field("workers", &self.shared.workers.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
