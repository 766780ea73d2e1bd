//! A database outage under a steady write load: PostgreSQL (the throwaway
//! cluster of `cargo xtask pg`) is stopped for 5 s and started again.
//! During the outage writes fail fast with a 503 problem and readiness is
//! false; after it the service recovers within 5 s without restarting;
//! every write answered 201 is in the database afterwards.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::client::Conn;
use crate::stats::{Samples, ms};
use crate::timeline::{Outcome, Timeline};
use crate::{Ctx, Report};

const OUTAGE: Duration = Duration::from_secs(5);
const WRITERS: usize = 8;

async fn stored_ids(url: &str) -> Result<BTreeSet<i64>, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let rows = client
        .query("SELECT id FROM items", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0)).collect())
}

/// What writers got.
#[derive(Default)]
pub(super) struct Writes {
    /// Ids answered 201, and when each was sent.
    pub(super) created: Vec<(i64, Instant)>,
    /// 503 problems: sent when, latency, status.
    pub(super) failed: Vec<(Instant, Duration, u16)>,
    /// Anything else.
    pub(super) other: Vec<String>,
}

/// `count` writers posting items (named `{prefix}{writer}-{n}`) over a
/// keep-alive connection each, reopened when lost, until `stop`; each
/// request recorded in `timeline`, if given.
pub(super) fn writers(
    addr: SocketAddr,
    count: usize,
    prefix: &'static str,
    stop: &Arc<AtomicBool>,
    timeline: Option<&Timeline>,
) -> Vec<tokio::task::JoinHandle<Writes>> {
    (0..count)
        .map(|w| {
            let stop = stop.clone();
            let timeline = timeline.cloned();
            tokio::spawn(async move {
                let mut writes = Writes::default();
                let mut conn = Conn::open(addr).await.ok();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let Some(c) = conn.as_mut() else {
                        conn = Conn::open(addr).await.ok();
                        continue;
                    };
                    let sent = Instant::now();
                    let reply = c.post_item(&format!("{prefix}{w}-{n}")).await;
                    if let Some(timeline) = &timeline {
                        let outcome = match &reply {
                            Ok(reply) if reply.status == 201 => Outcome::Ok,
                            Ok(reply) if reply.status == 503 && reply.is_problem() => {
                                Outcome::Refused
                            }
                            _ => Outcome::Error,
                        };
                        timeline.request(sent, sent.elapsed(), outcome);
                    }
                    match reply {
                        Ok(reply) if reply.status == 201 => {
                            let data: serde_json::Value =
                                serde_json::from_slice(&reply.body).unwrap_or_default();
                            match data["data"]["id"].as_i64() {
                                Some(id) => writes.created.push((id, sent)),
                                None => writes.other.push("201 without an id".to_owned()),
                            }
                        }
                        Ok(reply) if reply.status == 503 && reply.is_problem() => {
                            writes.failed.push((sent, reply.latency, 503))
                        }
                        Ok(reply) => writes.other.push(format!(
                            "status {} {}",
                            reply.status,
                            String::from_utf8_lossy(&reply.body)
                        )),
                        Err(err) => {
                            writes.other.push(format!("{err:?}"));
                            conn = Conn::open(addr).await.ok();
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                writes
            })
        })
        .collect()
}

pub(crate) async fn run(ctx: &Ctx) -> Report {
    let mut report = Report::default();
    let Some((cluster, db_url, env)) =
        super::with_database(&mut report, "reliability_outage").await
    else {
        return report;
    };
    let Some(service) = super::start(ctx, &env, &mut report) else {
        return report;
    };
    let addr = service.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let timeline = Timeline::start();
    let writers = writers(addr, WRITERS, "w", &stop, Some(&timeline));
    let readiness = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut conn = Conn::open(addr).await.ok();
            while !stop.load(Ordering::Relaxed) {
                if let Some(c) = conn.as_mut() {
                    match c.get("/health/ready").await {
                        Ok(reply) => seen.push((Instant::now(), reply.status == 200)),
                        Err(_) => conn = Conn::open(addr).await.ok(),
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    let down = Instant::now();
    timeline.event("PostgreSQL stopped");
    if let Err(err) = cluster.ctl("stop").await {
        report.broken.push(err);
    }
    let stopped = Instant::now();
    tokio::time::sleep(OUTAGE.saturating_sub(stopped - down)).await;
    let up_command = Instant::now();
    timeline.event("PostgreSQL started");
    if let Err(err) = cluster.ctl("start").await {
        report.broken.push(err);
    }
    let up = Instant::now();
    tokio::time::sleep(Duration::from_secs(if ctx.short { 7 } else { 10 })).await;
    stop.store(true, Ordering::Relaxed);
    let mut writes = Writes::default();
    for writer in writers {
        if let Ok(w) = writer.await {
            writes.created.extend(w.created);
            writes.failed.extend(w.failed);
            writes.other.extend(w.other);
        }
    }
    let seen = readiness.await.unwrap_or_default();

    // Failures during the outage (the cluster fully down), and their speed.
    let mut during = Samples::default();
    for (sent, latency, _) in &writes.failed {
        if *sent >= stopped && *sent < up_command {
            during.push(*latency);
        }
    }
    let recovered = writes
        .created
        .iter()
        .filter(|(_, sent)| *sent >= up)
        .map(|(_, sent)| *sent - up)
        .min();
    let not_ready = seen
        .iter()
        .filter(|(at, ready)| *at >= stopped && *at < up_command && !ready)
        .count();
    let ready_during = seen
        .iter()
        .filter(|(at, ready)| {
            *at >= stopped + Duration::from_millis(500) && *at < up_command && *ready
        })
        .count();
    let ready_at_end = seen.last().is_some_and(|(_, ready)| *ready);
    let ids = match stored_ids(&db_url).await {
        Ok(ids) => ids,
        Err(err) => {
            report.broken.push(format!("reading the items back: {err}"));
            BTreeSet::new()
        }
    };
    let missing = writes
        .created
        .iter()
        .filter(|(id, _)| !ids.contains(id))
        .count();

    report.figure("writes answered 201", writes.created.len().to_string());
    report.figure(
        "writes answered 503 during the outage: count, p99, max",
        format!(
            "{}, {}, {}",
            during.len(),
            ms(during.percentile(99.0)),
            ms(during.max())
        ),
    );
    report.figure(
        "readiness during the outage",
        format!("{not_ready} reads not ready, {ready_during} ready"),
    );
    report.figure(
        "recovery after the restart (first 201)",
        recovered.map_or("never".to_owned(), ms),
    );
    report.figure(
        "201s missing from the database afterwards",
        format!("{missing} of {}", writes.created.len()),
    );
    report.figure("other outcomes", writes.other.len().to_string());

    report.check(during.len() > 0, || {
        "no write was attempted during the outage".to_owned()
    });
    report.check(during.percentile(99.0) < Duration::from_millis(100), || {
        format!(
            "outage failures p99 {} ≥ 100 ms",
            ms(during.percentile(99.0))
        )
    });
    report.check(not_ready > 0 && ready_during == 0, || {
        format!("readiness during the outage: {not_ready} not ready, {ready_during} ready")
    });
    report.check(
        recovered.is_some_and(|r| r <= Duration::from_secs(5)),
        || format!("recovery took {recovered:?}"),
    );
    report.check(ready_at_end, || "not ready at the end".to_owned());
    report.check(missing == 0, || {
        format!("{missing} writes answered 201 are missing")
    });
    report.check(writes.other.is_empty(), || {
        format!(
            "{} undocumented outcomes, e.g. {:?}",
            writes.other.len(),
            writes.other.first()
        )
    });
    report.timeline(
        format!("PostgreSQL stopped for {OUTAGE:?} under {WRITERS} writers"),
        &timeline,
    );
    // It must recover without a restart: dead is broken.
    let _ = service.finish(&mut report);
    report
}
