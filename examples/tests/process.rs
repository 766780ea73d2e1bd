//! The reference service as a process: it prints its real address, and on
//! SIGTERM lets a request in flight finish, then exits 0.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use patterns::api::testing::TestClient;

/// `target/<profile>/examples/reference-service`, next to this test's own
/// binary in `target/<profile>/deps/` (`cargo test` builds the examples).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile
        .join("examples")
        .join(format!("reference-service{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test` (it builds the examples)",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_its_address_and_drains_on_sigterm() {
    let mut child = KillOnDrop(
        Command::new(binary())
            .env("REFSVC_SERVER__ADDR", "127.0.0.1:0")
            .env("REFSVC_SERVER__DRAIN_DEADLINE_MS", "5000")
            .env("REFSVC_DEMO__ENABLED", "true")
            .env("REFSVC_CONFIG", "/nonexistent/reference-service.toml")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the service prints a line once ready");
    let addr: SocketAddr = line
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0, "the real port is printed");

    let client = TestClient::connect(addr);
    client.get("/health/ready").await.assert_status(200);
    let in_flight =
        tokio::spawn(async move { TestClient::connect(addr).get("/v1/demo/delay?ms=800").await });
    // Let the request reach its handler (real time: the service is another process).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let response = in_flight.await.unwrap();
    response.assert_status(200);
    let status = tokio::task::spawn_blocking(move || child.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(6),
        "exited within the drain deadline plus 1 s"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after exit"
    );
}

/// The service process, killed if the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
