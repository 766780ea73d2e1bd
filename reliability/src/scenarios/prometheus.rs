//! A real Prometheus scrapes the service (every second, with the shipped
//! rules) through a steady load, a database outage and an overload; then
//! its answers are checked against what the load measured:
//!
//! - the request rate it computes is within 10 % of the load's;
//! - its p99 (`histogram_quantile` over the buckets) lies in the bucket
//!   that holds the load's own p99: a histogram knows a latency to its
//!   bucket, no closer;
//! - the outage's burst of 503s fires `HttpErrorBudgetBurnFast`, which was
//!   not firing before it;
//! - the requests the overload shed are the ones `bulkhead_rejections_total`
//!   counts;
//! - every panel query of the shipped dashboard returns data, and the
//!   breaker panel shows the database breaker open.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use patterns::server::ops::DEFAULT_BUCKETS;

use crate::client::Conn;
use crate::cluster::Cluster;
use crate::prometheus::{self, JOB, Prometheus, unix_now};
use crate::stats::{Samples, ms};
use crate::{Ctx, Report};

/// The shipped dashboard.
const DASHBOARD: &str = include_str!("../../../observability/grafana/patterns-service.json");

/// The alert the outage must fire.
const BURN_ALERT: &str = "HttpErrorBudgetBurnFast";

/// The service's concurrency limit and admission queue in this scenario.
const CONCURRENCY: usize = 16;
const QUEUE: usize = 8;

/// One request of the steady load's delay clients in this many is slow.
const SLOW_EVERY: u64 = 20;
const FAST: &str = "/v1/demo/delay?ms=2";
const SLOW: &str = "/v1/demo/delay?ms=30";

/// What the steady load measured.
#[derive(Default)]
struct Steady {
    /// Requests answered (every route).
    answered: u64,
    /// Latencies of the delay route.
    delays: Samples,
    other: Vec<String>,
}

/// Runs `clients` connections on the delay route (one request in
/// [`SLOW_EVERY`] slow) and `writers` on the items routes until `until`.
async fn steady(addr: SocketAddr, clients: usize, writers: usize, until: Instant) -> Steady {
    let mut tasks = Vec::new();
    for c in 0..clients + writers {
        let delay_client = c < clients;
        tasks.push(tokio::spawn(async move {
            let mut tally = Steady::default();
            let mut conn = match Conn::open(addr).await {
                Ok(conn) => conn,
                Err(err) => {
                    tally.other.push(format!("connect: {err:?}"));
                    return tally;
                }
            };
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let reply = if delay_client {
                    let path = if n.is_multiple_of(SLOW_EVERY) {
                        SLOW
                    } else {
                        FAST
                    };
                    conn.get(path).await
                } else if n.is_multiple_of(2) {
                    conn.get("/v1/items?limit=5").await
                } else {
                    conn.post_item(&format!("steady-{c}-{n}")).await
                };
                match reply {
                    Ok(reply) if matches!(reply.status, 200 | 201) => {
                        tally.answered += 1;
                        if delay_client {
                            tally.delays.push(reply.latency);
                        }
                    }
                    Ok(reply) => {
                        tally.answered += 1;
                        tally.other.push(format!("status {}", reply.status));
                    }
                    Err(err) => {
                        tally.other.push(format!("{err:?}"));
                        return tally;
                    }
                }
            }
            tally
        }));
    }
    let mut all = Steady::default();
    for task in tasks {
        if let Ok(tally) = task.await {
            all.answered += tally.answered;
            all.delays.extend(tally.delays);
            all.other.extend(tally.other);
        }
    }
    all
}

