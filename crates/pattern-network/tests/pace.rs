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

/// Counts the polls of a future.
struct Polls<F> {
    inner: std::pin::Pin<Box<F>>,
    count: Arc<std::sync::atomic::AtomicUsize>,
}

impl<F: std::future::Future> std::future::Future for Polls<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

/// Waiters leave in the order they came, each woken about once: a waiter
/// whose slot has not come waits its turn, not on the clock.
#[tokio::test(start_paused = true)]
async fn waiters_leave_in_arrival_order_and_wake_once_or_twice() {
    let pacer = Arc::new(Pacer::per_second(NonZeroU32::new(100).unwrap()));
    let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for i in 0..200usize {
        let (pacer, order) = (pacer.clone(), order.clone());
        let wait = Polls {
            inner: Box::pin(async move { pacer.ready().await }),
            count: polls.clone(),
        };
        waiters.push(tokio::spawn(async move {
            wait.await;
            order.lock().unwrap().push(i);
        }));
        // Each waiter starts waiting before the next arrives.
        tokio::task::yield_now().await;
    }
    for waiter in waiters {
        waiter.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..200).collect::<Vec<_>>());
    let polls = polls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(polls <= 200 * 4, "{polls} polls for 200 waiters");
}

/// A waiter dropped while it waits gives its turn to the next.
#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_gives_up_its_turn() {
    let pacer = Arc::new(Pacer::per_second(NonZeroU32::new(10).unwrap()));
    pacer.ready().await; // the next slot is 100 ms away
    let first = {
        let pacer = pacer.clone();
        tokio::spawn(
            async move { tokio::time::timeout(Duration::from_millis(10), pacer.ready()).await },
        )
    };
    tokio::task::yield_now().await;
    let start = Instant::now();
    let second = {
        let pacer = pacer.clone();
        tokio::spawn(async move { pacer.ready().await })
    };
    assert!(first.await.unwrap().is_err(), "the first gives up");
    tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("a waiter that gave up must not keep its place in the queue")
        .unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(100),
        "the second takes the slot at once when it comes"
    );
}
