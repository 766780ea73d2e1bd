//! The reference service as a child process, started the same way by the
//! reliability suite and by `cargo xtask contract` (which compiles this
//! file as its own module: it has no dependencies).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

/// Starts `binary` on 127.0.0.1:0 with no configuration file, warnings
/// only on standard error (to `stderr`), and `env` (`REFSVC_…` settings)
/// over that. Returns the child and its standard output's lines, read on a
/// thread of their own so the child never blocks on a full pipe (its
/// first line is `listening on http://ADDR`).
pub(crate) fn spawn_service(
    binary: &Path,
    env: &[(&str, String)],
    stderr: std::fs::File,
) -> Result<(Child, Receiver<String>), String> {
    let mut command = Command::new(binary);
    // The settings under test are these alone (and no trace export the
    // caller's environment asks for).
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("REFSVC_") || name_text.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command
        .env("REFSVC_SERVER__ADDR", "127.0.0.1:0")
        .env("REFSVC_CONFIG", "/nonexistent/reference-service.toml")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the service's standard output is not piped".to_owned());
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Ok((child, rx))
}
