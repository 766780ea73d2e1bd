//! `SELECT 1` through `pattern-server`'s pool component (breaker, bounded
//! wait, pool metrics) against the same query on a bare deadpool-postgres
//! pool with the same settings (`deadpool_postgres`), both on the throwaway cluster of
//! `cargo xtask pg start` (`DATABASE_URL`; without it the bench is skipped).
//! One client in a loop, and 16 concurrent clients on a 16-connection pool.
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use deadpool_postgres::{Object, Pool};
use patterns::component::config::Secret;
use patterns::server::postgres::{Database, PostgresConfig};

const POOL: usize = 16;
const CLIENTS: u64 = 16;

async fn select_1(connection: &Object) {
    let statement = connection.prepare_cached("SELECT 1").await.unwrap();
    let row = connection.query_one(&statement, &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

/// A bare pool with the settings the component uses (its defaults): the
/// same size and the same wait, create and recycle timeouts, so the ratio
/// is the component's own cost (breaker, health, pool metrics).
fn bare_pool(url: &str) -> Pool {
    let settings = PostgresConfig::default();
    let mut pool = deadpool_postgres::PoolConfig::new(POOL);
    pool.timeouts = deadpool_postgres::Timeouts {
        wait: Some(Duration::from_millis(settings.wait_timeout_ms)),
        create: Some(Duration::from_millis(settings.create_timeout_ms)),
        recycle: Some(Duration::from_millis(settings.recycle_timeout_ms)),
    };
    let mut config = deadpool_postgres::Config::new();
    config.url = Some(url.to_owned());
    config.pool = Some(pool);
    config
        .create_pool(
            Some(deadpool_postgres::Runtime::Tokio1),
            tokio_postgres::NoTls,
        )
        .unwrap()
}

/// Runs `iters` calls split over `clients` tasks; returns the wall time.
async fn run<F, Fut>(iters: u64, clients: u64, call: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let call = call.clone();
            let share = iters / clients + u64::from(c < iters % clients);
            tokio::spawn(async move {
                for _ in 0..share {
                    call().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

fn postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("postgres bench skipped: DATABASE_URL is not set (cargo xtask pg start)");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = Database::new(&PostgresConfig {
        url: Secret::new(url.clone()),
        pool_size: POOL,
        ..PostgresConfig::default()
    })
    .unwrap();
    let bare = rt.block_on(async { bare_pool(&url) });

    for (group, clients) in [("postgres_select_1", 1), ("postgres_select_1_x16", CLIENTS)] {
        let mut group = c.benchmark_group(group);
        group.bench_function("ours", |b| {
            b.iter_custom(|iters| {
                let db = db.clone();
                rt.block_on(run(iters, clients, move || {
                    let db = db.clone();
                    async move { select_1(&db.get().await.unwrap()).await }
                }))
            })
        });
        group.bench_function("deadpool_postgres", |b| {
            b.iter_custom(|iters| {
                let pool = bare.clone();
                rt.block_on(run(iters, clients, move || {
                    let pool = pool.clone();
                    async move { select_1(&pool.get().await.unwrap()).await }
                }))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, postgres);
criterion_main!(benches);
