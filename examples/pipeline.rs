//! A fan-out / fan-in pipeline with a slow stage: back pressure, an
//! autoscaling worker pool, and keyed partitioning that keeps each key's
//! order.
//!
//! ```text
//! cargo run --example pipeline
//! ```
//!
//! Payment records flow through:
//!
//! ```text
//! producer ─▶ pipeline: parse (2 workers) ─▶ enrich (4 workers, slow)
//!          ─▶ partitioner by account ─▶ ledger-a | ledger-b | ledger-c   (fan-out)
//!          ─▶ merge of their receipts                                     (fan-in)
//!          ─▶ worker pool "notify", 1 to 8 workers, scaling with its queue
//! ```
//!
//! The producer sends a burst of 2000 records as fast as it can, then one
//! record every 100 ms for 2 s. Every queue is bounded, so the slow stage
//! holds the producer back instead of letting memory grow; the pool grows
//! under the burst and shrinks once it is over; both stages keep input
//! order and each account goes to one ledger, so every account's records
//! arrive in order. A few malformed records end up as dead letters.
//! Progress is printed every 500 ms; the run takes about four seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use patterns::error::{Context, Error, Kind, Result};
use patterns::network::fan::merge;
use patterns::network::flume;
use patterns::network::partition::Partitioner;
use patterns::network::pipeline::{Input, Order, Pipeline};
use patterns::network::scale::WorkerPool;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Records in the burst.
const BURST: u64 = 2000;
/// Records after the burst, one every [`TRICKLE_EVERY`].
const TRICKLE: u64 = 20;
const TRICKLE_EVERY: Duration = Duration::from_millis(100);
/// Capacity of every queue: the pipeline's, the ledgers' and the receipts'.
const CAPACITY: usize = 32;
/// Capacity of the notify pool's queue.
const POOL_QUEUE: usize = 64;
/// Accounts the records belong to (the partitioning key).
const ACCOUNTS: u64 = 16;
/// Every this many records, one is malformed.
const MALFORMED_EVERY: u64 = 500;
const LEDGERS: [&str; 3] = ["ledger-a", "ledger-b", "ledger-c"];

#[tokio::main]
async fn main() -> Result<()> {
    let clock = Clock(Instant::now());
    let stats = Arc::new(Stats::default());

    // Two ordered stages; `enrich` is the slow one.
    let (input, output, dead) = Pipeline::<String>::builder(CAPACITY)
        .stage("parse", 2, Order::Ordered, parse)
        .stage("enrich", 4, Order::Ordered, enrich)
        .build()
        .into_parts();
    // Dead letters must be read: their queue is bounded too.
    let dead_letters = tokio::spawn(async move {
        let mut letters = Vec::new();
        while let Ok(letter) = dead.recv_async().await {
            letters.push(format!("{}: {}", letter.stage, letter.error.report()));
        }
        letters
    });

    let (partitioner, ledgers, receipts) = start_ledgers();

    // The notify pool grows when a submission finds its queue a quarter
    // full or every worker busy, and loses a worker idle for 200 ms; at
    // most one change per 100 ms.
    let pool = {
        let stats = stats.clone();
        Arc::new(
            WorkerPool::builder("notify", 1, 8)
                .queue(POOL_QUEUE)
                .cooldown(Duration::from_millis(100))
                .idle_timeout(Duration::from_millis(200))
                .spawn(move |receipt: Receipt| notify(receipt, stats.clone())),
        )
    };
    println!();

    let producer = tokio::spawn(produce(input, stats.clone(), clock));
    let router = {
        let stats = stats.clone();
        tokio::spawn(async move {
            while let Some(payment) = output.recv().await {
                stats.left_pipeline.fetch_add(1, Ordering::Relaxed);
                let key = payment.account.clone();
                partitioner.send(&key, payment).await?;
            }
            Ok::<_, Error>(())
        })
    };
    let progress = tokio::spawn(report_progress(pool.clone(), stats.clone(), clock));

    while let Ok(receipt) = receipts.recv_async().await {
        pool.submit(receipt).await?;
        stats.sample_pool(&pool);
    }
    let produced = producer.await.context("the producer panicked")??;
    router.await.context("the router panicked")??;
    progress.abort();
    let _ = progress.await; // it holds a handle on the pool
    let pool = Arc::into_inner(pool).expect("the progress reporter has ended");
    let workers_at_end = pool.workers();
    let report = pool.stop().await;
    let elapsed = clock.0.elapsed();
    clock.say(format_args!("all queues drained"));

    let letters = dead_letters
        .await
        .context("the dead-letter reader panicked")?;
    println!(
        "\n{} records in {:.2} s: {} notified, {} dead letters",
        BURST + TRICKLE,
        elapsed.as_secs_f64(),
        report.processed,
        letters.len(),
    );
    if let Some(letter) = letters.first() {
        println!("  e.g. {letter}");
    }
    println!(
        "throughput: {:.0} records/s during the burst (the slow stage's pace), {:.0}/s over the run",
        BURST as f64 / produced.burst.as_secs_f64(),
        report.processed as f64 / elapsed.as_secs_f64(),
    );
    println!(
        "back pressure: the producer waited for room {:.2} s of the {:.2} s its burst took ({:.0} %); \
         at most {} of the {} records were inside the pipeline at once",
        produced.waited.as_secs_f64(),
        produced.burst.as_secs_f64(),
        100.0 * produced.waited.as_secs_f64() / produced.burst.as_secs_f64(),
        stats.max_inside.load(Ordering::Relaxed),
        BURST + TRICKLE,
    );
    println!(
        "notify pool: queue at most {} of {POOL_QUEUE}; workers 1 -> {} -> {}; {} failed",
        stats.max_pool_queue.load(Ordering::Relaxed),
        stats.max_workers.load(Ordering::Relaxed),
        workers_at_end,
        report.failed,
    );
    let mut out_of_order = 0;
    for ledger in ledgers {
        let ledger = ledger.await.context("a ledger panicked")?;
        println!(
            "  {}: {} records of {} accounts, {} out of order",
            ledger.name, ledger.records, ledger.accounts, ledger.out_of_order
        );
        out_of_order += ledger.out_of_order;
    }
    match out_of_order {
        0 => println!("per-account order: kept"),
        n => println!("per-account order: {n} records out of order"),
    }
    Ok(())
}

