//! A real outage: the throwaway cluster is stopped in the middle of the
//! test and started again (`$PATTERNS_PG_CTL stop|start`, written by
//! `cargo xtask pg`). Calls fail fast as unavailable and readiness goes
//! false; once it is back, the same pool recovers without a restart.
//!
//! Its own test binary: cargo runs test binaries one after another, so no
//! other database test runs while the cluster is down.

#![cfg(feature = "postgres")]

use std::process::Command;
use std::time::{Duration, Instant};

use pattern_component::config::Secret;
use pattern_component::lifecycle::System;
use pattern_error::Kind;
use pattern_server::postgres::{Database, PostgresConfig};

mod common;

/// Stops or starts the cluster; panics if that fails.
fn ctl(script: &str, action: &str) {
    let status = Command::new(script).arg(action).status().unwrap();
    assert!(status.success(), "{script} {action}: {status}");
}

/// Restarts the cluster even if the test fails half-way.
struct StartOnDrop<'a>(&'a str);

impl Drop for StartOnDrop<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.0).arg("start").status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_fast_and_the_pool_recovers_without_a_restart() {
    let Some(url) = common::database_url() else {
        return;
    };
    let script = std::env::var("PATTERNS_PG_CTL")
        .expect("PATTERNS_PG_CTL must be set with DATABASE_URL (cargo xtask ci sets both)");
    let db = Database::new(&PostgresConfig {
        url: Secret::new(url),
        pool_size: 4,
        wait_timeout_ms: 500,
        create_timeout_ms: 500,
        recycle_timeout_ms: 200,
        health_check_interval_ms: 500,
    })
    .unwrap();
    let running = System::builder()
        .component(db.clone())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert!(running.health().ready);
    db.ping().await.unwrap();

    ctl(&script, "stop");
    let restart = StartOnDrop(&script);
    // With no request at all, the background probe sees the outage.
    let noticed = Instant::now();
    while running.health().ready {
        assert!(
            noticed.elapsed() < Duration::from_secs(15),
            "readiness stayed true through the outage"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("outage noticed by the probe after {:?}", noticed.elapsed());
    let mut slowest = Duration::ZERO;
    let mut rejected_by_breaker = 0;
    for _ in 0..20 {
        let started = Instant::now();
        let err = db.ping().await.unwrap_err();
        slowest = slowest.max(started.elapsed());
        assert_eq!(err.kind(), Kind::Unavailable, "{err:?}");
        if err
            .downcast_ref::<pattern_error::breaker::Rejected>()
            .is_some()
        {
            rejected_by_breaker += 1;
        }
    }
    assert!(
        slowest < Duration::from_millis(100),
        "slowest failure {slowest:?}"
    );
    assert!(
        rejected_by_breaker >= 10,
        "the breaker opened: {rejected_by_breaker} of 20"
    );
    let health = running.health();
    assert!(!health.ready, "{health:?}");

    ctl(&script, "start");
    std::mem::forget(restart);
    // Again with no request: readiness comes back by itself (it stuck at
    // 503 until some request succeeded, and none came).
    let back = Instant::now();
    while !running.health().ready {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "readiness did not come back by itself"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "ready again {:?} after the restart, with no request",
        back.elapsed()
    );
    // The breaker probes again after its open period (2 s); allow 10 s.
    let back = Instant::now();
    loop {
        if db.ping().await.is_ok() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "not recovered within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("recovered {:?} after the restart", back.elapsed());
    assert!(
        running.health().ready,
        "ready again, without restarting the system"
    );
    let connection = db.get().await.unwrap();
    let row = connection.query_one("SELECT 1 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    drop(connection);
    assert!(running.stop().await.is_clean());
}
