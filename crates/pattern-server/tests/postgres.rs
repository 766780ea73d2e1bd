//! The pool component against the throwaway PostgreSQL from
//! `cargo xtask pg` (DATABASE_URL): readiness, bounded waits, an
//! unreachable database.

#![cfg(feature = "postgres")]

use pattern_api::middleware::DeadlineLayer;
use std::time::Duration;

use pattern_component::component::Component;
use pattern_component::config::Secret;
use pattern_component::health::Status;
use pattern_component::lifecycle::System;
use pattern_error::Kind;
use pattern_server::postgres::{Database, PostgresConfig};

mod common;

use common::database_url;

fn config(url: String, pool_size: usize) -> PostgresConfig {
    PostgresConfig {
        url: Secret::new(url),
        pool_size,
        wait_timeout_ms: 200,
        ..PostgresConfig::default()
    }
}

#[tokio::test]
async fn the_pool_component_is_ready_and_answers() {
    let Some(url) = database_url() else { return };
    let db = Database::new(&config(url, 4)).unwrap();
    let running = System::builder()
        .component(db.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert!(running.health().ready);
    let connection = db.get().await.unwrap();
    let row = connection.query_one("SELECT 40 + 2", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    drop(connection);
    assert!(running.stop().await.is_clean());
}

#[tokio::test]
async fn an_exhausted_pool_fails_fast_as_unavailable() {
    let Some(url) = database_url() else { return };
    let db = Database::new(&config(url, 1)).unwrap();
    let held = db.get().await.unwrap();
    let started = std::time::Instant::now();
    let err = db.get().await.unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable);
    assert!(err.retry_after().is_some());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    drop(held);
    drop(db.get().await.unwrap());
}

#[tokio::test]
async fn an_unreachable_database_fails_the_start_and_reads_failing() {
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let db = Database::new(&config(
        format!("postgres://postgres:hunter2hunter2@{free}/postgres"),
        2,
    ))
    .unwrap();
    let err = System::builder()
        .component(db.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable);
    assert!(err.to_string().contains("\"database\""), "{err}");
    assert_eq!(db.health().status, Status::Failing);
    // The password shows nowhere: not in Debug, the error or the health.
    for shown in [
        format!("{db:?}"),
        format!("{err:?}"),
        pattern_error::ErrorReport::new(&err).to_string(),
        format!("{:?}", db.health()),
    ] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_serializable_transactions_are_retried() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let Some(url) = database_url() else { return };
    let db = Database::new(&config(url, 4)).unwrap();
    {
        let c = db.get().await.unwrap();
        c.batch_execute("DROP TABLE IF EXISTS on_call; CREATE TABLE on_call (doctor text)")
            .await
            .unwrap();
    }
    // Write skew: each transaction reads the table, then both insert. Under
    // SERIALIZABLE one of the first attempts must fail with 40001.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let attempts = Arc::new(AtomicU32::new(0));
    let run = |name: &'static str| {
        let (db, barrier, attempts) = (db.clone(), barrier.clone(), attempts.clone());
        tokio::spawn(async move {
            let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
            db.transaction(|tx| {
                let (barrier, attempts, first) = (barrier.clone(), attempts.clone(), first.clone());
                Box::pin(async move {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let row = tx
                        .query_one("SELECT count(*) FROM on_call", &[])
                        .await
                        .map_err(pattern_server::postgres::db_error)?;
                    let _seen: i64 = row.get(0);
                    if first.swap(false, Ordering::SeqCst) {
                        barrier.wait().await;
                    }
                    tx.execute("INSERT INTO on_call VALUES ($1)", &[&name])
                        .await
                        .map_err(pattern_server::postgres::db_error)?;
                    Ok(())
                })
            })
            .await
        })
    };
    let (a, b) = (run("alice"), run("bob"));
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    assert!(
        attempts.load(Ordering::SeqCst) >= 3,
        "one transaction was retried"
    );
    let c = db.get().await.unwrap();
    let count: i64 = c
        .query_one("SELECT count(*) FROM on_call", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2, "both committed in the end");
}

