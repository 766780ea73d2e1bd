//! The load generator of the HTTP figures: keep-alive connections, each
//! sending `GET /` as fast as answers come (closed loop), for a warm-up and
//! then a measured period. Each connection is one task writing a fixed
//! request and parsing just the status line and `content-length`, so the
//! generator costs less than the servers it measures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stats::Samples;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n";

/// One keep-alive connection sending [`REQUEST`].
struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends the request and reads one whole response; its status.
    async fn get(&mut self) -> std::io::Result<u16> {
        self.stream.write_all(REQUEST).await?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = &self.buf[..end];
            let length = content_length(head).ok_or(std::io::ErrorKind::InvalidData)?;
            if self.buf.len() >= end + 4 + length {
                let status = std::str::from_utf8(head.get(9..12).unwrap_or_default())
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return Ok(status);
            }
        }
    }
}

fn content_length(head: &[u8]) -> Option<usize> {
    head.split(|b| *b == b'\n').find_map(|line| {
        let line = std::str::from_utf8(line).ok()?.trim();
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// Runs the load and prints one line: `rps=… p50_us=… p99_us=… errors=…`.
pub(crate) async fn run(addr: SocketAddr, connections: usize, warmup: Duration, measure: Duration) {
    // 0: warming up, 1: measuring, 2: done.
    let phase = Arc::new(AtomicU8::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let phase = phase.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut errors = 0u64;
            let Ok(mut conn) = RawConn::open(addr).await else {
                return (samples, 1);
            };
            loop {
                let now = phase.load(Ordering::Relaxed);
                if now == 2 {
                    return (samples, errors);
                }
                let sent = Instant::now();
                match conn.get().await {
                    Ok(200) => {
                        if now == 1 && phase.load(Ordering::Relaxed) == 1 {
                            samples.push(sent.elapsed());
                        }
                    }
                    _ => {
                        errors += 1;
                        match RawConn::open(addr).await {
                            Ok(fresh) => conn = fresh,
                            Err(_) => return (samples, errors),
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(warmup).await;
    phase.store(1, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    phase.store(2, Ordering::Relaxed);
    let took = started.elapsed();
    let mut all = Samples::default();
    let mut errors = 0;
    for task in tasks {
        if let Ok((samples, e)) = task.await {
            all.extend(samples);
            errors += e;
        }
    }
    let rps = all.len() as f64 / took.as_secs_f64();
    println!(
        "rps={rps:.0} p50_us={} p99_us={} errors={errors}",
        all.percentile(50.0).as_micros(),
        all.percentile(99.0).as_micros()
    );
}
