//! The adaptive limit under random algorithms, windows and schedules of
//! calls (paused time): a call is admitted exactly when fewer than the
//! limit are in flight, the limit stays within its bounds, and every slot
//! comes back however its call ends (answered, dropped, ignored, given up).

use std::time::Duration;

use pattern_network::limit::{AdaptiveLimit, Aimd, Algorithm, Gradient2, LimitPermit, Vegas};
use proptest::prelude::*;

mod common;

#[derive(Clone, Debug)]
enum Op {
    Acquire,
    /// Ends the held permit at this index (mod the count), this way.
    End(usize, End),
    Wait(u64),
}

#[derive(Clone, Copy, Debug)]
enum End {
    Success,
    Dropped,
    Ignore,
    GiveUp,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        4 => (any::<usize>(), prop_oneof![
            Just(End::Success), Just(End::Dropped), Just(End::Ignore), Just(End::GiveUp)
        ]).prop_map(|(i, end)| Op::End(i, end)),
        2 => (0u64..50).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn admits_exactly_below_the_limit_and_gives_every_slot_back(
        algorithm in 0u8..3,
        (min, max) in (1usize..10).prop_flat_map(|min| (Just(min), min..60)),
        window_ms in 0u64..200,
        min_samples in 1u32..20,
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        common::paused_runtime().block_on(async {
            let window = Duration::from_millis(window_ms);
            let limit = match algorithm {
                0 => limit_with(Gradient2::new(min, min, max), window, min_samples),
                1 => limit_with(Vegas::new(min, min, max), window, min_samples),
                _ => limit_with(Aimd::new(min, min, max), window, min_samples),
            };
            run(limit, &ops, min, max).await
        })?;
    }
}

fn limit_with(algorithm: impl Algorithm, window: Duration, min_samples: u32) -> AdaptiveLimit {
    AdaptiveLimit::builder("p", algorithm)
        .window(window, window * 2, min_samples)
        .build()
}

async fn run(
    limit: AdaptiveLimit,
    ops: &[Op],
    min: usize,
    max: usize,
) -> Result<(), TestCaseError> {
    let mut held: Vec<LimitPermit> = Vec::new();
    for op in ops {
        match op {
            Op::Acquire => {
                let (before, cap) = (limit.in_flight(), limit.limit());
                match limit.try_acquire() {
                    Ok(permit) => {
                        prop_assert!(before < cap, "admitted at {before} in flight, limit {cap}");
                        held.push(permit);
                    }
                    Err(_) => {
                        prop_assert!(before >= cap, "refused at {before} in flight, limit {cap}")
                    }
                }
            }
            Op::End(i, end) if !held.is_empty() => {
                let permit = held.swap_remove(i % held.len());
                match end {
                    End::Success => permit.success(),
                    End::Dropped => permit.dropped(),
                    End::Ignore => permit.ignore(),
                    End::GiveUp => drop(permit),
                }
            }
            Op::End(..) => {}
            Op::Wait(ms) => tokio::time::advance(Duration::from_millis(*ms)).await,
        }
        prop_assert_eq!(limit.in_flight(), held.len());
        prop_assert!(
            (min..=max).contains(&limit.limit()),
            "limit {} outside {min}..={max}",
            limit.limit()
        );
    }
    held.clear();
    prop_assert_eq!(limit.in_flight(), 0);
    Ok(())
}