#[tokio::test]
async fn migrations_apply_once_and_refuse_a_changed_one() {
    use pattern_server::postgres::Migration;
    let Some(url) = database_url() else { return };
    let db = Database::new(&config(url, 2)).unwrap();
    {
        let c = db.get().await.unwrap();
        c.batch_execute("DROP TABLE IF EXISTS schema_migrations; DROP TABLE IF EXISTS mig_items")
            .await
            .unwrap();
    }
    static V1: &[Migration] = &[
        Migration::new(
            1,
            "items",
            "CREATE TABLE mig_items (id bigserial PRIMARY KEY, name text NOT NULL)",
        ),
        Migration::new(
            2,
            "quantity",
            "ALTER TABLE mig_items ADD COLUMN quantity int NOT NULL DEFAULT 0",
        ),
    ];
    let first = db.migrate(V1).await.unwrap();
    assert_eq!(first.applied, [1, 2]);
    let again = db.migrate(V1).await.unwrap();
    assert!(again.applied.is_empty(), "idempotent");
    assert_eq!(again.already, [1, 2]);
    let c = db.get().await.unwrap();
    c.execute(
        "INSERT INTO mig_items (name, quantity) VALUES ('bolt', 3)",
        &[],
    )
    .await
    .unwrap();

    static CHANGED: &[Migration] = &[
        Migration::new(
            1,
            "items",
            "CREATE TABLE mig_items (id bigserial PRIMARY KEY, name varchar(10))",
        ),
        Migration::new(3, "more", "ALTER TABLE mig_items ADD COLUMN note text"),
    ];
    let err = db.migrate(CHANGED).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Conflict);
    assert!(
        err.to_string().contains("migration 1 (items) has changed"),
        "{err}"
    );
    let applied: i64 = c
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 2, "nothing applied when one changed");

    // As a component: the start applies pending migrations.
    static V3: &[Migration] = &[
        Migration::new(
            1,
            "items",
            "CREATE TABLE mig_items (id bigserial PRIMARY KEY, name text NOT NULL)",
        ),
        Migration::new(
            2,
            "quantity",
            "ALTER TABLE mig_items ADD COLUMN quantity int NOT NULL DEFAULT 0",
        ),
        Migration::new(3, "note", "ALTER TABLE mig_items ADD COLUMN note text"),
    ];
    let running = System::builder()
        .component(db.clone().with_migrations(V3))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    c.execute("UPDATE mig_items SET note = 'ok'", &[])
        .await
        .unwrap();
    running.stop().await;
}

#[tokio::test]
async fn an_outage_opens_the_breaker_and_calls_fail_at_once() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let db = Database::new(&config(
        format!("postgres://postgres:hunter2hunter2@{free}/postgres"),
        2,
    ))
    .unwrap();
    for _ in 0..5 {
        assert_eq!(db.get().await.unwrap_err().kind(), Kind::Unavailable);
    }
    // Open now: rejected without trying to connect, with a retry-after.
    let started = std::time::Instant::now();
    let err = db.get().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), Kind::Unavailable);
    assert!(err.retry_after().is_some());
    assert!(
        err.downcast_ref::<pattern_error::breaker::Rejected>()
            .is_some(),
        "{err:?}"
    );
}

