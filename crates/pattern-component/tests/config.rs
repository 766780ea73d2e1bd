//! Configuration: layers, every problem at once with path and origin,
//! secrets redacted.

#![allow(clippy::result_large_err)] // figment::Jail closures return figment's large error type
use garde::Validate;
use pattern_component::config::{Loader, Origin, Secret};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Validate)]
struct Config {
    #[garde(dive)]
    server: Server,
    #[garde(dive)]
    database: Database,
}

#[derive(Debug, Serialize, Deserialize, Validate)]
struct Server {
    #[garde(length(min = 1))]
    host: String,
    #[garde(range(min = 1024))]
    port: u16,
    #[garde(range(min = 1, max = 60_000))]
    request_timeout_ms: u64,
}

#[derive(Debug, Serialize, Deserialize, Validate)]
struct Database {
    #[garde(skip)]
    url: Secret<String>,
    #[garde(range(min = 1, max = 100))]
    pool_size: u32,
}

fn defaults() -> Config {
    Config {
        server: Server {
            host: "127.0.0.1".into(),
            port: 8080,
            request_timeout_ms: 5_000,
        },
        database: Database {
            url: Secret::new("postgres://app:hunter2@127.0.0.1/app".into()),
            pool_size: 10,
        },
    }
}

#[test]
fn layers_merge_defaults_file_then_environment() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "app.toml",
            "[server]\nport = 9000\nrequest_timeout_ms = 100\n",
        )?;
        jail.set_env("TESTAPP_SERVER__REQUEST_TIMEOUT_MS", "250");
        let loaded = Loader::new(defaults())
            .file("app.toml")
            .env_prefix("TESTAPP_")
            .load()
            .unwrap();
        let config = loaded.value();
        assert_eq!(config.server.host, "127.0.0.1", "default");
        assert_eq!(config.server.port, 9000, "file");
        assert_eq!(config.server.request_timeout_ms, 250, "environment wins");
        assert!(
            loaded
                .origin_of("server.port")
                .unwrap()
                .contains("app.toml")
        );
        Ok(())
    });
}

#[test]
fn every_problem_is_reported_with_its_path_and_origin() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("app.toml", "[server]\nhost = \"\"\nport = 80\n")?;
        jail.set_env("TESTAPP_DATABASE__POOL_SIZE", "0");
        jail.set_env("TESTAPP_SERVER__REQUEST_TIMEOUT_MS", "999999");
        let err = Loader::new(defaults())
            .file("app.toml")
            .env_prefix("TESTAPP_")
            .load()
            .unwrap_err();
        let mut found: Vec<(String, Option<Origin>)> = err
            .problems
            .iter()
            .map(|p| (p.path.clone(), p.origin.clone()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let file =
            |o: &Option<Origin>| matches!(o, Some(Origin::File(p)) if p.ends_with("app.toml"));
        assert_eq!(found.len(), 4, "{err}");
        assert_eq!(found[0].0, "database.pool_size");
        assert_eq!(
            found[0].1,
            Some(Origin::Env("TESTAPP_DATABASE__POOL_SIZE".into()))
        );
        assert_eq!(found[1].0, "server.host");
        assert!(file(&found[1].1), "{:?}", found[1]);
        assert_eq!(found[2].0, "server.port");
        assert!(file(&found[2].1), "{:?}", found[2]);
        assert_eq!(found[3].0, "server.request_timeout_ms");
        assert_eq!(
            found[3].1,
            Some(Origin::Env("TESTAPP_SERVER__REQUEST_TIMEOUT_MS".into()))
        );
        let text = err.to_string();
        assert!(
            text.starts_with("invalid configuration (4 problems)"),
            "{text}"
        );
        let err: pattern_error::Error = err.into();
        assert_eq!(err.kind(), pattern_error::Kind::InvalidInput);
        Ok(())
    });
}

