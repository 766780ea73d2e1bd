//! PostgreSQL integration (feature `postgres`): a deadpool-postgres pool
//! as a component, with readiness, bounded waits and pool metrics.
//!
//! [`Database`] wraps the pool. Taking a connection waits at most the
//! configured wait timeout and fails with [`Kind::Unavailable`] (503 at the
//! HTTP edge) instead of hanging; during an outage a circuit breaker
//! answers at once; it is a request-scoped resource through
//! [`Acquire`](pattern_api::extract::Acquire). As a [`Component`] it checks
//! the database with `SELECT 1` at start and then in the background (every
//! second while failing, every `health_check_interval_ms` while healthy), so readiness recovers
//! by itself after an outage, with no request needed. A failed connection,
//! or a query that fails at the network level (through
//! [`Database::error`]), marks it failing at once. Health says
//! `unreachable`; the database's own error text goes to the logs, not to
//! `/health/ready`. A stopped pool starts again (a group restart).
//!
//! Transactions ([`Database::transaction`]) carry the request's deadline to
//! the server and cancel their query when abandoned; migrations
//! ([`Migration`]) run in transactions or, when they cannot, alone, inside
//! the pool's start or as a step of their own ([`Database::migrations`]);
//! [`Database::listen`] turns `LISTEN`/`NOTIFY` into a stream that
//! reconnects by itself.
//!
//! TLS (rustls) follows the URL's `sslmode`, as libpq reads it: `disable`;
//! `prefer` (the default) and `require` encrypt without authenticating the
//! server; `verify-ca` checks the certificate's chain against
//! `sslrootcert` (a PEM file; the Mozilla roots without it) and
//! `verify-full` its name too.
//!
//! | metric | type |
//! | --- | --- |
//! | `db_pool_size`, `db_pool_available`, `db_pool_waiting` | gauge |
//! | `db_pool_wait_seconds` | histogram |
//! | `db_query_duration_seconds` (every [`Database::with_connection`], labelled `outcome`: `ok`, `failed`, `timeout`) | histogram |
//! | `db_transaction_duration_seconds` (every attempt of a [`Database::transaction`], labelled `outcome`: `committed`, `failed`) | histogram |
//! | `retry_attempts_total`, `retry_give_ups_total` (labelled `retry="db_transaction"`; `reason="attempts"`), as pattern-error's retries count | counter |
//! | `circuit_breaker_*` (labelled `breaker="database"`) | see pattern-error's breaker |

mod listen;
mod migrate;
mod ssl;

use pattern_error::retry::{ATTEMPTS_TOTAL, GIVE_UPS_TOTAL};

/// Histogram of [`Database::with_connection`] calls' durations in seconds
/// (the work on the connection, not the wait for it), labelled `outcome`
/// (`ok`, `failed`, `timeout`).
pub const QUERY_DURATION: &str = "db_query_duration_seconds";
/// Histogram of [`Database::transaction`] attempts' durations in seconds,
/// labelled `outcome` (`committed`, `failed`).
pub const TRANSACTION_DURATION: &str = "db_transaction_duration_seconds";
/// The `retry` label of a transaction's retries in `retry_attempts_total`
/// and `retry_give_ups_total`.
pub const TRANSACTION_RETRY: &str = "db_transaction";

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Object, Pool, PoolConfig, Runtime, Timeouts};
use garde::Validate;
use pattern_component::component::{BoxFuture, Component, Running, StartContext};
use pattern_component::config::Secret;
use pattern_component::health::Health;
use pattern_error::{Error, Kind};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_postgres::NoTls;

pub use listen::{ListenEvent, Listener};
pub use migrate::{Migration, MigrationReport, Migrations};

/// Pool settings (durations in milliseconds). The URL is a [`Secret`]: it
/// never shows in logs or configuration dumps.
#[derive(Clone, Debug, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/db`, with `?sslmode=verify-full`
    /// (and `&sslrootcert=/path/ca.pem`) for TLS; see the [module docs](self).
    #[garde(skip)]
    pub url: Secret<String>,
    /// Connections at most.
    #[garde(range(min = 1, max = 1000))]
    pub pool_size: usize,
    /// How long a caller waits for a free connection.
    #[garde(range(min = 1, max = 60_000))]
    pub wait_timeout_ms: u64,
    /// How long opening a connection may take.
    #[garde(range(min = 1, max = 60_000))]
    pub create_timeout_ms: u64,
    /// How long checking a returned connection may take.
    #[garde(range(min = 1, max = 60_000))]
    pub recycle_timeout_ms: u64,
    /// How often the background health check runs while the database is
    /// healthy (while it is failing: every second, or this if shorter).
    #[garde(range(min = 100, max = 600_000))]
    pub health_check_interval_ms: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
            pool_size: 16,
            wait_timeout_ms: 2_000,
            create_timeout_ms: 2_000,
            recycle_timeout_ms: 1_000,
            health_check_interval_ms: 10_000,
        }
    }
}

