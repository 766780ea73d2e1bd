//! A real Prometheus (Debian's package) as a child process: it scrapes the
//! reference service every second, evaluates the shipped rules
//! (`observability/prometheus/rules.yml`), and answers queries over its
//! HTTP API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::client::Conn;

/// The shipped rules, loaded as an operator would load them.
const RULES: &str = include_str!("../../observability/prometheus/rules.yml");

/// The job name the scrape gives the service's series.
pub(crate) const JOB: &str = "refsvc";

/// A running Prometheus, killed and its files removed when dropped.
pub(crate) struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

/// One series of a query's answer: its labels and its values.
#[derive(Debug)]
pub(crate) struct Series {
    pub(crate) labels: serde_json::Map<String, serde_json::Value>,
    /// `(unix seconds, value)`; NaN where the query had no number.
    pub(crate) values: Vec<(f64, f64)>,
}

/// The Prometheus binary: `PATTERNS_PROMETHEUS` (set by xtask), else
/// `prometheus` on `PATH`, if it runs.
pub(crate) fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATTERNS_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("prometheus"));
    Command::new(&path)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        .then_some(path)
}

/// Seconds since the Unix epoch, as Prometheus times samples.
pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A free port on 127.0.0.1 (free when asked; Prometheus binds it next).
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// `text` with everything but unreserved characters percent-encoded, for
/// a query string.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Prometheus {
    /// Starts `binary` scraping `target` every second with the shipped
    /// rules evaluated every second, and waits until it has scraped the
    /// target once.
    pub(crate) async fn start(binary: &Path, target: SocketAddr) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "reliability-prometheus-{}-{}",
            std::process::id(),
            unix_now() as u64
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(dir.join("rules.yml"), RULES).map_err(|e| e.to_string())?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - rules.yml\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).map_err(|e| e.to_string())?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log = std::fs::File::create(dir.join("prometheus.log")).map_err(|e| e.to_string())?;
        let child = Command::new(binary)
            .current_dir(&dir)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let prometheus = Self { child, addr, dir };
        let started = Instant::now();
        loop {
            let scraped = prometheus
                .query(&format!("up{{job=\"{JOB}\"}}"), None)
                .await
                .is_ok_and(|series| series.iter().any(|s| s.last() == Some(1.0)));
            if scraped {
                return Ok(prometheus);
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "Prometheus had not scraped the service within 30 s:\n{}",
                    prometheus.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What it logged.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path` on its API; the `data` of a successful answer.
    async fn api(&self, path: &str) -> Result<serde_json::Value, String> {
        let mut conn = Conn::open(self.addr)
            .await
            .map_err(|e| format!("connecting to Prometheus: {e:?}"))?;
        let reply = conn
            .get(path)
            .await
            .map_err(|e| format!("GET {path}: {e:?}"))?;
        let body: serde_json::Value = serde_json::from_slice(&reply.body)
            .map_err(|e| format!("GET {path}: {e}: {}", String::from_utf8_lossy(&reply.body)))?;
        if reply.status != 200 || body["status"] != "success" {
            return Err(format!("GET {path}: {} {body}", reply.status));
        }
        Ok(body["data"].clone())
    }

    /// An instant query, at `time` (unix seconds) or now.
    pub(crate) async fn query(&self, expr: &str, time: Option<f64>) -> Result<Vec<Series>, String> {
        let mut path = format!("/api/v1/query?query={}", encode(expr));
        if let Some(time) = time {
            path.push_str(&format!("&time={time:.3}"));
        }
        Ok(series(&self.api(&path).await?))
    }

    /// A range query from `start` to `end` (unix seconds), a point a second.
    pub(crate) async fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
    ) -> Result<Vec<Series>, String> {
        let path = format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step=1",
            encode(expr)
        );
        Ok(series(&self.api(&path).await?))
    }

    /// The alerts firing now, by name.
    pub(crate) async fn firing(&self) -> Result<Vec<String>, String> {
        let data = self.api("/api/v1/alerts").await?;
        Ok(data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
            .collect())
    }
}

impl Series {
    /// Its last value.
    pub(crate) fn last(&self) -> Option<f64> {
        self.values.last().map(|(_, v)| *v)
    }

    /// Whether it has a number (not NaN) anywhere.
    pub(crate) fn has_number(&self) -> bool {
        self.values.iter().any(|(_, v)| !v.is_nan())
    }
}

/// The series of a vector or matrix answer.
fn series(data: &serde_json::Value) -> Vec<Series> {
    let point = |p: &serde_json::Value| {
        let at = p[0].as_f64().unwrap_or(f64::NAN);
        let value = p[1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        (at, value)
    };
    data["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Series {
            labels: s["metric"].as_object().cloned().unwrap_or_default(),
            values: match s["values"].as_array() {
                Some(values) => values.iter().map(point).collect(),
                None => vec![point(&s["value"])],
            },
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
