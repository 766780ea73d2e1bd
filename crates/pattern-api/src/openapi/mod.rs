//! OpenAPI documents true to the wire (feature `openapi`): the schemas of
//! the bodies this crate sends ([`Envelope`], [`Problem`], [`FieldError`])
//! and every error status the stack answers with, added to each operation
//! of a document so that handler authors declare only their own.
//!
//! ```
//! use pattern_api::stack::ApiStack;
//! use utoipa::OpenApi;
//!
//! #[derive(OpenApi)]
//! #[openapi(info(title = "inventory", version = "1"), paths(list))]
//! struct Api;
//!
//! /// Lists items.
//! #[utoipa::path(get, path = "/items", responses((status = 200, description = "The items")))]
//! async fn list() {}
//!
//! let stack = ApiStack::new();
//! let mut document = Api::openapi();
//! stack.document(&mut document);
//! let get = document.paths.paths["/items"].get.as_ref().unwrap();
//! // The stack's own answers: overloaded, timed out, panicked.
//! for status in ["503", "504", "500"] {
//!     assert!(get.responses.responses.contains_key(status), "{status}");
//! }
//! ```
//!
//! [`Envelope`]: crate::response::Envelope

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder,
    schema::{ObjectBuilder, Type},
};
use utoipa::{PartialSchema, ToSchema};

use crate::FieldError;
use crate::problem::{CONTENT_TYPE, Problem};
use crate::stack::ApiStack;

/// Which statuses an operation may answer with, from what it takes.
struct Inputs {
    body: bool,
    params: bool,
}

impl ApiStack {
    /// Adds to `openapi` the schemas of problems and the error answers this
    /// stack gives, on every operation that does not declare them itself:
    ///
    /// | status | on | when |
    /// | --- | --- | --- |
    /// | 400 | operations with parameters or a body | a malformed path, query or body |
    /// | 408 | operations with a body, with a timeout | the body did not arrive in time |
    /// | 413 | operations with a body | the body is over the limit (the stack's, or axum's 2 MB default) |
    /// | 415 | operations with a body | the body is not JSON |
    /// | 422 | operations with parameters or a body | invalid fields, each in `errors` |
    /// | 429 | every operation, with a rate limit | over the client's rate (`Retry-After`) |
    /// | 503 | every operation | shed at capacity or a dependency down (`Retry-After`) |
    /// | 503 or 504 | every operation, with a timeout | past the request's deadline |
    /// | 500 | every operation | a fault (a panic) |
    ///
    /// Every error answer an operation declares without a body (or as
    /// problem+json without a schema) gets the [`Problem`] schema, as the
    /// stack rewrites them all to problem+json; a declared 429 or 503 gets
    /// `Retry-After`. A stack without problem+json
    /// ([`ApiStack::problem_json`]) adds the statuses bare.
    pub fn document(&self, openapi: &mut OpenApi) {
        add_schemas(openapi);
        for item in openapi.paths.paths.values_mut() {
            let shared_params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                let inputs = Inputs {
                    body: operation.request_body.is_some(),
                    params: shared_params
                        || operation.parameters.as_ref().is_some_and(|p| !p.is_empty()),
                };
                self.document_operation(operation, &inputs);
            }
        }
    }

    fn document_operation(&self, operation: &mut Operation, inputs: &Inputs) {
        let problems = self.problem_json;
        let responses = &mut operation.responses.responses;
        let mut add = |status: u16, description: &str| {
            responses
                .entry(status.to_string())
                .or_insert_with(|| error_response(description, problems).into());
        };
        if inputs.body || inputs.params {
            add(400, "Malformed: a path, query or body that does not parse.");
            add(422, "Invalid input: each invalid field in `errors`.");
        }
        if inputs.body {
            if self.timeout.is_some() {
                add(
                    408,
                    "The request's body did not arrive within the request timeout.",
                );
            }
            // The stack's limit, or else the extractors' own default.
            add(413, "The body is over the size limit.");
            add(415, "The body is not JSON (`Content-Type`).");
        }
        if self.rate_limit.is_some() {
            add(
                429,
                "Over the client's rate; try again after `Retry-After` seconds.",
            );
        }
        add(
            503,
            "Overloaded, or a dependency is unavailable; try again after `Retry-After` seconds.",
        );
        if let Some(timeout) = &self.timeout {
            add(
                timeout.status().as_u16(),
                "Not answered within the request's deadline.",
            );
        }
        add(
            500,
            "A fault in the service; `request_id` finds it in the logs.",
        );
        for (status, response) in responses.iter_mut() {
            let RefOr::T(response) = response else {
                continue;
            };
            // The stack's 429 and 503 always say when to try again (a
            // timeout's 503 among them).
            if status == "429" || status == "503" {
                response
                    .headers
                    .entry("Retry-After".to_owned())
                    .or_insert_with(retry_after);
            }
            // Declared error answers without a body carry a problem.
            if problems && status.starts_with(['4', '5']) {
                if response.content.is_empty() {
                    response
                        .content
                        .insert(CONTENT_TYPE.to_owned(), ContentBuilder::new().build());
                }
                if let Some(content) = response.content.get_mut(CONTENT_TYPE)
                    && content.schema.is_none()
                {
                    content.schema = Some(Ref::from_schema_name(Problem::name()).into());
                }
            }
        }
    }
}

/// The schemas of [`Problem`] and [`FieldError`], as components.
fn add_schemas(openapi: &mut OpenApi) {
    let mut schemas = Vec::new();
    <Problem as ToSchema>::schemas(&mut schemas);
    schemas.push((Problem::name().into_owned(), Problem::schema()));
    schemas.push((FieldError::name().into_owned(), FieldError::schema()));
    let components = openapi
        .components
        .get_or_insert_with(|| ComponentsBuilder::new().build());
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
}

/// An error answer: a problem (when the stack answers with problems);
/// its `Retry-After` is added with the others.
fn error_response(description: &str, problems: bool) -> Response {
    let mut response = ResponseBuilder::new().description(description);
    if problems {
        response = response.content(
            CONTENT_TYPE,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Problem::name())))
                .build(),
        );
    }
    response.build()
}

/// The `Retry-After` header of a 429 or 503.
fn retry_after() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .description(Some("Seconds to wait before trying again."))
        .build()
}
