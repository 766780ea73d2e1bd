//! The process registry: states, restarts with the last error, stop and
//! restart by name, and the admin route behind a bearer token.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pattern_api::testing::TestClient;
use pattern_component::config::Secret;
use pattern_error::{Error, Kind};
use pattern_server::registry::{ChildState, ProcessRegistry, admin_router};

#[tokio::test(start_paused = true)]
async fn failures_are_restarted_and_recorded() {
    let registry = ProcessRegistry::new();
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    registry
        .register("consumer", move |stop| {
            let run = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if run < 2 {
                    return Err(Error::new(Kind::Unavailable, "broker connection lost"));
                }
                stop.cancelled().await;
                Ok(())
            }
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let info = registry.get("consumer").unwrap();
    assert_eq!(info.state, ChildState::Running);
    assert_eq!(info.restarts, 2);
    assert_eq!(info.last_error.as_deref(), Some("broker connection lost"));
    assert!(info.started_at.is_some());

    registry.restart("consumer").await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(registry.get("consumer").unwrap().state, ChildState::Running);
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    registry.stop_all().await;
    assert_eq!(registry.get("consumer").unwrap().state, ChildState::Stopped);
    assert_eq!(
        registry.stop("nope").await.unwrap_err().kind(),
        Kind::NotFound
    );
}

#[tokio::test(start_paused = true)]
async fn panics_count_and_the_restart_limit_gives_up() {
    let registry = ProcessRegistry::new().intensity(2, Duration::from_secs(60));
    registry
        .register("crashy", |_stop| async {
            if true {
                panic!("bad state");
            }
            Ok(())
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let info = registry.get("crashy").unwrap();
    assert_eq!(info.state, ChildState::Failed);
    assert_eq!(info.restarts, 2);
    assert_eq!(info.last_error.as_deref(), Some("panicked: bad state"));
}

#[tokio::test]
async fn the_admin_route_requires_the_token() {
    let registry = ProcessRegistry::new();
    registry
        .register("sweeper", |stop| async move {
            stop.cancelled().await;
            Ok(())
        })
        .await
        .unwrap();
    let client = TestClient::serve(admin_router(
        registry.clone(),
        Secret::new("s3cr3t".to_owned()),
    ))
    .await;
    let anonymous = client.get("/admin/processes").await;
    anonymous.assert_problem(401, "unauthenticated");
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some(r#"Bearer realm="admin""#),
        "RFC 9110: a 401 names its scheme"
    );

    for wrong in [
        "Bearer wrong",
        "Bearer s3cr3",
        "Bearer s3cr3tt",
        "Basic s3cr3t",
    ] {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", wrong.parse().unwrap());
        let refused = client
            .send(
                http::Method::GET,
                "/admin/processes",
                headers,
                Default::default(),
            )
            .await;
        refused.assert_problem(401, "unauthenticated");
        assert!(refused.header("www-authenticate").is_some(), "{wrong}");
    }

    // The scheme is case-insensitive (RFC 9110).
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", "bearer s3cr3t".parse().unwrap());
    let listed = client
        .send(
            http::Method::GET,
            "/admin/processes",
            headers.clone(),
            Default::default(),
        )
        .await;
    listed.assert_status(200);
    assert_eq!(listed.data()[0]["name"], "sweeper");
    assert_eq!(listed.data()[0]["state"], "running");

    let stopped = client
        .send(
            http::Method::POST,
            "/admin/processes/sweeper/stop",
            headers.clone(),
            Default::default(),
        )
        .await;
    stopped.assert_status(200);
    assert_eq!(stopped.data()["state"], "stopped");
    client
        .send(
            http::Method::POST,
            "/admin/processes/ghost/stop",
            headers,
            Default::default(),
        )
        .await
        .assert_problem(404, "not_found");
}

/// Counts the instances of a process alive at once (an instance counts
/// from its start until its future is dropped: it ended or was aborted).
#[derive(Clone, Default)]
struct Instances {
    alive: Arc<AtomicU32>,
    most: Arc<AtomicU32>,
    started: Arc<AtomicU32>,
}

struct Alive(Arc<AtomicU32>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Instances {
    fn enter(&self) -> Alive {
        let now = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        Alive(self.alive.clone())
    }
}

/// Registers `name`: a process counted in the instances returned, which
/// ends as soon as it is told to stop.
async fn polite(registry: &ProcessRegistry, name: &str) -> Instances {
    let instances = Instances::default();
    let counting = instances.clone();
    registry
        .register(name.to_owned(), move |stop| {
            let alive = counting.enter();
            async move {
                let _alive = alive;
                stop.cancelled().await;
                Ok(())
            }
        })
        .await
        .unwrap();
    instances
}

/// Many concurrent restarts and stops of one name: never two instances at
/// once, and none left running, unseen, after `stop_all` (two concurrent
/// restarts could orphan one). Some instances take a while to notice their
/// token, some ignore it and are aborted.
#[tokio::test(start_paused = true)]
async fn a_name_runs_at_most_one_instance_whatever_the_interleaving() {
    for seed in 0..20u64 {
        let registry = ProcessRegistry::new().stop_timeout(Duration::from_millis(300));
        let instances = Instances::default();
        let counting = instances.clone();
        registry
            .register("worker", move |stop| {
                let alive = counting.enter();
                let n = counting.started.load(Ordering::SeqCst);
                async move {
                    let _alive = alive;
                    match n % 3 {
                        0 => stop.cancelled().await,
                        1 => {
                            stop.cancelled().await;
                            tokio::time::sleep(Duration::from_millis(100)).await; // slow to stop
                        }
                        _ => std::future::pending::<()>().await, // ignores its token
                    }
                    Ok(())
                }
            })
            .await
            .unwrap();
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..30u64 {
            let registry = registry.clone();
            let pick = seed.wrapping_mul(31).wrapping_add(i * 17) % 5;
            calls.spawn(async move {
                tokio::time::sleep(Duration::from_millis((i * 7 + seed) % 50)).await;
                match pick {
                    0..=2 => registry.restart("worker").await.map(drop),
                    _ => registry.stop("worker").await.map(drop),
                }
            });
        }
        while let Some(call) = calls.join_next().await {
            // A restart overtaken by a stop while the old run was ending
            // says so; nothing else fails.
            if let Err(err) = call.unwrap() {
                assert_eq!(err.kind(), Kind::Conflict, "seed {seed}: {err}");
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(instances.alive.load(Ordering::SeqCst) <= 1, "seed {seed}");
        registry.stop_all().await;
        assert_eq!(
            instances.most.load(Ordering::SeqCst),
            1,
            "seed {seed}: two at once"
        );
        assert_eq!(
            instances.alive.load(Ordering::SeqCst),
            0,
            "seed {seed}: an instance outlived stop_all"
        );
        assert_eq!(registry.get("worker").unwrap().state, ChildState::Stopped);
    }
}

/// A process that ignores its stop token is aborted after the stop
/// timeout, and the stop says so (it hung for ever).
#[tokio::test(start_paused = true)]
async fn a_process_that_ignores_its_token_is_aborted_after_the_stop_timeout() {
    use pattern_server::registry::StopOutcome;

    let registry = ProcessRegistry::new().stop_timeout(Duration::from_secs(2));
    let instances = Instances::default();
    let counting = instances.clone();
    registry
        .register("stubborn", move |_stop| {
            let alive = counting.enter();
            async move {
                let _alive = alive;
                std::future::pending::<()>().await;
                Ok(())
            }
        })
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let started = tokio::time::Instant::now();
    assert_eq!(
        registry.stop("stubborn").await.unwrap(),
        StopOutcome::Abandoned
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(
        instances.alive.load(Ordering::SeqCst),
        0,
        "aborted, not left running"
    );
    let info = registry.get("stubborn").unwrap();
    assert_eq!(info.state, ChildState::Stopped);
    assert!(info.last_error.unwrap().contains("aborted"));
    assert_eq!(
        registry.stop("stubborn").await.unwrap(),
        StopOutcome::NotRunning
    );
    // A polite one stops at once.
    registry
        .register("polite", |stop| async move {
            stop.cancelled().await;
            Ok(())
        })
        .await
        .unwrap();
    tokio::task::yield_now().await;
    assert_eq!(registry.stop("polite").await.unwrap(), StopOutcome::Stopped);
}

/// A process that fails now and then, less often than its intensity, is
/// restarted for ever (a lifetime cap gave up after 10 restarts); one that
/// fails faster gives up; the backoff starts over after a stable run.
#[tokio::test(start_paused = true)]
async fn restarts_follow_the_supervisors_windowed_intensity() {
    let registry = ProcessRegistry::new()
        .intensity(3, Duration::from_secs(10))
        .restart_backoff(Duration::from_millis(100), Duration::from_secs(5));
    // Fails 11 s after each start: never 4 restarts within 10 s.
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = starts.clone();
    registry
        .register("sometimes", move |_stop| {
            seen.lock().unwrap().push(tokio::time::Instant::now());
            async {
                tokio::time::sleep(Duration::from_secs(11)).await;
                Err(Error::new(Kind::Unavailable, "lost"))
            }
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(11 * 15 + 5)).await;
    let info = registry.get("sometimes").unwrap();
    assert!(info.restarts >= 14, "{info:?}");
    assert!(
        matches!(info.state, ChildState::Running | ChildState::Restarting),
        "{info:?}"
    );
    // Each run was stable for longer than the window: every restart waited
    // the minimum backoff, never a grown one.
    let starts = starts.lock().unwrap().clone();
    for pair in starts.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::from_millis(11_100));
    }

    // Fails at once: the fourth failure within 10 s gives up.
    registry
        .register("always", |_stop| async {
            Err(Error::new(Kind::Internal, "broken"))
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let info = registry.get("always").unwrap();
    assert_eq!(info.state, ChildState::Failed, "{info:?}");
    assert_eq!(info.restarts, 3);
    registry.stop_all().await;
}

/// Stop timeouts at their extremes: zero aborts at once (even a polite
/// process may be aborted, never left running), `Duration::MAX` waits for a
/// polite one without overflowing.
#[tokio::test(start_paused = true)]
async fn stop_timeouts_of_zero_and_max() {
    use pattern_server::registry::StopOutcome;

    for timeout in [Duration::ZERO, Duration::MAX] {
        let registry = ProcessRegistry::new().stop_timeout(timeout);
        let instances = polite(&registry, "polite").await;
        tokio::task::yield_now().await;
        let outcome = registry.stop("polite").await.unwrap();
        if timeout == Duration::MAX {
            assert_eq!(outcome, StopOutcome::Stopped);
        } else {
            assert!(
                matches!(outcome, StopOutcome::Stopped | StopOutcome::Abandoned),
                "{outcome:?}"
            );
        }
        assert_eq!(instances.alive.load(Ordering::SeqCst), 0, "{timeout:?}");
        // Restarted after the stop, twice at once: one instance.
        registry.restart("polite").await.unwrap();
        registry.restart("polite").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(instances.alive.load(Ordering::SeqCst), 1, "{timeout:?}");
        registry.stop_all().await;
        assert_eq!(instances.alive.load(Ordering::SeqCst), 0, "{timeout:?}");
    }
}

/// Processes that restart together (one for all) and a process removed
/// and registered again.
#[tokio::test(start_paused = true)]
async fn a_group_strategy_restarts_processes_together_and_removed_ones_come_back() {
    use pattern_component::supervision::RestartStrategy;

    let registry = ProcessRegistry::new()
        .strategy(RestartStrategy::OneForAll)
        .restart_backoff(Duration::from_millis(50), Duration::from_millis(50));
    let listener = polite(&registry, "listener").await;
    registry
        .register("consumer", |_stop| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err(Error::new(Kind::Unavailable, "broker lost"))
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        listener.started.load(Ordering::SeqCst),
        2,
        "restarted with the consumer"
    );
    assert_eq!(registry.get("listener").unwrap().restarts, 1);
    let names: Vec<String> = registry.list().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["consumer", "listener"], "listed by name");

    assert_eq!(
        registry.remove("listener").await.unwrap(),
        pattern_server::registry::StopOutcome::Stopped
    );
    assert!(registry.get("listener").is_none());
    assert_eq!(listener.alive.load(Ordering::SeqCst), 0);
    registry
        .register("listener", |stop| async move {
            stop.cancelled().await;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(registry.get("listener").unwrap().state, ChildState::Running);
    registry.stop_all().await;
}
