//! SIGTERM with a pre-stop delay, as Kubernetes stops a pod: readiness
//! turns false at once while liveness stays true, the port keeps accepting
//! and serving for the delay (endpoints are being removed meanwhile), then
//! closes; a request in flight across it all is answered; the process
//! exits 0 within the delay plus the drain deadline plus 1 s.

use std::time::{Duration, Instant};

use crate::client::{Conn, Failure};
use crate::stats::ms;
use crate::{Ctx, Report};

const PRE_STOP: Duration = Duration::from_millis(1500);
const DRAIN: Duration = Duration::from_secs(3);

pub(crate) async fn run(ctx: &Ctx) -> Report {
    let mut report = Report::default();
    let mut env = super::base_env();
    env.push((
        "REFSVC_SERVER__PRE_STOP_DELAY_MS",
        PRE_STOP.as_millis().to_string(),
    ));
    env.push((
        "REFSVC_SERVER__DRAIN_TIMEOUT_MS",
        DRAIN.as_millis().to_string(),
    ));
    let Some(mut service) = super::start(ctx, &env, &mut report) else {
        return report;
    };
    let addr = service.addr;
    let status = |path: &'static str| async move {
        match Conn::open(addr).await {
            Ok(mut conn) => conn.get(path).await.map(|reply| reply.status),
            Err(err) => Err(err),
        }
    };
    report.check(matches!(status("/health/ready").await, Ok(200)), || {
        "not ready before the signal".to_owned()
    });
    // Outlives the pre-stop delay: must be answered.
    let in_flight = tokio::spawn(async move {
        let mut conn = Conn::open(addr).await?;
        conn.get("/v1/demo/delay?ms=2500").await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let signalled = Instant::now();
    if let Err(err) = service.terminate() {
        report.broken.push(err);
        return report;
    }
    // Within the delay: not ready, live, still serving new connections.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = status("/health/ready").await;
    let live = status("/health/live").await;
    let api = status("/v1/items").await;
    let during = signalled.elapsed();
    report.check(during < PRE_STOP, || {
        format!("the checks took too long ({during:?})")
    });
    report.check(matches!(ready, Ok(503)), || {
        format!("readiness during the pre-stop delay: {ready:?}")
    });
    report.check(matches!(live, Ok(200)), || {
        format!("liveness during the pre-stop delay: {live:?}")
    });
    report.check(matches!(api, Ok(200)), || {
        format!("a new API request during the pre-stop delay: {api:?}")
    });
    // After the delay: the port is closed.
    tokio::time::sleep((PRE_STOP + Duration::from_millis(300)).saturating_sub(signalled.elapsed()))
        .await;
    let after = Conn::open(addr).await;
    report.check(matches!(after, Err(Failure::Connect(_))), || {
        "a new connection after the pre-stop delay was accepted".to_owned()
    });
    match in_flight.await {
        Ok(Ok(reply)) => report.check(reply.status == 200, || {
            format!("the request in flight got {}", reply.status)
        }),
        other => report
            .broken
            .push(format!("the request in flight failed: {other:?}")),
    }
    let limit = PRE_STOP + DRAIN + Duration::from_secs(1);
    let exit = tokio::task::block_in_place(|| service.wait(limit + Duration::from_secs(5)));
    let took = signalled.elapsed();
    match exit {
        Some(status) if status.success() => {}
        other => report.broken.push(format!("exit after SIGTERM: {other:?}")),
    }
    report.check(took <= limit, || {
        format!("exited {took:?} after SIGTERM (bound {limit:?})")
    });
    report.figure(
        "pre-stop delay / drain deadline",
        format!("{} / {}", ms(PRE_STOP), ms(DRAIN)),
    );
    report.figure(
        "during the delay: ready / live / API",
        format!("{ready:?} / {live:?} / {api:?}"),
    );
    report.figure("exit after SIGTERM", ms(took));
    report
}
