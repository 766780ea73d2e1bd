//! Request bodies through `Valid<NewItem>`.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, Method, header};
use axum::response::IntoResponse;
use patterns::api::extract::Valid;
use serde_json::error::Category;

use super::{Violation, collect, problem_body, runtime};
use crate::reference::NewItem;

/// The largest body axum reads when no other limit is set (413 beyond).
const AXUM_DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// What a body came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BodyOutcome {
    /// Parsed and valid.
    Accepted,
    /// Refused with this status.
    Rejected(u16),
}

/// Sends `body` with `content_type` (none when `None`) through the
/// extractor of `POST /v1/items`, `Valid<NewItem>`, and checks the answer:
///
/// - an accepted item obeys the rules: `name` 1 to 100 characters,
///   `quantity` 0 to 1 000 000, and equals what `serde_json` reads from the
///   body on its own;
/// - a rejection answers 400, 413, 415 or 422, as
///   `application/problem+json` whose `status` is the response's;
/// - the status is the one the input deserves: 415 for a content type that
///   is not JSON (for the well-known ones), 413 beyond axum's 2 MiB default
///   limit, 400 for JSON that does not parse, 422 for JSON of the wrong shape,
///   and for a well-formed item that breaks a rule, 422 listing exactly the
///   fields that break one.
///
/// A `content_type` that is not a valid header value is a violation.
pub fn check_body(content_type: Option<&str>, body: &[u8]) -> Result<BodyOutcome, Violation> {
    let mut request = Request::new(Body::from(body.to_vec()));
    *request.method_mut() = Method::POST;
    if let Some(content_type) = content_type {
        let value = HeaderValue::from_str(content_type).map_err(|_| {
            Violation::new(format!(
                "{content_type:?} is not a header value (a bad input)"
            ))
        })?;
        request.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    // Whether axum should read the body as JSON; `None`: not known here.
    let json = match content_type {
        None => Some(false),
        Some(content_type) => known_json_media_type(content_type),
    };

    match runtime().block_on(Valid::<NewItem>::from_request(request, &())) {
        Ok(Valid(item)) => {
            ensure!(
                json != Some(false),
                "accepted content type {content_type:?}"
            );
            ensure!(
                broken_rules(&item).is_empty(),
                "accepted an invalid item: {item:?}"
            );
            let alone = serde_json::from_slice::<NewItem>(body).map_err(|e| {
                Violation::new(format!(
                    "accepted a body serde_json refuses ({e}): {item:?}"
                ))
            })?;
            ensure!(
                alone.name == item.name && alone.quantity == item.quantity,
                "accepted {item:?} from a body that reads as {alone:?}"
            );
            Ok(BodyOutcome::Accepted)
        }
        Err(rejection) => {
            let status = rejection.status();
            let response = rejection.into_response();
            ensure!(
                response.status() == status,
                "the response's status {} is not the error's {status}",
                response.status()
            );
            let status = status.as_u16();
            ensure!(
                matches!(status, 400 | 413 | 415 | 422),
                "a body was refused with {status}"
            );
            let (parts, response_body) = response.into_parts();
            let problem = problem_body(&parts.headers, status, &collect(response_body)?)?;

            if status == 415 {
                ensure!(
                    json != Some(true),
                    "415 for the JSON content type {content_type:?}"
                );
                return Ok(BodyOutcome::Rejected(status));
            }
            ensure!(
                json != Some(false),
                "{status} for content type {content_type:?}, not 415"
            );
            let too_large = body.len() > AXUM_DEFAULT_BODY_LIMIT;
            ensure!(
                (status == 413) == too_large,
                "{status} for a body of {} bytes (the limit is {AXUM_DEFAULT_BODY_LIMIT})",
                body.len()
            );
            if too_large {
                return Ok(BodyOutcome::Rejected(status));
            }
            match serde_json::from_slice::<NewItem>(body) {
                Err(e) => {
                    let deserved = match e.classify() {
                        Category::Data => 422,
                        Category::Syntax | Category::Eof | Category::Io => 400,
                    };
                    ensure!(
                        status == deserved,
                        "{status} for a body serde_json refuses with {e} (deserves {deserved})"
                    );
                }
                Ok(item) => {
                    let broken = broken_rules(&item);
                    ensure!(
                        status == 422 && !broken.is_empty(),
                        "{status} for {item:?}, which breaks {broken:?}"
                    );
                    let listed: BTreeSet<&str> = problem
                        .get("errors")
                        .and_then(serde_json::Value::as_array)
                        .map(|errors| {
                            errors
                                .iter()
                                .filter_map(|e| e.get("field")?.as_str())
                                .collect()
                        })
                        .unwrap_or_default();
                    ensure!(
                        listed == broken,
                        "the 422 lists {listed:?} for {item:?}, which breaks {broken:?}"
                    );
                }
            }
            Ok(BodyOutcome::Rejected(status))
        }
    }
}

/// The fields of `item` that break the rules of `NewItem`, written out
/// again here so that the check does not trust the derive it checks.
fn broken_rules(item: &NewItem) -> BTreeSet<&'static str> {
    let mut broken = BTreeSet::new();
    if !(1..=100).contains(&item.name.chars().count()) {
        broken.insert("name");
    }
    if !(0..=1_000_000).contains(&item.quantity) {
        broken.insert("quantity");
    }
    broken
}

/// Whether a well-known content type is JSON to axum (`application/json`,
/// `application/*+json`, parameters allowed); `None` for others, whose
/// parsing the check leaves to axum.
fn known_json_media_type(content_type: &str) -> Option<bool> {
    match content_type {
        "application/json"
        | "application/json; charset=utf-8"
        | "application/json;charset=utf-8"
        | "application/problem+json"
        | "application/vnd.api+json" => Some(true),
        ""
        | "text/plain"
        | "text/json"
        | "application/xml"
        | "application/x-www-form-urlencoded"
        | "multipart/form-data"
        | "application/jsonx"
        | "json" => Some(false),
        _ => None,
    }
}
