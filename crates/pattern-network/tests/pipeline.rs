//! Pipelines: order, dead letters, drain on shutdown, back pressure (paused time).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pattern_error::{Error, Kind};
use pattern_network::pipeline::{Order, Pipeline};
use tokio::time::{Instant, sleep};

#[tokio::test(start_paused = true)]
async fn ordered_stages_keep_input_order_whatever_the_workers_do() {
    let pipeline = Pipeline::<u64>::builder(8)
        .stage("jitter", 8, Order::Ordered, |n: u64| async move {
            sleep(Duration::from_millis((n * 37) % 11)).await;
            Ok(n)
        })
        .stage("reorder", 4, Order::Ordered, |n: u64| async move {
            sleep(Duration::from_millis((n * 13) % 7)).await;
            if n % 10 == 3 {
                Err(Error::new(Kind::InvalidInput, "ends in 3"))
            } else {
                Ok(n)
            }
        })
        .build();
    let (input, output, dead) = pipeline.into_parts();
    let producer = tokio::spawn(async move {
        for n in 0..500u64 {
            input.send(n).await.unwrap();
        }
    });
    let dead_letters = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while let Ok(letter) = dead.recv_async().await {
            assert_eq!(letter.stage, "reorder");
            seqs.push(letter.seq);
        }
        seqs
    });
    let out = output.into_stream_all().await;
    producer.await.unwrap();
    let expected: Vec<u64> = (0..500).filter(|n| n % 10 != 3).collect();
    assert_eq!(
        out, expected,
        "in order, failures removed, nothing lost or duplicated"
    );
    let mut failed = dead_letters.await.unwrap();
    failed.sort();
    assert_eq!(failed, (0..500).filter(|n| n % 10 == 3).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_input_drains_every_item_in_flight() {
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    let pipeline = Pipeline::<u32>::builder(4)
        .stage("slow", 2, Order::Unordered, move |n: u32| {
            let counter = counter.clone();
            async move {
                sleep(Duration::from_millis(50)).await;
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(n)
            }
        })
        .build();
    let (input, output, _dead) = pipeline.into_parts();
    let reader = tokio::spawn(output.into_stream_all());
    for n in 0..20 {
        input.send(n).await.unwrap();
    }
    drop(input);
    let mut out = reader.await.unwrap();
    out.sort();
    assert_eq!(out, (0..20).collect::<Vec<_>>());
    assert_eq!(done.load(Ordering::SeqCst), 20);
}

#[tokio::test(start_paused = true)]
async fn a_slow_stage_holds_the_producer_back() {
    let pipeline = Pipeline::<u32>::builder(2)
        .stage("fast", 4, Order::Ordered, |n: u32| async move { Ok(n) })
        .stage("slow", 1, Order::Ordered, |n: u32| async move {
            sleep(Duration::from_millis(10)).await;
            Ok(n)
        })
        .build();
    let (input, output, _dead) = pipeline.into_parts();
    let reader = tokio::spawn(output.into_stream_all());
    let start = Instant::now();
    for n in 0..100 {
        input.send(n).await.unwrap();
    }
    // Bounded queues everywhere: the producer cannot get more than a few
    // dozen items ahead of a stage that takes 10 ms per item.
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "{:?}",
        start.elapsed()
    );
    drop(input);
    assert_eq!(reader.await.unwrap().len(), 100);
}

#[test]
fn memory_stays_flat_while_a_slow_consumer_holds_the_producer_back() {
    // 20 000 items of 1 KiB through a pipeline whose consumer is slow: with
    // bounded queues only a few dozen are alive at once, so the heap never
    // holds more than a small multiple of that (20 MiB if unbounded).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let info = allocation_counter::measure(|| {
        rt.block_on(async {
            let pipeline = Pipeline::<Vec<u8>>::builder(8)
                .stage("touch", 2, Order::Unordered, |buf: Vec<u8>| async move {
                    Ok(buf)
                })
                .build();
            let (input, output, _dead) = pipeline.into_parts();
            let producer = tokio::spawn(async move {
                for i in 0..20_000u32 {
                    input.send(vec![(i % 251) as u8; 1024]).await.unwrap();
                }
            });
            let mut seen = 0;
            while let Some(buf) = output.recv().await {
                assert_eq!(buf.len(), 1024);
                seen += 1;
                if seen % 100 == 0 {
                    sleep(Duration::from_millis(1)).await; // the slow consumer
                }
            }
            producer.await.unwrap();
            assert_eq!(seen, 20_000);
        })
    });
    assert!(
        info.bytes_max < 2 * 1024 * 1024,
        "peak heap {} bytes for 20 MiB pushed through",
        info.bytes_max
    );
}

