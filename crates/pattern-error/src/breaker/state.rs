//! The states of a circuit breaker.

use std::fmt;

/// The state of a [`CircuitBreaker`](super::CircuitBreaker).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls pass; outcomes are recorded in the sliding window.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A limited number of probe calls pass; their outcomes decide whether
    /// the breaker closes or opens again.
    HalfOpen,
    /// Held open by hand ([`CircuitBreaker::force_open`](super::CircuitBreaker::force_open)):
    /// every call is rejected until [`reset`](super::CircuitBreaker::reset).
    ForcedOpen,
    /// Switched off by hand ([`CircuitBreaker::disable`](super::CircuitBreaker::disable)):
    /// every call passes and nothing is recorded.
    Disabled,
}

impl State {
    /// A stable `snake_case` name, used as a metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }

    /// The value of the `circuit_breaker_state` gauge: 0 closed, 1 open,
    /// 2 half-open, 3 forced open, 4 disabled.
    pub const fn gauge_value(self) -> f64 {
        self.code() as f64
    }

    pub(super) const fn code(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::Disabled => 4,
        }
    }

    #[inline]
    pub(super) const fn from_code(code: u64) -> State {
        match code {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state and the generation it belongs to, packed in one `u64` so that one
/// atomic load tells both. Every transition starts a new generation; an
/// outcome recorded for an older generation is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Word(pub(super) u64);

impl Word {
    const STATE_BITS: u32 = 3;
    const STATE_MASK: u64 = (1 << Self::STATE_BITS) - 1;

    pub(super) fn new(state: State, generation: u64) -> Self {
        Word(generation << Self::STATE_BITS | state.code())
    }

    #[inline]
    pub(super) fn state(self) -> State {
        State::from_code(self.0 & Self::STATE_MASK)
    }

    #[inline]
    pub(super) fn generation(self) -> u64 {
        self.0 >> Self::STATE_BITS
    }

    /// The word for `state` in the next generation.
    pub(super) fn next(self, state: State) -> Self {
        Word::new(state, self.generation().wrapping_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_round_trips() {
        for state in [
            State::Closed,
            State::Open,
            State::HalfOpen,
            State::ForcedOpen,
            State::Disabled,
        ] {
            let word = Word::new(state, 12345);
            assert_eq!(word.state(), state);
            assert_eq!(word.generation(), 12345);
            assert_eq!(word.next(State::Open).generation(), 12346);
            assert_eq!(State::from_code(state.code()), state);
        }
    }
}
