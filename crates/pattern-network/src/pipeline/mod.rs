//! Pipelines: typed stages joined by bounded channels.
//!
//! Each stage runs a number of workers over an async function, and is
//! either:
//!
//! - [`Order::Ordered`]: its outputs leave in the order its inputs arrived,
//!   whatever order its workers finish in. After the input or other ordered
//!   stages that is the order items were sent in; after an unordered stage
//!   it is the order that stage let them out. A worker starts an item only
//!   within workers + capacity arrivals of the next one to leave, so a slow
//!   item holds the producer back instead of growing a buffer, and since
//!   the next item to leave has always arrived, no arrangement of stages
//!   can wait on itself.
//! - [`Order::Unordered`]: outputs leave as they are ready.
//!
//! What the pipeline guarantees, whatever the stages and their workers do:
//!
//! - every item sent comes out once, or goes once to the dead-letter
//!   channel with the stage's name, its position among the items sent, and
//!   its error; a stage that panics on an item fails that item
//!   ([`Kind::Internal`]) and goes on;
//! - every channel is bounded (its capacity), so a slow stage slows the
//!   ones before it down to the producer, and memory stays flat;
//! - a [`send`](Input::send) given up while it waits has sent nothing;
//! - dropping the input closes the pipeline gracefully: every item already
//!   in it is processed, then the output ends. Dropping the output stops
//!   the pipeline instead: each worker stops at its next item, the items
//!   still inside are dropped (neither output nor dead-lettered), and once
//!   the first stage's workers have stopped a send fails with
//!   [`Kind::Unavailable`].
//!
//! Read the dead letters, or drop their receiver: like every channel here
//! theirs is bounded, and failing items wait for room.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use pattern_error::{Error, Kind};
//! use pattern_network::pipeline::{Order, Pipeline};
//!
//! let pipeline = Pipeline::<String>::builder(16)
//!     .stage("parse", 4, Order::Ordered, |line: String| async move {
//!         line.trim().parse::<u32>().map_err(|e| Error::with_source(Kind::Malformed, "not a number", e))
//!     })
//!     .stage("double", 2, Order::Ordered, |n: u32| async move { Ok(n * 2) })
//!     .build();
//! let (input, output, dead) = pipeline.into_parts();
//!
//! for line in ["1", "x", "3"] {
//!     input.send(line.to_owned()).await.unwrap();
//! }
//! drop(input); // drain and finish
//! let results: Vec<u32> = output.into_stream_all().await;
//! assert_eq!(results, [2, 6]);
//! let failure = dead.recv_async().await.unwrap();
//! assert_eq!((failure.stage, failure.error.kind()), ("parse", Kind::Malformed));
//! # }
//! ```
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `pipeline_items_in_total` / `pipeline_items_out_total` / `pipeline_items_failed_total` | counter | `stage` |
//! | `pipeline_queue_depth` | gauge (items waiting before the stage, sampled every 64 items) | `stage` |
//! | `pipeline_stage_duration_seconds` | histogram (one item in eight) | `stage` |

mod stage;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use pattern_error::{Error, Kind};

use stage::{Envelope, Queue, spawn_stage};

/// Whether a stage keeps input order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Order {
    /// Outputs leave in the order the stage's inputs arrived (after the
    /// input and ordered stages, the order they were sent in).
    Ordered,
    /// Outputs leave as soon as they are ready.
    Unordered,
}

/// An item that failed in a stage.
#[derive(Debug)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The stage it failed in.
    pub stage: &'static str,
    /// Its position among the items sent into the pipeline (0 for the
    /// first; a send given up takes no position).
    pub seq: u64,
    /// Why it failed.
    pub error: Error,
}

/// The entry of a pipeline. Items are numbered as they are sent (the
/// position a dead letter reports) and queued in that order. Drop it (and its clones) to drain and
/// close the pipeline.
#[derive(Debug)]
pub struct Input<T> {
    tx: flume::Sender<Envelope<T>>,
    /// The next position. It is taken and the item enqueued under this lock
    /// (nothing waits while holding it), so a position goes only to an item
    /// that is in the queue, and the queue holds positions in order.
    next: Arc<Mutex<u64>>,
    /// Signalled each time the first queue gives up an item.
    room: Arc<Notify>,
}

impl<T> Clone for Input<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            next: self.next.clone(),
            room: self.room.clone(),
        }
    }
}

