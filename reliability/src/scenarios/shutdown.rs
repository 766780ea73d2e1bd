//! Graceful shutdown under load: keep-alive clients mixing fast requests
//! and 500 ms ones; SIGTERM in the middle. Every request sent before the
//! signal must be answered 200; after it, connections may only close (an
//! idle keep-alive connection) or be refused; new connections are refused
//! while the drain runs; the process exits 0 within the drain deadline
//! plus 1 s.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::client::{Conn, Failure};
use crate::stats::ms;
use crate::timeline::{Outcome, Timeline};
use crate::{Ctx, Report};

const DRAIN: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Counts {
    answered: AtomicU64,
    in_flight_at_signal_answered: AtomicU64,
    failed_before_signal: AtomicU64,
    closed_after_signal: AtomicU64,
    refused_after_signal: AtomicU64,
}

pub(crate) async fn run(ctx: &Ctx) -> Report {
    let (rounds, clients) = if ctx.short { (3, 50) } else { (20, 200) };
    let mut report = Report::default();
    let counts = Arc::new(Counts::default());
    let broken = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut slowest_exit = Duration::ZERO;
    let mut refused_new = 0;
    for round in 0..rounds {
        let mut env = super::base_env();
        env.push((
            "REFSVC_SERVER__DRAIN_TIMEOUT_MS",
            DRAIN.as_millis().to_string(),
        ));
        let Some(mut service) = super::start(ctx, &env, &mut report) else {
            return report;
        };
        let addr = service.addr;
        // The first round's requests, for the report's plots.
        let timeline = (round == 0).then(Timeline::start);
        let signal: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
        let quit = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for client in 0..clients {
            let (signal, quit, counts, broken) =
                (signal.clone(), quit.clone(), counts.clone(), broken.clone());
            let timeline = timeline.clone();
            let record = move |sent: Instant, outcome| {
                if let Some(timeline) = &timeline {
                    timeline.request(sent, sent.elapsed(), outcome);
                }
            };
            tasks.push(tokio::spawn(async move {
                let mut conn = match Conn::open(addr).await {
                    Ok(conn) => conn,
                    Err(err) => {
                        broken.lock().unwrap().push(format!("round {round}: connecting before the signal: {err:?}"));
                        return;
                    }
                };
                let mut n = client;
                while !quit.load(Ordering::Relaxed) {
                    n += 1;
                    let path = if n % 5 == 0 { "/v1/demo/delay?ms=500" } else { "/v1/items?limit=5" };
                    let before_signal = signal.get().is_none();
                    let sent = Instant::now();
                    let reply = conn.get(path).await;
                    record(sent, match &reply {
                        Ok(reply) if reply.status == 200 => Outcome::Ok,
                        Err(_) if !before_signal => Outcome::Refused,
                        _ => Outcome::Error,
                    });
                    match reply {
                        Ok(reply) if reply.status == 200 => {
                            counts.answered.fetch_add(1, Ordering::Relaxed);
                            if before_signal && signal.get().is_some() {
                                counts.in_flight_at_signal_answered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(reply) => {
                            broken.lock().unwrap().push(format!("round {round}: {path} answered {}", reply.status));
                            return;
                        }
                        Err(err) if before_signal => {
                            counts.failed_before_signal.fetch_add(1, Ordering::Relaxed);
                            broken.lock().unwrap().push(format!("round {round}: {path} sent before SIGTERM failed: {err:?}"));
                            return;
                        }
                        Err(_) => {
                            counts.closed_after_signal.fetch_add(1, Ordering::Relaxed);
                            // The connection is gone; a new one must be refused.
                            match Conn::open(addr).await {
                                Err(Failure::Connect(_)) => {
                                    counts.refused_after_signal.fetch_add(1, Ordering::Relaxed);
                                }
                                Ok(_) | Err(_) => {
                                    broken.lock().unwrap().push(format!("round {round}: a new connection after SIGTERM was not refused"));
                                }
                            }
                            return;
                        }
                    }
                    if conn.is_closed() {
                        return;
                    }
                }
            }));
        }
        tokio::time::sleep(if ctx.short {
            Duration::from_millis(700)
        } else {
            Duration::from_millis(1500)
        })
        .await;
        let signalled = Instant::now();
        let _ = signal.set(signalled);
        if let Some(timeline) = &timeline {
            timeline.event("SIGTERM");
        }
        if let Err(err) = service.terminate() {
            report.broken.push(err);
        }
        // While the 500 ms requests drain, the port must already be closed.
        tokio::time::sleep(Duration::from_millis(150)).await;
        match Conn::open(addr).await {
            Err(Failure::Connect(_)) => refused_new += 1,
            _ => report.broken.push(format!(
                "round {round}: a new connection 150 ms after SIGTERM was accepted"
            )),
        }
        let exit = tokio::task::block_in_place(|| service.wait(DRAIN + Duration::from_secs(5)));
        let took = signalled.elapsed();
        if let Some(timeline) = &timeline {
            timeline.event("exited");
        }
        slowest_exit = slowest_exit.max(took);
        match exit {
            Some(status) if status.success() => {}
            Some(status) => report
                .broken
                .push(format!("round {round}: exit status {status}")),
            None => report.broken.push(format!(
                "round {round}: still running {took:?} after SIGTERM"
            )),
        }
        report.check(took <= DRAIN + Duration::from_secs(1), || {
            format!("round {round}: exited {took:?} after SIGTERM (deadline {DRAIN:?} + 1 s)")
        });
        let log = service.log();
        report.check(!log.contains("panicked"), || {
            format!("round {round}: the service panicked:\n{log}")
        });
        quit.store(true, Ordering::Relaxed);
        for task in tasks {
            let _ = task.await;
        }
        if let Some(timeline) = &timeline {
            report.timeline(
                format!("SIGTERM under load ({clients} clients, drain {DRAIN:?})"),
                timeline,
            );
        }
    }
    report.broken.extend(broken.lock().unwrap().drain(..));
    report.figure("rounds × clients", format!("{rounds} × {clients}"));
    report.figure(
        "requests answered 200",
        counts.answered.load(Ordering::Relaxed).to_string(),
    );
    report.figure(
        "in flight at SIGTERM, answered 200",
        counts
            .in_flight_at_signal_answered
            .load(Ordering::Relaxed)
            .to_string(),
    );
    report.figure(
        "requests sent before SIGTERM that failed",
        counts
            .failed_before_signal
            .load(Ordering::Relaxed)
            .to_string(),
    );
    report.figure(
        "idle connections closed after SIGTERM",
        counts
            .closed_after_signal
            .load(Ordering::Relaxed)
            .to_string(),
    );
    report.figure(
        "new connections refused during the drain",
        format!(
            "{} of {}",
            refused_new + counts.refused_after_signal.load(Ordering::Relaxed),
            rounds as u64 + counts.closed_after_signal.load(Ordering::Relaxed)
        ),
    );
    report.figure("slowest exit after SIGTERM", ms(slowest_exit));
    report.check(
        counts.in_flight_at_signal_answered.load(Ordering::Relaxed) > 0,
        || "no request was in flight at SIGTERM: the scenario tested nothing".to_owned(),
    );
    report
}
