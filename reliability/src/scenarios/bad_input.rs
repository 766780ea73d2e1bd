//! Bad input: malformed and hostile requests, and slow ones. Each gets its
//! documented 4xx problem (or, for what the HTTP layer itself rejects, an
//! error status or a closed connection) in bounded time; the service never
//! panics, and a client sending good requests all along is served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::client::{Conn, Raw, raw};
use crate::stats::{Samples, ms};
use crate::{Ctx, Report};

const HEADER_TIMEOUT_MS: u64 = 2_000;
const REQUEST_TIMEOUT_MS: u64 = 1_000;

/// One hostile request and what may come back.
struct Case {
    name: &'static str,
    parts: Vec<Vec<u8>>,
    /// Pause between parts.
    pause: Duration,
    /// Statuses answered with a problem body by the service.
    problems: &'static [u16],
    /// Statuses the HTTP layer may answer with, body or not.
    plain: &'static [u16],
    /// Whether closing the connection without an answer is right.
    close_ok: bool,
    /// The answer or close must come within this.
    within: Duration,
}

fn post(body: &[u8], content_type: &str) -> Vec<u8> {
    let mut request = format!(
        "POST /v1/items HTTP/1.1\r\nhost: x\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").into_bytes()
}

fn cases() -> Vec<Case> {
    let quick = Duration::from_secs(2);
    let one = |name, request: Vec<u8>, problems: &'static [u16]| Case {
        name,
        parts: vec![request],
        pause: Duration::ZERO,
        problems,
        plain: &[],
        close_ok: false,
        within: quick,
    };
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge_header = format!(
        "GET /v1/items HTTP/1.1\r\nhost: x\r\nx-filler: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let slowloris = b"GET /v1/items HTTP/1.1\r\nhost: x\r\nx-slow: abcdefghij\r\n\r\n";
    vec![
        one("malformed JSON", post(br#"{"name": "bolt", "quantity": }"#, "application/json"), &[400]),
        one("truncated JSON", post(br#"{"name": "bo"#, "application/json"), &[400]),
        one("wrong types", post(br#"{"name": 5, "quantity": "many"}"#, "application/json"), &[422]),
        one("JSON nested 10,000 deep", post(nested.as_bytes(), "application/json"), &[400, 422]),
        one("invalid UTF-8", post(b"{\"name\": \"\xff\xfe\xfd\", \"quantity\": 1}", "application/json"), &[400]),
        one("not JSON", post(b"name=bolt", "application/x-www-form-urlencoded"), &[415]),
        one("huge body (1 MiB)", post(&vec![b' '; 1024 * 1024], "application/json"), &[413]),
        Case {
            name: "huge header (100 KiB)",
            plain: &[431],
            close_ok: true,
            ..one("", huge_header.into_bytes(), &[])
        },
        Case {
            name: "chunked body that never ends",
            parts: vec![
                b"POST /v1/items HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"nam\r\n".to_vec(),
                b"1\r\ne\r\n".to_vec(),
            ],
            pause: Duration::from_secs(5),
            problems: &[408],
            plain: &[],
            close_ok: true,
            within: Duration::from_millis(REQUEST_TIMEOUT_MS + 1_000),
        },
        Case {
            name: "slowloris (a header byte per second)",
            parts: slowloris.iter().map(|b| vec![*b]).collect(),
            pause: Duration::from_secs(1),
            problems: &[],
            plain: &[408],
            close_ok: true,
            within: Duration::from_millis(HEADER_TIMEOUT_MS + 1_000),
        },
        one("unknown method", b"BREW /v1/items HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(), &[405]),
        one("unknown method, unknown route", b"PURGE /teapot HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(), &[404, 405]),
        one("path traversal", get("/v1/items/../../etc/passwd"), &[404]),
        one("encoded path traversal", get("/v1/items/..%2f..%2fetc%2fpasswd"), &[400, 404]),
        one("traversal at the root", get("/../../../../etc/passwd"), &[404]),
        one("huge limit", get("/v1/items?limit=99999999999999999999999"), &[400, 422]),
        Case {
            name: "garbage request line",
            plain: &[400],
            close_ok: true,
            ..one("", b"\x00\x01\x02 \xff garbage\r\n\r\n".to_vec(), &[])
        },
        Case {
            name: "bad header bytes",
            plain: &[400],
            close_ok: true,
            ..one("", b"GET /v1/items HTTP/1.1\r\nhost: x\r\nx-bad\x01: \x7f\r\n\r\n".to_vec(), &[])
        },
    ]
}

pub(crate) async fn run(ctx: &Ctx) -> Report {
    let mut report = Report::default();
    let mut env = super::base_env();
    env.push((
        "REFSVC_SERVER__HEADER_READ_TIMEOUT_MS",
        HEADER_TIMEOUT_MS.to_string(),
    ));
    env.push((
        "REFSVC_SERVER__REQUEST_TIMEOUT_MS",
        REQUEST_TIMEOUT_MS.to_string(),
    ));
    let Some(service) = super::start(ctx, &env, &mut report) else {
        return report;
    };
    let addr = service.addr;

    // A well-behaved client all along.
    let stop = Arc::new(AtomicBool::new(false));
    let good = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut served = Samples::default();
            let mut failures = Vec::new();
            let mut conn = Conn::open(addr).await.ok();
            while !stop.load(Ordering::Relaxed) {
                match conn.as_mut() {
                    Some(c) => match c.get("/v1/items?limit=1").await {
                        Ok(reply) if reply.status == 200 => served.push(reply.latency),
                        other => {
                            failures.push(format!("{other:?}"));
                            conn = Conn::open(addr).await.ok();
                        }
                    },
                    None => {
                        failures.push("could not connect".to_owned());
                        conn = Conn::open(addr).await.ok();
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (served, failures)
        })
    };

    let cases = cases();
    let rounds = if ctx.short { 1 } else { 5 };
    let mut outcomes = Vec::new();
    for _ in 0..rounds {
        // All cases at once: the slow ones overlap the quick ones.
        let runs: Vec<_> = cases
            .iter()
            .map(|case| {
                let parts = case.parts.clone();
                let pause = case.pause;
                let wait = case.within + Duration::from_secs(2);
                tokio::spawn(async move {
                    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                    raw(addr, &parts, pause, wait).await
                })
            })
            .collect();
        for (case, run) in cases.iter().zip(runs) {
            let outcome = run.await.expect("the case task");
            outcomes.push((case, outcome));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut served, failures) = good.await.expect("the good client");

    for (case, outcome) in &outcomes {
        let verdict = match outcome {
            Raw::Status {
                status,
                head,
                after,
                ..
            } => {
                let problem = head
                    .to_ascii_lowercase()
                    .contains("content-type: application/problem+json");
                let fine =
                    (case.problems.contains(status) && problem) || case.plain.contains(status);
                report.check(fine, || format!("{}: answered {status} (problem+json: {problem}), expected problem {:?} or {:?}", case.name, case.problems, case.plain));
                report.check(*after <= case.within, || {
                    format!(
                        "{}: answered after {after:?} (bound {:?})",
                        case.name, case.within
                    )
                });
                format!(
                    "{status}{} in {}",
                    if problem { " problem" } else { "" },
                    ms(*after)
                )
            }
            Raw::Closed { after } => {
                report.check(case.close_ok, || {
                    format!("{}: closed without an answer", case.name)
                });
                report.check(*after <= case.within, || {
                    format!(
                        "{}: closed after {after:?} (bound {:?})",
                        case.name, case.within
                    )
                });
                format!("closed in {}", ms(*after))
            }
            Raw::Silent => {
                report.broken.push(format!(
                    "{}: no answer and no close within {:?}",
                    case.name, case.within
                ));
                "no answer".to_owned()
            }
        };
        if !report.figures.iter().any(|(name, _)| name == case.name) {
            report.figure(case.name, verdict);
        }
    }
    report.figure("rounds of every case at once", rounds.to_string());
    report.figure(
        "good client: served, failed, p99",
        format!(
            "{}, {}, {}",
            served.len(),
            failures.len(),
            ms(served.percentile(99.0))
        ),
    );
    report.check(failures.is_empty(), || {
        format!("the good client failed: {:?}", failures.first())
    });
    let _ = service.finish(&mut report);
    report
}
