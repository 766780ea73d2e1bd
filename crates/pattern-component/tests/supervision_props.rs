//! The supervisor's promises over random systems and schedules (paused
//! time): a component never runs two instances at once; a temporary one
//! (`Restart::Never`) is never started again; restarts within any window
//! never exceed the intensity unless the system gives up (escalates).

use std::sync::Arc;
use std::time::Duration;

use pattern_component::component::{BoxFuture, Component, Running, StartContext};
use pattern_component::lifecycle::{ComponentConfig, StopReason, System};
use pattern_component::supervision::{Restart, RestartStrategy as Policy};
use pattern_error::Error;
use proptest::prelude::*;
use tokio::time::Instant;

mod support;

use support::{Behaviour, Record, most_within};

#[derive(Clone, Debug)]
struct Spec {
    restart: Restart,
    behaviour: Behaviour,
    /// Indexes of earlier components it depends on.
    deps: Vec<usize>,
}

struct Node {
    name: String,
    spec: Spec,
    names: Vec<String>,
    record: Arc<Record>,
}

impl Component for Node {
    fn name(&self) -> &str {
        &self.name
    }
    fn dependencies(&self) -> Vec<String> {
        self.spec
            .deps
            .iter()
            .map(|&d| self.names[d].clone())
            .collect()
    }
    fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
        Box::pin(async move {
            let record = self.record.clone();
            let alive = record.enter();
            let stop = ctx.stop_token().clone();
            let behaviour = self.spec.behaviour;
            Ok(Running::task(behaviour.run(alive, record, stop)))
        })
    }
}

fn spec(index: usize) -> impl Strategy<Value = Spec> {
    (
        support::restart_policy(),
        support::ending(),
        prop::collection::vec(0..index.max(1), 0..=index.min(2)),
    )
        .prop_map(move |(restart, (ends_after, exits), deps)| Spec {
            restart,
            behaviour: Behaviour {
                ends_after,
                exits,
                slow_stop: None,
            },
            deps: if index == 0 { Vec::new() } else { deps },
        })
}

fn system() -> impl Strategy<Value = (Vec<Spec>, Policy, u32, u64, u64)> {
    (1usize..=5)
        .prop_flat_map(|n| (0..n).map(spec).collect::<Vec<_>>())
        .prop_flat_map(|specs| {
            (
                Just(specs),
                prop_oneof![
                    Just(Policy::OneForOne),
                    Just(Policy::OneForAll),
                    Just(Policy::RestForOne)
                ],
                1u32..8,
                100u64..2_000,
                300u64..3_000,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn supervision_keeps_its_promises((specs, strategy, max_restarts, window_ms, run_ms) in system()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async move {
            let names: Vec<String> = (0..specs.len()).map(|i| format!("c{i}")).collect();
            let records: Vec<Arc<Record>> = specs.iter().map(|_| Arc::default()).collect();
            let mut builder = System::builder()
                .strategy(strategy)
                .intensity(max_restarts, Duration::from_millis(window_ms))
                .restart_backoff(Duration::from_millis(1), Duration::from_millis(20));
            for (i, spec) in specs.iter().enumerate() {
                builder = builder.component_with(
                    Node { name: names[i].clone(), spec: spec.clone(), names: names.clone(), record: records[i].clone() },
                    ComponentConfig::default().restart(spec.restart),
                );
            }
            let running = builder.build().unwrap().start().await.unwrap();
            // Run for `run_ms`, or until the supervisor gives up (an
            // escalated system is not live), then stop.
            let until = Instant::now() + Duration::from_millis(run_ms);
            while Instant::now() < until && running.health().live {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Endings from the moment the stop is asked are the stop's, not
            // the supervisor's to count.
            let stop_asked = Instant::now();
            let summary = if running.health().live { running.stop().await } else { running.stopped().await };
            let escalated = matches!(summary.reason, StopReason::Escalated(_));
            tokio::time::sleep(Duration::from_secs(5)).await;
            for (i, record) in records.iter().enumerate() {
                assert!(record.most() <= 1, "{}: two instances at once", names[i]);
                assert_eq!(record.alive(), 0, "{}: outlived the system", names[i]);
                if specs[i].restart == Restart::Never {
                    assert_eq!(record.starts(), 1, "{}: temporary, started again", names[i]);
                }
            }
            // Endings that ask for a restart (any for `Always`, failures for
            // `OnFailure`), in time order.
            let mut restarts: Vec<Instant> = records
                .iter()
                .zip(&specs)
                .flat_map(|(record, spec)| record.restart_endings(spec.restart))
                .filter(|at| escalated || *at < stop_asked)
                .collect();
            let window = Duration::from_millis(window_ms);
            let most_in_a_window = most_within(&mut restarts, window);
            if !escalated {
                assert!(
                    most_in_a_window <= max_restarts as usize,
                    "{most_in_a_window} restarts within {window:?}, intensity {max_restarts}, not escalated"
                );
            } else {
                assert!(most_in_a_window >= max_restarts as usize, "escalated early: {most_in_a_window} of {max_restarts}");
            }
        });
    }
}
