//! Overload: ten times the configured concurrency offered at once. The
//! excess is rejected (503 or 429) fast, admitted requests keep a p99
//! within 2× the unloaded p99, resident memory stays bounded, and nothing
//! but the documented statuses comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::client::Conn;
use crate::service::PeakRss;
use crate::stats::{Samples, mib, ms};
use crate::timeline::{Outcome, Timeline};
use crate::{Ctx, Report};

/// Each request holds a slot this long.
const WORK: &str = "/v1/demo/delay?ms=20";
/// How often each client sends (open loop: a late answer delays only its
/// own client).
const PERIOD: Duration = Duration::from_millis(20);
/// Resident memory may grow at most this much over its start.
const RSS_GROWTH_BOUND: u64 = 128 * 1024 * 1024;

struct Phase {
    admitted: Samples,
    rejected: Samples,
    other: Vec<String>,
}

async fn drive(
    addr: std::net::SocketAddr,
    clients: usize,
    length: Duration,
    timeline: &Timeline,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let stop = stop.clone();
        let timeline = timeline.clone();
        tasks.push(tokio::spawn(async move {
            let mut admitted = Samples::default();
            let mut rejected = Samples::default();
            let mut other = Vec::new();
            let mut conn = match Conn::open(addr).await {
                Ok(conn) => conn,
                Err(err) => return (admitted, rejected, vec![format!("connect: {err:?}")]),
            };
            let mut ticks = tokio::time::interval(PERIOD);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                let sent = Instant::now();
                let reply = conn.get(WORK).await;
                let refused = |reply: &crate::client::Reply| {
                    matches!(reply.status, 503 | 429)
                        && reply.is_problem()
                        && reply.headers.contains_key("retry-after")
                };
                let outcome = match &reply {
                    Ok(reply) if reply.status == 200 => Outcome::Ok,
                    Ok(reply) if refused(reply) => Outcome::Refused,
                    _ => Outcome::Error,
                };
                timeline.request(sent, sent.elapsed(), outcome);
                match reply {
                    Ok(reply) if reply.status == 200 => admitted.push(reply.latency),
                    Ok(reply) if refused(&reply) => rejected.push(reply.latency),
                    Ok(reply) => other.push(format!(
                        "status {} problem={}",
                        reply.status,
                        reply.is_problem()
                    )),
                    Err(err) => {
                        other.push(format!("{err:?}"));
                        match Conn::open(addr).await {
                            Ok(fresh) => conn = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (admitted, rejected, other)
        }));
    }
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let mut phase = Phase {
        admitted: Samples::default(),
        rejected: Samples::default(),
        other: Vec::new(),
    };
    for task in tasks {
        if let Ok((admitted, rejected, other)) = task.await {
            phase.admitted.extend(admitted);
            phase.rejected.extend(rejected);
            phase.other.extend(other);
        }
    }
    phase
}

pub(crate) async fn run(ctx: &Ctx) -> Report {
    let limit: usize = if ctx.short { 16 } else { 32 };
    let (baseline_for, overload_for) = if ctx.short {
        (Duration::from_secs(1), Duration::from_secs(2))
    } else {
        (Duration::from_secs(3), Duration::from_secs(10))
    };
    let mut report = Report::default();
    let mut env = super::base_env();
    env.push(("REFSVC_SERVER__CONCURRENCY_LIMIT", limit.to_string()));
    let Some(service) = super::start(ctx, &env, &mut report) else {
        return report;
    };
    let addr = service.addr;

    let timeline = Timeline::start();
    let mut baseline = drive(addr, limit / 4, baseline_for, &timeline).await;
    let start_rss = service.rss();
    let peak = PeakRss::start(service.pid(), start_rss, Duration::from_millis(50));
    timeline.event("10× the limit offered");
    let mut overload = drive(addr, limit * 10, overload_for, &timeline).await;
    timeline.event("load stops");
    let peak = peak.stop().await;
    report.timeline(
        format!("{} clients, then {} (limit {limit})", limit / 4, limit * 10),
        &timeline,
    );

    let unloaded_p99 = baseline.admitted.percentile(99.0);
    let admitted_p99 = overload.admitted.percentile(99.0);
    let rejected_p99 = overload.rejected.percentile(99.0);
    report.figure(
        "concurrency limit / clients offered",
        format!("{limit} / {}", limit * 10),
    );
    report.figure("unloaded p99 (20 ms handler)", ms(unloaded_p99));
    report.figure(
        "admitted under overload: count, p99",
        format!("{}, {}", overload.admitted.len(), ms(admitted_p99)),
    );
    report.figure(
        "rejected (503/429 + Retry-After): count, p99, max",
        format!(
            "{}, {}, {}",
            overload.rejected.len(),
            ms(rejected_p99),
            ms(overload.rejected.max())
        ),
    );
    report.figure(
        "RSS start → peak",
        format!("{} → {}", mib(start_rss), mib(peak)),
    );
    report.figure(
        "other outcomes",
        (baseline.other.len() + overload.other.len()).to_string(),
    );

    report.check(
        baseline.other.is_empty() && baseline.rejected.len() == 0,
        || {
            format!(
                "the unloaded phase was not clean: {} rejected, {:?}",
                baseline.rejected.len(),
                baseline.other.first()
            )
        },
    );
    report.check(overload.rejected.len() > 0, || {
        "nothing was rejected: no overload happened".to_owned()
    });
    report.check(rejected_p99 < Duration::from_millis(10), || {
        format!("rejections p99 {} ≥ 10 ms", ms(rejected_p99))
    });
    report.check(admitted_p99 <= unloaded_p99 * 2, || {
        format!(
            "admitted p99 {} > 2 × unloaded p99 {}",
            ms(admitted_p99),
            ms(unloaded_p99)
        )
    });
    report.check(overload.other.is_empty(), || {
        format!(
            "{} undocumented outcomes, e.g. {:?}",
            overload.other.len(),
            overload.other.first()
        )
    });
    report.check(peak.saturating_sub(start_rss) <= RSS_GROWTH_BOUND, || {
        format!(
            "RSS grew by {} (bound {})",
            mib(peak - start_rss),
            mib(RSS_GROWTH_BOUND)
        )
    });
    let _ = service.finish(&mut report);
    report
}
