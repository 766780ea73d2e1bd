//! Typed configuration from defaults, a TOML file and the environment.

use std::fmt;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Uncased, Value};
use pattern_error::{Error, Kind};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Loads a configuration of type `T` from layers, later ones winning:
///
/// 1. the defaults (a `T` value),
/// 2. a TOML file, if one is named (optional unless [`require_file`](Self::require_file)),
/// 3. environment variables with a prefix, `__` separating nested keys
///    (`APP_SERVER__ADDR` sets `server.addr`).
///
/// Then validates it with garde. Every problem is reported at once, each
/// with the path of the value and where the value came from (the file, or
/// the environment variable's name); see [`ConfigError`].
///
/// ```
/// use garde::Validate;
/// use pattern_component::config::Loader;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, Validate)]
/// struct Config {
///     #[garde(dive)]
///     server: Server,
/// }
///
/// #[derive(Debug, Serialize, Deserialize, Validate)]
/// struct Server {
///     #[garde(skip)]
///     addr: std::net::SocketAddr,
///     #[garde(range(min = 1, max = 60_000))]
///     request_timeout_ms: u64,
/// }
///
/// let defaults = Config {
///     server: Server { addr: "127.0.0.1:8080".parse().unwrap(), request_timeout_ms: 5_000 },
/// };
/// let loaded = Loader::new(defaults).env_prefix("DOCTEST_APP_").load().unwrap();
/// assert_eq!(loaded.value().server.request_timeout_ms, 5_000);
/// ```
#[derive(Debug)]
#[must_use]
pub struct Loader<T> {
    defaults: T,
    file: Option<PathBuf>,
    require_file: bool,
    env_prefix: Option<String>,
    deny_unknown: bool,
    ignored: Vec<String>,
}

