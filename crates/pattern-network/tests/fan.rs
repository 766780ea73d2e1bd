//! Fan-out and fan-in: back pressure, quorum, deadline (paused time).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pattern_error::{Error, Kind};
use pattern_network::fan::{Broadcast, Distribute, merge, scatter_gather};
use tokio::time::{Instant, sleep};

#[tokio::test(start_paused = true)]
async fn a_slow_consumer_sets_the_broadcast_pace() {
    let (broadcast, mut consumers) = Broadcast::new(2, 2);
    let slow = consumers.pop().unwrap();
    let fast = consumers.pop().unwrap();
    tokio::spawn(async move { while fast.recv_async().await.is_ok() {} });
    let slow_task = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Ok(item) = slow.recv_async().await {
            sleep(Duration::from_millis(100)).await;
            got.push(item);
        }
        got
    });
    let start = Instant::now();
    for i in 0..10 {
        broadcast.send(i).await.unwrap();
    }
    // 10 items, a queue of 2 and 100 ms each at the slow consumer: the
    // producer is held back to its pace.
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "{:?}",
        start.elapsed()
    );
    drop(broadcast);
    assert_eq!(
        slow_task.await.unwrap(),
        (0..10).collect::<Vec<_>>(),
        "nothing lost"
    );
}

#[tokio::test]
async fn distribution_skips_workers_that_are_gone() {
    let (work, mut workers) = Distribute::round_robin(3, 4);
    drop(workers.remove(1));
    for job in 0..6 {
        work.send(job).await.unwrap();
    }
    let got: Vec<Vec<i32>> = workers.iter().map(|w| w.drain().collect()).collect();
    assert_eq!(got.iter().map(Vec::len).sum::<usize>(), 6);
    drop(workers);
    assert_eq!(work.send(7).await.unwrap_err().kind(), Kind::Unavailable);
}

#[tokio::test]
async fn merge_ends_when_every_input_ends() {
    let (a_tx, a) = flume::bounded(4);
    let (b_tx, b) = flume::bounded(4);
    let merged = merge(vec![a, b], 2);
    a_tx.send_async(1).await.unwrap();
    b_tx.send_async(2).await.unwrap();
    drop((a_tx, b_tx));
    let mut got: Vec<i32> = Vec::new();
    while let Ok(x) = merged.recv_async().await {
        got.push(x);
    }
    got.sort();
    assert_eq!(got, [1, 2]);
}

async fn replica(ms: u64, ok: bool, finished: Arc<AtomicUsize>) -> Result<u64, Error> {
    sleep(Duration::from_millis(ms)).await;
    finished.fetch_add(1, Ordering::SeqCst);
    if ok {
        Ok(ms)
    } else {
        Err(Error::new(Kind::Unavailable, "replica down"))
    }
}

#[tokio::test(start_paused = true)]
async fn scatter_gather_returns_at_quorum_and_cancels_the_rest() {
    let finished = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let got = scatter_gather(
        [10, 20, 500, 900].map(|ms| replica(ms, true, finished.clone())),
        2,
        Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(got.answers, [10, 20]);
    assert_eq!(start.elapsed(), Duration::from_millis(20));
    sleep(Duration::from_secs(2)).await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        2,
        "the slow ones were cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn scatter_gather_fails_fast_when_the_quorum_is_lost() {
    let finished = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let err = scatter_gather(
        [(10, false), (20, false), (900, true)].map(|(ms, ok)| replica(ms, ok, finished.clone())),
        2,
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable);
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(20),
        "no wait for the last one"
    );
}

#[tokio::test(start_paused = true)]
async fn scatter_gather_times_out_at_the_deadline() {
    let finished = Arc::new(AtomicUsize::new(0));
    let err = scatter_gather(
        [10, 900, 900].map(|ms| replica(ms, true, finished.clone())),
        2,
        Duration::from_millis(100),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), Kind::Timeout);
    assert!(err.to_string().starts_with("1 of 2 answers"), "{err}");
    let err = scatter_gather([replica(1, true, finished)], 2, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidInput);
}
