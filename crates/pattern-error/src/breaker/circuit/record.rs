//! Recording outcomes: the closed state's window (which may trip the
//! breaker), the half-open state's trial, and slots given back unused.

use super::super::state::Word;
use super::super::window::{Outcome, Snapshot};
use super::super::{Event, State};
use super::shared::{Control, Shared, Ticket};
use crate::Error;

impl Shared {
    #[inline]
    fn outcome(&self, ticket: &Ticket, failure: bool) -> Outcome {
        let slow = match (ticket.start, self.settings.slow_call_rate) {
            (Some(start), Some(_)) => start.elapsed() >= self.settings.slow_call_duration,
            _ => false,
        };
        Outcome { failure, slow }
    }

    #[inline]
    pub(super) fn record_result(&self, ticket: Ticket, error: Option<&Error>) {
        // The hot path, kept small enough to inline: an untimed success in
        // the closed state it was admitted in, once the window is warm.
        if error.is_none()
            && ticket.start.is_none()
            && !ticket.probe
            && self.word() == Word::new(State::Closed, ticket.generation)
            && self.window.record_quick_success()
        {
            return;
        }
        self.record_any(ticket, error);
    }

    #[inline(never)]
    fn record_any(&self, ticket: Ticket, error: Option<&Error>) {
        let failure = error.is_some_and(|e| (self.settings.is_failure)(e));
        self.record(ticket, self.outcome(&ticket, failure));
    }

    pub(super) fn record_failure(&self, ticket: Ticket) {
        self.record(ticket, self.outcome(&ticket, true));
    }

    fn record(&self, ticket: Ticket, outcome: Outcome) {
        let word = self.word();
        if word.generation() != ticket.generation {
            return; // admitted under an earlier state: its outcome is stale
        }
        match word.state() {
            State::Closed => {
                let now = if self.window.needs_clock() {
                    self.now_nanos()
                } else {
                    0
                };
                if let Some(snapshot) = self.window.record(outcome, now)
                    && self.breaches(&snapshot)
                {
                    self.trip(word);
                }
            }
            State::HalfOpen if ticket.probe => self.record_probe(word, ticket.probe_id, outcome),
            _ => {}
        }
    }

    fn breaches(&self, s: &Snapshot) -> bool {
        s.calls >= u64::from(self.settings.minimum_calls)
            && (s.failure_rate() >= self.settings.failure_rate
                || self
                    .settings
                    .slow_call_rate
                    .is_some_and(|r| s.slow_call_rate() >= r))
    }

    fn trip(&self, seen: Word) {
        let mut control = self.lock();
        if self.word() != seen {
            return; // another call already moved the breaker
        }
        let (_, event) = self.transition(&mut control, seen, State::Open);
        drop(control);
        self.emit(event);
    }

    fn record_probe(&self, seen: Word, probe_id: u32, outcome: Outcome) {
        let mut control = self.lock();
        if self.word() != seen {
            return;
        }
        let Some(at) = control
            .outstanding
            .iter()
            .position(|&(id, _)| id == probe_id)
        else {
            return; // past its timeout, already counted as failed
        };
        control.outstanding.swap_remove(at);
        control.probes_done += 1;
        control.probe_failures += u32::from(outcome.failure);
        control.probe_slow += u32::from(outcome.slow);
        let event = self.decide_trial(&mut control, seen);
        drop(control);
        if let Some((_, event)) = event {
            self.emit(event);
        }
    }

    /// Once every probe has finished, closes or opens the breaker by their
    /// outcomes. Call with the lock held.
    pub(super) fn decide_trial(&self, control: &mut Control, seen: Word) -> Option<(Word, Event)> {
        if control.probes_done < self.settings.half_open_probes {
            return None;
        }
        let trial = Snapshot {
            calls: u64::from(control.probes_done),
            failures: u64::from(control.probe_failures),
            slow: u64::from(control.probe_slow),
        };
        let failed = trial.failure_rate() >= self.settings.failure_rate
            || self
                .settings
                .slow_call_rate
                .is_some_and(|r| trial.slow_call_rate() >= r);
        let to = if failed { State::Open } else { State::Closed };
        Some(self.transition(control, seen, to))
    }

    pub(super) fn cancel(&self, ticket: Ticket) {
        if !ticket.probe {
            return; // nothing was reserved for a closed-state call
        }
        let mut control = self.lock();
        let word = self.word();
        if word.generation() == ticket.generation
            && word.state() == State::HalfOpen
            && let Some(at) = control
                .outstanding
                .iter()
                .position(|&(id, _)| id == ticket.probe_id)
        {
            control.outstanding.swap_remove(at);
            control.probes_admitted -= 1;
        }
    }
}