impl<T> Loader<T>
where
    T: Serialize + DeserializeOwned + garde::Validate,
    T::Context: Default,
{
    /// Starts from `defaults`.
    pub fn new(defaults: T) -> Self {
        Self {
            defaults,
            file: None,
            require_file: false,
            env_prefix: None,
            deny_unknown: false,
            ignored: Vec::new(),
        }
    }

    /// Reads this TOML file if it exists.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Fails when the file does not exist.
    pub fn require_file(mut self) -> Self {
        self.require_file = true;
        self
    }

    /// Reads environment variables starting with `prefix` (e.g. `"APP_"`),
    /// `__` separating nested keys. A variable whose name ends in `_FILE`
    /// (`APP_DATABASE__PASSWORD_FILE=/run/secrets/db`) names a file whose
    /// content is the value, as text (one trailing line break dropped), as
    /// Docker and Kubernetes pass secrets; a field whose own name ends in
    /// `_file` is therefore not settable from the environment.
    pub fn env_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.env_prefix = Some(prefix.into());
        self
    }

    /// Makes unknown keys (a typo in the file or in a variable's name)
    /// errors; by default they are warnings ([`Loaded::warnings`]).
    pub fn deny_unknown_keys(mut self) -> Self {
        self.deny_unknown = true;
        self
    }

    /// Keys that are not settings but are expected (a variable with the
    /// prefix that names the file, say: `"config"` for `APP_CONFIG`).
    pub fn ignore_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ignored.extend(keys.into_iter().map(Into::into));
        self
    }

    /// Merges the layers, extracts `T` and validates it.
    pub fn load(self) -> Result<Loaded<T>, ConfigError> {
        let defaults = self.defaults_value()?;
        let mut figment = Figment::from(Serialized::defaults(defaults.clone()));
        if let Some(path) = &self.file {
            if path.exists() {
                figment = figment.merge(Toml::file_exact(path));
            } else if self.require_file {
                return Err(ConfigError::one(
                    String::new(),
                    format!("the file {} does not exist", path.display()),
                    Some(Origin::File(path.clone())),
                ));
            }
        }
        if let Some(prefix) = &self.env_prefix {
            figment = merge_environment(figment, prefix, &defaults)?;
        }
        let value = self.extract_valid(&figment)?;
        let warnings = self.unknown_keys(&figment, &defaults);
        if self.deny_unknown && !warnings.is_empty() {
            return Err(ConfigError { problems: warnings });
        }
        Ok(Loaded {
            value,
            figment,
            warnings,
        })
    }

    /// The defaults as a value, their secrets in clear: a default secret
    /// loads as itself (through the redacting `Serialize` it loaded as the
    /// text "[redacted]").
    fn defaults_value(&self) -> Result<Value, ConfigError> {
        super::secret::revealing(|| Value::serialize(&self.defaults).map_err(|err| err.to_string()))
            .map_err(|err| {
                ConfigError::one(
                    String::new(),
                    format!("the defaults do not serialize: {err}"),
                    Some(Origin::Default),
                )
            })
    }

    /// `T` from the merged layers, then checked by its `garde` rules: every
    /// problem with its path and origin.
    fn extract_valid(&self, figment: &Figment) -> Result<T, ConfigError> {
        let value: T = figment.extract().map_err(|errors| ConfigError {
            problems: errors
                .into_iter()
                .map(|e| {
                    let path = e.path.join(".");
                    let origin = self.origin(figment, &path);
                    ConfigProblem {
                        message: describe(&e.kind),
                        path,
                        origin,
                    }
                })
                .collect(),
        })?;
        if let Err(report) = value.validate() {
            return Err(ConfigError {
                problems: report
                    .iter()
                    .map(|(path, error)| {
                        let path = path.to_string();
                        ConfigProblem {
                            message: error.message().to_string(),
                            origin: self.origin(figment, &path),
                            path,
                        }
                    })
                    .collect(),
            });
        }
        Ok(value)
    }

    /// The keys given that are not settings (and not ignored), each with
    /// the nearest known key when one is near.
    fn unknown_keys(&self, figment: &Figment, defaults: &Value) -> Vec<ConfigProblem> {
        let mut unknown = Vec::new();
        if let (Some(known), Ok(Value::Dict(_, given))) =
            (defaults.as_dict(), figment.extract::<Value>())
        {
            unknown_keys(known, &given, "", &mut unknown);
        }
        unknown.retain(|(path, _)| {
            !self
                .ignored
                .iter()
                .any(|key| key.eq_ignore_ascii_case(path))
        });
        unknown
            .into_iter()
            .map(|(path, suggestion)| ConfigProblem {
                message: match suggestion {
                    Some(near) => format!("unknown key (did you mean `{near}`?)"),
                    None => "unknown key".to_owned(),
                },
                origin: self.origin(figment, &path),
                path,
            })
            .collect()
    }

    /// Where the value at `path` came from.
    fn origin(&self, figment: &Figment, path: &str) -> Option<Origin> {
        let metadata = figment.find_metadata(path)?;
        if let Some(figment::Source::File(file)) = &metadata.source {
            return Some(Origin::File(file.clone()));
        }
        if let Some(variable) = metadata
            .name
            .strip_prefix(FILE_VARIABLE)
            .or_else(|| metadata.name.strip_prefix(ENV_VARIABLE))
        {
            return Some(Origin::Env(variable.to_owned()));
        }
        if metadata.name.contains("environment") {
            let prefix = self.env_prefix.as_deref().unwrap_or_default();
            let name = path
                .split('.')
                .map(|k| Uncased::from(k).as_str().to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join("__");
            return Some(Origin::Env(format!("{prefix}{name}")));
        }
        Some(Origin::Default)
    }
}

/// The key a `…_FILE` variable names the file of (`admin.token` for
/// `admin.token_file`): its last segment ends in `_file` after some name.
/// (So a field whose own name ends in `_file` cannot be set from the
/// environment; `log.file` can, its segment being `file` alone.)
fn file_reference(key: &str) -> Option<&str> {
    let last = key.rsplit('.').next().unwrap_or(key);
    let stem = last.len().checked_sub(5)?;
    (stem > 0 && last[stem..].eq_ignore_ascii_case("_file")).then(|| &key[..key.len() - 5])
}

