//! Lifecycle and supervision, with paused tokio time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pattern_component::component::{BoxFuture, Component, Running, StartContext};
use pattern_component::lifecycle::{
    ComponentConfig, ComponentState, StopOutcome, StopReason, System,
};
use pattern_component::ports::PortSpec;
use pattern_component::supervision::{Restart, RestartStrategy};
use pattern_error::{Error, Kind};

/// Records "start NAME" and "stop NAME" in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// What a test component's task does once started.
#[derive(Clone, Copy)]
enum Task {
    /// Run until stopped.
    UntilStopped,
    /// No task at all.
    Idle,
    /// Fail once every `n` ms, forever.
    FailAfter(u64),
    /// Panic after `n` ms.
    PanicAfter(u64),
    /// End (successfully) after `n` ms.
    ExitAfter(u64),
}

struct Probe {
    name: &'static str,
    deps: Vec<String>,
    log: Log,
    task: Task,
    fail_start: bool,
    stop_takes: Duration,
    ports: Vec<PortSpec>,
    starts: Arc<AtomicU32>,
}

fn probe(name: &'static str, log: &Log) -> Probe {
    Probe {
        name,
        deps: Vec::new(),
        log: log.clone(),
        task: Task::UntilStopped,
        fail_start: false,
        stop_takes: Duration::ZERO,
        ports: Vec::new(),
        starts: Arc::new(AtomicU32::new(0)),
    }
}

impl Probe {
    fn after(mut self, dep: &str) -> Self {
        self.deps.push(dep.to_owned());
        self
    }
    fn task(mut self, task: Task) -> Self {
        self.task = task;
        self
    }
}

impl Component for Probe {
    fn name(&self) -> &str {
        self.name
    }
    fn dependencies(&self) -> Vec<String> {
        self.deps.clone()
    }
    fn ports(&self) -> Vec<PortSpec> {
        self.ports.clone()
    }
    fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
        Box::pin(async move {
            self.starts.fetch_add(1, Ordering::SeqCst);
            if self.fail_start {
                self.log.push(format!("fail {}", self.name));
                return Err(Error::new(Kind::Unavailable, "connection refused"));
            }
            self.log.push(format!("start {}", self.name));
            let stop = ctx.stop_token().clone();
            Ok(match self.task {
                Task::Idle => Running::idle(),
                Task::UntilStopped => Running::task(async move {
                    stop.cancelled().await;
                    Ok(())
                }),
                Task::FailAfter(ms) => Running::task(async move {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(ms)) => Err(Error::new(Kind::Internal, "worker crashed")),
                        () = stop.cancelled() => Ok(()),
                    }
                }),
                Task::PanicAfter(ms) => Running::task(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    panic!("index out of bounds");
                }),
                Task::ExitAfter(ms) => Running::task(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(())
                }),
            })
        })
    }
    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            tokio::time::sleep(self.stop_takes).await;
            self.log.push(format!("stop {}", self.name));
            Ok(())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn starts_in_dependency_order_and_stops_in_reverse() {
    let log = Log::default();
    let system = System::builder()
        .component(probe("http", &log).after("cache").after("db"))
        .component(probe("cache", &log).after("db").task(Task::Idle))
        .component(probe("db", &log))
        .build()
        .unwrap();
    let running = system.start().await.unwrap();
    assert_eq!(log.take(), ["start db", "start cache", "start http"]);
    let summary = running.stop().await;
    assert_eq!(log.take(), ["stop http", "stop cache", "stop db"]);
    assert!(summary.is_clean());
    assert_eq!(summary.reason, StopReason::Requested);
}