/// How often the background probe runs while the database is failing, at
/// most.
const PROBE_WHILE_FAILING: Duration = Duration::from_secs(1);

/// A pool of PostgreSQL connections; see the [module docs](self). Cloning
/// shares the pool.
#[derive(Clone)]
pub struct Database {
    /// The pool; a new one after a stop closed it (a group restart).
    pool: Arc<std::sync::RwLock<Pool>>,
    settings: Arc<deadpool_postgres::Config>,
    /// TLS as the URL's `sslmode` asks (`None`: plain connections).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    breaker: pattern_error::breaker::CircuitBreaker,
    migrations: &'static [Migration],
    probe_every: Duration,
    /// Wakes the probe when the database starts failing (it then probes
    /// every second instead of waiting out the healthy interval).
    failed: Arc<tokio::sync::Notify>,
    healthy: Arc<AtomicBool>,
    /// Set while the component is stopped: no connection is handed out.
    stopped: Arc<AtomicBool>,
    last_error: Arc<std::sync::Mutex<Option<String>>>,
}

impl Database {
    /// A pool from `config` (connections are opened on demand).
    pub fn new(config: &PostgresConfig) -> Result<Self, Error> {
        let mut pg = deadpool_postgres::Config::new();
        let (url, mode, root) = ssl::split_url(config.url.expose())?;
        pg.url = Some(url);
        pg.ssl_mode = Some(match mode {
            ssl::SslMode::Disable => deadpool_postgres::SslMode::Disable,
            ssl::SslMode::Prefer => deadpool_postgres::SslMode::Prefer,
            _ => deadpool_postgres::SslMode::Require,
        });
        let tls = ssl::connector(mode, root.as_ref())?;
        pg.pool = Some(PoolConfig {
            max_size: config.pool_size,
            timeouts: Timeouts {
                wait: Some(Duration::from_millis(config.wait_timeout_ms)),
                create: Some(Duration::from_millis(config.create_timeout_ms)),
                recycle: Some(Duration::from_millis(config.recycle_timeout_ms)),
            },
            ..PoolConfig::default()
        });
        let pool = create_pool(&pg, tls.as_ref())?;
        // An outage answers fast: after repeated connection failures the
        // breaker rejects at once (with a retry-after) and probes now and then.
        let breaker = pattern_error::breaker::CircuitBreaker::builder("database")
            .count_window(10)
            .minimum_calls(5)
            .failure_rate(0.5)
            .open_duration(Duration::from_secs(2))
            .half_open_probes(1)
            .probe_timeout(Duration::from_millis(
                config.create_timeout_ms + config.wait_timeout_ms,
            ))
            .failure_if(|e| e.kind() == Kind::Unavailable && e.retry_after().is_none())
            .build()?;
        // Registered at zero: a rate over them is 0, not absent.
        metrics::counter!(ATTEMPTS_TOTAL, "retry" => TRANSACTION_RETRY).increment(0);
        metrics::counter!(GIVE_UPS_TOTAL, "retry" => TRANSACTION_RETRY, "reason" => "attempts")
            .increment(0);
        Ok(Self {
            pool: Arc::new(std::sync::RwLock::new(pool)),
            settings: Arc::new(pg),
            tls,
            breaker,
            migrations: &[],
            probe_every: Duration::from_millis(config.health_check_interval_ms),
            failed: Arc::default(),
            healthy: Arc::new(AtomicBool::new(false)),
            stopped: Arc::new(AtomicBool::new(false)),
            last_error: Arc::default(),
        })
    }

    /// Applies `migrations` when the component starts (before it reports
    /// ready); a start fails if one does not apply or an applied one changed.
    #[must_use]
    pub fn with_migrations(mut self, migrations: &'static [Migration]) -> Self {
        self.migrations = migrations;
        self
    }

