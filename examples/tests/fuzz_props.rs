//! The fuzz targets of `fuzz/` as property tests, the form that runs in
//! `cargo xtask ci`: the same checks (`examples::fuzzing`) fed by proptest
//! generators, both random bytes and structured inputs that sit near the
//! edges (valid JSON with out-of-range values or wrong types, unicode
//! names, deep nesting; TOML with known and unknown keys under the
//! service's sections, secrets among them).
//!
//! Each test runs a fixed number of cases from a fixed seed, so a run takes
//! a few seconds in a debug build and gives the same verdict every time.
//! `PROPTEST_RNG_SEED=N` and `PROPTEST_CASES=N` explore further.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::{Debug, Write as _};
use std::time::Duration;

use examples::fuzzing::{
    BodyOutcome, ConfigOutcome, ProblemCase, ProblemInput, Violation, check_body, check_config,
    check_problem,
};
use http::StatusCode;
use patterns::api::FieldError;
use patterns::error::Kind;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::Value;

/// The seed every run starts from unless `PROPTEST_RNG_SEED` is set.
const SEED: u64 = 0x7061_7474_6572_6e73;

/// Runs `check` on `cases` inputs drawn from `strategy` and panics with the
/// smallest failing input, if any; returns how often each outcome came.
fn run<S, O>(
    cases: u32,
    strategy: S,
    check: impl Fn(&S::Value) -> Result<O, Violation>,
) -> BTreeMap<O, usize>
where
    S: Strategy,
    S::Value: Debug,
    O: Ord + Debug,
{
    let defaults = Config::default();
    let set = |name: &str| std::env::var_os(name).is_some();
    let config = Config {
        cases: if set("PROPTEST_CASES") {
            defaults.cases
        } else {
            cases
        },
        rng_seed: if set("PROPTEST_RNG_SEED") {
            defaults.rng_seed
        } else {
            RngSeed::Fixed(SEED)
        },
        failure_persistence: None,
        ..defaults
    };
    let outcomes = RefCell::new(BTreeMap::new());
    let result = TestRunner::new(config).run(&strategy, |input| {
        let outcome = check(&input).map_err(|v| TestCaseError::fail(v.to_string()))?;
        *outcomes.borrow_mut().entry(outcome).or_insert(0) += 1;
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    outcomes.into_inner()
}

// ---------------------------------------------------------------------------
// Bodies through `Valid<NewItem>`.

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A `name`: mostly valid (unicode included), at and past both length
/// limits in characters, or of the wrong type.
fn name() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => "\\PC{1,100}".prop_map(Value::from),
        1 => Just(Value::from("")),
        1 => "[a-z]{101,140}".prop_map(Value::from),
        // Two bytes a character: 100 characters is 200 bytes, still valid.
        1 => (95usize..=105).prop_map(|n| Value::from("é".repeat(n))),
        1 => (98usize..=102).prop_map(|n| Value::from("🦀".repeat(n))),
        1 => any_json(),
    ]
}

/// A `quantity`: mostly in range, at and past both ends, beyond `i64`, a
/// float, a string, or anything else.
fn quantity() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (0i64..=1_000_000).prop_map(Value::from),
        2 => select(vec![-1i64, 0, 1_000_000, 1_000_001, i64::MIN, i64::MAX]).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(Value::from),
        1 => (-1e7f64..1e7).prop_map(Value::from),
        1 => (0i64..100).prop_map(|n| Value::from(n.to_string())),
        1 => any_json(),
    ]
}

/// An item object: each field present or not, with extra members.
fn item() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.9, name()),
        prop::option::weighted(0.9, quantity()),
        prop::collection::btree_map("[a-z_]{1,8}", any_json(), 0..2),
    )
        .prop_map(|(name, quantity, extra)| {
            let mut object: serde_json::Map<String, Value> = extra.into_iter().collect();
            if let Some(name) = name {
                object.insert("name".to_owned(), name);
            }
            if let Some(quantity) = quantity {
                object.insert("quantity".to_owned(), quantity);
            }
            Value::Object(object)
        })
}

/// JSON text for a `name`, with escapes: `\u00e9`, surrogate pairs, lone
/// surrogates (invalid), raw bytes that are not UTF-8 (invalid).
fn escaped_name() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        "[a-z ]{1,5}".prop_map(String::into_bytes),
        Just(br"\u00e9".to_vec()),
        Just(br"\ud83e\udd80".to_vec()),
        Just(br"\ud800".to_vec()),
        Just(br#"\""#.to_vec()),
        Just(br"\n".to_vec()),
        Just(vec![0xff, 0xfe]),
        Just(vec![0xc3, 0xa9]),
    ];
    prop::collection::vec(piece, 0..30).prop_map(|pieces| pieces.concat())
}

