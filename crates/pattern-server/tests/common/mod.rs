//! Helpers shared by the tests that need PostgreSQL.

/// `DATABASE_URL`, which `cargo xtask ci` sets after starting a throwaway
/// cluster. Without it the test reports itself skipped, except under
/// `CI=true`, where the cluster must be there.
pub(crate) fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("DATABASE_URL must be set under CI=true (cargo xtask ci sets it)")
        }
        Err(_) => {
            eprintln!("skipped: DATABASE_URL is not set (run through `cargo xtask ci`)");
            None
        }
    }
}