/// An ordered stage whose first item is stuck holds the producer back: the
/// items that finish early wait in a bounded window, not an ever-growing
/// buffer, and everything comes out in order once the first is done.
#[tokio::test(start_paused = true)]
async fn an_ordered_stage_with_a_stuck_item_holds_the_producer_back() {
    let pipeline = Pipeline::<u64>::builder(4)
        .stage("ordered", 4, Order::Ordered, |n: u64| async move {
            if n == 0 {
                sleep(Duration::from_secs(10)).await;
            }
            Ok(n)
        })
        .build();
    let (input, output, _dead) = pipeline.into_parts();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let producer = tokio::spawn(async move {
        for n in 0..10_000u64 {
            input.send(n).await.unwrap();
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    sleep(Duration::from_secs(5)).await;
    let held = sent.load(Ordering::Relaxed);
    assert!(
        held < 100,
        "{held} items accepted while the first was stuck: the stage buffers without bound"
    );
    let out = output.into_stream_all().await;
    producer.await.unwrap();
    assert_eq!(out, (0..10_000).collect::<Vec<_>>());
}

/// A send given up while the queue is full leaves its item out but not a
/// gap: the ordered stage moves past its position, nothing stalls.
#[tokio::test(start_paused = true)]
async fn a_cancelled_send_does_not_stall_an_ordered_stage() {
    let pipeline = Pipeline::<u64>::builder(1)
        .stage("slow", 1, Order::Ordered, |n: u64| async move {
            sleep(Duration::from_millis(10)).await;
            Ok(n)
        })
        .build();
    let (input, output, _dead) = pipeline.into_parts();
    let producer = tokio::spawn(async move {
        let mut given_up = Vec::new();
        for n in 0..40u64 {
            // Every fifth send waits at most 1 ms for room: those give up.
            if n % 5 == 4 {
                if tokio::time::timeout(Duration::from_millis(1), input.send(n))
                    .await
                    .is_err()
                {
                    given_up.push(n);
                }
            } else {
                input.send(n).await.unwrap();
            }
        }
        given_up
    });
    let out = tokio::time::timeout(Duration::from_secs(60), output.into_stream_all())
        .await
        .expect("the ordered stage must not stall on a cancelled send");
    let given_up = producer.await.unwrap();
    assert!(!given_up.is_empty(), "the test must cancel some sends");
    let expected: Vec<u64> = (0..40).filter(|n| !given_up.contains(n)).collect();
    assert_eq!(out, expected, "in order, the given-up items left out");
}

/// Many producers at once, some giving up their sends: nothing stalls,
/// every item sent comes out once, the given-up ones never, and each
/// producer's items keep their order.
#[tokio::test(start_paused = true)]
async fn many_producers_cancelling_sends_lose_and_repeat_nothing() {
    let pipeline = Pipeline::<u64>::builder(4)
        .stage("slow", 2, Order::Ordered, |n: u64| async move {
            sleep(Duration::from_millis(1 + n % 3)).await;
            Ok(n)
        })
        .build();
    let (input, output, _dead) = pipeline.into_parts();
    let producers: Vec<_> = (0..40u64)
        .map(|p| {
            let input = input.clone();
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for i in 0..25u64 {
                    let n = p * 1000 + i;
                    let patience = Duration::from_millis(if i % 4 == 3 { 1 } else { 10_000 });
                    if tokio::time::timeout(patience, input.send(n)).await.is_ok() {
                        sent.push(n);
                    }
                }
                sent
            })
        })
        .collect();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(600), output.into_stream_all())
        .await
        .expect("no stall");
    let mut sent = Vec::new();
    for producer in producers {
        sent.extend(producer.await.unwrap());
    }
    assert!(sent.len() < 40 * 25, "the test must give up some sends");
    let mut sorted_out = out.clone();
    sorted_out.sort_unstable();
    sent.sort_unstable();
    assert_eq!(sorted_out, sent, "every item sent exactly once, no other");
    for p in 0..40u64 {
        let mine: Vec<u64> = out.iter().copied().filter(|n| n / 1000 == p).collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "producer {p} out of order: {mine:?}"
        );
    }
}

/// A sender waiting for room wakes with an error once nothing reads the
/// pipeline any more, instead of waiting for ever.
#[tokio::test(start_paused = true)]
async fn a_waiting_send_fails_once_the_pipeline_is_gone() {
    // No stage: the output reads the first queue itself.
    let (input, output, _dead) = Pipeline::<u32>::builder(1).build().into_parts();
    input.send(1).await.unwrap();
    let waiting = tokio::spawn(async move { input.send(2).await });
    tokio::task::yield_now().await;
    drop(output);
    let result = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the send must not wait for ever")
        .unwrap();
    assert_eq!(result.unwrap_err().kind(), Kind::Unavailable);

    // A stage whose output is dropped: its workers stop, and so does the wait.
    let (input, output, _dead) = Pipeline::<u32>::builder(1)
        .stage("pass", 2, Order::Ordered, |n: u32| async move { Ok(n) })
        .build()
        .into_parts();
    drop(output);
    let flood = tokio::spawn(async move {
        for n in 0..100 {
            input.send(n).await?;
        }
        Ok::<_, Error>(())
    });
    let result = tokio::time::timeout(Duration::from_secs(5), flood)
        .await
        .expect("the sends must not wait for ever")
        .unwrap();
    assert_eq!(result.unwrap_err().kind(), Kind::Unavailable);
}

