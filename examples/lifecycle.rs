//! Components started in dependency order, a failing one restarted by its
//! supervisor, and a graceful shutdown on Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run --example lifecycle                               # until Ctrl-C / SIGTERM
//! LIFECYCLE_RUN_FOR_MS=3000 cargo run --example lifecycle     # stops by itself after 3 s
//! ```
//!
//! Four components: `config` ─▶ `database` ─▶ `cache` ─▶ `http` (each needs
//! the one before it). `http` is a real HTTP server on a free port of
//! 127.0.0.1. `cache` loses its connection 300 ms after each of its first
//! two starts; its supervisor restarts it (one for one, with a growing
//! backoff), and the third time it stays up. Every event is printed with
//! the time since the start: starting, started, failed, restarting,
//! readiness changes, then on shutdown each component stopping and stopped,
//! dependents first, and the stop summary.
//!
//! `LIFECYCLE_RUN_FOR_MS`, when set, is how long (in milliseconds) the
//! system runs before it shuts itself down, for non-interactive runs; a
//! signal still stops it earlier. `RUST_LOG=info` adds the supervisor's own
//! log lines, on stderr.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use patterns::component::component::{BoxFuture, Component, Running, StartContext};
use patterns::component::health::Status;
use patterns::component::lifecycle::{ComponentConfig, HealthHandle, System};
use patterns::component::ports::PortSpec;
use patterns::component::supervision::{Restart, RestartStrategy};
use patterns::error::{Context, Error, Kind, Result};
use tokio::time::Instant;

/// How long a failing run of `cache` lasts before it loses its connection.
const CRASH_AFTER: Duration = Duration::from_millis(300);
/// How long a component takes to flush and close once told to stop.
const COOL_DOWN: Duration = Duration::from_millis(30);

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()),
        )
        .init();
    let run_for = run_for()?;
    let timeline = Timeline(Instant::now());

    let system = System::builder()
        .component(Part::new("config", None, 20, timeline))
        .component(Part::new("database", Some("config"), 80, timeline))
        .component_with(
            Part::new("cache", Some("database"), 40, timeline).failing_runs(2),
            ComponentConfig::default().restart(Restart::OnFailure),
        )
        .component(Http { timeline })
        .strategy(RestartStrategy::OneForOne)
        .intensity(5, Duration::from_secs(60))
        .restart_backoff(Duration::from_millis(200), Duration::from_secs(2))
        .stop_timeout(Duration::from_secs(5))
        .build()?;
    println!("start order: {}", system.start_order().join(" -> "));
    match run_for {
        Some(after) => println!("running for {after:?} (LIFECYCLE_RUN_FOR_MS), or until Ctrl-C"),
        None => println!("running until Ctrl-C or SIGTERM"),
    }
    println!();

    let running = system.start().await?;
    timeline.event("system", "every component started");
    let readiness = tokio::spawn(watch_readiness(running.health_handle(), timeline));
    if let Some(after) = run_for {
        let shutdown = running.stop_token();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            timeline.event("system", format_args!("{after:?} passed: shutting down"));
            shutdown.cancel();
        });
    }
    let summary = running.until_signal().await;
    readiness.abort();

    println!("\n{summary}");
    if summary.is_clean() {
        Ok(())
    } else {
        Err(Error::new(
            Kind::Internal,
            "the system did not stop cleanly",
        ))
    }
}

/// `LIFECYCLE_RUN_FOR_MS`, if set.
fn run_for() -> Result<Option<Duration>> {
    let Ok(raw) = std::env::var("LIFECYCLE_RUN_FOR_MS") else {
        return Ok(None);
    };
    let ms = raw.trim().parse::<u64>().context_kind(
        Kind::InvalidInput,
        format!("LIFECYCLE_RUN_FOR_MS={raw:?} is not a number of milliseconds"),
    )?;
    Ok(Some(Duration::from_millis(ms)))
}

/// Prints events stamped with the time since the start.
#[derive(Clone, Copy, Debug)]
struct Timeline(Instant);

impl Timeline {
    fn event(&self, who: &str, what: impl Display) {
        println!("{:>7.3}s  {who:<9} {what}", self.0.elapsed().as_secs_f64());
    }
}

