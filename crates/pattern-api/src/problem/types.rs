//! The problem types: one per code, each with a description a caller can
//! read at its type URI.

/// Where problem types live, relative to the service: a problem with code
/// `not_found` has the type `/problems/not_found`.
pub const TYPE_PREFIX: &str = "/problems/";

/// The type URI of the problems with `code`.
///
/// ```
/// assert_eq!(pattern_api::problem::type_uri("rate_limited"), "/problems/rate_limited");
/// ```
pub fn type_uri(code: &str) -> String {
    let mut uri = String::with_capacity(TYPE_PREFIX.len() + code.len());
    uri.push_str(TYPE_PREFIX);
    uri.push_str(code);
    uri
}

/// The title of the problems with `code`, when it is one of
/// [`PROBLEM_TYPES`]: the same for every occurrence, whatever its status.
pub fn title_for(code: &str) -> Option<&'static str> {
    PROBLEM_TYPES
        .iter()
        .find(|t| t.code == code)
        .map(|t| t.title)
}

/// A problem type: its code, the status it usually comes with and what it
/// means for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProblemType {
    /// The code (`code` in the body; the last segment of the type URI).
    pub code: &'static str,
    /// The HTTP status it usually comes with (the description says when
    /// another).
    pub status: u16,
    /// A short title.
    pub title: &'static str,
    /// What happened and what the caller can do about it.
    pub description: &'static str,
}

/// Every problem type this workspace answers with: one per error kind of
/// `pattern-error`, as [`status_for`](super::status_for) maps it.
pub const PROBLEM_TYPES: &[ProblemType] = &[
    ProblemType {
        code: "malformed",
        status: 400,
        title: "Malformed request",
        description: "The request could not be read: a body that is not the JSON it should be, a path or query parameter of the wrong type, a header that does not parse; with 415, a body that is not JSON at all (`Content-Type`). Fix the request; sending it again as it is fails again.",
    },
    ProblemType {
        code: "unauthenticated",
        status: 401,
        title: "Not authenticated",
        description: "No credentials, or credentials that are not valid. The `WWW-Authenticate` header names the scheme to use.",
    },
    ProblemType {
        code: "forbidden",
        status: 403,
        title: "Forbidden",
        description: "The credentials are valid but do not allow this request.",
    },
    ProblemType {
        code: "not_found",
        status: 404,
        title: "Not found",
        description: "No resource at this address (no route, or no item with this id).",
    },
    ProblemType {
        code: "conflict",
        status: 409,
        title: "Conflict",
        description: "The request conflicts with the resource's current state (it exists already, or changed meanwhile). Read it again before deciding.",
    },
    ProblemType {
        code: "too_large",
        status: 413,
        title: "Content too large",
        description: "The request body is over the service's limit. Send less.",
    },
    ProblemType {
        code: "invalid_input",
        status: 422,
        title: "Invalid input",
        description: "The request was read but its content is not acceptable. `errors` lists each invalid field with its path, a message and a code naming the rule that failed (`length`, `range`, `required`, `type`, ...). Other client errors the service has no closer code for (405 for a method the route does not have) carry this code too.",
    },
    ProblemType {
        code: "rate_limited",
        status: 429,
        title: "Too many requests",
        description: "The client sent more requests than its rate allows. Wait for the seconds in `Retry-After`, then try again.",
    },
    ProblemType {
        code: "cancelled",
        status: 499,
        title: "Cancelled",
        description: "The client went away before the answer was ready (logged; a client rarely sees it).",
    },
    ProblemType {
        code: "internal",
        status: 500,
        title: "Internal error",
        description: "A fault in the service. The body says nothing more; `request_id` finds the whole story in the service's logs.",
    },
    ProblemType {
        code: "overloaded",
        status: 503,
        title: "Overloaded",
        description: "The service is at capacity and shed the request before doing anything. Try again after `Retry-After` seconds, preferably with a backoff.",
    },
    ProblemType {
        code: "unavailable",
        status: 503,
        title: "Unavailable",
        description: "Something the service needs (its database, an upstream) is unavailable, or the service is stopping. Nothing was done; try again after `Retry-After` seconds.",
    },
    ProblemType {
        code: "timeout",
        status: 504,
        title: "Timed out",
        description: "The answer was not ready within the request's deadline: 504, or 503 where the service is set to answer timeouts so; 408 when it was the request's own body that did not arrive in time. The work may or may not have been done: make sure a retry is safe.",
    },
];

#[cfg(test)]
mod tests {
    use pattern_error::Kind;

    use super::PROBLEM_TYPES;
    use crate::problem::status_for;

    /// One type per kind, with the kind's status, and none other.
    #[test]
    fn every_kind_has_its_type() {
        for kind in Kind::ALL {
            let found = PROBLEM_TYPES.iter().find(|t| t.code == kind.as_str());
            let found = found.unwrap_or_else(|| panic!("no type for {kind:?}"));
            assert_eq!(found.status, status_for(kind).as_u16(), "{kind:?}");
        }
        assert_eq!(PROBLEM_TYPES.len(), Kind::ALL.len());
    }
}