#[test]
fn type_errors_name_the_variable() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("TESTAPP_SERVER__PORT", "eighty");
        let err = Loader::new(defaults())
            .env_prefix("TESTAPP_")
            .load()
            .unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].path, "server.port");
        assert_eq!(
            err.problems[0].origin,
            Some(Origin::Env("TESTAPP_SERVER__PORT".into()))
        );
        Ok(())
    });
}

/// A secret of digits set in a variable loads as itself, and a value of
/// the wrong type is described by its type, never echoed: a secret put in
/// the wrong variable does not end up in the logs.
#[test]
fn values_are_never_echoed_in_problems() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("TESTAPP_DATABASE__URL", "0123456789");
        let config: Config = Loader::new(defaults())
            .env_prefix("TESTAPP_")
            .load()
            .unwrap()
            .into_value();
        assert_eq!(config.database.url.expose(), "0123456789");

        for (variable, value, expected) in [
            (
                "TESTAPP_SERVER__PORT",
                "hunter2-token",
                "expected u16, found a string",
            ),
            (
                "TESTAPP_DATABASE__POOL_SIZE",
                "-77123",
                "expected u32, found a signed integer",
            ),
        ] {
            jail.set_env(variable, value);
            let err = Loader::new(defaults())
                .env_prefix("TESTAPP_")
                .load()
                .unwrap_err();
            let text = err.to_string();
            assert!(!text.contains(value.trim_start_matches('-')), "{text}");
            assert!(text.contains(expected), "{text}");
            assert!(text.contains(variable), "{text}");
            jail.set_env(variable, "2000");
        }
        Ok(())
    });
}

#[test]
fn a_required_file_must_exist() {
    figment::Jail::expect_with(|_jail| {
        let err = Loader::new(defaults())
            .file("missing.toml")
            .require_file()
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("missing.toml"), "{err}");
        // Optional by default.
        Loader::new(defaults()).file("missing.toml").load().unwrap();
        Ok(())
    });
}

#[test]
fn dumps_and_debug_output_redact_secrets() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("TESTAPP_DATABASE__URL", "postgres://app:s3cr3t@db/app");
        let loaded = Loader::new(defaults())
            .env_prefix("TESTAPP_")
            .load()
            .unwrap();
        assert_eq!(
            loaded.value().database.url.expose(),
            "postgres://app:s3cr3t@db/app"
        );
        let dump = loaded.dump();
        assert!(
            !dump.contains("s3cr3t") && dump.contains("[redacted]"),
            "{dump}"
        );
        let debug = format!("{:?}", loaded.value());
        assert!(!debug.contains("s3cr3t"), "{debug}");
        Ok(())
    });
}

/// A secret's default loads as itself (it loaded as the text
/// "[redacted]"), and dumps still redact it.
#[test]
fn a_default_secret_loads_as_itself() {
    figment::Jail::expect_with(|_jail| {
        let loaded = Loader::new(defaults())
            .env_prefix("TESTAPP_")
            .load()
            .unwrap();
        assert_eq!(
            loaded.value().database.url.expose(),
            "postgres://app:hunter2@127.0.0.1/app"
        );
        assert!(!loaded.dump().contains("hunter2"));
        // Outside the loader, serializing still redacts.
        let json = serde_json::to_string(&defaults().database.url).unwrap();
        assert_eq!(json, r#""[redacted]""#);
        Ok(())
    });
}

/// `PREFIX_…_FILE` names a file holding the value (Docker and Kubernetes
/// secrets): one trailing line break dropped, the variable named when the
/// file cannot be read, and the variable wins over the file's own layer.
#[test]
fn file_variables_read_secrets_from_files() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("db-url", "postgres://app:from-file@db/app\n")?;
        jail.create_file("app.toml", "[database]\nurl = \"postgres://from-toml\"\n")?;
        jail.set_env("TESTAPP_DATABASE__URL_FILE", "db-url");
        let loaded = Loader::new(defaults())
            .file("app.toml")
            .env_prefix("TESTAPP_")
            .load()
            .unwrap();
        assert_eq!(
            loaded.value().database.url.expose(),
            "postgres://app:from-file@db/app"
        );
        // A secret that looks like a number stays text.
        jail.create_file("digits", "0123456789\n")?;
        jail.set_env("TESTAPP_DATABASE__URL_FILE", "digits");
        let loaded = Loader::new(defaults())
            .env_prefix("TESTAPP_")
            .load()
            .unwrap();
        assert_eq!(loaded.value().database.url.expose(), "0123456789");

        jail.set_env("TESTAPP_DATABASE__URL_FILE", "missing");
        let err = Loader::new(defaults())
            .env_prefix("TESTAPP_")
            .load()
            .unwrap_err();
        let problem = &err.problems[0];
        assert_eq!(problem.path, "database.url");
        assert_eq!(
            problem.origin,
            Some(Origin::Env("TESTAPP_DATABASE__URL_FILE".to_owned()))
        );
        assert!(problem.message.contains("missing"), "{}", problem.message);
        Ok(())
    });
}

