//! Arbitrary errors through `ApiError` and `IntoResponse`: see
//! `examples::fuzzing::check_problem` for what holds.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use examples::fuzzing::{ProblemCase, ProblemInput, check_problem};
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use patterns::api::FieldError;
use patterns::error::Kind;

/// The raw choices; [`Input::case`] turns them into a case.
#[derive(Debug, Arbitrary)]
struct Input {
    /// Index into `Kind::ALL`.
    kind: u8,
    message: Option<String>,
    source: Option<String>,
    /// Seconds and nanoseconds (taken modulo one second).
    retry_after: Option<(u64, u32)>,
    /// `Some`: `ApiError::invalid` with these `(field, message, code)`.
    fields: Option<Vec<(String, String, String)>>,
    /// `Some(n)`: the explicit status `400 + n % 200`.
    status: Option<u16>,
}

impl Input {
    fn case(self) -> ProblemCase {
        let input = match self.fields {
            Some(fields) => ProblemInput::Invalid(
                fields
                    .into_iter()
                    .map(|(field, message, code)| FieldError {
                        field,
                        message,
                        code,
                    })
                    .collect(),
            ),
            None => ProblemInput::Error {
                kind: Kind::ALL[usize::from(self.kind) % Kind::ALL.len()],
                message: self.message,
                source: self.source,
                retry_after: self
                    .retry_after
                    .map(|(secs, nanos)| Duration::new(secs, nanos % 1_000_000_000)),
            },
        };
        let status = self
            .status
            .and_then(|n| StatusCode::from_u16(400 + n % 200).ok());
        ProblemCase { input, status }
    }
}

fuzz_target!(|input: Input| {
    let case = input.case();
    if let Err(violation) = check_problem(&case) {
        panic!("{violation}\n{case:#?}");
    }
});
