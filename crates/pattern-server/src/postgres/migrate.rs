//! Embedded SQL migrations, applied in order and recorded.

use pattern_error::{Error, Kind};

use super::{Database, db_error};

/// One migration: a version (applied in increasing order), a name and SQL.
/// Embed them with `include_str!`:
///
/// ```
/// use pattern_server::postgres::Migration;
///
/// static MIGRATIONS: &[Migration] = &[
///     Migration::new(1, "items", "CREATE TABLE items (id bigint PRIMARY KEY, name text)"),
///     // Cannot run in a transaction: applied on its own (keep it to one
///     // statement, and idempotent).
///     Migration::new(2, "items_name", "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_name ON items (name)")
///         .without_transaction(),
/// ];
/// # assert!(!MIGRATIONS[1].transactional);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migration {
    /// Its version; versions must be unique.
    pub version: i64,
    /// A short name, for logs.
    pub name: &'static str,
    /// The SQL: one batch in one transaction, recorded in the same
    /// transaction.
    pub sql: &'static str,
    /// Whether it runs in a transaction (the default). Statements such as
    /// `CREATE INDEX CONCURRENTLY` cannot: such a migration runs as a
    /// single statement and is recorded after it succeeds, so a failure
    /// between the two runs it again on the next start: make it
    /// idempotent (`IF NOT EXISTS`).
    pub transactional: bool,
}

impl Migration {
    /// A migration run in a transaction.
    pub const fn new(version: i64, name: &'static str, sql: &'static str) -> Self {
        Self {
            version,
            name,
            sql,
            transactional: true,
        }
    }

    /// Runs it outside a transaction (see [`transactional`](Self::transactional)).
    #[must_use]
    pub const fn without_transaction(mut self) -> Self {
        self.transactional = false;
        self
    }
}

/// What [`Database::migrate`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationReport {
    /// Versions applied by this run, in order.
    pub applied: Vec<i64>,
    /// Versions found already applied.
    pub already: Vec<i64>,
}

/// A stable checksum of the SQL (FNV-1a, 64 bits): the same text gives the
/// same value on every build, so a changed migration is recognised.
fn checksum(sql: &str) -> String {
    let hash = sql.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The migrations as a step of their own: a component named `migrations`
/// that starts after `database` and applies them, with the start timeout
/// its options give (a long migration need not fit the pool's start
/// timeout; raise the system's startup timeout with it). Components that
/// need the schema start after `migrations`. From
/// [`Database::migrations`].
#[derive(Debug)]
pub struct Migrations {
    database: Database,
    migrations: &'static [Migration],
    report: std::sync::Mutex<Option<MigrationReport>>,
}

impl Migrations {
    /// What the last start applied.
    pub fn last_report(&self) -> Option<MigrationReport> {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl pattern_component::component::Component for Migrations {
    fn name(&self) -> &str {
        "migrations"
    }

    fn dependencies(&self) -> Vec<String> {
        vec![pattern_component::component::Component::name(&self.database).to_owned()]
    }

    fn start(
        &self,
        _ctx: pattern_component::component::StartContext,
    ) -> pattern_component::component::BoxFuture<
        '_,
        Result<pattern_component::component::Running, Error>,
    > {
        Box::pin(async move {
            let report = self.database.migrate(self.migrations).await?;
            *self
                .report
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report);
            Ok(pattern_component::component::Running::idle())
        })
    }
}

impl Database {
    /// `migrations` as a component of their own (see [`Migrations`]),
    /// instead of inside the pool's start ([`with_migrations`](Self::with_migrations)).
    pub fn migrations(&self, migrations: &'static [Migration]) -> Migrations {
        Migrations {
            database: self.clone(),
            migrations,
            report: std::sync::Mutex::new(None),
        }
    }

    /// Applies the migrations not yet recorded in `schema_migrations`, in
    /// version order, each in its own transaction, holding an advisory lock
    /// so concurrent starters take turns. Refuses (with
    /// [`Kind::Conflict`], applying nothing) when an applied migration's
    /// SQL has changed since.
    pub async fn migrate(&self, migrations: &[Migration]) -> Result<MigrationReport, Error> {
        let mut sorted = migrations.to_vec();
        sorted.sort_by_key(|m| m.version);
        if sorted.windows(2).any(|w| w[0].version == w[1].version) {
            return Err(Error::new(
                Kind::InvalidInput,
                "two migrations share a version",
            ));
        }
        let mut connection = self.get().await?;
        // The lock first: concurrent starters creating the table at once can
        // collide in the catalog even with IF NOT EXISTS.
        connection
            .batch_execute("SELECT pg_advisory_lock(7265721)")
            .await
            .map_err(db_error)?;
        let result = async {
            connection
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                         version bigint PRIMARY KEY,
                         name text NOT NULL,
                         checksum text NOT NULL,
                         applied_at timestamptz NOT NULL DEFAULT now()
                     )",
                )
                .await
                .map_err(db_error)?;
            self.apply(&mut connection, &sorted).await
        }
        .await;
        let unlock = connection
            .batch_execute("SELECT pg_advisory_unlock(7265721)")
            .await
            .map_err(db_error);
        let report = result?;
        unlock?;
        Ok(report)
    }

    async fn apply(
        &self,
        connection: &mut deadpool_postgres::Object,
        migrations: &[Migration],
    ) -> Result<MigrationReport, Error> {
        let rows = connection
            .query("SELECT version, name, checksum FROM schema_migrations", &[])
            .await
            .map_err(db_error)?;
        let applied: std::collections::HashMap<i64, (String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    (r.get::<_, String>(1), r.get::<_, String>(2)),
                )
            })
            .collect();
        // Check every applied one before applying anything.
        for m in migrations {
            if let Some((name, sum)) = applied.get(&m.version)
                && *sum != checksum(m.sql)
            {
                return Err(Error::new(
                    Kind::Conflict,
                    format!(
                        "migration {} ({name}) has changed since it was applied; add a new migration instead",
                        m.version
                    ),
                ));
            }
        }
        let mut report = MigrationReport::default();
        for m in migrations {
            if applied.contains_key(&m.version) {
                report.already.push(m.version);
                continue;
            }
            let failed =
                |e| db_error(e).context(format!("applying migration {} ({})", m.version, m.name));
            let record =
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)";
            if m.transactional {
                let tx = connection.transaction().await.map_err(db_error)?;
                tx.batch_execute(m.sql).await.map_err(failed)?;
                tx.execute(record, &[&m.version, &m.name, &checksum(m.sql)])
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
            } else {
                // The simple protocol with one statement: no implicit
                // transaction block around it.
                connection.simple_query(m.sql).await.map_err(failed)?;
                connection
                    .execute(record, &[&m.version, &m.name, &checksum(m.sql)])
                    .await
                    .map_err(db_error)?;
            }
            tracing::info!(version = m.version, name = m.name, "migration applied");
            report.applied.push(m.version);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::checksum;

    #[test]
    fn checksums_are_stable_and_sensitive() {
        assert_eq!(
            checksum("CREATE TABLE t (id int);"),
            checksum("CREATE TABLE t (id int);")
        );
        assert_ne!(
            checksum("CREATE TABLE t (id int);"),
            checksum("CREATE TABLE t (id bigint);")
        );
        // FNV-1a of the empty string: the offset basis.
        assert_eq!(checksum(""), "cbf29ce484222325");
    }
}
