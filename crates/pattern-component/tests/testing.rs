//! The test harness stops the system even when the test panics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pattern_component::component::{BoxFuture, Component, Running, StartContext};
use pattern_component::lifecycle::System;
use pattern_component::ports::PortSpec;
use pattern_component::testing::TestSystem;
use pattern_error::Error;

struct Server {
    stopped: Arc<AtomicBool>,
}

impl Component for Server {
    fn name(&self) -> &str {
        "server"
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
                        accepted = listener.accept() => drop(accepted?),
                        () = stop.cancelled() => return Ok(()),
                    }
                }
            }))
        })
    }
    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        self.stopped.store(true, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_panicking_test_still_stops_the_system() {
    let stopped = Arc::new(AtomicBool::new(false));
    let flag = stopped.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let test = tokio::spawn(async move {
        let system = System::builder()
            .component(Server { stopped: flag })
            .build()
            .unwrap();
        let system = TestSystem::start(system).await.unwrap();
        tx.send(system.addr("server", "tcp")).unwrap();
        panic!("an assertion failed in the test");
    });
    let addr = rx.await.unwrap();
    assert!(test.await.unwrap_err().is_panic());

    // The harness asked for a shutdown while unwinding: the component is
    // stopped and its port closed, within a bounded wait.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let refused = tokio::net::TcpStream::connect(addr).await.is_err();
        if stopped.load(Ordering::SeqCst) && refused {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the system kept running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn start_waits_for_readiness_and_times_out_when_never_ready() {
    use pattern_component::health::Health;
    struct NeverReady;
    impl Component for NeverReady {
        fn name(&self) -> &str {
            "never-ready"
        }
        fn start(&self, _: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
            Box::pin(async { Ok(Running::idle()) })
        }
        fn health(&self) -> Health {
            Health::failing("warming up forever")
        }
    }
    let system = System::builder().component(NeverReady).build().unwrap();
    let err = TestSystem::start_within(system, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pattern_error::Kind::Timeout);
    assert!(err.to_string().contains("warming up forever"), "{err}");
}
