//! The breaker against a small reference model: random calls (failing or
//! not, quick or slow) and pauses, with paused tokio time; after every step
//! both must agree on admission and state.

use std::collections::VecDeque;
use std::time::Duration;

use pattern_error::breaker::{CircuitBreaker, State};
use proptest::prelude::*;

const WINDOW: usize = 5;
const MIN_CALLS: usize = 3;
const FAILURE_RATE: f64 = 0.5;
const SLOW_MS: u64 = 30;
const SLOW_RATE: f64 = 0.6;
const PROBES: u32 = 2;
const OPEN_MS: u64 = 100;
const MAX_OPEN_MS: u64 = 400;

#[derive(Clone, Debug)]
enum Op {
    Call { fail: bool, ms: u64 },
    Wait { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0u64..60).prop_map(|(fail, ms)| Op::Call { fail, ms }),
        1 => (0u64..250).prop_map(|ms| Op::Wait { ms }),
    ]
}

/// The reference: the documented rules, written as plainly as possible.
#[derive(Debug)]
struct Model {
    state: State,
    now: u64,
    window: VecDeque<(bool, bool)>,
    open_until: u64,
    trips: u32,
    admitted: u32,
    done: u32,
    failed: u32,
    slow: u32,
}

impl Model {
    fn new() -> Self {
        Self {
            state: State::Closed,
            now: 0,
            window: VecDeque::new(),
            open_until: 0,
            trips: 0,
            admitted: 0,
            done: 0,
            failed: 0,
            slow: 0,
        }
    }

    fn open(&mut self) {
        let ms = OPEN_MS
            .saturating_mul(1 << self.trips.min(16))
            .min(MAX_OPEN_MS);
        self.trips += 1;
        self.open_until = self.now + ms;
        self.state = State::Open;
    }

    fn breached(calls: usize, failed: usize, slow: usize) -> bool {
        let calls = calls as f64;
        failed as f64 / calls >= FAILURE_RATE || slow as f64 / calls >= SLOW_RATE
    }

    /// Returns whether the call was admitted.
    fn call(&mut self, fail: bool, ms: u64) -> bool {
        if self.state == State::Open && self.now >= self.open_until {
            self.state = State::HalfOpen;
            self.admitted = 0;
            self.done = 0;
            self.failed = 0;
            self.slow = 0;
        }
        let probe = match self.state {
            State::Closed => false,
            State::HalfOpen if self.admitted < PROBES => {
                self.admitted += 1;
                true
            }
            _ => return false,
        };
        self.now += ms;
        let slow = ms >= SLOW_MS;
        if probe {
            self.done += 1;
            self.failed += u32::from(fail);
            self.slow += u32::from(slow);
            if self.done == PROBES {
                if Self::breached(PROBES as usize, self.failed as usize, self.slow as usize) {
                    self.open();
                } else {
                    self.state = State::Closed;
                    self.window.clear();
                    self.trips = 0;
                }
            }
        } else {
            self.window.push_back((fail, slow));
            if self.window.len() > WINDOW {
                self.window.pop_front();
            }
            let failed = self.window.iter().filter(|c| c.0).count();
            let slow = self.window.iter().filter(|c| c.1).count();
            if self.window.len() >= MIN_CALLS && Self::breached(self.window.len(), failed, slow) {
                self.open();
            }
        }
        true
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let breaker = CircuitBreaker::builder("model")
            .count_window(WINDOW as u32)
            .minimum_calls(MIN_CALLS as u32)
            .failure_rate(FAILURE_RATE)
            .slow_calls(Duration::from_millis(SLOW_MS), SLOW_RATE)
            .half_open_probes(PROBES)
            .open_duration(Duration::from_millis(OPEN_MS))
            .open_backoff(2.0, Duration::from_millis(MAX_OPEN_MS))
            .probe_timeout(Duration::from_secs(3600))
            .build()
            .unwrap();
        let mut model = Model::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Call { fail, ms } => {
                    let expected = model.call(fail, ms);
                    let admitted = match breaker.try_acquire() {
                        Ok(permit) => {
                            tokio::time::advance(Duration::from_millis(ms)).await;
                            if fail {
                                permit.failure()
                            } else {
                                permit.success()
                            }
                            true
                        }
                        Err(_) => false,
                    };
                    prop_assert_eq!(
                        admitted,
                        expected,
                        "admission at step {}: {:?}",
                        step,
                        model
                    );
                }
                Op::Wait { ms } => {
                    model.now += ms;
                    tokio::time::advance(Duration::from_millis(ms)).await;
                }
            }
            prop_assert_eq!(
                breaker.state(),
                model.state,
                "state at step {}: {:?}",
                step,
                model
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn breaker_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..200)) {
        run(ops)?;
    }
}
