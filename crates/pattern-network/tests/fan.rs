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
    let mut slow = consumers.pop().unwrap();
    let mut fast = consumers.pop().unwrap();
    tokio::spawn(async move { while fast.recv().await.is_some() {} });
    let slow_task = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(item) = slow.recv().await {
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
    let got: Vec<Vec<i32>> = workers.iter_mut().map(drain).collect();
    assert_eq!(got.iter().map(Vec::len).sum::<usize>(), 6);
    drop(workers);
    assert_eq!(work.send(7).await.unwrap_err().kind(), Kind::Unavailable);
}

fn drain<T>(rx: &mut tokio::sync::mpsc::Receiver<T>) -> Vec<T> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// A broadcast given up while it waits for room in one queue has
/// delivered to no one; every consumer sees the same items in the same
/// order.
#[tokio::test(start_paused = true)]
async fn a_cancelled_broadcast_delivers_to_no_one() {
    let (broadcast, mut consumers) = Broadcast::new(3, 1);
    broadcast.send(0).await.unwrap();
    // Consumers 0 and 2 take theirs; consumer 1's queue stays full.
    assert_eq!(consumers[0].recv().await, Some(0));
    assert_eq!(consumers[2].recv().await, Some(0));
    let given_up = tokio::time::timeout(Duration::from_millis(10), broadcast.send(1)).await;
    assert!(given_up.is_err(), "it waited for consumer 1");
    assert!(consumers[0].try_recv().is_err(), "consumer 0 got nothing");
    assert!(consumers[2].try_recv().is_err(), "consumer 2 got nothing");
    // Many broadcasters at once: one order for every consumer.
    let broadcast = Arc::new(broadcast);
    let senders: Vec<_> = (0..4)
        .map(|p| {
            let broadcast = broadcast.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    broadcast.send(100 + p * 100 + i).await.unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = consumers
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            // Consumer 1 still holds item 0.
            let expected = if i == 1 { 101 } else { 100 };
            tokio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < expected {
                    got.push(c.recv().await.unwrap());
                    sleep(Duration::from_millis(1)).await;
                }
                got
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    let mut seen = Vec::new();
    for reader in readers {
        seen.push(reader.await.unwrap());
    }
    // Consumer 1 still held item 0.
    assert_eq!(seen[1][0], 0);
    assert_eq!(seen[0][..100], seen[1][1..], "one order");
    assert_eq!(seen[0][..100], seen[2][..100], "one order");
}

/// One worker that stops reading does not hold the others idle: items go
/// to the workers with room.
#[tokio::test(start_paused = true)]
async fn a_stuck_worker_does_not_block_distribution() {
    let (work, mut workers) = Distribute::round_robin(3, 2);
    let _stuck = workers.remove(0); // never read
    let busy: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            tokio::spawn(async move {
                let mut got = 0;
                while w.recv().await.is_some() {
                    sleep(Duration::from_millis(1)).await;
                    got += 1;
                }
                got
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        for job in 0..300 {
            work.send(job).await.unwrap();
        }
    })
    .await
    .expect("distribution must not wait on the stuck worker");
    drop(work);
    let mut done = 0;
    for worker in busy {
        done += worker.await.unwrap();
    }
    assert_eq!(done, 298, "all but the two in the stuck worker's queue");
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
    assert!(err.error().is_transient());
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(20),
        "no wait for the last one"
    );
    assert_eq!(err.gathered().failures.len(), 2, "the causes are kept");
}

/// A quorum lost to permanent failures is permanent, classified by them;
/// the answers that came are kept.
#[tokio::test(start_paused = true)]
async fn a_quorum_lost_to_permanent_failures_is_permanent() {
    let answer = |ms: u64, result: Result<u64, Kind>| async move {
        sleep(Duration::from_millis(ms)).await;
        result.map_err(|kind| Error::new(kind, format!("replica after {ms} ms")))
    };
    let err = scatter_gather(
        [
            answer(5, Ok(5)),
            answer(10, Err(Kind::NotFound)),
            answer(20, Err(Kind::NotFound)),
            answer(900, Ok(900)),
        ],
        3,
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), Kind::NotFound, "every failure was not found");
    assert!(!err.error().is_transient());
    assert_eq!(err.gathered().answers, [5]);
    assert!(
        err.error()
            .report()
            .to_string()
            .contains("replica after 20 ms"),
        "{}",
        err.error().report()
    );

    let err = scatter_gather(
        [
            answer(10, Err(Kind::InvalidInput)),
            answer(20, Err(Kind::Forbidden)),
            answer(30, Ok(30)),
        ],
        2,
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable);
    assert!(!err.error().is_transient(), "no failure was transient");
    let (error, gathered) = err.into_parts();
    assert_eq!(gathered.failures.len(), 2);
    let plain: Error = error;
    assert_eq!(plain.kind(), Kind::Unavailable);
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
    assert_eq!(err.gathered().answers, [10], "the answer that came is kept");
    let err = scatter_gather([replica(1, true, finished)], 2, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidInput);
}
