//! Stalled readers: three times the connection limit in clients that each
//! ask for megabytes of answers (the API description, pipelined) and read
//! none of them. Each is closed by the write timeout once the server's
//! writes stop going through (in waves of the connection limit), and a
//! normal client queued behind them all is served: clients that stop
//! reading cannot stop the server accepting.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::Conn;
use crate::stats::ms;
use crate::{Ctx, Report};

const LIMIT: usize = 16;
const WRITE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Bytes of answers each stalled client asks for at once: far more than
/// the sockets' buffers hold.
const ASKED: usize = 32 << 20;

pub(crate) async fn run(ctx: &Ctx) -> Report {
    let mut report = Report::default();
    let mut env = super::base_env();
    env.push(("REFSVC_SERVER__MAX_CONNECTIONS", LIMIT.to_string()));
    env.push((
        "REFSVC_SERVER__WRITE_TIMEOUT_MS",
        WRITE_TIMEOUT.as_millis().to_string(),
    ));
    let Some(service) = super::start(ctx, &env, &mut report) else {
        return report;
    };
    let addr = service.addr;
    let answer = match Conn::open(addr).await {
        Ok(mut conn) => conn
            .get("/openapi.json")
            .await
            .map(|reply| reply.body.len()),
        Err(err) => Err(err),
    };
    let answer = match answer {
        Ok(bytes) if bytes > 0 => bytes,
        other => {
            report
                .broken
                .push(format!("/openapi.json did not answer: {other:?}"));
            service.finish(&mut report);
            return report;
        }
    };
    let stalled = 3 * LIMIT;
    // Each wave of LIMIT connections fills its buffers within a moment and
    // is closed a write timeout later; all are gone after three waves
    // (with a margin for filling the buffers).
    let bound = WRITE_TIMEOUT * 3 + Duration::from_secs(5);
    let pipelined = ASKED / answer + 1;
    let requests = b"GET /openapi.json HTTP/1.1\r\nhost: x\r\n\r\n".repeat(pipelined);
    // Lets the stalled clients read, once the normal one was served.
    let (read_now, may_read) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..stalled {
        let requests = requests.clone();
        let mut may_read = may_read.clone();
        clients.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            // Goes through once accepted (or fails once closed, if the
            // server stopped reading the requests too).
            let _ = stream.write_all(&requests).await;
            let _ = may_read.wait_for(|now| *now).await;
            // What is left to read: less than was asked for, and ending
            // (closed or reset), or the server never closed.
            let mut rest = Vec::new();
            let ended =
                tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest))
                    .await
                    .is_ok();
            ended.then_some(rest.len())
        }));
    }
    // A normal client, behind every stalled one.
    tokio::time::sleep(Duration::from_millis(100)).await;
    super::served_behind(&mut report, addr, bound, "stalled readers").await;
    let served_after = started.elapsed();
    // The last wave's other connections stalled about when the one that
    // freed the normal client's slot did: past two timeouts more, all of
    // them are closed, and reading can no longer unstall any.
    tokio::time::sleep(2 * WRITE_TIMEOUT).await;
    let _ = read_now.send(true);
    let asked = answer * pipelined;
    let mut cut = 0;
    let mut others = Vec::new();
    for client in clients {
        match client.await {
            Ok(Some(read)) if read < asked => cut += 1,
            outcome => others.push(outcome),
        }
    }
    report.check(cut == stalled, || {
        format!(
            "{cut} of {stalled} stalled readers were closed before their answers were all sent; the first others: {:?}",
            &others[..others.len().min(3)]
        )
    });
    report.figure(
        "stalled readers (× connection limit)",
        format!("{stalled} ({}×)", stalled / LIMIT),
    );
    report.figure("asked for by each", format!("{pipelined} × {answer} bytes"));
    report.figure("write timeout", ms(WRITE_TIMEOUT));
    report.figure("normal client served after", ms(served_after));
    service.finish(&mut report);
    report
}