/// The fan-out by account (each account's records go to one ledger, in
/// order) and the fan-in of the ledgers' receipts into one queue.
fn start_ledgers() -> (
    Partitioner<Payment>,
    Vec<JoinHandle<LedgerReport>>,
    flume::Receiver<Receipt>,
) {
    let mut partitioner = Partitioner::new(100);
    let mut ledgers = Vec::new();
    let mut receipts = Vec::new();
    for name in LEDGERS {
        let (payments, rebalance) = partitioner.add_worker(name, CAPACITY);
        println!(
            "{name} joins: {:.0} % of the accounts move to it",
            rebalance.moved_share * 100.0
        );
        let (sender, receiver) = flume::bounded(CAPACITY);
        ledgers.push(tokio::spawn(ledger(name, payments, sender)));
        receipts.push(receiver);
    }
    let owners: Vec<_> = (0..ACCOUNTS)
        .map(|a| partitioner.worker_for(&account(a)).unwrap_or("none"))
        .collect();
    for name in LEDGERS {
        let mine = owners.iter().filter(|owner| **owner == name).count();
        println!("  {name} owns {mine} of the {ACCOUNTS} accounts");
    }
    (partitioner, ledgers, merge(receipts, CAPACITY))
}

/// Prints lines stamped with the time since the start.
#[derive(Clone, Copy, Debug)]
struct Clock(Instant);

impl Clock {
    fn say(&self, what: std::fmt::Arguments<'_>) {
        println!("{:>6.2}s  {what}", self.0.elapsed().as_secs_f64());
    }
}

/// Counters shared by the tasks, read by the progress reporter.
#[derive(Debug, Default)]
struct Stats {
    /// Records the pipeline accepted.
    sent: AtomicU64,
    /// Records out of the pipeline.
    left_pipeline: AtomicU64,
    /// Receipts the pool has finished.
    notified: AtomicU64,
    max_inside: AtomicU64,
    max_pool_queue: AtomicUsize,
    max_workers: AtomicUsize,
}

impl Stats {
    /// Notes the pool's queue depth and workers; returns them.
    fn sample_pool(&self, pool: &WorkerPool<Receipt>) -> (usize, usize) {
        let (queued, workers) = (pool.queued(), pool.workers());
        self.max_pool_queue.fetch_max(queued, Ordering::Relaxed);
        self.max_workers.fetch_max(workers, Ordering::Relaxed);
        (queued, workers)
    }
}

/// What the producer measured.
#[derive(Debug)]
struct Produced {
    /// How long the burst took to send.
    burst: Duration,
    /// How long the producer waited in `send` for room, in all.
    waited: Duration,
}

