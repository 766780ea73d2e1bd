//! Pacing spreads a burst of concurrent callers evenly (paused time).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use pattern_network::flow::pace::Pacer;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_burst_leaves_at_the_pace() {
    let pacer = Arc::new(Pacer::per_second(NonZeroU32::new(20).unwrap()));
    let start = Instant::now();
    let callers: Vec<_> = (0..40)
        .map(|_| {
            let pacer = pacer.clone();
            tokio::spawn(async move {
                pacer.ready().await;
                start.elapsed()
            })
        })
        .collect();
    let mut times = Vec::new();
    for c in callers {
        times.push(c.await.unwrap());
    }
    times.sort();
    // 40 callers at 20 per second: one every 50 ms, the last at 1.95 s.
    for (i, t) in times.iter().enumerate() {
        let expected = Duration::from_millis(50 * i as u64);
        assert!(
            *t >= expected && *t <= expected + Duration::from_millis(2),
            "caller {i} at {t:?}"
        );
    }
    assert!(pacer.try_ready().is_err(), "the next slot is in the future");
}
