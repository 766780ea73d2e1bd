//! A throwaway PostgreSQL cluster under `target/pg/` for tests and examples.
//!
//! The cluster listens on 127.0.0.1 on a free port, trusts local connections
//! and keeps its files, socket and log under `target/pg/`. When we run as
//! root, `initdb` and `pg_ctl` run as the `postgres` user (initdb refuses
//! root) on a directory that user owns.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{output, run, target_dir, under_ci};

/// How to get the server binaries, shown when they are missing.
const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH \
     or under /usr/lib/postgresql/*/bin; install them (Debian/Ubuntu: \
     `apt-get install postgresql`, macOS: `brew install postgresql`)";

/// A running cluster; stopped and deleted when dropped.
#[derive(Debug)]
pub(crate) struct Cluster {
    url: String,
    ctl: PathBuf,
    ca: Option<PathBuf>,
}

/// The variable naming the script that stops and starts the cluster in
/// place (`$PATTERNS_PG_CTL stop|start`), for the database outage tests.
pub(crate) const CTL_VAR: &str = "PATTERNS_PG_CTL";

/// The variable naming the CA certificate (PEM) of the cluster's TLS, for
/// the `sslmode=verify-full` tests; unset when no certificate could be
/// made (no `openssl`).
pub(crate) const CA_VAR: &str = "PATTERNS_PG_CA";

impl Cluster {
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The control script (see [`CTL_VAR`]).
    pub(crate) fn ctl(&self) -> &Path {
        &self.ctl
    }

    /// Sets [`CA_VAR`] on `cmd` (or removes it when the cluster has no TLS).
    pub(crate) fn ca_env(&self, cmd: &mut Command) {
        match &self.ca {
            Some(ca) => cmd.env(CA_VAR, ca),
            None => cmd.env_remove(CA_VAR),
        };
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = stop() {
            eprintln!("xtask: stopping PostgreSQL: {e}");
        }
    }
}

fn dir() -> PathBuf {
    target_dir().join("pg")
}

fn data_dir() -> PathBuf {
    dir().join("data")
}

fn url_file() -> PathBuf {
    dir().join("url")
}

/// Finds the directory holding `initdb` and `pg_ctl`.
fn bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    // Debian keeps them per major version; take the newest.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// A command for a PostgreSQL binary, run as `postgres` when we are root.
fn pg_command(bin: &Path, name: &str, as_postgres: bool) -> Command {
    let program = bin.join(name);
    if as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// Starts a fresh cluster (stopping and deleting any earlier one).
///
/// `Ok(None)` when the server binaries are missing outside CI (the caller
/// reports the DB tests as skipped); under `CI=true` that is an error.
pub(crate) fn start() -> Result<Option<Cluster>, String> {
    let Some(bin) = bin_dir() else {
        if under_ci() {
            return Err(format!("{INSTALL_HINT}; CI=true requires them"));
        }
        eprintln!("xtask: {INSTALL_HINT}; the database tests will be skipped");
        return Ok(None);
    };
    stop()?;
    let dir = dir();
    let data = data_dir();
    let socket = dir.join("socket");
    std::fs::create_dir_all(&socket).map_err(|e| format!("creating {}: {e}", socket.display()))?;
    let as_postgres = running_as_root();
    if as_postgres {
        run(Command::new("chown").args(["-R", "postgres:"]).arg(&dir))?;
    }
    output(
        pg_command(&bin, "initdb", as_postgres)
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data),
    )?;
    let port = free_port()?;
    let ca = tls_certificate(&dir, &data, as_postgres);
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c full_page_writes=off \
         -c synchronous_commit=off -c max_connections=200{}",
        socket.display(),
        if ca.is_some() {
            " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
        } else {
            ""
        }
    );
    let log = dir.join("postgres.log");
    output(
        pg_command(&bin, "pg_ctl", as_postgres)
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &options, "start"]),
    )?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    std::fs::write(url_file(), &url).map_err(|e| format!("writing the url file: {e}"))?;
    let ctl = write_ctl(&bin, as_postgres, &data, &log, &options)?;
    Ok(Some(Cluster { url, ctl, ca }))
}

/// A CA in `dir` and a server certificate it signed, for `localhost` and
/// 127.0.0.1, in the data directory (the key readable by the server
/// alone); the CA's path, or `None` (the cluster without TLS) when
/// `openssl` is missing or fails.
fn tls_certificate(dir: &Path, data: &Path, as_postgres: bool) -> Option<PathBuf> {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (cert, key, csr) = (
        data.join("server.crt"),
        data.join("server.key"),
        dir.join("server.csr"),
    );
    let extensions = dir.join("server.ext");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let made = std::fs::write(
        &extensions,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())
    .and_then(|()| {
        output(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=patterns throwaway CA",
                ])
                .args(ec)
                .arg("-keyout")
                .arg(&ca_key)
                .arg("-out")
                .arg(&ca),
        )
    })
    .and_then(|_| {
        output(
            Command::new("openssl")
                .args(["req", "-subj", "/CN=localhost"])
                .args(ec)
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
        )
    })
    .and_then(|_| {
        output(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-set_serial", "1"])
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .arg("-extfile")
                .arg(&extensions)
                .arg("-out")
                .arg(&cert),
        )
    });
    if let Err(err) = made {
        eprintln!("xtask: no TLS for the throwaway PostgreSQL (openssl: {err})");
        return None;
    }
    if as_postgres {
        run(Command::new("chown").arg("postgres:").arg(&cert).arg(&key)).ok()?;
    }
    run(Command::new("chmod").arg("600").arg(&key)).ok()?;
    Some(ca)
}

/// Quotes `text` for a POSIX shell.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Writes `target/pg/ctl`: `ctl stop` stops the cluster keeping its data,
/// `ctl start` starts it again on the same port.
fn write_ctl(
    bin: &Path,
    as_postgres: bool,
    data: &Path,
    log: &Path,
    options: &str,
) -> Result<PathBuf, String> {
    let pg_ctl = sh_quote(&bin.join("pg_ctl").display().to_string());
    let prefix = if as_postgres {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let data = sh_quote(&data.display().to_string());
    let script = format!(
        "#!/bin/sh\n\
         # Stops or starts the throwaway PostgreSQL cluster in place (written by `cargo xtask pg`).\n\
         set -e\n\
         case \"$1\" in\n\
         \x20 stop) exec {prefix}{pg_ctl} -w -t 60 -m fast -D {data} stop ;;\n\
         \x20 start) exec {prefix}{pg_ctl} -w -t 60 -D {data} -l {log} -o {options} start ;;\n\
         \x20 *) echo \"usage: $0 stop|start\" >&2; exit 2 ;;\n\
         esac\n",
        log = sh_quote(&log.display().to_string()),
        options = sh_quote(options),
    );
    let path = dir().join("ctl");
    std::fs::write(&path, script).map_err(|e| format!("writing {}: {e}", path.display()))?;
    run(Command::new("chmod").arg("755").arg(&path))?;
    Ok(path)
}

/// Stops the cluster if one runs, and deletes its files.
pub(crate) fn stop() -> Result<(), String> {
    let dir = dir();
    if !dir.exists() {
        return Ok(());
    }
    let data = data_dir();
    if data.join("postmaster.pid").exists() {
        let bin = bin_dir().ok_or(INSTALL_HINT)?;
        output(
            pg_command(&bin, "pg_ctl", running_as_root())
                .args(["-w", "-t", "60", "-m", "fast", "-D"])
                .arg(&data)
                .arg("stop"),
        )?;
    }
    std::fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))
}

pub(crate) fn start_command() -> Result<(), String> {
    match start()? {
        Some(cluster) => {
            if let Some(ca) = &cluster.ca {
                println!("{CA_VAR}={}", ca.display());
            }
            println!("{CTL_VAR}={}", cluster.ctl().display());
            println!("DATABASE_URL={}", cluster.url());
            // Keep it running: the cluster outlives this command.
            std::mem::forget(cluster);
            Ok(())
        }
        None => Err("no PostgreSQL server binaries".to_owned()),
    }
}

pub(crate) fn stop_command() -> Result<(), String> {
    stop()?;
    println!("stopped");
    Ok(())
}

pub(crate) fn url_command() -> Result<(), String> {
    let url = std::fs::read_to_string(url_file())
        .map_err(|_| "no cluster is running: `cargo xtask pg start` starts one".to_owned())?;
    println!("{url}");
    Ok(())
}