#[tokio::test(start_paused = true)]
async fn failed_start_rolls_back_and_names_the_component() {
    let log = Log::default();
    let mut cache = probe("cache", &log).after("db");
    cache.fail_start = true;
    let system = System::builder()
        .component(probe("db", &log))
        .component(probe("queue", &log).after("db"))
        .component(cache)
        .component(probe("http", &log).after("cache"))
        .build()
        .unwrap();
    let err = system.start().await.unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable);
    assert_eq!(
        err.report().to_string(),
        "starting component \"cache\": connection refused"
    );
    assert_eq!(
        log.take(),
        [
            "start db",
            "start queue",
            "fail cache",
            "stop queue",
            "stop db"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn start_timeout_is_a_timeout_error() {
    struct Slow;
    impl Component for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        fn start(&self, _: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Running::idle())
            })
        }
    }
    let err = System::builder()
        .component_with(
            Slow,
            ComponentConfig::default().start_timeout(Duration::from_secs(2)),
        )
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::Timeout);
    assert!(err.to_string().contains("\"slow\""), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_component_that_does_not_stop_is_abandoned_and_the_rest_still_stop() {
    let log = Log::default();
    let mut stuck = probe("stuck", &log).after("db");
    stuck.stop_takes = Duration::from_secs(3600);
    let system = System::builder()
        .component(probe("db", &log))
        .component_with(
            stuck,
            ComponentConfig::default().stop_timeout(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let running = system.start().await.unwrap();
    log.take();
    let summary = running.stop().await;
    let outcomes: Vec<_> = summary
        .components
        .iter()
        .map(|c| (c.name.as_str(), c.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("stuck", StopOutcome::Abandoned),
            ("db", StopOutcome::Stopped)
        ]
    );
    assert_eq!(summary.components[0].took, Duration::from_secs(1));
    assert_eq!(log.take(), ["stop db"]);
    assert!(!summary.is_clean());
}

#[tokio::test(start_paused = true)]
async fn timeouts_of_duration_max_mean_no_timeout() {
    let log = Log::default();
    let system = System::builder()
        .component_with(
            probe("db", &log),
            ComponentConfig::default()
                .start_timeout(Duration::MAX)
                .stop_timeout(Duration::MAX),
        )
        .start_timeout(Duration::MAX)
        .stop_timeout(Duration::MAX)
        .start_all_timeout(Duration::MAX)
        .stop_all_timeout(Duration::MAX)
        .build()
        .unwrap();
    let summary = system.start().await.unwrap().stop().await;
    assert!(summary.is_clean(), "{summary:?}");
    assert_eq!(log.take(), ["start db", "stop db"]);
}

#[tokio::test(start_paused = true)]
async fn graph_errors_name_the_components() {
    let log = Log::default();
    let err = System::builder()
        .component(probe("a", &log).after("b"))
        .component(probe("b", &log).after("a"))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidInput);
    assert_eq!(err.to_string(), "dependency cycle: a -> b -> a");
    let err = System::builder()
        .component(probe("api", &log).after("db"))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("\"api\" depends on \"db\""),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_the_failed_component_with_backoff() {
    let log = Log::default();
    let worker = probe("worker", &log).task(Task::FailAfter(1000));
    let starts = worker.starts.clone();
    let system = System::builder()
        .component(probe("db", &log))
        .component(worker)
        .restart_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .intensity(10, Duration::from_secs(3600))
        .build()
        .unwrap();
    let running = system.start().await.unwrap();
    // Fails at 1 s, restarts after 100 ms; fails again 1 s later, restarts after 200 ms.
    tokio::time::sleep(Duration::from_millis(1150)).await;
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(running.states()[1].1, ComponentState::Restarting);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(starts.load(Ordering::SeqCst), 3);
    let lines = log.take();
    assert_eq!(
        lines.iter().filter(|l| *l == "start db").count(),
        1,
        "{lines:?}"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_for_all_restarts_everything_in_order() {
    let log = Log::default();
    let system = System::builder()
        .component(probe("db", &log))
        .component(
            probe("worker", &log)
                .after("db")
                .task(Task::FailAfter(1000)),
        )
        .component(probe("http", &log).after("worker"))
        .strategy(RestartStrategy::OneForAll)
        .restart_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .build()
        .unwrap();
    let running = system.start().await.unwrap();
    log.take();
    tokio::time::sleep(Duration::from_millis(1150)).await;
    assert_eq!(
        log.take(),
        [
            "stop http",
            "stop db",
            "start db",
            "start worker",
            "start http"
        ]
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_and_later_components() {
    let log = Log::default();
    let system = System::builder()
        .component(probe("db", &log))
        .component(
            probe("worker", &log)
                .after("db")
                .task(Task::FailAfter(1000)),
        )
        .component(probe("http", &log).after("worker"))
        .strategy(RestartStrategy::RestForOne)
        .restart_backoff(Duration::from_millis(100), Duration::from_secs(1))
        .build()
        .unwrap();
    let running = system.start().await.unwrap();
    log.take();
    tokio::time::sleep(Duration::from_millis(1150)).await;
    assert_eq!(log.take(), ["stop http", "start worker", "start http"]);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn restart_policies() {
    let log = Log::default();
    let never = probe("never", &log).task(Task::FailAfter(10));
    let never_starts = never.starts.clone();
    let always = probe("always", &log).task(Task::Idle);
    let system = System::builder()
        .component_with(never, ComponentConfig::default().restart(Restart::Never))
        .component_with(always, ComponentConfig::default().restart(Restart::Always))
        .build()
        .unwrap();
    let running = system.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(never_starts.load(Ordering::SeqCst), 1);
    match &running.states()[0].1 {
        ComponentState::Failed(why) => assert!(why.contains("worker crashed"), "{why}"),
        other => panic!("{other:?}"),
    }
    let health = running.health();
    assert!(
        health.live && !health.ready,
        "a failed component makes the system not ready"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn escalation_past_the_intensity_limit_shuts_the_system_down() {
    let log = Log::default();
    let system = System::builder()
        .component(probe("db", &log))
        .component(probe("flaky", &log).task(Task::FailAfter(10)))
        .intensity(3, Duration::from_secs(60))
        .restart_backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build()
        .unwrap();
    let running = system.start().await.unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(10), running.stopped())
        .await
        .expect("escalation stops the system");
    match &summary.reason {
        StopReason::Escalated(why) => assert!(why.contains("\"flaky\""), "{why}"),
        other => panic!("{other:?}"),
    }
    let lines = log.take();
    assert_eq!(
        lines.iter().filter(|l| *l == "start flaky").count(),
        4,
        "{lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("stop db"));
}

/// An orderly stop takes the system out of readiness at once and keeps it
/// live while components still work (a failing liveness probe gets a pod
/// killed mid-drain); a system its supervisor gave up on is not live.
#[tokio::test(start_paused = true)]
async fn stopping_is_live_and_not_ready_escalation_is_not_live() {
    let draining = pattern_component::component::from_fn("server", |ctx| async move {
        ctx.stop_token().cancelled().await;
        tokio::time::sleep(Duration::from_secs(1)).await; // the drain
        Ok(())
    });
    let system = System::builder().component(draining).build().unwrap();
    let health = system.health_handle();
    let running = system.start().await.unwrap();
    assert!(health.health().ready);
    let stopping = tokio::spawn(running.stop());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = health.health();
    assert!(during.live && !during.ready, "{during:?}");
    stopping.await.unwrap();
    assert!(health.health().live && !health.health().ready);

    let log = Log::default();
    let system = System::builder()
        .component(probe("flaky", &log).task(Task::FailAfter(10)))
        .intensity(1, Duration::from_secs(60))
        .restart_backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build()
        .unwrap();
    let health = system.health_handle();
    let running = system.start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), running.stopped())
        .await
        .expect("escalation stops the system");
    assert!(!health.health().live, "escalated: not live");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_component_is_a_failure_and_is_restarted() {
    let log = Log::default();
    let panicky = probe("panicky", &log).task(Task::PanicAfter(100));
    let starts = panicky.starts.clone();
    let running = System::builder()
        .component(panicky)
        .restart_backoff(Duration::from_millis(10), Duration::from_millis(10))
        .intensity(100, Duration::from_secs(1))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        starts.load(Ordering::SeqCst),
        2,
        "restarted after the panic"
    );
    running.stop().await;
}

#[tokio::test]
async fn ports_conflicts_port_zero_and_hand_over() {
    let log = Log::default();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut api = probe("api", &log);
    api.ports = vec![PortSpec::new("http", addr)];
    let mut admin = probe("admin", &log);
    admin.ports = vec![PortSpec::new("http", "127.0.0.1:0".parse().unwrap())];
    let running = System::builder()
        .component(api)
        .component(admin)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let a = running.addr("api", "http").unwrap();
    let b = running.addr("admin", "http").unwrap();
    assert!(a.port() != 0 && b.port() != 0 && a != b);
    running.stop().await;

    // The same fixed port twice is refused before anything starts.
    let fixed: SocketAddr = "127.0.0.1:18081".parse().unwrap();
    let mut one = probe("one", &log);
    one.ports = vec![PortSpec::new("http", fixed)];
    let mut two = probe("two", &log);
    two.ports = vec![PortSpec::new("http", "0.0.0.0:18081".parse().unwrap())];
    let err = System::builder()
        .component(one)
        .component(two)
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("\"one\"") && err.to_string().contains("\"two\""),
        "{err}"
    );

    // An address in use names the component and the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut three = probe("three", &log);
    three.ports = vec![PortSpec::new("http", taken.local_addr().unwrap())];
    let err = System::builder()
        .component(three)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("\"three\"") && err.to_string().contains("in use"),
        "{err}"
    );
}

#[tokio::test]
async fn a_component_serves_on_the_listener_it_was_handed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    struct Echo;
    impl Component for Echo {
        fn name(&self) -> &str {
            "echo"
        }
        fn ports(&self) -> Vec<PortSpec> {
            vec![PortSpec::new("tcp", "127.0.0.1:0".parse().unwrap())]
        }
        fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
            Box::pin(async move {
                let listener = ctx.take_listener("tcp")?;
                let stop = ctx.stop_token().clone();
                Ok(Running::task(async move {
                    loop {
                        tokio::select! {
                            accepted = listener.accept() => {
                                let (mut socket, _) = accepted?;
                                let mut buf = [0u8; 5];
                                socket.read_exact(&mut buf).await?;
                                socket.write_all(&buf).await?;
                            }
                            () = stop.cancelled() => return Ok(()),
                        }
                    }
                }))
            })
        }
    }
    let running = System::builder()
        .component(Echo)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let addr = running.addr("echo", "tcp").unwrap();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    socket.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
    assert!(running.stop().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_detached_health_handle_reports_once_attached() {
    let log = Log::default();
    let health = pattern_component::lifecycle::HealthHandle::detached();
    let before = health.health();
    assert!(
        before.live && !before.ready,
        "not ready before a system exists"
    );

    let system = System::builder()
        .component(probe("db", &log))
        .health_handle(&health)
        .build()
        .unwrap();
    assert!(!health.health().ready, "built but not started");
    let running = system.start().await.unwrap();
    let after = health.health();
    assert!(after.ready, "{after:?}");
    assert_eq!(after.components[0].name, "db");

    // One handle reports one system.
    let again = System::builder()
        .component(probe("other", &log))
        .health_handle(&health)
        .build()
        .unwrap_err();
    assert_eq!(again.kind(), Kind::Conflict);
    running.stop().await;
    assert!(!health.health().ready, "stopped");
}

/// A group restart never starts a temporary component again (`Restart::Never`,
/// OTP's temporary child), whether it had already exited or was running.
#[tokio::test(start_paused = true)]
async fn group_restarts_leave_temporary_components_alone() {
    for strategy in [RestartStrategy::OneForAll, RestartStrategy::RestForOne] {
        let log = Log::default();
        let done = probe("migrate", &log).task(Task::ExitAfter(10));
        let done_starts = done.starts.clone();
        let running_temp = probe("warmup", &log).after("migrate");
        let running_starts = running_temp.starts.clone();
        let flaky = probe("flaky", &log)
            .after("warmup")
            .task(Task::FailAfter(200));
        let flaky_starts = flaky.starts.clone();
        let system = System::builder()
            .component_with(done, ComponentConfig::default().restart(Restart::Never))
            .component_with(
                running_temp,
                ComponentConfig::default().restart(Restart::Never),
            )
            .component(flaky)
            .strategy(strategy)
            .intensity(100, Duration::from_secs(60))
            .restart_backoff(Duration::from_millis(1), Duration::from_millis(1))
            .build()
            .unwrap();
        let running = system.start().await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(
            flaky_starts.load(Ordering::SeqCst) >= 3,
            "{strategy:?}: flaky restarted"
        );
        assert_eq!(
            done_starts.load(Ordering::SeqCst),
            1,
            "{strategy:?}: an exited temporary component was started again"
        );
        assert_eq!(
            running_starts.load(Ordering::SeqCst),
            1,
            "{strategy:?}: a temporary component was restarted"
        );
        let states = running.states();
        assert_eq!(
            states[0].1,
            ComponentState::Exited,
            "{strategy:?}: {states:?}"
        );
        running.stop().await;
    }
}

/// Rest for one restarts the failed component and what depends on it, not
/// whatever happens to start after it.
#[tokio::test(start_paused = true)]
async fn rest_for_one_follows_dependents() {
    let log = Log::default();
    let db = probe("db", &log).task(Task::FailAfter(100));
    let db_starts = db.starts.clone();
    let metrics = probe("metrics", &log);
    let metrics_starts = metrics.starts.clone();
    let api = probe("api", &log).after("cache");
    let api_starts = api.starts.clone();
    let cache = probe("cache", &log).after("db");
    let cache_starts = cache.starts.clone();
    let system = System::builder()
        .component(db)
        .component(metrics)
        .component(cache)
        .component(api)
        .strategy(RestartStrategy::RestForOne)
        .intensity(100, Duration::from_secs(60))
        .restart_backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build()
        .unwrap();
    let running = system.start().await.unwrap();
    let order: Vec<String> = log.take();
    let metrics_at = order.iter().position(|l| l == "start metrics").unwrap();
    let db_at = order.iter().position(|l| l == "start db").unwrap();
    assert!(metrics_at > db_at, "metrics starts after db: {order:?}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(db_starts.load(Ordering::SeqCst) >= 3);
    assert_eq!(
        cache_starts.load(Ordering::SeqCst),
        db_starts.load(Ordering::SeqCst),
        "cache depends on db"
    );
    assert_eq!(
        api_starts.load(Ordering::SeqCst),
        db_starts.load(Ordering::SeqCst),
        "api depends on db through cache"
    );
    assert_eq!(
        metrics_starts.load(Ordering::SeqCst),
        1,
        "metrics depends on nothing that failed"
    );
    running.stop().await;
}

/// A member that fails to start during a group restart is retried, and the
/// members after it start too: none is left Restarting with nothing
/// scheduled.
#[tokio::test(start_paused = true)]
async fn a_failed_start_in_a_group_restart_leaves_no_one_stranded() {
    /// Fails its starts while `failing` says so.
    struct Flaky {
        failing: Arc<std::sync::atomic::AtomicBool>,
        starts: Arc<AtomicU32>,
    }
    impl Component for Flaky {
        fn name(&self) -> &str {
            "cache"
        }
        fn dependencies(&self) -> Vec<String> {
            vec!["db".to_owned()]
        }
        fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
            Box::pin(async move {
                self.starts.fetch_add(1, Ordering::SeqCst);
                if self.failing.load(Ordering::SeqCst) {
                    return Err(Error::new(Kind::Unavailable, "cold"));
                }
                let stop = ctx.stop_token().clone();
                Ok(Running::task(async move {
                    stop.cancelled().await;
                    Ok(())
                }))
            })
        }
    }
    for strategy in [RestartStrategy::OneForAll, RestartStrategy::RestForOne] {
        let log = Log::default();
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let db = probe("db", &log).task(Task::FailAfter(100));
        let api = probe("api", &log).after("cache");
        let api_starts = api.starts.clone();
        let system = System::builder()
            .component_with(db, ComponentConfig::default().restart(Restart::OnFailure))
            .component(Flaky {
                failing: failing.clone(),
                starts: Arc::new(AtomicU32::new(0)),
            })
            .component(api)
            .strategy(strategy)
            .intensity(1000, Duration::from_secs(60))
            .restart_backoff(Duration::from_millis(5), Duration::from_millis(5))
            .build()
            .unwrap();
        let running = system.start().await.unwrap();
        failing.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await; // db failed; cache's restart fails
        failing.store(false, Ordering::SeqCst);
        let before = api_starts.load(Ordering::SeqCst);
        // db goes on failing every 100 ms: between its failures, everyone
        // must be running again (before, the members after cache stayed
        // Restarting with nothing scheduled).
        let mut all_running = false;
        for _ in 0..1000 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if running
                .states()
                .iter()
                .all(|(_, state)| *state == ComponentState::Running)
            {
                all_running = true;
                break;
            }
        }
        assert!(all_running, "{strategy:?}: {:?}", running.states());
        assert!(
            api_starts.load(Ordering::SeqCst) > before,
            "{strategy:?}: api started again"
        );
        running.stop().await;
    }
}
