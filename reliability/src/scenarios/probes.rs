//! Probes under saturation: the concurrency limit held by slow requests
//! and the excess shed (503), while `/health/live`, `/health/ready` and
//! `/metrics` are polled, on the API's port (exempt from shedding) and on
//! a management listener of their own. Every probe must answer 200, fast.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::Conn;
use crate::stats::{Samples, ms};
use crate::{Ctx, Report};

const LIMIT: usize = 8;
/// Clients holding slots, beyond the limit.
const HOLDERS: usize = 20;
const PROBE_PATHS: [&str; 3] = ["/health/live", "/health/ready", "/metrics"];
/// A probe slower than this fails a Kubernetes probe with its default 1 s
/// timeout: it must never happen.
const PROBE_BOUND: Duration = Duration::from_millis(500);

pub(crate) async fn run(ctx: &Ctx) -> Report {
    let mut report = Report::default();
    let length = if ctx.short {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(6)
    };
    for management in [false, true] {
        let mode = if management {
            "management port"
        } else {
            "one port"
        };
        let mut env = super::base_env();
        env.push(("REFSVC_SERVER__CONCURRENCY_LIMIT", LIMIT.to_string()));
        env.push(("REFSVC_SERVER__REQUEST_TIMEOUT_MS", "10000".to_owned()));
        if management {
            env.push(("REFSVC_MANAGEMENT__ENABLED", "true".to_owned()));
            env.push(("REFSVC_MANAGEMENT__ADDR", "127.0.0.1:0".to_owned()));
        }
        let Some(service) = super::start(ctx, &env, &mut report) else {
            return report;
        };
        let probes_at = service.management.unwrap_or(service.addr);
        let (shed, probes, failures) = saturate(service.addr, probes_at, length).await;
        let mut probes = probes;
        report.check(shed > 0, || {
            format!("{mode}: nothing was shed: the API was not saturated")
        });
        report.check(failures.is_empty(), || {
            format!("{mode}: probes failed under saturation: {failures:?}")
        });
        report.check(probes.len() > 0 && probes.max() <= PROBE_BOUND, || {
            format!(
                "{mode}: the slowest probe took {} (bound {})",
                ms(probes.max()),
                ms(PROBE_BOUND)
            )
        });
        report.figure(format!("{mode}: API requests shed"), shed.to_string());
        report.figure(
            format!("{mode}: probes answered 200"),
            probes.len().to_string(),
        );
        report.figure(
            format!("{mode}: probe p99 / max"),
            format!("{} / {}", ms(probes.percentile(0.99)), ms(probes.max())),
        );
        service.finish(&mut report);
    }
    report
}

/// Holds every slot and sheds the excess for `length` while probing;
/// returns the API requests shed, the probes' latencies and their failures.
async fn saturate(
    api: SocketAddr,
    probes_at: SocketAddr,
    length: Duration,
) -> (u64, Samples, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let shed = Arc::new(AtomicU64::new(0));
    let mut holders = Vec::new();
    for _ in 0..HOLDERS {
        let (stop, shed) = (stop.clone(), shed.clone());
        holders.push(tokio::spawn(async move {
            let Ok(mut conn) = Conn::open(api).await else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                match conn.get("/v1/demo/delay?ms=300").await {
                    Ok(reply) if reply.status == 503 => {
                        shed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    // Let the slots fill.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut samples = Samples::default();
    let mut failures = Vec::new();
    let until = Instant::now() + length;
    let mut conn = Conn::open(probes_at).await.ok();
    while Instant::now() < until {
        for path in PROBE_PATHS {
            if conn.as_ref().is_none_or(Conn::is_closed) {
                conn = Conn::open(probes_at).await.ok();
            }
            let Some(open) = conn.as_mut() else {
                failures.push(format!("{path}: cannot connect"));
                continue;
            };
            match open.get(path).await {
                Ok(reply) if reply.status == 200 => samples.push(reply.latency),
                Ok(reply) => failures.push(format!("{path}: {}", reply.status)),
                Err(err) => failures.push(format!("{path}: {err:?}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for holder in holders {
        let _ = holder.await;
    }
    failures.truncate(10);
    (shed.load(Ordering::Relaxed), samples, failures)
}
