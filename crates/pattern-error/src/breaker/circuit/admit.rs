//! Admission: the closed state's fast path, the open state's rejections
//! with their retry-after, and the half-open state's probe slots.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::super::event::REJECTIONS_TOTAL;
use super::super::state::Word;
use super::super::{Event, Rejected, State};
use super::shared::{Control, Shared, Ticket};

impl Shared {
    #[inline]
    pub(super) fn admit(&self) -> Result<Ticket, Rejected> {
        let word = self.word();
        // The hot path, small enough to inline: closed, calls not timed.
        if word.state() == State::Closed && self.settings.slow_call_rate.is_none() {
            return Ok(Ticket::call(word, None));
        }
        self.admit_any(word)
    }

    #[inline(never)]
    fn admit_any(&self, word: Word) -> Result<Ticket, Rejected> {
        match word.state() {
            State::Closed | State::Disabled => Ok(Ticket::call(word, self.start_clock())),
            State::Open => {
                let now = self.now_nanos();
                let until = self.open_until.load(Ordering::Acquire);
                if now < until {
                    Err(self.reject(State::Open, Some(Duration::from_nanos(until - now))))
                } else {
                    self.admit_probe()
                }
            }
            State::HalfOpen => self.admit_probe(),
            State::ForcedOpen => Err(self.reject(State::ForcedOpen, None)),
        }
    }

    /// Admission outside the closed state: may move open to half-open, and
    /// hands out at most `half_open_probes` probe slots.
    fn admit_probe(&self) -> Result<Ticket, Rejected> {
        let mut control = self.lock();
        let mut word = self.word();
        let mut event = None;
        if word.state() == State::Open {
            let now = self.now_nanos();
            let until = self.open_until.load(Ordering::Acquire);
            if now < until {
                drop(control);
                return Err(self.reject(State::Open, Some(Duration::from_nanos(until - now))));
            }
            let (next, e) = self.transition(&mut control, word, State::HalfOpen);
            word = next;
            event = Some(e);
        } else if word.state() == State::HalfOpen
            && control.probes_admitted >= self.settings.half_open_probes
            && let Some((next, e)) = self.expire_probes(&mut control, word)
        {
            // Every slot was taken, some by probes past their timeout
            // (permits leaked or hanging): they failed, and decided.
            word = next;
            event = Some(e);
        }
        let result = match word.state() {
            State::HalfOpen if control.probes_admitted < self.settings.half_open_probes => {
                control.probes_admitted += 1;
                let id = control.next_probe;
                control.next_probe = id.wrapping_add(1);
                let start = Instant::now();
                control.outstanding.push((id, start));
                Ok(Ticket {
                    generation: word.generation(),
                    probe: true,
                    probe_id: id,
                    start: Some(start),
                })
            }
            State::Closed | State::Disabled => Ok(Ticket::call(word, self.start_clock())),
            State::Open => {
                let until = self.open_until.load(Ordering::Acquire);
                let left = until.saturating_sub(self.now_nanos());
                Err((State::Open, Some(Duration::from_nanos(left))))
            }
            state => Err((state, None)),
        };
        drop(control);
        if let Some(event) = event {
            self.emit(event);
        }
        result.map_err(|(state, retry_after)| self.reject(state, retry_after))
    }

    /// Counts the outstanding probes past the probe timeout as failed;
    /// if that completes the trial, decides it. Call with the lock held.
    fn expire_probes(&self, control: &mut Control, seen: Word) -> Option<(Word, Event)> {
        let now = Instant::now();
        let before = control.outstanding.len();
        control.outstanding.retain(|&(_, start)| {
            now.saturating_duration_since(start) < self.settings.probe_timeout
        });
        let expired = (before - control.outstanding.len()) as u32;
        if expired == 0 {
            return None;
        }
        tracing::debug!(breaker = %self.name, expired, "half-open probes past their timeout count as failed");
        control.probes_done += expired;
        control.probe_failures += expired;
        self.decide_trial(control, seen)
    }

    fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        metrics::counter!(REJECTIONS_TOTAL, "breaker" => self.label.clone(), "state" => state.as_str())
            .increment(1);
        if let Some(listener) = &self.listener {
            listener(&Event::Rejected { state });
        }
        Rejected::new(self.name.clone(), state, retry_after)
    }
}
