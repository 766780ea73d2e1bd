//! What the supervision tests record of the runs they supervise.

#![allow(dead_code)] // each test file uses its own part

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pattern_error::{Error, Kind};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One name's runs: how many are alive now and at most, how many started,
/// and when runs ended on their own.
#[derive(Default, Debug)]
pub(crate) struct Record {
    pub(crate) alive: AtomicU32,
    pub(crate) most: AtomicU32,
    pub(crate) starts: AtomicU32,
    /// When a run ended on its own, and whether it failed.
    pub(crate) endings: Mutex<Vec<(Instant, bool)>>,
}

impl Record {
    /// Counts a run starting; the run is alive until the guard drops
    /// (when it ends, or its task is aborted).
    pub(crate) fn enter(self: &Arc<Self>) -> Alive {
        self.starts.fetch_add(1, Ordering::SeqCst);
        let now = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        Alive(self.clone())
    }

    pub(crate) fn alive(&self) -> u32 {
        self.alive.load(Ordering::SeqCst)
    }

    pub(crate) fn most(&self) -> u32 {
        self.most.load(Ordering::SeqCst)
    }

    pub(crate) fn starts(&self) -> u32 {
        self.starts.load(Ordering::SeqCst)
    }

    /// When runs ended on their own asking for a restart under `restart`.
    pub(crate) fn restart_endings(
        &self,
        restart: pattern_component::supervision::Restart,
    ) -> Vec<Instant> {
        use pattern_component::supervision::Restart;
        self.endings
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, failed)| match restart {
                Restart::Always => true,
                Restart::OnFailure => *failed,
                _ => false,
            })
            .map(|(at, _)| *at)
            .collect()
    }
}

/// A run alive; dropping it counts the run ended.
pub(crate) struct Alive(Arc<Record>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a run behaves: ends after `ends_after` ms (failing unless `exits`),
/// or runs until stopped; once asked to stop, ends after `slow_stop` ms
/// (`u64::MAX`: never, it ignores the stop), or at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Behaviour {
    pub(crate) ends_after: Option<u64>,
    pub(crate) exits: bool,
    pub(crate) slow_stop: Option<u64>,
}

impl Behaviour {
    /// A run of this behaviour recorded in `record`. A stop and the run's
    /// own end at the same instant count as the stop (it was asked first).
    pub(crate) async fn run(
        self,
        alive: Alive,
        record: Arc<Record>,
        stop: CancellationToken,
    ) -> Result<(), Error> {
        let _alive = alive;
        let stopped = async {
            stop.cancelled().await;
            match self.slow_stop {
                Some(u64::MAX) => std::future::pending().await,
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => {}
            }
            Ok(())
        };
        let Some(ms) = self.ends_after else {
            return stopped.await;
        };
        tokio::select! {
            biased;
            stopped = stopped => stopped,
            () = tokio::time::sleep(Duration::from_millis(ms)) => {
                record.endings.lock().unwrap().push((Instant::now(), !self.exits));
                if self.exits {
                    Ok(())
                } else {
                    Err(Error::new(Kind::Internal, "crashed"))
                }
            }
        }
    }
}

/// The most of `times` (sorted) within any `window`.
pub(crate) fn most_within(times: &mut [Instant], window: Duration) -> usize {
    times.sort();
    (0..times.len())
        .map(|a| {
            times[a..]
                .iter()
                .take_while(|t| t.duration_since(times[a]) <= window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Any restart policy.
pub(crate) fn restart_policy()
-> impl proptest::strategy::Strategy<Value = pattern_component::supervision::Restart> {
    use pattern_component::supervision::Restart;
    use proptest::prelude::*;
    prop_oneof![
        Just(Restart::Never),
        Just(Restart::OnFailure),
        Just(Restart::Always)
    ]
}

/// How a run ends by itself: after 5 to 300 ms or never, failing or not.
pub(crate) fn ending() -> impl proptest::strategy::Strategy<Value = (Option<u64>, bool)> {
    use proptest::prelude::*;
    (prop::option::of(5u64..300), any::<bool>())
}