/// Bodies near a valid item: serialized items, items cut short or followed
/// by junk, duplicate keys, names with escapes, deep nesting, any JSON,
/// random bytes.
fn near_valid_body() -> impl Strategy<Value = Vec<u8>> {
    let json = |v: &Value| serde_json::to_vec(v).unwrap_or_default();
    prop_oneof![
        8 => item().prop_map(move |v| json(&v)),
        1 => item().prop_map(|v| serde_json::to_vec_pretty(&v).unwrap_or_default()),
        2 => (item(), any::<Index>()).prop_map(move |(v, at)| {
            let bytes = json(&v);
            bytes[..at.index(bytes.len() + 1)].to_vec()
        }),
        1 => (item(), select(vec![&b" x"[..], b"}", b"{}", b",", b"\0", b" \n"]))
            .prop_map(move |(v, tail)| [json(&v), tail.to_vec()].concat()),
        1 => (name(), name(), 0i64..10).prop_map(|(a, b, q)| {
            format!(r#"{{"name":{a},"quantity":{q},"name":{b}}}"#).into_bytes()
        }),
        2 => (escaped_name(), 0i64..10).prop_map(|(name, q)| {
            [&b"{\"name\":\""[..], &name, format!("\",\"quantity\":{q}}}").as_bytes()].concat()
        }),
        1 => (1usize..300).prop_map(|depth| ["[".repeat(depth), "]".repeat(depth)].concat().into_bytes()),
        1 => (1usize..300).prop_map(|depth| {
            format!(r#"{{"name":{}"x"{},"quantity":1}}"#, "[".repeat(depth), "]".repeat(depth))
                .into_bytes()
        }),
        1 => any_json().prop_map(move |v| json(&v)),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Content types: none, well-known JSON and non-JSON ones, and random
/// visible ASCII.
fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        4 => select(vec![
            "application/json",
            "application/json; charset=utf-8",
            "application/json;charset=utf-8",
            "application/problem+json",
            "application/vnd.api+json",
            "APPLICATION/JSON",
            "application/json; charset=latin1",
        ])
        .prop_map(|ct| Some(ct.to_owned())),
        2 => select(vec![
            "",
            "text/plain",
            "text/json",
            "application/xml",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "application/jsonx",
            "json",
        ])
        .prop_map(|ct| Some(ct.to_owned())),
        1 => "[ -~]{0,30}".prop_map(Some),
    ]
}

#[test]
fn random_bytes_as_a_json_body() {
    let outcomes = run(
        1024,
        prop::collection::vec(any::<u8>(), 0..256),
        |body: &Vec<u8>| check_body(Some("application/json"), body),
    );
    assert!(
        outcomes.contains_key(&BodyOutcome::Rejected(400)),
        "{outcomes:?}"
    );
}

#[test]
fn near_valid_json_bodies() {
    let outcomes = run(2048, near_valid_body(), |body: &Vec<u8>| {
        check_body(Some("application/json"), body)
    });
    for outcome in [
        BodyOutcome::Accepted,
        BodyOutcome::Rejected(400),
        BodyOutcome::Rejected(422),
    ] {
        assert!(
            outcomes.contains_key(&outcome),
            "no {outcome:?} in {outcomes:?}"
        );
    }
}

#[test]
fn bodies_with_any_content_type() {
    let outcomes = run(
        1024,
        (content_type(), near_valid_body()),
        |(content_type, body): &(Option<String>, Vec<u8>)| {
            check_body(content_type.as_deref(), body)
        },
    );
    for outcome in [BodyOutcome::Accepted, BodyOutcome::Rejected(415)] {
        assert!(
            outcomes.contains_key(&outcome),
            "no {outcome:?} in {outcomes:?}"
        );
    }
}

#[test]
fn bodies_at_the_size_limit() {
    const LIMIT: usize = 2 * 1024 * 1024;
    let mut at_limit = br#"{"name":"bolt","quantity":5}"#.to_vec();
    at_limit.resize(LIMIT, b' ');
    assert_eq!(
        check_body(Some("application/json"), &at_limit),
        Ok(BodyOutcome::Accepted)
    );
    at_limit.push(b' ');
    assert_eq!(
        check_body(Some("application/json"), &at_limit),
        Ok(BodyOutcome::Rejected(413))
    );
    assert_eq!(
        check_body(None, br#"{"name":"bolt","quantity":5}"#),
        Ok(BodyOutcome::Rejected(415))
    );
}

// ---------------------------------------------------------------------------
// Errors through `ApiError` and `IntoResponse`.

/// Messages and source texts: any text, empty, and internal-looking text
/// long enough to be spotted in a body.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "\\PC{0,40}",
        1 => Just(String::new()),
        2 => "password=[a-z0-9]{8,16} at db\\.internal:5432",
    ]
}

/// Retry-after hints: small, whole seconds, sub-second, any, and the
/// extremes.
fn retry_after() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (0u64..10, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        1 => (0u64..100_000).prop_map(Duration::from_secs),
        1 => (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        1 => select(vec![Duration::ZERO, Duration::from_nanos(1), Duration::MAX]),
    ]
}

fn field_error() -> impl Strategy<Value = FieldError> {
    ("[a-z_.\\[\\]0-9]{0,20}", "\\PC{0,30}", "[a-z_]{0,10}").prop_map(|(field, message, code)| {
        FieldError {
            field,
            message,
            code,
        }
    })
}

fn problem_case() -> impl Strategy<Value = ProblemCase> {
    let input = prop_oneof![
        4 => (
            select(Kind::ALL.to_vec()),
            prop::option::of(text()),
            prop::option::weighted(0.3, text()),
            prop::option::of(retry_after()),
        )
            .prop_map(|(kind, message, source, retry_after)| ProblemInput::Error {
                kind,
                message,
                source,
                retry_after,
            }),
        1 => prop::collection::vec(field_error(), 0..5).prop_map(ProblemInput::Invalid),
    ];
    let status = prop::option::weighted(
        0.25,
        (400u16..=599).prop_filter_map("a status code", |s| StatusCode::from_u16(s).ok()),
    );
    (input, status).prop_map(|(input, status)| ProblemCase { input, status })
}

#[test]
fn errors_answer_as_problems() {
    let outcomes = run(4096, problem_case(), check_problem);
    assert!(
        outcomes.keys().any(|s| (400..500).contains(s)),
        "{outcomes:?}"
    );
    assert!(
        outcomes.keys().any(|s| (500..600).contains(s)),
        "{outcomes:?}"
    );
}

// ---------------------------------------------------------------------------
// Configuration files through `Config::load`.

/// The service's sections and their keys.
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "server",
        &[
            "addr",
            "http1",
            "http2",
            "keep_alive",
            "header_read_timeout_ms",
            "write_timeout_ms",
            "max_header_bytes",
            "max_connections",
            "on_limit",
            "drain_timeout_ms",
            "drain_linger_ms",
            "request_timeout_ms",
            "body_limit_bytes",
            "concurrency_limit",
        ],
    ),
    (
        "limits",
        &[
            "requests_per_second",
            "burst",
            "max_clients",
            "ipv6_prefix",
            "trusted_proxies",
            "proxy_hops",
            "forwarded_header",
        ],
    ),
    (
        "database",
        &[
            "url",
            "pool_size",
            "wait_timeout_ms",
            "create_timeout_ms",
            "recycle_timeout_ms",
            "health_check_interval_ms",
        ],
    ),
    ("admin", &["token"]),
    (
        "management",
        &[
            "enabled",
            "addr",
            "max_connections",
            "concurrency_limit",
            "request_timeout_ms",
        ],
    ),
    (
        "store",
        &["max_items", "item_ttl_secs", "sweep_interval_ms"],
    ),
];

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML value of any type, often at the edge of a range.
fn toml_value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => (-5i64..2_000_000).prop_map(|n| n.to_string()),
        2 => select(vec![
            0i64, 1, 9, 10, 1023, 1024, 600_000, 600_001, 1_000_000, 1_000_001, 10_000_000,
            10_000_001, 104_857_600, 104_857_601, 16_777_216, 16_777_217, i64::MAX, i64::MIN,
        ])
        .prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        2 => "\\PC{0,30}".prop_map(|s| toml_string(&s)),
        2 => select(vec![
            "127.0.0.1:0", "[::1]:8080", "0.0.0.0:65535", "localhost:80", "127.0.0.1",
            "256.0.0.1:1", "wait", "refuse", "drop",
        ])
        .prop_map(toml_string),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => select(vec!["1.5", "-0.0", "inf", "nan", "1e3", "0x10", "0o7", "1_000"]).prop_map(str::to_owned),
        1 => select(vec!["[]", "[1, 2]", "[\"a\"]", "{}", "{ a = 1 }", "1979-05-27T07:32:00Z"])
            .prop_map(str::to_owned),
    ]
    .boxed()
}

