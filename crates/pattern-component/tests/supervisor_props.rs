//! The dynamic supervisor's promises over random children, strategies and
//! schedules (paused time): a name never runs two instances at once; a
//! temporary child (`Restart::Never`) never runs again unless asked; the
//! restarts within any window never exceed the intensity unless the
//! supervisor (or, counted per child, that child) gives up; nothing runs
//! after `stop_all`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pattern_component::supervision::{
    Child, ChildState, Escalation, Restart, Strategy as Policy, Supervisor,
};
use proptest::prelude::*;
use support::{Behaviour, Record, most_within};
use tokio::time::{Instant, sleep};

#[derive(Clone, Copy, Debug)]
struct Spec {
    restart: Restart,
    behaviour: Behaviour,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Add,
    Replace,
    Stop,
    Restart,
    Remove,
}

#[derive(Clone, Debug)]
struct Setup {
    specs: Vec<Spec>,
    strategy: Policy,
    escalation: Escalation,
    max_restarts: u32,
    window_ms: u64,
    run_ms: u64,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![
            Just(Restart::Never),
            Just(Restart::OnFailure),
            Just(Restart::Always)
        ],
        prop::option::of(5u64..300),
        any::<bool>(),
    )
        .prop_map(|(restart, ends_after, exits)| Spec {
            restart,
            behaviour: Behaviour { ends_after, exits },
        })
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop::collection::vec(spec(), 1..=5),
        prop_oneof![
            Just(Policy::OneForOne),
            Just(Policy::OneForAll),
            Just(Policy::RestForOne)
        ],
        prop_oneof![Just(Escalation::Supervisor), Just(Escalation::Child)],
        0u32..8,
        100u64..2_000,
        300u64..3_000,
    )
        .prop_map(
            |(specs, strategy, escalation, max_restarts, window_ms, run_ms)| Setup {
                specs,
                strategy,
                escalation,
                max_restarts,
                window_ms,
                run_ms,
            },
        )
}

/// Calls at random times: (when in ms, which call, which child).
fn schedule() -> impl Strategy<Value = Vec<(u64, Op, usize)>> {
    prop::collection::vec(
        (
            0u64..2_000,
            prop_oneof![
                Just(Op::Add),
                Just(Op::Replace),
                Just(Op::Stop),
                Just(Op::Restart),
                Just(Op::Remove)
            ],
            0usize..5,
        ),
        0..24,
    )
}

