//! Transitions: a new generation per state, the open duration's backoff,
//! and the metrics and listener that hear of each.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::super::event::{STATE_GAUGE, TRANSITIONS_TOTAL};
use super::super::state::Word;
use super::super::{Event, State};
use super::shared::{Control, Shared};

impl Shared {
    pub(super) fn manual(&self, to: State) {
        let mut control = self.lock();
        let word = self.word();
        let (_, event) = self.transition(&mut control, word, to);
        drop(control);
        self.emit(event);
    }

    /// Moves to `to` in a new generation. Call with the control lock held.
    pub(super) fn transition(&self, control: &mut Control, from: Word, to: State) -> (Word, Event) {
        match to {
            State::Open => {
                let duration = self.open_duration_after(control.trips);
                control.trips = control.trips.saturating_add(1);
                let until = self
                    .now_nanos()
                    .saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
                self.open_until.store(until, Ordering::Release);
            }
            State::HalfOpen => {
                control.probes_admitted = 0;
                control.probes_done = 0;
                control.probe_failures = 0;
                control.probe_slow = 0;
                control.outstanding.clear();
            }
            State::Closed => {
                self.window.reset();
                control.trips = 0;
            }
            _ => {}
        }
        let next = from.next(to);
        self.word.store(next.0, Ordering::Release);
        if let Some(tally) = &control.tally {
            tally.moved(Some(from.state()), Some(to));
        }
        (
            next,
            Event::Transition {
                from: from.state(),
                to,
            },
        )
    }

    fn open_duration_after(&self, trips: u32) -> Duration {
        let factor = self
            .settings
            .open_multiplier
            .powi(i32::try_from(trips).unwrap_or(i32::MAX));
        let secs = self.settings.open_duration.as_secs_f64() * factor;
        if secs.is_finite() && secs < self.settings.max_open_duration.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.settings.max_open_duration
        }
    }

    pub(super) fn emit(&self, event: Event) {
        if let Event::Transition { from, to } = event {
            tracing::info!(breaker = %self.name, %from, %to, "circuit breaker transition");
            if self.state_gauge {
                metrics::gauge!(STATE_GAUGE, "breaker" => self.label.clone()).set(to.gauge_value());
            }
            metrics::counter!(
                TRANSITIONS_TOTAL,
                "breaker" => self.label.clone(),
                "from" => from.as_str(),
                "to" => to.as_str(),
            )
            .increment(1);
        }
        if let Some(listener) = &self.listener {
            listener(&event);
        }
    }
}