/// A value for `key`: for the secrets, mostly a string that may be long
/// enough to be one.
fn value_for(key: &str) -> BoxedStrategy<String> {
    match key {
        "token" => prop_oneof![
            3 => "[A-Za-z0-9_\\-]{0,40}".prop_map(|s| toml_string(&s)),
            1 => toml_value(),
        ]
        .boxed(),
        "url" => prop_oneof![
            3 => "[a-z0-9]{6,20}".prop_map(|pw| toml_string(&format!("postgres://svc:{pw}@127.0.0.1:5432/db"))),
            1 => toml_value(),
        ]
        .boxed(),
        _ => toml_value(),
    }
}

/// `[section]` lines: known sections (and an unknown one), known keys
/// (and unknown ones), values of any type.
fn section() -> BoxedStrategy<String> {
    let known = select(SECTIONS).prop_flat_map(|(name, keys)| {
        let entry = prop_oneof![
            4 => select(keys.to_vec()).prop_map(str::to_owned),
            1 => "[a-z_]{1,10}",
        ]
        .prop_flat_map(|key| {
            let value = value_for(&key);
            (Just(key), value)
        });
        (Just(name.to_owned()), prop::collection::vec(entry, 0..4))
    });
    let unknown = (
        "[a-z_]{1,10}",
        prop::collection::vec(("[a-z_]{1,10}", toml_value()), 0..3),
    );
    prop_oneof![6 => known, 1 => unknown]
        .prop_map(|(name, entries)| {
            let mut text = format!("[{name}]\n");
            for (key, value) in entries {
                let _ = writeln!(text, "{key} = {value}");
            }
            text
        })
        .boxed()
}

