//! A flood of distinct clients against the per-IP rate limiter: each
//! connection comes from its own 127.0.0.0/8 address, so the limiter sees
//! as many keys as connections. The service runs with `max_clients` set to
//! a hundredth of the keys, so the limiter fills up early and must forget
//! clients from then on: memory measured once it is full must stay flat
//! (an unbounded limiter would keep growing by tens of bytes per key), and
//! the whole run must stay under the overall bound.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::Conn;
use crate::service::{PeakRss, rss_of};
use crate::stats::mib;
use crate::{Ctx, Report};

/// Resident memory may grow at most this much over its start.
const RSS_GROWTH_BOUND: u64 = 96 * 1024 * 1024;
/// ... and at most this much once the limiter is full.
const FULL_GROWTH_BOUND: u64 = 4 * 1024 * 1024;
const CONCURRENCY: u64 = 64;

pub(crate) async fn run(ctx: &Ctx) -> Report {
    let keys: u64 = if ctx.short { 100_000 } else { 1_000_000 };
    let capacity = keys / 100;
    let mut report = Report::default();
    // The default per-IP rates, so the limiter is really in the path.
    let env = [("REFSVC_LIMITS__MAX_CLIENTS", capacity.to_string())];
    let Some(service) = super::start(ctx, &env, &mut report) else {
        return report;
    };
    let addr = service.addr;
    let start_rss = service.rss();
    let pid = service.pid();
    let peak = PeakRss::start(pid, start_rss, Duration::from_millis(100));
    let next = Arc::new(AtomicU64::new(0));
    // Memory once the limiter has been full for a while (four times its
    // capacity of clients seen).
    let full_rss = {
        let next = next.clone();
        tokio::spawn(async move {
            while next.load(Ordering::Relaxed) < 4 * capacity {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            rss_of(pid)
        })
    };
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, ok, failed, first_failure) = (
                next.clone(),
                ok.clone(),
                failed.clone(),
                first_failure.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= keys {
                        return;
                    }
                    // 127.1.0.0 upwards: one address per key.
                    let from = IpAddr::V4(Ipv4Addr::from(
                        0x7F01_0000u32 + u32::try_from(i).expect("keys fit"),
                    ));
                    let result = match Conn::open_from(from, addr).await {
                        Ok(mut conn) => {
                            conn.send(
                                http::Method::GET,
                                "/health/live",
                                &[("connection", "close")],
                                bytes::Bytes::new(),
                            )
                            .await
                        }
                        Err(err) => Err(err),
                    };
                    match result {
                        Ok(reply) if reply.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            first_failure
                                .lock()
                                .unwrap()
                                .get_or_insert_with(|| format!("{other:?}"));
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let peak = peak.stop().await;
    let full_rss = full_rss.await.unwrap_or(u64::MAX);
    let end_rss = service.rss();
    let ok = ok.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);

    report.figure("distinct client addresses", keys.to_string());
    report.figure(
        "clients the limiter tracks (max_clients)",
        capacity.to_string(),
    );
    report.figure("answered 200 / failed", format!("{ok} / {failed}"));
    report.figure(
        "rate",
        format!("{:.0} new clients/s", keys as f64 / took.as_secs_f64()),
    );
    report.figure(
        "RSS start → peak → end",
        format!("{} → {} → {}", mib(start_rss), mib(peak), mib(end_rss)),
    );
    report.figure(
        "RSS once the limiter is full → peak",
        format!("{} → {}", mib(full_rss), mib(peak)),
    );
    report.figure(
        "bounds on RSS growth: overall, once full",
        format!("{}, {}", mib(RSS_GROWTH_BOUND), mib(FULL_GROWTH_BOUND)),
    );
    report.check(failed == 0, || {
        format!(
            "{failed} requests failed, e.g. {:?}",
            first_failure.lock().unwrap()
        )
    });
    report.check(peak.saturating_sub(start_rss) <= RSS_GROWTH_BOUND, || {
        format!(
            "RSS grew by {} (bound {})",
            mib(peak - start_rss),
            mib(RSS_GROWTH_BOUND)
        )
    });
    report.check(peak.saturating_sub(full_rss) <= FULL_GROWTH_BOUND, || {
        format!(
            "RSS grew by {} after the limiter was full (bound {})",
            mib(peak.saturating_sub(full_rss)),
            mib(FULL_GROWTH_BOUND)
        )
    });
    let _ = service.finish(&mut report);
    report
}