/// `clients` requests at once, each holding a slot 300 ms: the excess is
/// shed. How many were shed (503).
async fn overload(addr: SocketAddr, clients: usize) -> (usize, Vec<String>) {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await.map_err(|e| format!("{e:?}"))?;
            conn.get("/v1/demo/delay?ms=300")
                .await
                .map(|reply| reply.status)
                .map_err(|e| format!("{e:?}"))
        }));
    }
    let mut shed = 0;
    let mut other = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok(503)) => shed += 1,
            Ok(Ok(200)) => {}
            Ok(Ok(status)) => other.push(format!("status {status}")),
            Ok(Err(err)) => other.push(err),
            Err(err) => other.push(err.to_string()),
        }
    }
    (shed, other)
}

/// The bucket `(lower, upper]` of [`DEFAULT_BUCKETS`] that holds `seconds`.
fn bucket_of(seconds: f64) -> (f64, f64) {
    let mut lower = 0.0;
    for &upper in DEFAULT_BUCKETS {
        if seconds <= upper {
            return (lower, upper);
        }
        lower = upper;
    }
    (lower, f64::INFINITY)
}

/// Every panel query of the dashboard: `(panel title, expression)`, with
/// Grafana's variables as this scrape sets them.
fn panel_queries() -> Result<Vec<(String, String)>, String> {
    let dashboard: serde_json::Value =
        serde_json::from_str(DASHBOARD).map_err(|e| format!("the dashboard's JSON: {e}"))?;
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("(untitled)").to_owned();
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        let Some(targets) = targets else {
            return Err(format!("panel {title:?} has no query"));
        };
        for target in targets {
            let expr = target["expr"]
                .as_str()
                .ok_or_else(|| format!("panel {title:?} has a target without an expression"))?;
            let expr = expr
                .replace("$__rate_interval", "4s")
                .replace("$job", JOB)
                .replace("$instance", ".*");
            queries.push((title.clone(), expr));
        }
    }
    Ok(queries)
}

pub(crate) async fn run(ctx: &Ctx) -> Report {
    let mut report = Report::default();
    let Some(binary) = prometheus::binary() else {
        super::missing(
            &mut report,
            "Prometheus",
            "install Debian's prometheus, or set PATTERNS_PROMETHEUS",
        );
        return report;
    };
    let Some((cluster, _, mut env)) =
        super::with_database(&mut report, "reliability_prometheus").await
    else {
        return report;
    };
    env.extend([
        ("REFSVC_SERVER__CONCURRENCY_LIMIT", CONCURRENCY.to_string()),
        ("REFSVC_SERVER__QUEUE_DEPTH", QUEUE.to_string()),
        ("REFSVC_SERVER__QUEUE_WAIT_MS", "50".to_owned()),
    ]);
    let Some(service) = super::start(ctx, &env, &mut report) else {
        return report;
    };
    let prom = match Prometheus::start(&binary, service.addr).await {
        Ok(prom) => prom,
        Err(err) => {
            report.broken.push(err);
            let _ = service.finish(&mut report);
            return report;
        }
    };
    let began = unix_now();
    let checks = Checks {
        ctx,
        prom: &prom,
        cluster: &cluster,
        addr: service.addr,
    };
    checks.all(began, &mut report).await;
    let log = prom.log();
    if !report.broken.is_empty() && !log.trim().is_empty() {
        report.broken.push(format!("Prometheus's log:\n{log}"));
    }
    drop(prom);
    let _ = service.finish(&mut report);
    report
}

/// The scenario's phases, each checking what Prometheus says of it.
struct Checks<'a> {
    ctx: &'a Ctx,
    prom: &'a Prometheus,
    cluster: &'a Cluster,
    addr: SocketAddr,
}