/// Merges the variables with `prefix` over `figment`: each as the
/// environment provider reads it, a variable setting a text field as the
/// text written (the provider reads `0123456789` as the number 123456789,
/// which a string field, a token say, refuses), and a `_FILE` variable as
/// the content of the file it names.
fn merge_environment(
    mut figment: Figment,
    prefix: &str,
    defaults: &Value,
) -> Result<Figment, ConfigError> {
    figment = figment.merge(
        Env::prefixed(prefix)
            .split("__")
            .filter(|key| file_reference(key.as_str()).is_none()),
    );
    for (name, value) in std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
    {
        let Some(rest) = strip_prefix_ignore_case(&name, prefix) else {
            continue;
        };
        let key = rest.replace("__", ".").to_ascii_lowercase();
        if file_reference(&key).is_none()
            && matches!(defaults.find_ref(&key), Some(Value::String(..)))
        {
            figment = figment.merge(TextVariable {
                metadata: format!("{ENV_VARIABLE}{name}"),
                key,
                value,
            });
        }
    }
    for (name, path) in std::env::vars_os().filter_map(|(name, value)| {
        let name = name.into_string().ok()?;
        let rest = strip_prefix_ignore_case(&name, prefix)?;
        file_reference(&rest.replace("__", "."))?;
        Some((name, PathBuf::from(value)))
    }) {
        let key = file_reference(&name[prefix.len()..].replace("__", "."))
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let content = std::fs::read_to_string(&path).map_err(|err| {
            ConfigError::one(
                key.clone(),
                format!("cannot read {}: {err}", path.display()),
                Some(Origin::Env(name.clone())),
            )
        })?;
        // One trailing line break (as secret files usually end) is not
        // part of the value.
        let content = content
            .strip_suffix('\n')
            .map_or(content.as_str(), |c| c.strip_suffix('\r').unwrap_or(c));
        figment = figment.merge(TextVariable {
            metadata: format!("{FILE_VARIABLE}{name}"),
            key,
            value: content.to_owned(),
        });
    }
    Ok(figment)
}

fn strip_prefix_ignore_case<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

/// The metadata name of a value read from a `…_FILE` variable's file,
/// followed by the variable's name.
const FILE_VARIABLE: &str = "the file named by ";

/// The metadata name of a variable's text, followed by its name.
const ENV_VARIABLE: &str = "the environment variable ";

/// A text value for one key: a `…_FILE` variable's file content, or a
/// variable setting a text field.
struct TextVariable {
    metadata: String,
    key: String,
    value: String,
}

impl figment::Provider for TextVariable {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.metadata.clone())
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        // `a.b.c = value`, nested; the content is text, as a secret is
        // (read as an environment value, `123456` became a number: a
        // string field then failed, its error showing the secret).
        let mut value = Value::from(self.value.clone());
        for segment in self.key.rsplit('.') {
            let mut dict = figment::value::Dict::new();
            dict.insert(segment.to_owned(), value);
            value = Value::from(dict);
        }
        let dict = value.into_dict().unwrap_or_default();
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// What went wrong with a value, without the value: a secret set in the
/// wrong place must not reach the logs through its error.
fn describe(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    match kind {
        Kind::InvalidType(actual, expected) => {
            format!("invalid type: expected {expected}, found {}", what(actual))
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value: expected {expected}, found {}", what(actual))
        }
        Kind::UnknownVariant(_, expected) => {
            format!("unknown variant, expected one of: {}", expected.join(", "))
        }
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) => "integer out of range".to_owned(),
        Kind::Unsupported(actual) => format!("unsupported: {}", what(actual)),
        Kind::UnsupportedKey(actual, expected) => {
            format!(
                "unsupported key: expected {expected}, found {}",
                what(actual)
            )
        }
        other => other.to_string(),
    }
}