impl<T> Input<T> {
    /// Sends `item` into the pipeline, waiting while the first queue is full.
    ///
    /// Cancel-safe: a send dropped while it waits has sent nothing and
    /// taken no position.
    pub async fn send(&self, item: T) -> Result<(), Error> {
        let mut item = item;
        loop {
            item = match self.try_enqueue(item)? {
                None => return Ok(()),
                Some(item) => item,
            };
            // Full: wait for room, registered before the second try so a
            // slot freed in between is not missed.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            item = match self.try_enqueue(item)? {
                None => return Ok(()),
                Some(item) => item,
            };
            room.await;
        }
    }

    /// Enqueues `item` with the next position if the queue has room;
    /// gives it back if not.
    fn try_enqueue(&self, item: T) -> Result<Option<T>, Error> {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        match self.tx.try_send(Envelope { seq: *next, item }) {
            Ok(()) => {
                *next += 1;
                Ok(None)
            }
            Err(flume::TrySendError::Full(envelope)) => Ok(Some(envelope.item)),
            Err(flume::TrySendError::Disconnected(_)) => {
                Err(Error::new(Kind::Unavailable, "the pipeline is closed"))
            }
        }
    }
}

/// Assembles a [`Pipeline`]; start with [`Pipeline::builder`].
#[must_use]
pub struct PipelineBuilder<In, Out> {
    capacity: usize,
    input: Input<In>,
    /// The last queue so far (the first queue, with its room signal, until
    /// a stage is added).
    stages: Queue<Out>,
    dead: (flume::Sender<DeadLetter>, flume::Receiver<DeadLetter>),
}

/// A running pipeline: its input, its output and its dead letters.
#[derive(Debug)]
pub struct Pipeline<In, Out = In> {
    input: Input<In>,
    output: Output<Out>,
    dead: flume::Receiver<DeadLetter>,
}

/// The end of a pipeline.
#[derive(Debug)]
pub struct Output<T> {
    queue: Queue<T>,
}

impl<T> Output<T> {
    /// The next output; `None` once the pipeline is drained and closed.
    pub async fn recv(&self) -> Option<T> {
        self.queue.recv().await.ok().map(|envelope| envelope.item)
    }

    /// Collects every remaining output until the pipeline closes.
    pub async fn into_stream_all(self) -> Vec<T> {
        let mut all = Vec::new();
        while let Some(item) = self.recv().await {
            all.push(item);
        }
        all
    }
}

impl<In: Send + 'static> Pipeline<In> {
    /// Starts a pipeline whose channels hold `capacity` items each.
    ///
    /// Stages spawn their workers on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    pub fn builder(capacity: usize) -> PipelineBuilder<In, In> {
        assert!(capacity > 0, "channels need room for one item");
        let (tx, rx) = flume::bounded(capacity);
        let room = Arc::new(Notify::new());
        PipelineBuilder {
            capacity,
            input: Input {
                tx,
                next: Arc::new(Mutex::new(0)),
                room: room.clone(),
            },
            stages: Queue::new(rx, Some(room)),
            dead: flume::bounded(capacity),
        }
    }
}

impl<In, Out: Send + 'static> PipelineBuilder<In, Out> {
    /// Adds a stage named `name` running `workers` copies of `f`.
    ///
    /// # Panics
    ///
    /// If `workers` is 0.
    pub fn stage<Next, F, Fut>(
        self,
        name: &'static str,
        workers: usize,
        order: Order,
        f: F,
    ) -> PipelineBuilder<In, Next>
    where
        Next: Send + 'static,
        F: Fn(Out) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Next, Error>> + Send + 'static,
    {
        assert!(workers > 0, "a stage needs at least one worker");
        let next = spawn_stage(
            name,
            workers,
            order,
            self.capacity,
            self.stages,
            self.dead.0.clone(),
            f,
        );
        PipelineBuilder {
            capacity: self.capacity,
            input: self.input,
            stages: next,
            dead: self.dead,
        }
    }

    /// Finishes the pipeline.
    pub fn build(self) -> Pipeline<In, Out> {
        Pipeline {
            input: self.input,
            output: Output { queue: self.stages },
            dead: self.dead.1,
        }
    }
}

impl<In, Out> Pipeline<In, Out> {
    /// The input (drop it to drain and close the pipeline), the output, and
    /// the dead letters.
    pub fn into_parts(self) -> (Input<In>, Output<Out>, flume::Receiver<DeadLetter>) {
        (self.input, self.output, self.dead)
    }
}

impl<In, Out> std::fmt::Debug for PipelineBuilder<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}