fn child(name: &str, spec: Spec, record: &Arc<Record>) -> Child {
    let record = record.clone();
    Child::new(name, move |stop| {
        let record = record.clone();
        let alive = record.enter();
        spec.behaviour.run(alive, record, stop)
    })
    .restart(spec.restart)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

fn build(setup: &Setup) -> Supervisor {
    Supervisor::builder()
        .strategy(setup.strategy)
        .escalation(setup.escalation)
        .intensity(setup.max_restarts, Duration::from_millis(setup.window_ms))
        .restart_backoff(Duration::from_millis(1), Duration::from_millis(20))
        .stop_timeout(Duration::from_millis(50))
        .build()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Failures alone: the intensity and the temporaries.
    #[test]
    fn failures_keep_the_intensity_and_the_temporaries(setup in setup()) {
        runtime().block_on(async move {
            let supervisor = build(&setup);
            let names: Vec<String> = (0..setup.specs.len()).map(|i| format!("c{i}")).collect();
            let records: Vec<Arc<Record>> = setup.specs.iter().map(|_| Arc::default()).collect();
            for (i, spec) in setup.specs.iter().enumerate() {
                supervisor.add(child(&names[i], *spec, &records[i])).await.unwrap();
            }
            let until = Instant::now() + Duration::from_millis(setup.run_ms);
            while Instant::now() < until && supervisor.gave_up().is_none() {
                sleep(Duration::from_millis(5)).await;
            }
            let stop_asked = Instant::now();
            let gave_up = supervisor.gave_up().is_some();
            supervisor.stop_all().await;
            let window = Duration::from_millis(setup.window_ms);
            let max = setup.max_restarts as usize;
            let mut all = Vec::new();
            for (i, record) in records.iter().enumerate() {
                assert!(record.most() <= 1, "{}: two instances at once", names[i]);
                assert_eq!(record.alive(), 0, "{}: outlived stop_all", names[i]);
                if setup.specs[i].restart == Restart::Never {
                    assert_eq!(record.starts(), 1, "{}: temporary, started again", names[i]);
                }
                let mut endings: Vec<Instant> = record
                    .restart_endings(setup.specs[i].restart)
                    .into_iter()
                    .filter(|at| gave_up || *at < stop_asked)
                    .collect();
                if setup.escalation == Escalation::Child {
                    let failed = supervisor.child(&names[i]).unwrap().state == ChildState::Failed;
                    let most = most_within(&mut endings, window);
                    if failed && !endings.is_empty() {
                        assert!(most > max, "{}: failed early, {most} of {max}", names[i]);
                    } else {
                        assert!(most <= max, "{}: {most} restarts within {window:?}, intensity {max}", names[i]);
                    }
                }
                all.extend(endings);
            }
            if setup.escalation == Escalation::Supervisor {
                let most = most_within(&mut all, window);
                if gave_up {
                    assert!(most > max, "gave up early: {most} of {max}");
                } else {
                    assert!(most <= max, "{most} restarts within {window:?}, intensity {max}");
                }
            }
            assert!(!(setup.escalation == Escalation::Child && gave_up), "a per-child supervisor never gives up");
        });
    }

    /// Calls racing the failures: one instance per name, temporaries run
    /// only when asked, nothing left after stop_all.
    #[test]
    fn calls_at_random_times_never_run_two_instances(setup in setup(), calls in schedule()) {
        runtime().block_on(async move {
            let supervisor = build(&setup);
            let n = setup.specs.len();
            let names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
            let records: Vec<Arc<Record>> = setup.specs.iter().map(|_| Arc::default()).collect();
            let asked: Vec<Arc<AtomicU32>> = (0..n).map(|_| Arc::default()).collect();
            for (i, spec) in setup.specs.iter().enumerate() {
                supervisor.add(child(&names[i], *spec, &records[i])).await.unwrap();
                asked[i].fetch_add(1, Ordering::SeqCst);
            }
            let start = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for (at, op, which) in calls {
                let i = which % n;
                let (supervisor, name, spec, record, asked) = (
                    supervisor.clone(),
                    names[i].clone(),
                    setup.specs[i],
                    records[i].clone(),
                    asked[i].clone(),
                );
                tasks.spawn(async move {
                    tokio::time::sleep_until(start + Duration::from_millis(at)).await;
                    let started = match op {
                        Op::Add => supervisor.add(child(&name, spec, &record)).await.is_ok(),
                        Op::Replace => supervisor.replace(child(&name, spec, &record)).await.is_ok(),
                        Op::Restart => supervisor.restart(&name).await.is_ok(),
                        Op::Stop => { let _ = supervisor.stop(&name).await; false }
                        Op::Remove => { let _ = supervisor.remove(&name).await; false }
                    };
                    if started {
                        asked.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            sleep(Duration::from_millis(setup.run_ms)).await;
            supervisor.stop_all().await;
            for i in 0..n {
                let record = &records[i];
                assert!(record.most() <= 1, "{}: two instances at once", names[i]);
                assert_eq!(record.alive(), 0, "{}: outlived stop_all", names[i]);
                if setup.specs[i].restart == Restart::Never {
                    let asked = asked[i].load(Ordering::SeqCst);
                    assert!(record.starts() <= asked, "{}: temporary, {} runs for {asked} starts asked", names[i], record.starts());
                }
            }
        });
    }
}