    /// A connection, waiting at most the wait timeout; the failure is
    /// [`Kind::Unavailable`] (with a retry-after when the pool is only
    /// exhausted, or when the breaker is open after repeated connection
    /// failures and rejects at once).
    pub async fn get(&self) -> Result<Object, Error> {
        self.breaker.call(self.get_from_pool()).await
    }

    async fn get_from_pool(&self) -> Result<Object, Error> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(
                Error::new(Kind::Unavailable, "the database component is stopped")
                    .with_retry_after(Duration::from_secs(1)),
            );
        }
        let pool = self.pool();
        let started = Instant::now();
        let result = pool.get().await;
        metrics::histogram!("db_pool_wait_seconds").record(started.elapsed().as_secs_f64());
        let status = pool.status();
        metrics::gauge!("db_pool_size").set(status.size as f64);
        metrics::gauge!("db_pool_available").set(status.available as f64);
        metrics::gauge!("db_pool_waiting").set(status.waiting as f64);
        match result {
            Ok(connection) => {
                self.mark_healthy();
                Ok(connection)
            }
            // Only a wait for a free connection is the pool being busy; a
            // create or recycle timeout is the database not answering.
            Err(deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait)) => {
                Err(Error::new(
                    Kind::Unavailable,
                    "no database connection free within the wait timeout",
                )
                .with_retry_after(Duration::from_secs(1)))
            }
            // Closed by this component's stop: not an outage.
            Err(err @ deadpool_postgres::PoolError::Closed) => {
                Err(
                    Error::with_source(Kind::Unavailable, "the database component is stopped", err)
                        .with_retry_after(Duration::from_secs(1)),
                )
            }
            Err(err) => {
                self.mark_failing(err.to_string());
                Err(Error::with_source(
                    Kind::Unavailable,
                    "cannot reach the database",
                    err,
                ))
            }
        }
    }

    fn mark_healthy(&self) {
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::info!("database reachable");
        }
    }

    /// Marks the database failing; its error text goes to the log (once
    /// per outage), never to the health report.
    fn mark_failing(&self, why: String) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %why, "database unreachable");
            self.failed.notify_one();
        }
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
    }

    /// Classifies a query's error as [`db_error`] does and, when the
    /// connection failed (no SQLSTATE, class 08, or the server shutting
    /// down), marks the database failing at once rather than at the next
    /// probe. Use it where queries run: `.map_err(|e| db.error(e))`.
    pub fn error(&self, err: tokio_postgres::Error) -> Error {
        let text = err.to_string();
        let error = db_error(err);
        if error.kind() == Kind::Unavailable {
            self.mark_failing(text);
        }
        error
    }

    /// Runs `SELECT 1`; the health check.
    pub async fn ping(&self) -> Result<(), Error> {
        let connection = self.get().await?;
        connection
            .simple_query("SELECT 1")
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The database's last connection error, as the driver gave it (for
    /// logs and diagnostics; health reports say `unreachable`).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The pool itself (a handle; a restart of the component replaces it).
    pub fn pool(&self) -> Pool {
        self.pool
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs `work` on a pooled connection, as [`get`](Self::get) gives
    /// one, bounded as a transaction is: inside a request with a deadline
    /// (pattern-api's stack), `work` gets what is left of it
    /// ([`Kind::Timeout`] when it runs out), and a call cut short (timed
    /// out, or dropped because the request timed out or its client left)
    /// has its running query cancelled on the server, the connection
    /// leaving the pool. A connection from [`get`](Self::get) alone is not
    /// bounded: use this for statements outside a transaction.
    ///
    /// `work` returns a boxed future borrowing the connection
    /// (`|connection| Box::pin(async move { .. })`) and owning what else it
    /// uses; its driver error is classified as [`error`](Self::error) does
    /// (a lost connection marks the database failing).
    pub async fn with_connection<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: for<'c> FnOnce(&'c Object) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>,
    {
        let deadline = pattern_api::middleware::Deadline::current();
        let mut abandon = Abandon {
            connection: Some(self.get().await?),
            tls: self.tls.clone(),
        };
        let started = Instant::now();
        let result = {
            let connection = abandon
                .connection
                .as_ref()
                .ok_or_else(|| Error::new(Kind::Internal, "the connection of a call is gone"))?;
            let work = async { work(connection).await.map_err(|e| self.error(e)) };
            match deadline {
                None => work.await,
                Some(deadline) => {
                    match tokio::time::timeout(deadline.remaining(), work).await {
                        Ok(result) => result,
                        // Cut short: the guard cancels the query as it drops.
                        Err(_) => Err(Error::new(
                            Kind::Timeout,
                            "the request's deadline passed during a database call",
                        )),
                    }
                }
            }
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(err) if err.kind() == Kind::Timeout => "timeout",
            Err(_) => "failed",
        };
        metrics::histogram!(QUERY_DURATION, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        if outcome == "timeout" {
            return result; // the connection may still run the query
        }
        // Finished: back to the pool as usual.
        drop(abandon.connection.take());
        result
    }

    /// Runs `work` in a SERIALIZABLE transaction and commits it, running it
    /// again (up to 5 attempts, with exponential backoff from 10 ms) when
    /// PostgreSQL aborts it for a serialization failure (SQLSTATE 40001) or
    /// a deadlock (40P01). Any other error rolls back and is returned.
    ///
    /// Inside a request with a deadline (pattern-api's stack), each
    /// statement may take at most what was left of it when the transaction
    /// began (`SET LOCAL statement_timeout`; [`Kind::Timeout`] when it runs
    /// out), and a
    /// transaction dropped midway (the request timed out or its client
    /// left) has its running query cancelled on the server.
    ///
    /// `work` may run more than once: keep side effects outside the
    /// database out of it. It returns a boxed future borrowing the
    /// transaction (`|tx| Box::pin(async move { .. })`), which keeps the
    /// whole call `Send`.
    pub async fn transaction<T, F>(&self, mut work: F) -> Result<T, Error>
    where
        F: for<'t, 'c> FnMut(
            &'t deadpool_postgres::Transaction<'c>,
        ) -> BoxFuture<'t, Result<T, Error>>,
    {
        const ATTEMPTS: u32 = 5;
        // The workspace's one backoff (backon): from 10 ms, doubling, at
        // most 1 s, with jitter (two conflicting transactions retried in
        // step would conflict again).
        use backon::BackoffBuilder as _;
        let mut delays = backon::ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(10))
            .with_max_delay(Duration::from_secs(1))
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempt = 1;
        loop {
            // Dropped midway (the request gave up): the server stops the
            // query too, instead of running it for nobody; the connection
            // then leaves the pool, so the cancel can reach no one else's
            // query.
            let mut abandon = Abandon {
                connection: Some(self.get().await?),
                tls: self.tls.clone(),
            };
            let started = Instant::now();
            let result = async {
                let connection = abandon.connection.as_mut().ok_or_else(|| {
                    Error::new(Kind::Internal, "the connection of a transaction is gone")
                })?;
                let tx = connection
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::Serializable)
                    .start()
                    .await
                    .map_err(|e| self.error(e))?;
                // The request's deadline bounds every statement.
                if let Some(deadline) = pattern_api::middleware::Deadline::current() {
                    let left = deadline.remaining();
                    if left.is_zero() {
                        return Err(Error::new(
                            Kind::Timeout,
                            "the request's deadline has passed",
                        ));
                    }
                    let ms = left.as_millis().clamp(1, i32::MAX as u128);
                    tx.batch_execute(&format!("SET LOCAL statement_timeout = {ms}"))
                        .await
                        .map_err(|e| self.error(e))?;
                }
                let value = work(&tx).await?;
                tx.commit().await.map_err(|e| self.error(e))?;
                Ok::<T, Error>(value)
            }
            .await;
            // Finished (committed or failed): back to the pool as usual.
            drop(abandon.connection.take());
            let outcome = if result.is_ok() {
                "committed"
            } else {
                "failed"
            };
            metrics::histogram!(TRANSACTION_DURATION, "outcome" => outcome)
                .record(started.elapsed().as_secs_f64());
            match result {
                Err(err) if is_serialization_failure(&err) && attempt >= ATTEMPTS => {
                    metrics::counter!(GIVE_UPS_TOTAL, "retry" => TRANSACTION_RETRY, "reason" => "attempts")
                        .increment(1);
                    return Err(err);
                }
                Err(err) if is_serialization_failure(&err) => {
                    tracing::debug!(attempt, error = %err.report(), "transaction conflict; retrying");
                    metrics::counter!(ATTEMPTS_TOTAL, "retry" => TRANSACTION_RETRY).increment(1);
                    let delay = delays.next().unwrap_or(Duration::from_secs(1));
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

fn create_pool(
    settings: &deadpool_postgres::Config,
    tls: Option<&tokio_postgres_rustls::MakeRustlsConnect>,
) -> Result<Pool, Error> {
    match tls {
        Some(tls) => settings.create_pool(Some(Runtime::Tokio1), tls.clone()),
        None => settings.create_pool(Some(Runtime::Tokio1), NoTls),
    }
    .map_err(|e| Error::with_source(Kind::InvalidInput, "invalid PostgreSQL settings", e))
}

/// A transaction's connection, for as long as the transaction runs: if it
/// is dropped with the connection still in it (the future was abandoned),
/// the connection leaves the pool and its running query is cancelled (over
/// TLS when the pool uses it) before it closes.
struct Abandon {
    connection: Option<Object>,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        let token = connection.cancel_token();
        // Out of the pool: nobody else will run a query on it.
        let client = Object::take(connection);
        let tls = self.tls.take();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let cancelled = match tls {
                Some(tls) => token.cancel_query(tls).await,
                None => token.cancel_query(NoTls).await,
            };
            if let Err(err) = cancelled {
                tracing::debug!(%err, "cancelling an abandoned query failed");
            }
            // Closes the connection once the cancel is through.
            drop(client);
        });
    }
}

/// Wraps a PostgreSQL error, classified: serialization failures and
/// deadlocks are transient conflicts, lost connections unavailable.
pub fn db_error(err: tokio_postgres::Error) -> Error {
    use tokio_postgres::error::SqlState;
    let code = err.code().cloned();
    let kind = match code {
        Some(c)
            if c == SqlState::T_R_SERIALIZATION_FAILURE || c == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            Kind::Conflict
        }
        Some(c) if c == SqlState::UNIQUE_VIOLATION => Kind::Conflict,
        // A statement timeout, or a cancel: the time it had ran out.
        Some(c) if c == SqlState::QUERY_CANCELED => Kind::Timeout,
        // The server is going away or not accepting yet (57P01..57P03),
        // or the connection broke (class 08): an outage, not a bug.
        Some(c) if c.code().starts_with("57P") || c.code().starts_with("08") => Kind::Unavailable,
        Some(_) => Kind::Internal,
        // No SQLSTATE: the connection itself failed.
        None => Kind::Unavailable,
    };
    // A unique violation stays a conflict on retry; a serialization
    // failure or a deadlock does not, nor (once it is back) an outage.
    let transient = match kind {
        Kind::Conflict => err.code().is_some_and(|c| *c != SqlState::UNIQUE_VIOLATION),
        other => other.is_transient(),
    };
    Error::with_source(kind, "database error", err).with_transient(transient)
}