/// Instances starting together take turns: each migration is applied once,
/// by one of them, and none fails (the table is created under the lock).
#[tokio::test]
async fn concurrent_starters_apply_each_migration_once() {
    use pattern_server::postgres::Migration;
    let Some(url) = database_url() else { return };
    let admin = Database::new(&config(url.clone(), 1)).unwrap();
    {
        let c = admin.get().await.unwrap();
        c.batch_execute("DROP DATABASE IF EXISTS pattern_migration_race WITH (FORCE)")
            .await
            .unwrap();
        c.batch_execute("CREATE DATABASE pattern_migration_race")
            .await
            .unwrap();
    }
    let base = url.rsplit_once('/').expect("a URL with a database name").0;
    let url = format!("{base}/pattern_migration_race");
    static MIGRATIONS: &[Migration] = &[
        Migration::new(1, "parts", "CREATE TABLE parts (id bigserial PRIMARY KEY)"),
        Migration::new(2, "label", "ALTER TABLE parts ADD COLUMN label text"),
    ];
    let starters: Vec<_> = (0..6)
        .map(|_| {
            let db = Database::new(&config(url.clone(), 1)).unwrap();
            tokio::spawn(async move { db.migrate(MIGRATIONS).await })
        })
        .collect();
    let mut applied = Vec::new();
    for starter in starters {
        let report = starter.await.unwrap().expect("every starter succeeds");
        applied.extend(report.applied);
    }
    applied.sort_unstable();
    assert_eq!(applied, [1, 2], "each migration applied once in all");
}

/// A stopped pool component starts again (a group restart): its stop
/// closed the pool for good, so every later start failed.
#[tokio::test]
async fn a_stopped_pool_component_starts_again() {
    let Some(url) = database_url() else { return };
    let db = Database::new(&config(url, 2)).unwrap();
    for round in 0..3 {
        let running = System::builder()
            .component(db.clone())
            .build()
            .unwrap()
            .start()
            .await
            .unwrap_or_else(|err| panic!("round {round}: {}", err.report()));
        db.ping().await.unwrap();
        assert!(running.health().ready, "round {round}");
        assert!(running.stop().await.is_clean());
        let stopped = db.get().await.unwrap_err();
        assert_eq!(
            stopped.kind(),
            Kind::Unavailable,
            "no connection while stopped"
        );
    }
}

/// A query that fails at the network level (its backend killed) marks the
/// database failing at once, with `unreachable` and no driver text in the
/// health; the background probe brings readiness back with no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_marks_failing_and_the_probe_recovers() {
    let Some(url) = database_url() else { return };
    let db = Database::new(&config(url, 2)).unwrap();
    let running = System::builder()
        .component(db.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let victim = db.get().await.unwrap();
    let pid: i32 = victim
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    {
        let killer = db.get().await.unwrap();
        killer
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
    }
    let err = victim
        .query_one("SELECT 1", &[])
        .await
        .map_err(|e| db.error(e))
        .unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable, "{err:?}");
    drop(victim);
    let health = db.health();
    assert_eq!(
        health.status,
        Status::Failing,
        "at once, not at the next probe"
    );
    assert_eq!(health.message.as_deref(), Some("unreachable"));
    assert!(db.last_error().is_some(), "the text is kept for the logs");
    assert!(!running.health().ready);
    // No request from here on: the probe (every second while failing)
    // finds the database answering.
    let failed = std::time::Instant::now();
    let deadline = failed + Duration::from_secs(5);
    while !running.health().ready {
        assert!(
            std::time::Instant::now() < deadline,
            "readiness never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // real time: a real database
    }
    // On the failing schedule (a second), not the healthy one (10 s).
    assert!(
        failed.elapsed() < Duration::from_secs(3),
        "{:?}",
        failed.elapsed()
    );
    assert!(running.stop().await.is_clean());
}

