//! The reference service as a child process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use crate::Report;

/// A running reference service.
pub(crate) struct Service {
    child: Child,
    pub(crate) addr: SocketAddr,
    /// The management listener's address, when it has its own.
    pub(crate) management: Option<SocketAddr>,
    log: PathBuf,
}

impl Service {
    /// Starts `binary` on 127.0.0.1:0 with `env` (`REFSVC_…` settings) and
    /// waits for its `listening on http://ADDR` line.
    pub(crate) fn start(binary: &Path, env: &[(&str, String)]) -> Result<Self, String> {
        let log = std::env::temp_dir().join(format!(
            "reliability-{}-{}.log",
            std::process::id(),
            unique()
        ));
        let stderr =
            std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let (child, rx) = crate::child::spawn_service(binary, env, stderr)?;
        // From here on, `Drop` kills the child on every way out.
        let mut service = Self {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            management: None,
            log,
        };
        let line = rx.recv_timeout(Duration::from_secs(60)).map_err(|e| {
            let what = match e {
                RecvTimeoutError::Timeout => "printed no address within 60 s",
                RecvTimeoutError::Disconnected => "exited before printing its address",
            };
            format!("the service {what}:\n{}", service.log())
        })?;
        service.addr = line
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("unexpected first line {line:?}"))?;
        let management_on = env
            .iter()
            .any(|(name, value)| *name == "REFSVC_MANAGEMENT__ENABLED" && value == "true");
        if management_on {
            let line = rx
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| "no management address printed".to_owned())?;
            service.management = Some(
                line.strip_prefix("management on http://")
                    .and_then(|a| a.parse().ok())
                    .ok_or_else(|| format!("unexpected second line {line:?}"))?,
            );
        }
        Ok(service)
    }

    /// Checks that it is still running and never panicked, recording what
    /// is wrong in `report`, then stops it.
    pub(crate) fn finish(mut self, report: &mut Report) -> Option<ExitStatus> {
        report.check(self.alive(), || "the service died".to_owned());
        let log = self.log();
        report.check(!log.contains("panicked"), || {
            format!("the service panicked:\n{log}")
        });
        self.stop()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, from `/proc` (0 where there is none).
    pub(crate) fn rss(&self) -> u64 {
        rss_of(self.pid())
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) -> Result<(), String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| format!("running kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -TERM failed: {status}"))
        }
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits at most `limit` for the process to exit.
    pub(crate) fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if started.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// What it wrote to stderr.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it (SIGTERM, then SIGKILL after 30 s) and returns its exit status.
    pub(crate) fn stop(mut self) -> Option<ExitStatus> {
        if self.alive() {
            let _ = self.terminate();
        }
        let status = self.wait(Duration::from_secs(30));
        if status.is_none() {
            let _ = self.child.kill();
        }
        status
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Resident memory of `pid` in bytes.
pub(crate) fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// The peak resident memory of a process, sampled in the background.
pub(crate) struct PeakRss {
    sampling: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    /// Samples `pid` every `every`, starting from `start` bytes.
    pub(crate) fn start(pid: u32, start: u64, every: Duration) -> Self {
        let sampling = Arc::new(AtomicBool::new(true));
        let peak = Arc::new(AtomicU64::new(start));
        let sampler = {
            let (sampling, peak) = (sampling.clone(), peak.clone());
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_of(pid), Ordering::Relaxed);
                    tokio::time::sleep(every).await;
                }
            })
        };
        Self {
            sampling,
            peak,
            sampler,
        }
    }

    /// Stops sampling; the peak seen.
    pub(crate) async fn stop(self) -> u64 {
        self.sampling.store(false, Ordering::Relaxed);
        let _ = self.sampler.await;
        self.peak.load(Ordering::Relaxed)
    }
}