/// Whether `err` is a serialization failure or a deadlock (retryable).
fn is_serialization_failure(err: &Error) -> bool {
    use tokio_postgres::error::SqlState;
    err.downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.code())
        .is_some_and(|c| {
            *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        })
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("status", &self.pool().status())
            .field("healthy", &self.healthy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Component for Database {
    fn name(&self) -> &str {
        "database"
    }

    fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
        Box::pin(async move {
            // After a stop closed it (a group restart): a new pool.
            if self.pool().is_closed() {
                let fresh = create_pool(&self.settings, self.tls.as_ref())?;
                *self
                    .pool
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
            }
            self.stopped.store(false, Ordering::Release);
            self.ping().await?;
            if !self.migrations.is_empty() {
                self.migrate(self.migrations).await?;
            }
            let (probe, stop) = (self.clone(), ctx.stop_token().clone());
            Ok(Running::task(async move {
                loop {
                    let every = if probe.healthy.load(Ordering::Acquire) {
                        probe.probe_every
                    } else {
                        PROBE_WHILE_FAILING.min(probe.probe_every)
                    };
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        // Failing now: probe on the failing schedule.
                        () = probe.failed.notified() => continue,
                        () = stop.cancelled() => return Ok(()),
                    }
                    // The outcome is in the health; the text in the log.
                    let _ = probe.ping().await;
                }
            }))
        })
    }

    /// Hands out no more connections and closes the pool (idle
    /// connections at once, those in use when given back); a later start
    /// opens a new one.
    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.stopped.store(true, Ordering::Release);
            self.pool().close();
            Ok(())
        })
    }

    fn health(&self) -> Health {
        if self.healthy.load(Ordering::Acquire) {
            Health::ok()
        } else {
            Health::failing("unreachable")
        }
    }
}

impl pattern_api::extract::Acquire for Database {
    type Resource = Object;

    async fn acquire(&self) -> Result<Object, Error> {
        self.get().await
    }
}
