//! Stalled prefaces: three times the connection limit in clients that send
//! the first bytes of a request or of the HTTP/2 preface, or nothing, and
//! then stall. Each is closed by the header read timeout (in waves of the
//! connection limit), and a normal client queued behind them all is
//! served: stalled clients cannot stop the server accepting.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats::ms;
use crate::{Ctx, Report};

const LIMIT: usize = 16;
const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
/// What stalled clients send before going quiet.
const OPENINGS: [&[u8]; 4] = [
    b"",
    b"P",
    b"PRI * HTTP/2.0\r\n",
    b"GET /v1/items HTTP/1.1\r\nhost",
];

pub(crate) async fn run(ctx: &Ctx) -> Report {
    let mut report = Report::default();
    let mut env = super::base_env();
    env.push(("REFSVC_SERVER__MAX_CONNECTIONS", LIMIT.to_string()));
    env.push((
        "REFSVC_SERVER__HEADER_READ_TIMEOUT_MS",
        HEADER_TIMEOUT.as_millis().to_string(),
    ));
    let Some(service) = super::start(ctx, &env, &mut report) else {
        return report;
    };
    let addr = service.addr;
    let stalled = 3 * LIMIT;
    // Each wave of LIMIT connections is closed a header timeout after it is
    // accepted; all are gone after three waves (with a margin).
    let bound = HEADER_TIMEOUT * 3 + Duration::from_secs(2);
    let started = Instant::now();
    let mut clients = Vec::new();
    for i in 0..stalled {
        clients.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            stream.write_all(OPENINGS[i % OPENINGS.len()]).await.ok()?;
            let mut rest = Vec::new();
            // Closed (or reset): the read ends either way.
            let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest))
                .await
                .ok()?;
            Some(Instant::now())
        }));
    }
    // A normal client, behind every stalled one.
    tokio::time::sleep(Duration::from_millis(100)).await;
    super::served_behind(&mut report, addr, bound + HEADER_TIMEOUT, "stalled clients").await;
    let served_after = started.elapsed();
    let mut closed = 0;
    let mut last_close = Duration::ZERO;
    for client in clients {
        if let Ok(Some(at)) = client.await {
            closed += 1;
            last_close = last_close.max(at - started);
        }
    }
    report.check(closed == stalled, || {
        format!("{closed} of {stalled} stalled connections were closed within 30 s")
    });
    report.check(last_close <= bound, || {
        format!("the last stalled connection was closed after {last_close:?} (bound {bound:?})")
    });
    report.figure(
        "stalled clients (× connection limit)",
        format!("{stalled} ({}×)", stalled / LIMIT),
    );
    report.figure("header read timeout", ms(HEADER_TIMEOUT));
    report.figure("last stalled connection closed after", ms(last_close));
    report.figure("normal client served after", ms(served_after));
    service.finish(&mut report);
    report
}
