//! `cargo xtask contract`: the reference service's OpenAPI document checked
//! against the wire. A pinned schemathesis (and openapi-spec-validator), in
//! a virtual environment under `target/`, runs every check in every phase
//! against the service in memory and, when PostgreSQL is at hand, on it;
//! the document must validate as OpenAPI 3.1. Any failure fails the step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

#[path = "../../reliability/src/child.rs"]
mod child;

use crate::pg;
use crate::util::{cargo, run, target_dir, under_ci};

/// The Python tools, every package pinned (schemathesis 4.32.5,
/// openapi-spec-validator 0.9.0 and what they need), so the fixed seed
/// gives the same cases run after run.
const REQUIREMENTS: &str = include_str!("../contract-requirements.txt");

/// The same cases on every run: a fixed seed and a bound on each
/// operation's examples.
const SEED: &str = "20261127";
const MAX_EXAMPLES: &str = "300";

/// The admin token the service is started with (the admin routes are part
/// of the contract, behind it).
const TOKEN: &str = "contract-admin-token-0123456789";

pub(crate) fn run_contract() -> Result<String, String> {
    let venv = match venv() {
        Ok(venv) => venv,
        // Off CI a machine may have no PyPI: say so rather than fail.
        Err(e) if !under_ci() => return Ok(format!("SKIPPED: no Python tools ({e})")),
        Err(e) => return Err(e),
    };
    run(cargo().args([
        "build",
        "--quiet",
        "--release",
        "--package",
        "examples",
        "--example",
        "reference-service",
    ]))?;
    let binary = target_dir()
        .join("release")
        .join("examples")
        .join("reference-service");
    check(&venv, &binary, "memory", &[])?;
    let cluster = pg::start()?;
    let note = match &cluster {
        Some(cluster) => {
            check(
                &venv,
                &binary,
                "postgres",
                &[("REFSVC_DATABASE__URL", cluster.url().to_owned())],
            )?;
            "in memory and with PostgreSQL"
        }
        None => "in memory; PostgreSQL SKIPPED: no server binaries",
    };
    drop(cluster);
    Ok(format!(
        "schemathesis, all checks and phases, seed {SEED}, {MAX_EXAMPLES} examples per operation, {note}"
    ))
}

/// The virtual environment with the pinned tools, made (or remade, when
/// the pins changed or it no longer runs) under `target/`.
fn venv() -> Result<PathBuf, String> {
    let venv = target_dir().join("contract-venv");
    let stamp = venv.join("requirements.txt");
    let works = Command::new(venv.join("bin").join("schemathesis"))
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if works && std::fs::read_to_string(&stamp).ok().as_deref() == Some(REQUIREMENTS) {
        return Ok(venv);
    }
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    // The stamp is written last: a failed install is redone next time.
    let wanted = venv.join("wanted.txt");
    std::fs::write(&wanted, REQUIREMENTS)
        .map_err(|e| format!("writing {}: {e}", wanted.display()))?;
    run(Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&wanted))?;
    std::fs::rename(&wanted, &stamp).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(venv)
}

/// Starts the service with `env`, validates its document and runs
/// schemathesis against it.
fn check(venv: &Path, binary: &Path, mode: &str, env: &[(&str, String)]) -> Result<(), String> {
    eprintln!("xtask: contract, {mode}");
    let service = Service::start(binary, env)?;
    let base = format!("http://{}", service.addr);
    let document = target_dir().join(format!("contract-openapi-{mode}.json"));
    // The document as served, then validated as OpenAPI 3.1.
    run(Command::new(venv.join("bin").join("python")).args([
        "-c",
        "import sys, urllib.request; open(sys.argv[2], 'wb').write(urllib.request.urlopen(sys.argv[1]).read())",
        &format!("{base}/openapi.json"),
        &document.to_string_lossy(),
    ]))?;
    run(Command::new(venv.join("bin").join("openapi-spec-validator")).arg(&document))?;
    let report = target_dir().join(format!("contract-report-{mode}"));
    // schemathesis keeps a cache in its working directory: under target/.
    let work = target_dir().join("contract-work");
    std::fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;
    run(Command::new(venv.join("bin").join("schemathesis"))
        .current_dir(&work)
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--seed", SEED, "--max-examples", MAX_EXAMPLES])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--report", "junit", "--report-dir"])
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1"))
    .map_err(|e| format!("{e}\nthe service's log:\n{}", service.log()))
}

/// The reference service, killed when dropped.
struct Service {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Service {
    fn start(binary: &Path, env: &[(&str, String)]) -> Result<Self, String> {
        let log = target_dir().join("contract-service.log");
        let stderr = std::fs::File::create(target_dir().join("contract-service.stderr"))
            .map_err(|e| format!("creating {}: {e}", log.display()))?;
        let mut env = env.to_vec();
        env.extend([
            ("REFSVC_LOG__FILE", log.to_string_lossy().into_owned()),
            ("REFSVC_ADMIN__TOKEN", TOKEN.to_owned()),
            // The contract, not the rate limit, is under test (429 stays
            // documented).
            ("REFSVC_LIMITS__REQUESTS_PER_SECOND", "100000".to_owned()),
            ("REFSVC_LIMITS__BURST", "100000".to_owned()),
        ]);
        let (child, rx) = child::spawn_service(binary, &env, stderr)?;
        let mut service = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .map_err(|_| format!("the service printed no address:\n{}", service.log()))?;
            if let Some(addr) = line
                .strip_prefix("listening on http://")
                .and_then(|a| a.parse().ok())
            {
                service.addr = addr;
                return Ok(service);
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
