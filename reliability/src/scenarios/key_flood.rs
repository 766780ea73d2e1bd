//! A flood of distinct clients against the per-IP rate limiter: each
//! connection comes from its own 127.0.0.0/8 address, so the limiter sees
//! as many keys as connections. It tracks at most `max_clients` (100 000 by
//! default) and forgets the rest, so memory stays under the bound.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::client::Conn;
use crate::service::{Service, rss_of};
use crate::stats::mib;
use crate::{Ctx, Report};

/// Resident memory may grow at most this much over its start.
const RSS_GROWTH_BOUND: u64 = 96 * 1024 * 1024;
const CONCURRENCY: u64 = 64;

pub(crate) async fn run(ctx: &Ctx) -> Report {
    let keys: u64 = if ctx.short { 20_000 } else { 1_000_000 };
    let mut report = Report::default();
    // The default per-IP limits, so the limiter is really in the path.
    let mut service = match Service::start(&ctx.binary, &[]) {
        Ok(service) => service,
        Err(err) => {
            report.broken.push(err);
            return report;
        }
    };
    let addr = service.addr;
    let start_rss = service.rss();
    let pid = service.pid();
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(start_rss));
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_of(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let next = Arc::new(AtomicU64::new(0));
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
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let peak = peak.load(Ordering::Relaxed);
    let end_rss = service.rss();
    let ok = ok.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);

    report.figure("distinct client addresses", keys.to_string());
    report.figure("answered 200 / failed", format!("{ok} / {failed}"));
    report.figure(
        "rate",
        format!("{:.0} new clients/s", keys as f64 / took.as_secs_f64()),
    );
    report.figure(
        "RSS start → peak → end",
        format!("{} → {} → {}", mib(start_rss), mib(peak), mib(end_rss)),
    );
    report.figure("bound on RSS growth", mib(RSS_GROWTH_BOUND));
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
    report.check(service.alive(), || "the service died".to_owned());
    let _ = service.stop();
    report
}