/// A stage that panics on an item fails that item (a dead letter) and goes
/// on; the ordered stage after it does not wait for the position.
#[tokio::test(start_paused = true)]
async fn a_panicking_item_is_a_dead_letter_not_a_stall() {
    let pipeline = Pipeline::<u32>::builder(2)
        .stage("fragile", 2, Order::Ordered, |n: u32| async move {
            sleep(Duration::from_millis(1)).await;
            assert!(n % 7 != 3, "cannot take {n}");
            Ok(n)
        })
        .build();
    let (input, output, dead) = pipeline.into_parts();
    tokio::spawn(async move {
        for n in 0..30 {
            input.send(n).await.unwrap();
        }
    });
    let letters = tokio::spawn(async move {
        let mut letters = Vec::new();
        while let Ok(letter) = dead.recv_async().await {
            letters.push(letter);
        }
        letters
    });
    let out = tokio::time::timeout(Duration::from_secs(60), output.into_stream_all())
        .await
        .expect("no stall");
    assert_eq!(out, (0..30).filter(|n| n % 7 != 3).collect::<Vec<_>>());
    let mut letters = letters.await.unwrap();
    letters.sort_by_key(|l| l.seq);
    assert_eq!(
        letters.iter().map(|l| l.seq).collect::<Vec<_>>(),
        vec![3, 10, 17, 24]
    );
    assert!(letters.iter().all(|l| l.error.kind() == Kind::Internal));
}

/// An ordered stage after an unordered one, with an early item far slower
/// than the rest: every item comes out (the ordered stage keeps its own
/// arrival order, so it never waits for a position that is still behind it
/// in its queue).
#[tokio::test(start_paused = true)]
async fn an_ordered_stage_after_an_unordered_one_with_a_slow_early_item_finishes() {
    let pipeline = Pipeline::<u64>::builder(8)
        .stage("scatter", 8, Order::Unordered, |n: u64| async move {
            if n == 0 {
                sleep(Duration::from_millis(200)).await;
            }
            Ok(n)
        })
        .stage("gather", 4, Order::Ordered, |n: u64| async move {
            sleep(Duration::from_micros(n % 5)).await;
            Ok(n)
        })
        .build();
    let (input, output, _dead) = pipeline.into_parts();
    tokio::spawn(async move {
        for n in 0..2_000u64 {
            input.send(n).await.unwrap();
        }
    });
    let mut out = tokio::time::timeout(Duration::from_secs(60), output.into_stream_all())
        .await
        .expect("the pipeline must finish");
    out.sort_unstable();
    assert_eq!(out, (0..2_000).collect::<Vec<_>>());
}

/// After an unordered stage, an ordered stage keeps the order its items
/// arrived in: here the order the unordered stage finished them (each is
/// stamped as it finishes, and the queue has room for all, so each goes
/// into the queue as it is stamped).
#[tokio::test(start_paused = true)]
async fn an_ordered_stage_after_an_unordered_one_keeps_its_arrival_order() {
    let stamps = Arc::new(AtomicUsize::new(0));
    let stamp = stamps.clone();
    let pipeline = Pipeline::<u64>::builder(512)
        .stage("scatter", 8, Order::Unordered, move |n: u64| {
            let stamp = stamp.clone();
            async move {
                sleep(Duration::from_millis((n * 37) % 11)).await;
                Ok((n, stamp.fetch_add(1, Ordering::SeqCst)))
            }
        })
        .stage(
            "gather",
            4,
            Order::Ordered,
            |(n, stamp): (u64, usize)| async move {
                sleep(Duration::from_millis((n * 13) % 7)).await;
                Ok((n, stamp))
            },
        )
        .build();
    let (input, output, _dead) = pipeline.into_parts();
    for n in 0..500u64 {
        input.send(n).await.unwrap();
    }
    drop(input);
    let out = output.into_stream_all().await;
    let order: Vec<usize> = out.iter().map(|&(_, stamp)| stamp).collect();
    assert_eq!(
        order,
        (0..500).collect::<Vec<_>>(),
        "in the order they finished upstream"
    );
    let ns: Vec<u64> = out.iter().map(|&(n, _)| n).collect();
    assert_ne!(
        ns,
        (0..500).collect::<Vec<_>>(),
        "the unordered stage must reorder for this test to mean anything"
    );
}