/// Prints each change of the system's readiness, and why it is not ready.
async fn watch_readiness(health: HealthHandle, timeline: Timeline) {
    let mut ready = None;
    let mut every = tokio::time::interval(Duration::from_millis(20));
    loop {
        every.tick().await;
        let now = health.health();
        if ready == Some(now.ready) {
            continue;
        }
        ready = Some(now.ready);
        if now.ready {
            timeline.event("system", "ready");
        } else {
            let mut why: Vec<String> = now
                .components
                .iter()
                .filter(|c| c.health.status == Status::Failing)
                .map(|c| format!("{} {}", c.name, c.health.message.as_deref().unwrap_or("")))
                .collect();
            if !now.live {
                why.insert(0, "shutting down".to_owned());
            }
            timeline.event("system", format_args!("not ready: {}", why.join(", ")));
        }
    }
}

/// A stand-in for a client of some backend: it takes `warm_up` to connect,
/// runs until told to stop, then takes [`COOL_DOWN`] to close. Its first
/// `failing_runs` runs lose their connection after [`CRASH_AFTER`].
#[derive(Debug)]
struct Part {
    name: &'static str,
    needs: Option<&'static str>,
    warm_up: Duration,
    failing_runs: u32,
    runs: AtomicU32,
    timeline: Timeline,
}

impl Part {
    fn new(
        name: &'static str,
        needs: Option<&'static str>,
        warm_up_ms: u64,
        timeline: Timeline,
    ) -> Self {
        Self {
            name,
            needs,
            warm_up: Duration::from_millis(warm_up_ms),
            failing_runs: 0,
            runs: AtomicU32::new(0),
            timeline,
        }
    }

    fn failing_runs(mut self, runs: u32) -> Self {
        self.failing_runs = runs;
        self
    }
}

impl Component for Part {
    fn name(&self) -> &str {
        self.name
    }

    fn dependencies(&self) -> Vec<String> {
        self.needs.iter().map(|name| (*name).to_owned()).collect()
    }

    fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running>> {
        Box::pin(async move {
            let (name, timeline) = (self.name, self.timeline);
            let run = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
            if run == 1 {
                timeline.event(name, "starting");
            } else {
                timeline.event(name, format_args!("restarting (run {run})"));
            }
            tokio::time::sleep(self.warm_up).await;
            timeline.event(name, "started");

            let stop = ctx.stop_token().clone();
            let crashes = run <= self.failing_runs;
            Ok(Running::task(async move {
                if crashes {
                    tokio::select! {
                        () = tokio::time::sleep(CRASH_AFTER) => {
                            let err = Error::new(Kind::Unavailable, "lost the connection to its node");
                            timeline.event(name, format_args!("failed: {err}"));
                            return Err(err);
                        }
                        () = stop.cancelled() => {}
                    }
                } else {
                    stop.cancelled().await;
                }
                timeline.event(name, "stopping");
                tokio::time::sleep(COOL_DOWN).await;
                timeline.event(name, "stopped");
                Ok(())
            }))
        })
    }
}

/// An HTTP server on a free port of 127.0.0.1 (declared, so the system
/// binds it before any component starts); it drains its connections when
/// told to stop.
#[derive(Debug)]
struct Http {
    timeline: Timeline,
}

impl Component for Http {
    fn name(&self) -> &str {
        "http"
    }

    fn dependencies(&self) -> Vec<String> {
        vec!["cache".to_owned()]
    }

    fn ports(&self) -> Vec<PortSpec> {
        vec![PortSpec::new("http", SocketAddr::from(([127, 0, 0, 1], 0)))]
    }

    fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running>> {
        Box::pin(async move {
            let timeline = self.timeline;
            timeline.event("http", "starting");
            let listener = ctx.take_listener("http")?;
            let addr = listener.local_addr().context("reading the bound address")?;
            let app = Router::new().route("/", get(|| async { "ok\n" }));
            timeline.event("http", format_args!("started: http://{addr}/"));

            let stop = ctx.stop_token().clone();
            Ok(Running::task(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        stop.cancelled().await;
                        timeline.event("http", "stopping: draining connections");
                    })
                    .await
                    .context("serving HTTP")?;
                timeline.event("http", "stopped");
                Ok(())
            }))
        })
    }
}
