//! Pipelines under random topologies and schedules (paused time): any
//! sequence of ordered and unordered stages with any worker counts and
//! capacity, items that are slow, fail or panic, and sends given up while
//! they wait. Every item sent comes out once or is dead-lettered once, a
//! pipeline of ordered stages keeps input order, and nothing stalls.

use std::collections::BTreeMap;
use std::time::Duration;

use pattern_error::{Error, Kind};
use pattern_network::pipeline::{Order, Pipeline};
use proptest::prelude::*;
use tokio::time::sleep;

mod common;

/// What a stage does to one item, decided from the item and the stage.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Pass { delay_ms: u64 },
    Fail,
    Panic,
}

#[derive(Clone, Debug)]
struct StageSpec {
    order: Order,
    workers: usize,
    /// Indexed by item % len.
    fates: Vec<Fate>,
}

#[derive(Clone, Debug)]
struct Case {
    capacity: usize,
    stages: Vec<StageSpec>,
    items: u64,
    /// Sends for items n with n % give_up_every == give_up_every - 1 wait
    /// at most 1 ms for room (0: none does).
    give_up_every: u64,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        12 => prop_oneof![3 => Just(0u64), 2 => 0u64..5, 1 => 50u64..400]
            .prop_map(|delay_ms| Fate::Pass { delay_ms }),
        1 => Just(Fate::Fail),
        1 => Just(Fate::Panic),
    ]
}

fn stage() -> impl Strategy<Value = StageSpec> {
    (
        prop_oneof![Just(Order::Ordered), Just(Order::Unordered)],
        1usize..=6,
        proptest::collection::vec(fate(), 1..16),
    )
        .prop_map(|(order, workers, fates)| StageSpec {
            order,
            workers,
            fates,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=8,
        proptest::collection::vec(stage(), 1..=4),
        0u64..300,
        prop_oneof![Just(0u64), 2u64..8],
    )
        .prop_map(|(capacity, stages, items, give_up_every)| Case {
            capacity,
            stages,
            items,
            give_up_every,
        })
}

/// Items carry their input number through every stage.
fn stage_fn(spec: &StageSpec, index: usize) -> impl Fn(u64) -> StageFuture + Send + Sync + 'static {
    let fates = spec.fates.clone();
    move |n: u64| {
        let fate = fates[(n as usize).wrapping_mul(7).wrapping_add(index) % fates.len()];
        Box::pin(async move {
            match fate {
                Fate::Pass { delay_ms } => {
                    sleep(Duration::from_millis(delay_ms)).await;
                    Ok(n)
                }
                Fate::Fail => Err(Error::new(Kind::InvalidInput, "refused")),
                Fate::Panic => panic!("stage panicked on {n}"),
            }
        })
    }
}

type StageFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, Error>> + Send>>;

struct Outcome {
    sent: Vec<u64>,
    out: Vec<u64>,
    dead: Vec<(&'static str, u64)>,
}

const NAMES: [&str; 4] = ["s0", "s1", "s2", "s3"];

fn run(case: &Case) -> Result<Outcome, String> {
    common::quiet_panics("stage panicked");
    common::paused_runtime().block_on(async {
        let mut builder = Pipeline::<u64>::builder(case.capacity).stage(
            NAMES[0],
            case.stages[0].workers,
            case.stages[0].order,
            stage_fn(&case.stages[0], 0),
        );
        for (i, spec) in case.stages.iter().enumerate().skip(1) {
            builder = builder.stage(NAMES[i], spec.workers, spec.order, stage_fn(spec, i));
        }
        let (input, output, dead) = builder.build().into_parts();
        let (items, every) = (case.items, case.give_up_every);
        let producer = tokio::spawn(async move {
            let mut sent = Vec::new();
            for n in 0..items {
                if every > 0 && n % every == every - 1 {
                    if let Ok(result) =
                        tokio::time::timeout(Duration::from_millis(1), input.send(n)).await
                    {
                        result.unwrap();
                        sent.push(n);
                    }
                } else {
                    input.send(n).await.unwrap();
                    sent.push(n);
                }
            }
            sent
        });
        let letters = tokio::spawn(async move {
            let mut letters = Vec::new();
            while let Ok(letter) = dead.recv_async().await {
                letters.push((letter.stage, letter.seq));
            }
            letters
        });
        // Each item spends at most 400 ms in each stage; a day is far past
        // any honest schedule.
        let out = tokio::time::timeout(Duration::from_secs(86_400), output.into_stream_all())
            .await
            .map_err(|_| "the pipeline stalled".to_owned())?;
        let sent = producer.await.unwrap();
        let dead = letters.await.unwrap();
        Ok(Outcome { sent, out, dead })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_item_comes_out_once_or_is_dead_lettered_once(case in case()) {
        let outcome = run(&case).map_err(TestCaseError::fail)?;
        // Each input number by where it ended.
        let mut ended: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for &n in &outcome.out {
            ended.entry(n).or_default().push("out");
        }
        // A dead letter gives the item's position among the items sent.
        for &(stage, seq) in &outcome.dead {
            let n = outcome.sent.get(seq as usize).copied().unwrap_or(u64::MAX);
            ended.entry(n).or_default().push(stage);
        }
        let sent: Vec<u64> = outcome.sent.clone();
        prop_assert_eq!(ended.keys().copied().collect::<Vec<_>>(), sent, "what ended is what was sent");
        for (n, ends) in &ended {
            prop_assert_eq!(ends.len(), 1, "item {} ended {:?}", n, ends);
        }
        if case.stages.iter().all(|s| s.order == Order::Ordered) {
            prop_assert!(outcome.out.windows(2).all(|w| w[0] < w[1]), "ordered stages keep input order: {:?}", outcome.out);
        }
    }
}