/// Whole files: a few sections, sometimes broken by a cut or a stray
/// character.
fn near_valid_toml() -> impl Strategy<Value = Vec<u8>> {
    let file = prop::collection::vec(section(), 0..4)
        .prop_map(|sections| sections.concat())
        .boxed();
    prop_oneof![
        8 => file.clone().prop_map(String::into_bytes),
        1 => (file.clone(), any::<Index>()).prop_map(|(text, at)| {
            let bytes = text.into_bytes();
            bytes[..at.index(bytes.len() + 1)].to_vec()
        }),
        1 => (file, any::<Index>(), select(vec![b'"', b'[', b'=', b'\n', b'#', 0xff]))
            .prop_map(|(text, at, byte)| {
                let mut bytes = text.into_bytes();
                bytes.insert(at.index(bytes.len() + 1), byte);
                bytes
            }),
    ]
}

#[test]
fn random_bytes_as_a_config_file() {
    let outcomes = run(
        512,
        prop::collection::vec(any::<u8>(), 0..256),
        |bytes: &Vec<u8>| check_config(bytes),
    );
    assert!(
        outcomes
            .keys()
            .any(|o| matches!(o, ConfigOutcome::Rejected(_))),
        "{outcomes:?}"
    );
}

#[test]
fn near_valid_config_files() {
    let outcomes = run(1024, near_valid_toml(), |bytes: &Vec<u8>| {
        check_config(bytes)
    });
    assert!(
        outcomes.contains_key(&ConfigOutcome::Loaded),
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .keys()
            .any(|o| matches!(o, ConfigOutcome::Rejected(_))),
        "{outcomes:?}"
    );
}

#[test]
fn secrets_stay_hidden_in_loaded_and_refused_configs() {
    let secrets = "[admin]\ntoken = \"fuzz-admin-token-0123456789\"\n\
                   [database]\nurl = \"postgres://svc:hunter2hunter2@127.0.0.1:5432/db\"\n";
    assert_eq!(check_config(secrets.as_bytes()), Ok(ConfigOutcome::Loaded));
    let refused = format!("{secrets}pool_size = 0\n[store]\nmax_items = 0\n");
    assert_eq!(
        check_config(refused.as_bytes()),
        Ok(ConfigOutcome::Rejected(2))
    );
}

#[test]
fn edge_errors_answer_as_problems() {
    let error = |kind, message: &str, retry_after| ProblemInput::Error {
        kind,
        message: Some(message.to_owned()),
        source: Some("connection refused by db.internal:5432".to_owned()),
        retry_after,
    };
    let cases = [
        (
            error(Kind::Internal, "password=hunter2 at db.internal", None),
            None,
            500,
        ),
        (
            error(Kind::RateLimited, "slow down", Some(Duration::MAX)),
            None,
            429,
        ),
        (
            error(Kind::Overloaded, "queue full", Some(Duration::ZERO)),
            None,
            503,
        ),
        (
            error(Kind::NotFound, "item 42 does not exist", None),
            StatusCode::from_u16(502).ok(),
            502,
        ),
        (ProblemInput::Invalid(Vec::new()), None, 422),
    ];
    for (input, status, expected) in cases {
        let case = ProblemCase { input, status };
        assert_eq!(check_problem(&case), Ok(expected), "{case:?}");
    }
}
