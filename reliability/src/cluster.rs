//! The throwaway PostgreSQL cluster of `cargo xtask pg`, as the scenarios
//! that need one use it: a database of their own, and the control script
//! that stops and starts the cluster.

use std::process::Command;

use crate::Report;

/// What a scenario needs of the cluster.
pub(crate) struct Cluster {
    /// `DATABASE_URL`.
    pub(crate) url: String,
    /// `PATTERNS_PG_CTL`: the cluster's stop/start script.
    pub(crate) script: String,
}

impl Cluster {
    /// The cluster `cargo xtask pg start` described in the environment; or
    /// `None`, with the scenario marked skipped (broken under `CI=true`).
    pub(crate) fn from_env(report: &mut Report) -> Option<Self> {
        match (
            std::env::var("DATABASE_URL"),
            std::env::var("PATTERNS_PG_CTL"),
        ) {
            (Ok(url), Ok(script)) => Some(Self { url, script }),
            _ => {
                crate::scenarios::missing(
                    report,
                    "DATABASE_URL and PATTERNS_PG_CTL",
                    "run `cargo xtask pg start`",
                );
                None
            }
        }
    }

    /// Runs the control script with `action` (`stop`, `start`); off the
    /// runtime's threads, which keep measuring meanwhile (`pg_ctl stop`
    /// waits for the shutdown).
    pub(crate) async fn ctl(&self, action: &'static str) -> Result<(), String> {
        let script = self.script.clone();
        let status = tokio::task::spawn_blocking(move || {
            Command::new(&script)
                .arg(action)
                .stdout(std::process::Stdio::null())
                .status()
        })
        .await
        .map_err(|e| format!("{} {action}: {e}", self.script))?
        .map_err(|e| format!("{} {action}: {e}", self.script))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{} {action}: {status}", self.script))
        }
    }

    /// A new, empty database `name` on the cluster (dropped first if it
    /// exists); its URL.
    pub(crate) async fn fresh_database(&self, name: &str) -> Result<String, String> {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connecting to DATABASE_URL: {e}"))?;
        tokio::spawn(connection);
        // Two statements: CREATE DATABASE cannot share an implicit
        // transaction.
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            client
                .batch_execute(&statement)
                .await
                .map_err(|e| format!("{statement}: {e:?}"))?;
        }
        let base = self
            .url
            .rsplit_once('/')
            .ok_or("DATABASE_URL has no database name")?
            .0;
        Ok(format!("{base}/{name}"))
    }
}
