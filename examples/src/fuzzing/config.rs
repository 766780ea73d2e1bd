//! Configuration files through `Config::load`.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use garde::Validate;
use patterns::component::config::{ConfigError, Loaded, Loader};
use serde::{Deserialize, Serialize};

use super::Violation;
use crate::reference::Config;

/// What a configuration file came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ConfigOutcome {
    /// Loaded and valid.
    Loaded,
    /// Refused with this many problems.
    Rejected(usize),
}

/// Writes `toml` to a scratch file (under the temporary directory, one per
/// process and thread), loads it with [`Config::load`] and checks:
///
/// - a loaded value passes `garde::Validate::validate` and its dump
///   renders;
/// - a refusal lists at least one problem, each with a message;
/// - a secret the file sets (`admin.token`, `database.url`, 8 characters or
///   more, written out once in the file) shows neither in the error's
///   `Display` and `Debug` nor in the dump and `Debug` of the loaded value.
///
/// Whether a secret shows is decided by a second load of the same file with
/// the secret's characters replaced (same length, so the same validation
/// outcome): text that appears in the first answer but not in the second
/// came from the secret. `REFSVC_` environment variables apply as in the
/// service.
pub fn check_config(toml: &[u8]) -> Result<ConfigOutcome, Violation> {
    let answer = load(toml)?;
    let outcome = match &answer {
        Ok(loaded) => {
            let report = loaded.value().validate();
            ensure!(
                report.is_ok(),
                "loaded an invalid configuration: {report:?}"
            );
            let dump = loaded.dump();
            ensure!(
                !dump.starts_with("<cannot render"),
                "the dump of a loaded configuration fails: {dump}"
            );
            ConfigOutcome::Loaded
        }
        Err(error) => {
            ensure!(
                !error.problems.is_empty(),
                "an error with no problem: {error}"
            );
            for problem in &error.problems {
                ensure!(
                    !problem.message.trim().is_empty(),
                    "a problem with no message at {:?}: {error}",
                    problem.path
                );
            }
            ConfigOutcome::Rejected(error.problems.len())
        }
    };

    let shown = rendered(&answer);
    for secret in secrets_set(toml)? {
        let once = count(toml, secret.as_bytes()) == 1;
        if secret.chars().count() < 8 || !once || !shown.iter().any(|(_, t)| t.contains(&secret)) {
            continue;
        }
        let masked = replace(toml, secret.as_bytes(), mask(&secret).as_bytes());
        let shown_masked = rendered(&load(&masked)?);
        for ((what, text), (_, text_masked)) in shown.iter().zip(&shown_masked) {
            ensure!(
                !text.contains(&secret) || text_masked.contains(&secret),
                "the secret {secret:?} shows in the {what}: {text}"
            );
        }
    }
    Ok(outcome)
}

/// Every text a caller may print, by name: the error's `Display` and
/// `Debug`, or the dump and the `Debug` of the loaded configuration.
fn rendered(answer: &Result<Loaded<Config>, ConfigError>) -> [(&'static str, String); 2] {
    match answer {
        Ok(loaded) => [
            ("dump", loaded.dump()),
            ("Debug output", format!("{loaded:?}")),
        ],
        Err(error) => [
            ("error message", error.to_string()),
            ("error's Debug output", format!("{error:?}")),
        ],
    }
}

/// Loads `toml` as the service's configuration file.
fn load(toml: &[u8]) -> Result<Result<Loaded<Config>, ConfigError>, Violation> {
    with_scratch_file(toml, |path| Config::load(path))
}

/// The secrets `toml` sets: the strings at `admin.token` and
/// `database.url`, read with the same loader (so with the same TOML parser)
/// into a shape that takes any value.
fn secrets_set(toml: &[u8]) -> Result<Vec<String>, Violation> {
    /// Any table, kept as it is.
    #[derive(Debug, Default, Serialize, Deserialize, Validate)]
    struct Anything {
        #[serde(flatten)]
        #[garde(skip)]
        rest: serde_json::Map<String, serde_json::Value>,
    }
    let Ok(loaded) = with_scratch_file(toml, |path| {
        Loader::new(Anything::default()).file(path).load()
    })?
    else {
        // Not TOML: no value is set.
        return Ok(Vec::new());
    };
    let value = &loaded.value().rest;
    Ok([("admin", "token"), ("database", "url")]
        .into_iter()
        .filter_map(|(table, key)| value.get(table)?.get(key)?.as_str().map(str::to_owned))
        .collect())
}

/// Runs `f` with a file holding `contents`, removed afterwards.
fn with_scratch_file<T>(contents: &[u8], f: impl FnOnce(&Path) -> T) -> Result<T, Violation> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static PATH: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
    }
    let path = PATH.with_borrow_mut(|path| {
        path.get_or_insert_with(|| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let pid = std::process::id();
            std::env::temp_dir().join(format!("patterns-fuzz-config-{pid}-{n}.toml"))
        })
        .clone()
    });
    std::fs::write(&path, contents).map_err(|e| {
        Violation::new(format!(
            "cannot write the scratch file {}: {e}",
            path.display()
        ))
    })?;
    let answer = f(&path);
    // Best effort: the name is reused by the next call of this thread.
    let _ = std::fs::remove_file(&path);
    Ok(answer)
}

/// How many times `needle` occurs in `haystack` (without overlaps).
fn count(haystack: &[u8], needle: &[u8]) -> usize {
    let mut n = 0;
    let mut at = 0;
    while let Some(i) = find(&haystack[at..], needle) {
        n += 1;
        at += i + needle.len();
    }
    n
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `haystack` with the first `needle` replaced by `with`.
fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    match find(haystack, needle) {
        Some(i) => [&haystack[..i], with, &haystack[i + needle.len()..]].concat(),
        None => haystack.to_vec(),
    }
}

/// A text of the same length in bytes as `secret` that differs from it at
/// every character, and is plain inside any TOML string.
fn mask(secret: &str) -> String {
    secret
        .chars()
        .flat_map(|c| {
            let with = if c == 'x' { 'y' } else { 'x' };
            std::iter::repeat_n(with, c.len_utf8())
        })
        .collect()
}