impl Checks<'_> {
    async fn all(&self, began: f64, report: &mut Report) {
        self.steady(report).await;
        self.outage(report).await;
        self.overload(report).await;
        // Two more scrapes and rule evaluations, then the whole scenario
        // through each panel's query.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        self.panels(began, unix_now(), report).await;
    }

    /// The steady load: rate and p99 as Prometheus computes them against
    /// the load's own.
    async fn steady(&self, report: &mut Report) {
        let length = Duration::from_secs(if self.ctx.short { 6 } else { 15 });
        let started = Instant::now();
        let from = unix_now();
        let load = steady(self.addr, 4, 2, started + length).await;
        let took = started.elapsed().as_secs_f64();
        let to = from + took;
        let mut delays = load.delays;
        let client_rate = load.answered as f64 / took;
        let client_p99 = delays.percentile(99.0).as_secs_f64();
        // The last scrape of the phase is at most a second behind it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let window = took.floor().max(2.0) as u64;
        let rate = self
            .scalar(
                &format!(
                    r#"sum(rate(http_requests_total{{job="{JOB}",route!="/metrics"}}[{window}s]))"#
                ),
                to,
                report,
            )
            .await;
        let p99 = self
            .scalar(
                &format!(
                    r#"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{job="{JOB}",route="/v1/demo/delay"}}[{window}s])))"#
                ),
                to,
                report,
            )
            .await;
        let (lower, upper) = bucket_of(client_p99);
        report.figure(
            "request rate: load / Prometheus",
            format!(
                "{client_rate:.0} / {} req/s",
                rate.map_or("none".into(), |r| format!("{r:.0}"))
            ),
        );
        report.figure(
            "delay route p99: load / Prometheus (bucket)",
            format!(
                "{} / {} ({}, {}] ms",
                ms(Duration::from_secs_f64(client_p99)),
                p99.map_or("none".into(), |p| ms(Duration::from_secs_f64(p))),
                lower * 1000.0,
                upper * 1000.0
            ),
        );
        report.check(load.other.is_empty(), || {
            format!(
                "the steady load got {} unexpected answers, e.g. {:?}",
                load.other.len(),
                load.other.first()
            )
        });
        report.check(
            rate.is_some_and(|r| (r - client_rate).abs() <= 0.10 * client_rate),
            || format!("Prometheus's rate {rate:?} is not within 10 % of the load's {client_rate:.0} req/s"),
        );
        report.check(p99.is_some_and(|p| p > lower && p <= upper), || {
            format!(
                "Prometheus's p99 {p99:?} s is outside ({lower}, {upper}], the bucket of the load's p99 {client_p99:.4} s"
            )
        });
    }

    /// The database stopped under writes: the burst of 503s fires the
    /// fast burn-rate alert; the service recovers when it is back.
    async fn outage(&self, report: &mut Report) {
        match self.prom.firing().await {
            Ok(firing) => report.check(!firing.iter().any(|a| a == BURN_ALERT), || {
                format!("{BURN_ALERT} fired before any error: {firing:?}")
            }),
            Err(err) => report.broken.push(err),
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers = super::outage::writers(self.addr, 4, "outage-", &stop, None);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let down = Instant::now();
        if let Err(err) = self.cluster.ctl("stop").await {
            report.broken.push(err);
        }
        let mut fired = None;
        while down.elapsed() < Duration::from_secs(20) {
            match self.prom.firing().await {
                Ok(firing) if firing.iter().any(|a| a == BURN_ALERT) => {
                    fired = Some(down.elapsed());
                    break;
                }
                Ok(_) => {}
                Err(err) => {
                    report.broken.push(err);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // The breaker has seen the outage for a few seconds by now.
        tokio::time::sleep(Duration::from_secs(4).saturating_sub(down.elapsed())).await;
        if let Err(err) = self.cluster.ctl("start").await {
            report.broken.push(err);
        }
        let up = Instant::now();
        let mut ready = None;
        if let Ok(mut conn) = Conn::open(self.addr).await {
            while up.elapsed() < Duration::from_secs(15) {
                if conn
                    .get("/health/ready")
                    .await
                    .is_ok_and(|r| r.status == 200)
                {
                    ready = Some(up.elapsed());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let (mut failed, mut all, mut other) = (0, 0, Vec::new());
        for writer in writers {
            let writes = writer.await.unwrap_or_default();
            failed += writes.failed.len();
            all += writes.created.len() + writes.failed.len() + writes.other.len();
            other.extend(writes.other);
        }
        report.check(other.is_empty(), || {
            format!(
                "{} writes got neither 201 nor a 503 problem, e.g. {:?}",
                other.len(),
                other.first()
            )
        });
        report.figure(
            "outage: writes answered 503 / all",
            format!("{failed} / {all}"),
        );
        report.figure(
            format!("{BURN_ALERT} firing after"),
            fired.map_or("never".to_owned(), ms),
        );
        report.check(failed > 0, || {
            "no write failed during the outage".to_owned()
        });
        report.check(fired.is_some(), || {
            format!("{BURN_ALERT} did not fire within 20 s of the outage")
        });
        report.check(ready.is_some(), || {
            "not ready again within 15 s of the database's return".to_owned()
        });
    }

    /// Four times the concurrency limit at once: what the clients saw shed
    /// is what `bulkhead_rejections_total` counts.
    async fn overload(&self, report: &mut Report) {
        let query = format!(r#"sum(bulkhead_rejections_total{{job="{JOB}",bulkhead="http"}})"#);
        let before = self.scalar(&query, unix_now(), report).await;
        let (shed, other) = overload(self.addr, 4 * CONCURRENCY).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = self.scalar(&query, unix_now(), report).await;
        let counted = after.zip(before).map(|(a, b)| a - b);
        report.figure(
            "overload: shed seen by clients / counted by Prometheus",
            format!(
                "{shed} / {}",
                counted.map_or("none".into(), |c| format!("{c:.0}"))
            ),
        );
        report.check(other.is_empty(), || {
            format!(
                "the overload got {} other outcomes, e.g. {:?}",
                other.len(),
                other.first()
            )
        });
        report.check(shed > 0, || "nothing was shed".to_owned());
        report.check(counted == Some(shed as f64), || {
            format!("clients saw {shed} shed, Prometheus counted {counted:?}")
        });
    }

    /// Every panel query over the whole scenario returns a number; the
    /// breaker panel shows the database breaker open.
    async fn panels(&self, began: f64, ended: f64, report: &mut Report) {
        let queries = match panel_queries() {
            Ok(queries) => queries,
            Err(err) => {
                report.broken.push(err);
                return;
            }
        };
        let mut empty = Vec::new();
        let mut breaker_open = false;
        for (title, expr) in &queries {
            match self.prom.query_range(expr, began, ended).await {
                Ok(series) => {
                    if !series.iter().any(prometheus::Series::has_number) {
                        empty.push(format!("{title}: {expr}"));
                    }
                    if expr.starts_with("max by (breaker) (circuit_breaker_state") {
                        breaker_open = series.iter().any(|s| {
                            s.labels.get("breaker").and_then(|b| b.as_str()) == Some("database")
                                && s.values.iter().any(|(_, v)| *v >= 1.0)
                        });
                    }
                }
                Err(err) => empty.push(format!("{title}: {err}")),
            }
        }
        report.figure(
            "dashboard queries returning data",
            format!("{} of {}", queries.len() - empty.len(), queries.len()),
        );
        report.check(empty.is_empty(), || {
            format!("dashboard queries without data:\n  {}", empty.join("\n  "))
        });
        report.check(breaker_open, || {
            "the breaker panel never shows the database breaker open".to_owned()
        });
    }

    /// The one number `expr` gives at `time`, or `None` (recorded).
    async fn scalar(&self, expr: &str, time: f64, report: &mut Report) -> Option<f64> {
        match self.prom.query(expr, Some(time)).await {
            Ok(series) => {
                let value = series.first().and_then(prometheus::Series::last);
                if value.is_none() {
                    report.broken.push(format!("no value for {expr}"));
                }
                value
            }
            Err(err) => {
                report.broken.push(err);
                None
            }
        }
    }
}