/// Sends the burst, then the trickle; dropping the input at the end drains
/// and closes the pipeline.
async fn produce(input: Input<String>, stats: Arc<Stats>, clock: Clock) -> Result<Produced> {
    let start = Instant::now();
    let mut waited = Duration::ZERO;
    let mut burst = Duration::ZERO;
    let mut next_of = [0u64; ACCOUNTS as usize];
    for seq in 0..BURST + TRICKLE {
        if seq == BURST {
            burst = start.elapsed();
            clock.say(format_args!(
                "burst sent; now one record every {TRICKLE_EVERY:?}"
            ));
        }
        if seq >= BURST {
            tokio::time::sleep(TRICKLE_EVERY).await;
        }
        // Accounts in a scrambled but fixed order; `n` numbers each
        // account's records, so the ledgers can check their order.
        let a = seq * 7 % ACCOUNTS;
        let n = next_of[a as usize];
        next_of[a as usize] += 1;
        let record = if seq % MALFORMED_EVERY == MALFORMED_EVERY - 1 {
            format!("{},{n},twelve", account(a))
        } else {
            format!("{},{n},{}", account(a), 100 + seq * 37 % 9000)
        };
        let asked = Instant::now();
        input.send(record).await?;
        waited += asked.elapsed();
        let sent = stats.sent.fetch_add(1, Ordering::Relaxed) + 1;
        let inside = sent - stats.left_pipeline.load(Ordering::Relaxed);
        stats.max_inside.fetch_max(inside, Ordering::Relaxed);
    }
    Ok(Produced { burst, waited })
}

fn account(a: u64) -> String {
    format!("acct-{a:02}")
}

/// Every 500 ms: how far the records got, and the pool's queue and workers.
async fn report_progress(pool: Arc<WorkerPool<Receipt>>, stats: Arc<Stats>, clock: Clock) {
    let mut every = tokio::time::interval(Duration::from_millis(500));
    every.tick().await;
    loop {
        every.tick().await;
        let (queued, workers) = stats.sample_pool(&pool);
        let sent = stats.sent.load(Ordering::Relaxed);
        let left = stats.left_pipeline.load(Ordering::Relaxed);
        clock.say(format_args!(
            "sent {sent:>4}  in pipeline {:>3}  notified {:>4}  pool queue {queued:>2}/{POOL_QUEUE}  workers {workers}",
            sent.saturating_sub(left),
            stats.notified.load(Ordering::Relaxed),
        ));
    }
}

/// A parsed payment record.
#[derive(Debug)]
struct Payment {
    account: String,
    /// The account's `n`-th record.
    n: u64,
    cents: u64,
    fee: u64,
}

/// Stage 1, quick: `account,n,cents` into a [`Payment`].
async fn parse(record: String) -> Result<Payment> {
    let fields: Vec<&str> = record.split(',').collect();
    let [account, n, cents] = fields[..] else {
        return Err(Error::new(
            Kind::Malformed,
            format!("{record:?}: expected account,n,cents"),
        ));
    };
    let number = |field: &str, what: &'static str| {
        field.parse::<u64>().context_kind(
            Kind::Malformed,
            format!("{record:?}: {what} is not a number"),
        )
    };
    Ok(Payment {
        account: account.to_owned(),
        n: number(n, "n")?,
        cents: number(cents, "the amount")?,
        fee: 0,
    })
}

/// Stage 2, deliberately slow: 2 to 4 ms per record (a lookup elsewhere).
async fn enrich(mut payment: Payment) -> Result<Payment> {
    tokio::time::sleep(Duration::from_millis(2 + payment.cents % 3)).await;
    payment.fee = payment.cents / 100 + 5;
    Ok(payment)
}

/// What a ledger hands on for each payment it booked.
#[derive(Debug)]
struct Receipt {
    account: String,
    balance: u64,
}

/// What a ledger saw.
#[derive(Debug)]
struct LedgerReport {
    name: &'static str,
    records: u64,
    accounts: usize,
    out_of_order: u64,
}

/// Books the payments of the accounts it owns, checking that each
/// account's records come in order, and sends a receipt for each.
async fn ledger(
    name: &'static str,
    payments: flume::Receiver<Payment>,
    receipts: flume::Sender<Receipt>,
) -> LedgerReport {
    let mut last_n: HashMap<String, u64> = HashMap::new();
    let mut balances: HashMap<String, u64> = HashMap::new();
    let (mut records, mut out_of_order) = (0, 0);
    while let Ok(payment) = payments.recv_async().await {
        records += 1;
        if last_n
            .insert(payment.account.clone(), payment.n)
            .is_some_and(|previous| payment.n <= previous)
        {
            out_of_order += 1;
        }
        let balance = balances.entry(payment.account.clone()).or_default();
        *balance += payment.cents.saturating_sub(payment.fee);
        let receipt = Receipt {
            balance: *balance,
            account: payment.account,
        };
        if receipts.send_async(receipt).await.is_err() {
            break; // nobody reads receipts any more
        }
    }
    LedgerReport {
        name,
        records,
        accounts: last_n.len(),
        out_of_order,
    }
}

/// The pool's job: tell the account holder (3 ms of I/O).
async fn notify(receipt: Receipt, stats: Arc<Stats>) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(3)).await;
    // The message a real notifier would send.
    let _message = format!("{}: balance {}", receipt.account, receipt.balance);
    stats.notified.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