/// A migration that cannot run in a transaction (`CREATE INDEX
/// CONCURRENTLY`) runs outside one; the migrations can be a component of
/// their own, after the pool, with their own start timeout.
#[tokio::test]
async fn migrations_without_a_transaction_and_as_a_step_of_their_own() {
    use pattern_component::lifecycle::ComponentConfig;
    use pattern_server::postgres::Migration;

    let Some(url) = database_url() else { return };
    let db = Database::new(&config(url, 2)).unwrap();
    static INSIDE: &[Migration] = &[
        Migration::new(
            1,
            "t",
            "CREATE TABLE IF NOT EXISTS conc_items (id bigserial PRIMARY KEY, name text)",
        ),
        Migration::new(
            2,
            "idx",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS conc_items_name ON conc_items (name)",
        ),
    ];
    static OUTSIDE: &[Migration] = &[
        Migration::new(
            1,
            "t",
            "CREATE TABLE IF NOT EXISTS conc_items (id bigserial PRIMARY KEY, name text)",
        ),
        Migration::new(
            2,
            "idx",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS conc_items_name ON conc_items (name)",
        )
        .without_transaction(),
    ];
    {
        let connection = db.get().await;
        // The throwaway cluster may be fresh: start clean either way.
        if let Ok(connection) = connection {
            connection
                .batch_execute(
                    "DROP TABLE IF EXISTS conc_items; DROP TABLE IF EXISTS schema_migrations",
                )
                .await
                .unwrap();
        }
    }
    let inside = db.migrate(INSIDE).await.unwrap_err();
    assert!(
        pattern_error::ErrorReport::new(&inside)
            .to_string()
            .contains("transaction block"),
        "{}",
        pattern_error::ErrorReport::new(&inside)
    );
    let migrations = std::sync::Arc::new(db.migrations(OUTSIDE));
    let running = System::builder()
        .component(db.clone())
        .component_shared(
            migrations.clone(),
            ComponentConfig::default().start_timeout(Duration::from_secs(600)),
        )
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(
        migrations.last_report().unwrap().applied,
        [2],
        "1 was applied above"
    );
    let connection = db.get().await.unwrap();
    let indexes: i64 = connection
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'conc_items_name'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexes, 1);
    drop(connection);
    assert_eq!(db.migrate(OUTSIDE).await.unwrap().already, [1, 2]);
    running.stop().await;
}

/// Sleeps 5 s on the server, in a query marked with `marker`.
fn sleeping<'t>(
    tx: &'t deadpool_postgres::Transaction<'_>,
    marker: &'static str,
) -> pattern_component::component::BoxFuture<'t, Result<(), pattern_error::Error>> {
    Box::pin(async move {
        tx.batch_execute(&format!("SELECT pg_sleep(5) /* {marker} */"))
            .await
            .map_err(pattern_server::postgres::db_error)
    })
}

/// Active queries carrying `marker`, other than the asker's (asked on a
/// connection of its own: a pooled one could be the very one still busy).
async fn active(url: &str, marker: &str) -> i64 {
    let (connection, driver) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(driver);
    connection
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'",
            &[&marker],
        )
        .await
        .unwrap()
        .get(0)
}

