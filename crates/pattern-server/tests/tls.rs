//! HTTPS over real sockets with a real client (curl): ALPN chooses HTTP/2
//! or HTTP/1.1 as the switches allow, a renewed certificate is served
//! without a restart, a broken one is refused while the last good one is
//! kept, and a stalled handshake is closed at the header read timeout.
#![cfg(feature = "tls")]

mod serving;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use pattern_component::lifecycle::{RunningSystem, System};
use pattern_server::http::{HttpServer, ServerConfig, TlsConfig};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep};

/// A directory of its own for one test's files, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "pattern-server-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh self-signed certificate for `localhost` in `cert` and `key`
/// (written to a temporary file first, then renamed, as secret mounts do).
fn write_certificate(cert: &Path, key: &Path) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    for (path, pem) in [
        (cert, made.cert.pem()),
        (key, made.signing_key.serialize_pem()),
    ] {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, pem).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
}

async fn start(config: ServerConfig) -> (Arc<HttpServer>, RunningSystem, u16) {
    let router = Router::new().route("/", get(|| async { "hi" }));
    let (server, running, addr) = serving::start(config, router).await;
    (server, running, addr.port())
}

fn config(dir: &Dir, reload_interval_ms: u64) -> ServerConfig {
    ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        header_read_timeout_ms: 300,
        tls: Some(TlsConfig {
            reload_interval_ms,
            ..TlsConfig::new(dir.file("cert.pem"), dir.file("key.pem"))
        }),
        ..ServerConfig::default()
    }
}

/// curl trusting `ca`, with `protocol` (`--http2`, `--http1.1`): the HTTP
/// version and body, or curl's error.
async fn curl(port: u16, ca: &Path, protocol: &str) -> Result<(String, String), String> {
    let ca = ca.to_owned();
    let protocol = protocol.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "5", &protocol, "--cacert"])
            .arg(&ca)
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args([
                "-w",
                "\n%{http_version}",
                &format!("https://localhost:{port}/"),
            ])
            .output()
            .expect("curl is installed");
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let text = String::from_utf8(output.stdout).unwrap();
        let (body, version) = text.rsplit_once('\n').unwrap();
        Ok((version.to_owned(), body.to_owned()))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_serves_http2_and_http1_over_tls() {
    let dir = Dir::new();
    write_certificate(&dir.file("cert.pem"), &dir.file("key.pem"));
    let (_server, running, port) = start(config(&dir, 0)).await;
    let ca = dir.file("cert.pem");
    assert_eq!(
        curl(port, &ca, "--http2").await.unwrap(),
        ("2".to_owned(), "hi".to_owned())
    );
    assert_eq!(
        curl(port, &ca, "--http1.1").await.unwrap(),
        ("1.1".to_owned(), "hi".to_owned())
    );
    running.stop().await;

    // HTTP/2 off: ALPN offers HTTP/1.1 alone.
    let (_server, running, port) = start(ServerConfig {
        http2: false,
        ..config(&dir, 0)
    })
    .await;
    assert_eq!(curl(port, &ca, "--http2").await.unwrap().0, "1.1");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = Dir::new();
    let (cert, key) = (dir.file("cert.pem"), dir.file("key.pem"));
    write_certificate(&cert, &key);
    let old_ca = dir.file("old-ca.pem");
    std::fs::copy(&cert, &old_ca).unwrap();
    let (server, running, port) = start(config(&dir, 0)).await;
    assert!(curl(port, &old_ca, "--http2").await.is_ok());
    assert!(
        !server.reload_tls().unwrap(),
        "unchanged files: nothing to do"
    );

    write_certificate(&cert, &key);
    assert!(server.reload_tls().unwrap(), "changed files are read");
    assert_eq!(curl(port, &cert, "--http2").await.unwrap().1, "hi");
    assert!(
        curl(port, &old_ca, "--http2").await.is_err(),
        "the old certificate is no longer served"
    );

    // A broken key: refused, and the last good certificate still served.
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = server.reload_tls().unwrap_err();
    assert!(err.to_string().contains("key.pem"), "{err}");
    assert_eq!(curl(port, &cert, "--http2").await.unwrap().1, "hi");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_files_are_picked_up_by_the_reload_interval() {
    let dir = Dir::new();
    let (cert, key) = (dir.file("cert.pem"), dir.file("key.pem"));
    write_certificate(&cert, &key);
    let (_server, running, port) = start(config(&dir, 50)).await;
    write_certificate(&cert, &key);
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(port, &cert, "--http2").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        sleep(Duration::from_millis(50)).await; // real time: a real server
    }
    running.stop().await;
}

#[tokio::test]
async fn a_stalled_handshake_is_closed_at_the_header_read_timeout() {
    let dir = Dir::new();
    write_certificate(&dir.file("cert.pem"), &dir.file("key.pem"));
    let (_server, running, port) = start(config(&dir, 0)).await;
    for first in [&b""[..], &[0x16, 0x03, 0x01][..]] {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, first)
            .await
            .unwrap();
        serving::closed_after_the_header_timeout(&mut stream, Instant::now()).await;
    }
    running.stop().await;
}

#[tokio::test]
async fn unusable_files_fail_the_start_with_the_file_named() {
    let dir = Dir::new();
    let server = HttpServer::new("https", config(&dir, 0), Router::new());
    let err = System::builder()
        .component(server)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(
        err.report().to_string().contains("cert.pem"),
        "{}",
        err.report()
    );
}