/// A file variable's problem names the variable (a number field from a
/// file: its text does not parse as one).
#[test]
fn file_variable_problems_name_the_variable() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("port", "9443\n")?;
        jail.set_env("TESTAPP_SERVER__PORT_FILE", "port");
        let err = Loader::new(defaults())
            .env_prefix("TESTAPP_")
            .load()
            .unwrap_err();
        let problem = err
            .problems
            .iter()
            .find(|p| p.path == "server.port")
            .unwrap();
        assert_eq!(
            problem.origin,
            Some(Origin::Env("TESTAPP_SERVER__PORT_FILE".to_owned()))
        );
        Ok(())
    });
}

/// Unknown keys (typos) are reported with their origin and the nearest
/// known key: warnings by default, errors when asked. Keys under an unset
/// option are not judged; flattened settings count as known.
#[test]
fn unknown_keys_are_reported_with_the_nearest_known_key() {
    #[derive(Debug, Serialize, Deserialize, Validate)]
    struct Outer {
        #[serde(flatten)]
        #[garde(dive)]
        server: Server,
        #[garde(skip)]
        tls: Option<Tls>,
    }
    #[derive(Debug, Serialize, Deserialize, Validate)]
    struct Tls {
        #[garde(skip)]
        cert: String,
    }
    let outer = || Outer {
        server: defaults().server,
        tls: None,
    };
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "app.toml",
            "port = 9000\nrequest_timout_ms = 100\n[tls]\ncert = \"x\"\n",
        )?;
        jail.set_env("TESTAPP_HOTS", "example");
        jail.set_env("TESTAPP_CONFIG", "app.toml");
        let loaded = Loader::new(outer())
            .file("app.toml")
            .env_prefix("TESTAPP_")
            .ignore_keys(["config"])
            .load()
            .unwrap();
        assert_eq!(loaded.value().server.port, 9000, "a flattened key is known");
        assert_eq!(
            loaded.value().tls.as_ref().unwrap().cert,
            "x",
            "under an unset option"
        );
        let mut warnings: Vec<_> = loaded
            .warnings()
            .iter()
            .map(|p| (p.path.as_str(), p.message.as_str(), p.origin.clone()))
            .collect();
        warnings.sort_by_key(|w| w.0);
        assert_eq!(
            warnings,
            [
                (
                    "hots",
                    "unknown key (did you mean `host`?)",
                    Some(Origin::Env("TESTAPP_HOTS".to_owned()))
                ),
                (
                    "request_timout_ms",
                    "unknown key (did you mean `request_timeout_ms`?)",
                    Some(Origin::File("app.toml".into()))
                ),
            ]
        );
        let err = Loader::new(outer())
            .file("app.toml")
            .env_prefix("TESTAPP_")
            .ignore_keys(["config"])
            .deny_unknown_keys()
            .load()
            .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        Ok(())
    });
}

#[test]
fn known_keys_give_no_warning() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("TESTAPP_SERVER__PORT", "9000");
        let loaded = Loader::new(defaults())
            .env_prefix("TESTAPP_")
            .deny_unknown_keys()
            .load()
            .unwrap();
        assert!(loaded.warnings().is_empty());
        Ok(())
    });
}