/// A transaction dropped midway has its query cancelled on the server (it
/// went on running for nobody); inside a request, the deadline bounds its
/// statements (504 at the edge, the query gone on the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_and_late_queries_stop_on_the_server() {
    use axum::Router;
    use axum::routing::get;
    use pattern_api::ApiError;
    use pattern_api::stack::ApiStack;
    use pattern_api::testing::TestClient;

    let Some(url) = database_url() else { return };
    let db = Database::new(&config(url.clone(), 4)).unwrap();
    let gone_within = |marker: &'static str, url: String| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            if active(&url, marker).await == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{marker}: the query went on running"
            );
            tokio::time::sleep(Duration::from_millis(50)).await; // real time: a real database
        }
    };

    // Dropped midway.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        db.transaction(|tx| sleeping(tx, "abandoned-q")),
    )
    .await;
    assert!(abandoned.is_err(), "timed out");
    gone_within("abandoned-q", url.clone()).await;

    // Dropped midway, outside a transaction.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        db.with_connection(|connection| {
            Box::pin(async move {
                connection
                    .batch_execute("SELECT pg_sleep(5) /* plain-abandoned-q */")
                    .await
            })
        }),
    )
    .await;
    assert!(abandoned.is_err(), "timed out");
    gone_within("plain-abandoned-q", url.clone()).await;

    // A request's deadline.
    let (slow_db, show_db, plain_db) = (db.clone(), db.clone(), db.clone());
    let app = ApiStack::new()
        .timeout(DeadlineLayer::new(Duration::from_millis(300)))
        .apply(
            Router::new()
                .route(
                    "/slow",
                    get(move || {
                        let db = slow_db.clone();
                        async move {
                            db.transaction(|tx| sleeping(tx, "deadline-q")).await?;
                            Ok::<_, ApiError>("done")
                        }
                    }),
                )
                .route(
                    "/plain",
                    get(move || {
                        let db = plain_db.clone();
                        async move {
                            db.with_connection(|connection| {
                                Box::pin(async move {
                                    connection
                                        .batch_execute("SELECT pg_sleep(5) /* plain-q */")
                                        .await
                                })
                            })
                            .await?;
                            Ok::<_, ApiError>("done")
                        }
                    }),
                )
                .route(
                    "/timeout",
                    get(move || {
                        let db = show_db.clone();
                        async move {
                            let shown = db
                                .transaction(|tx| {
                                    Box::pin(async move {
                                        let row = tx
                                            .query_one("SHOW statement_timeout", &[])
                                            .await
                                            .map_err(pattern_server::postgres::db_error)?;
                                        Ok(row.get::<_, String>(0))
                                    })
                                })
                                .await?;
                            Ok::<_, ApiError>(shown)
                        }
                    }),
                ),
        );
    let started = std::time::Instant::now();
    let client = TestClient::new(app);
    let response = client.get("/slow").await;
    assert!(
        matches!(response.status.as_u16(), 504 | 503),
        "{}",
        response.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    gone_within("deadline-q", url.clone()).await;
    // Outside a transaction too.
    let started = std::time::Instant::now();
    let response = client.get("/plain").await;
    assert!(
        matches!(response.status.as_u16(), 504 | 503),
        "{}",
        response.status
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    gone_within("plain-q", url.clone()).await;
    // Inside the transaction, statements are bounded by what is left.
    let shown = client.get("/timeout").await;
    shown.assert_status(200);
    let ms: u64 = shown
        .text()
        .trim_end_matches("ms")
        .parse()
        .unwrap_or_else(|_| panic!("{}", shown.text()));
    assert!((1..=300).contains(&ms), "statement_timeout {ms} ms");
}

/// Notifies on `channel` until the listener hears it (the LISTEN takes a
/// moment to be in place).
async fn receive(
    notifier: &tokio_postgres::Client,
    listener: &mut pattern_server::postgres::Listener,
    channel: &str,
    payload: &str,
) {
    use pattern_server::postgres::ListenEvent;
    for _ in 0..100 {
        notifier
            .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_millis(100), listener.recv()).await {
            Ok(Some(ListenEvent::Notification {
                channel: got,
                payload: said,
                ..
            })) => {
                assert_eq!((got.as_str(), said.as_str()), (channel, payload));
                return;
            }
            Ok(Some(ListenEvent::Reconnected)) => {}
            Ok(other) => panic!("{other:?}"),
            Err(_) => {} // real time: a real database
        }
    }
    panic!("no notification on {channel}");
}

/// `LISTEN`/`NOTIFY` as a stream: notifications arrive, a lost connection
/// comes back by itself and says so, and then notifications arrive again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_receives_notifications_and_comes_back() {
    use pattern_server::postgres::ListenEvent;

    let Some(url) = database_url() else { return };
    let db = Database::new(&config(url.clone(), 2)).unwrap();
    assert_eq!(
        db.listen(Vec::<String>::new()).unwrap_err().kind(),
        Kind::InvalidInput
    );
    assert_eq!(
        db.listen(["x".repeat(64)]).unwrap_err().kind(),
        Kind::InvalidInput
    );
    let mut listener = db.listen(["jobs", "odd \"name\""]).unwrap();
    let (notifier, driver) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(driver);
    receive(&notifier, &mut listener, "jobs", "one").await;
    receive(&notifier, &mut listener, "odd \"name\"", "two").await;
    // Lose the listening connection.
    let killed: i64 = notifier
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1);
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match listener.recv().await {
                Some(ListenEvent::Reconnected) => return,
                Some(_) => {}
                None => panic!("the listener ended"),
            }
        }
    })
    .await;
    assert!(event.is_ok(), "not reconnected within 10 s");
    receive(&notifier, &mut listener, "jobs", "three").await;
}