/// The kind of a value, for [`describe`].
fn what(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) => "an unsigned integer",
        Actual::Signed(_) => "a signed integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) => "a character",
        Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit => "a unit",
        Actual::Option => "an option",
        Actual::Seq => "a sequence",
        Actual::Map => "a map",
        _ => "a value of another type",
    }
}

/// Keys of `given` that `known` (the defaults) does not have, with the
/// nearest known key. Only levels where the defaults hold a non-empty
/// table are checked: below an unset option, an empty map or a list, any
/// key may be right.
fn unknown_keys(
    known: &figment::value::Dict,
    given: &figment::value::Dict,
    prefix: &str,
    out: &mut Vec<(String, Option<String>)>,
) {
    if known.is_empty() {
        return;
    }
    for (key, value) in given {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match known.get(key) {
            Some(Value::Dict(_, known)) => {
                if let Value::Dict(_, given) = value {
                    unknown_keys(known, given, &path, out);
                }
            }
            Some(_) => {}
            None => {
                let near = known
                    .keys()
                    .map(|candidate| (edit_distance(key, candidate), candidate))
                    .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(2))
                    .min()
                    .map(|(_, candidate)| {
                        if prefix.is_empty() {
                            candidate.clone()
                        } else {
                            format!("{prefix}.{candidate}")
                        }
                    });
                out.push((path, near));
            }
        }
    }
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// A loaded, valid configuration.
pub struct Loaded<T> {
    value: T,
    figment: Figment,
    warnings: Vec<ConfigProblem>,
}

impl<T: fmt::Debug> fmt::Debug for Loaded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The figment holds every raw value, secrets in clear: leave it out.
        f.debug_struct("Loaded")
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize> Loaded<T> {
    /// The configuration.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// What was loaded but not used: unknown keys (typos), each with its
    /// origin and the nearest known key. Log them; with
    /// [`Loader::deny_unknown_keys`] they are errors instead.
    pub fn warnings(&self) -> &[ConfigProblem] {
        &self.warnings
    }

    /// Takes the configuration.
    pub fn into_value(self) -> T {
        self.value
    }

    /// The configuration as TOML, for logs and `--print-config`: every
    /// [`Secret`](super::Secret) shows as `[redacted]`.
    pub fn dump(&self) -> String {
        toml::to_string_pretty(&self.value).unwrap_or_else(|e| format!("<cannot render: {e}>"))
    }

    /// Where the value at `path` (`"server.addr"`) came from: the file,
    /// an environment variable, or the defaults.
    pub fn origin_of(&self, path: &str) -> Option<String> {
        let metadata = self.figment.find_metadata(path)?;
        Some(match &metadata.source {
            Some(figment::Source::File(file)) => format!("file {}", file.display()),
            _ => metadata.name.to_string(),
        })
    }
}

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The defaults in code.
    Default,
    /// A TOML file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// One configuration problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The value's path (`server.addr`); empty for the whole configuration.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Where the value came from, when known.
    pub origin: Option<Origin>,
}

/// Every problem found in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The problems, at least one.
    pub problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// An error of one problem.
    fn one(path: String, message: String, origin: Option<Origin>) -> Self {
        Self {
            problems: vec![ConfigProblem {
                path,
                message,
                origin,
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({} problem", self.problems.len())?;
        if self.problems.len() != 1 {
            f.write_str("s")?;
        }
        f.write_str(")")?;
        for p in &self.problems {
            let path = if p.path.is_empty() { "(root)" } else { &p.path };
            write!(f, "; {path}: {}", p.message)?;
            if let Some(origin) = &p.origin {
                write!(f, " (from {origin})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Error::with_source(Kind::InvalidInput, "loading the configuration", err)
    }
}
