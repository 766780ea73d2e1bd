//! Partitioning: per-key order under concurrent workers, back pressure from
//! a slow worker, movement on add and remove (paused time).

use std::collections::HashMap;
use std::time::Duration;

use pattern_network::partition::Partitioner;

#[tokio::test(start_paused = true)]
async fn every_key_is_handled_in_order_by_one_worker() {
    let mut partitioner = Partitioner::new(100);
    let mut workers = Vec::new();
    for w in 0..4 {
        let (rx, _) = partitioner.add_worker(format!("w{w}"), 8);
        workers.push(tokio::spawn(async move {
            let mut seen: Vec<(u32, u32)> = Vec::new();
            while let Ok((key, seq)) = rx.recv_async().await {
                // Uneven work, so workers interleave.
                tokio::time::sleep(Duration::from_micros(u64::from((key * 7 + seq) % 5) * 100))
                    .await;
                seen.push((key, seq));
            }
            seen
        }));
    }
    for seq in 0..50u32 {
        for key in 0..40u32 {
            partitioner.send(&key, (key, seq)).await.unwrap();
        }
    }
    drop(partitioner); // closes every queue: workers drain and end
    let mut owner: HashMap<u32, usize> = HashMap::new();
    let mut total = 0;
    for (w, worker) in workers.into_iter().enumerate() {
        let seen = worker.await.unwrap();
        total += seen.len();
        let mut last: HashMap<u32, u32> = HashMap::new();
        for (key, seq) in seen {
            assert_eq!(
                *owner.entry(key).or_insert(w),
                w,
                "key {key} on two workers"
            );
            if let Some(prev) = last.insert(key, seq) {
                assert!(seq == prev + 1, "key {key}: {seq} after {prev}");
            }
        }
    }
    assert_eq!(total, 50 * 40, "nothing lost or duplicated");
    let used: std::collections::HashSet<_> = owner.values().collect();
    assert!(used.len() >= 3, "keys spread over the workers: {used:?}");
}

#[tokio::test(start_paused = true)]
async fn a_full_worker_queue_pushes_back() {
    let mut partitioner = Partitioner::new(50);
    let (rx, _) = partitioner.add_worker("only", 2);
    partitioner.try_send(&1, 1).unwrap();
    partitioner.try_send(&1, 2).unwrap();
    let err = partitioner.try_send(&1, 3).unwrap_err();
    assert_eq!(err.kind(), pattern_error::Kind::Overloaded);
    // The async send waits for room instead.
    let sending = partitioner.send(&1, 3);
    tokio::pin!(sending);
    assert!(
        tokio::time::timeout(Duration::from_millis(10), &mut sending)
            .await
            .is_err()
    );
    assert_eq!(rx.recv_async().await.unwrap(), 1);
    sending.await.unwrap();
}

#[test]
fn changes_report_the_share_moved() {
    let mut partitioner: Partitioner<()> = Partitioner::new(150);
    let mut receivers = Vec::new();
    for w in 0..4 {
        let (rx, rebalance) = partitioner.add_worker(format!("w{w}"), 1);
        receivers.push(rx);
        assert_eq!(rebalance.workers, w + 1);
    }
    let (_rx, added) = partitioner.add_worker("w4", 1);
    assert!(
        (0.12..0.28).contains(&added.moved_share),
        "add 5th: {}",
        added.moved_share
    );
    let before: Vec<Option<String>> = (0..1000u32)
        .map(|key| partitioner.worker_for(&key).map(str::to_owned))
        .collect();
    let removed = partitioner.remove_worker("w1").unwrap();
    assert!(
        (0.12..0.28).contains(&removed.moved_share),
        "remove: {}",
        removed.moved_share
    );
    assert!(partitioner.remove_worker("nope").is_none());
    // Only the removed worker's keys moved; every other key stayed put.
    let mut moved = 0;
    for key in 0..1000u32 {
        let now = partitioner.worker_for(&key);
        if before[key as usize].as_deref() == Some("w1") {
            assert!(now.is_some_and(|w| w != "w1"), "key {key}: {now:?}");
            moved += 1;
        } else {
            assert_eq!(now, before[key as usize].as_deref(), "key {key} moved");
        }
    }
    assert!(moved > 0, "w1 owned some of the keys");
}

/// A send waiting on a full worker does not hold the partitioner: behind a
/// lock, the lock is released once the send is made, and a rebalance can
/// run while it waits.
#[tokio::test(start_paused = true)]
async fn a_waiting_send_does_not_block_rebalancing() {
    use std::sync::Arc;
    use tokio::sync::RwLock;

    let shared = Arc::new(RwLock::new(Partitioner::new(100)));
    let (slow, _) = shared.write().await.add_worker("slow", 1);
    shared.read().await.send(&"k", 1u32).await.unwrap(); // the queue is full now
    let waiting = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let send = shared.read().await.send(&"k", 2u32);
            send.await
        })
    };
    tokio::task::yield_now().await;
    // Rebalancing takes the write lock while the send waits for room.
    let (other, rebalance) = tokio::time::timeout(Duration::from_secs(1), async {
        shared.write().await.add_worker("other", 4)
    })
    .await
    .expect("the write lock is free while the send waits");
    assert_eq!(rebalance.workers, 2);
    // The waiting send still goes to the worker it chose.
    assert_eq!(slow.recv_async().await.unwrap(), 1);
    waiting.await.unwrap().unwrap();
    assert_eq!(slow.recv_async().await.unwrap(), 2);
    assert!(other.is_empty());
}