/// Whether the connection `db` hands out is encrypted.
async fn encrypted(db: &Database) -> bool {
    let connection = db.get().await.unwrap();
    connection
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// TLS to PostgreSQL by the URL's `sslmode`, as libpq reads it: the
/// throwaway cluster serves a self-signed certificate for 127.0.0.1
/// (`PATTERNS_PG_CA`, from `cargo xtask pg`). `verify-full` trusts it only
/// with it as `sslrootcert` and for its name; `require` encrypts without
/// checking; `disable` does not encrypt; LISTEN goes the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_follows_sslmode() {
    let Some(url) = database_url() else { return };
    let Ok(ca) = std::env::var("PATTERNS_PG_CA") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PATTERNS_PG_CA must be set under CI=true"
        );
        eprintln!("skipped: the cluster has no TLS (PATTERNS_PG_CA unset)");
        return;
    };
    let with = |query: &str| {
        let config = config(format!("{url}?{query}"), 1);
        Database::new(&config)
    };
    let verified = with(&format!("sslmode=verify-full&sslrootcert={ca}")).unwrap();
    assert!(encrypted(&verified).await, "verify-full encrypts");
    let mut listener = verified.listen(["tls_jobs"]).unwrap();
    let (notifier, driver) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(driver);
    receive(&notifier, &mut listener, "tls_jobs", "over tls").await;

    assert!(
        encrypted(&with("sslmode=require").unwrap()).await,
        "require encrypts"
    );
    assert!(
        encrypted(&with(&format!("sslmode=verify-ca&sslrootcert={ca}")).unwrap()).await,
        "verify-ca encrypts"
    );
    assert!(
        !encrypted(&with("sslmode=disable").unwrap()).await,
        "disable does not"
    );

    // Not trusted: the Mozilla roots do not know a self-signed certificate.
    let untrusted = with("sslmode=verify-full").unwrap();
    let err = untrusted.get().await.unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable, "{err:?}");
    // Trusted CA but another name (connecting to 127.0.0.1 by `hostaddr`,
    // checking the name `db.example`): verify-full refuses, verify-ca
    // accepts.
    let other_name = url.replace("@127.0.0.1:", "@db.example:");
    let config = |query: String| config(format!("{other_name}?hostaddr=127.0.0.1&{query}"), 1);
    let wrong = Database::new(&config(format!("sslmode=verify-full&sslrootcert={ca}"))).unwrap();
    let err = wrong.get().await.unwrap_err();
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
    let any_name = Database::new(&config(format!("sslmode=verify-ca&sslrootcert={ca}"))).unwrap();
    assert!(
        encrypted(&any_name).await,
        "verify-ca checks the chain only"
    );
    assert_eq!(
        with("sslmode=sometimes").unwrap_err().kind(),
        Kind::InvalidInput
    );
    assert_eq!(
        with("sslmode=verify-full&sslrootcert=/nonexistent.pem")
            .unwrap_err()
            .kind(),
        Kind::InvalidInput
    );
}

/// An abandoned transaction's connection leaves the pool: its cancel,
/// arriving after, can reach no other request's query on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_connection_is_not_reused() {
    let Some(url) = database_url() else { return };
    let db = Database::new(&config(url, 1)).unwrap();
    let pid = |db: Database| async move {
        let connection = db.get().await.unwrap();
        connection
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get::<_, i32>(0)
    };
    let first = pid(db.clone()).await;
    assert_eq!(pid(db.clone()).await, first, "one connection, reused");
    let abandoned = tokio::time::timeout(
        Duration::from_millis(200),
        db.transaction(|tx| sleeping(tx, "reuse-q")),
    )
    .await;
    assert!(abandoned.is_err());
    assert_ne!(
        pid(db.clone()).await,
        first,
        "the abandoned connection was not handed out again"
    );
}
