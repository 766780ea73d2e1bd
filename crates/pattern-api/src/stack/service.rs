//! The chain as one tower layer and one service.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Request};
use pattern_error::bulkhead::BulkheadPermit;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::chain::Chain;
use super::future::{Core, ResponseFuture, Stage, Timer};
use crate::ApiError;
use crate::client_addr;
use crate::context::{CURRENT, RequestContext};
use crate::middleware::shed::wait_for_slot;
use crate::middleware::{BodyWatch, Deadline, Finished, TIMEOUT_HEADER_NAME};
use crate::request_id::{self, RequestId};

/// The limit axum's body extractors apply when none is set.
const AXUM_DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The whole chain of [`ApiStack`](super::ApiStack) as one tower layer
/// (body limit included), for `Router::layer`; made by
/// [`ApiStack::layer`](super::ApiStack::layer).
///
/// Its pieces run in one service with one response future: a request
/// costs one clone of a shared pointer, one clock read shared by the
/// metrics and the deadline, and no nesting of a future per piece.
#[derive(Clone, Debug)]
pub struct StackLayer {
    pub(crate) chain: Arc<Chain>,
}

impl<S> Layer<S> for StackLayer {
    type Service = Stack<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Stack {
            inner,
            chain: self.chain.clone(),
        }
    }
}

/// The service of [`StackLayer`].
#[derive(Clone, Debug)]
pub struct Stack<S> {
    inner: S,
    chain: Arc<Chain>,
}

impl<S> Service<Request<Body>> for Stack<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let chain = self.chain.clone();
        client_addr::resolve(&chain.proxies, &mut req);
        // The id lives in the task-local only (no extension: the map would
        // grow); the `RequestId` extractor finds it there.
        let (sent_id, sent_timeout) = sent_headers(req.headers());
        let (id, echo) = if chain.request_id {
            let (id, echo) = request_id::identify_from(sent_id);
            (Some(id), echo)
        } else {
            (None, None)
        };
        let budget = chain
            .timeout
            .as_ref()
            .map(|timeout| timeout.budget_from(sent_timeout));
        // One clock read: the metrics' start is the deadline's and the
        // access log's.
        let now = (chain.metrics.is_some() || chain.timeout.is_some()).then(Instant::now);
        let trace = chain
            .trace
            .then(|| Finished::begin(&req, id.as_ref(), chain.access_log, chain.span_level, now));
        let record = chain
            .metrics
            .as_ref()
            .zip(now)
            .map(|(metrics, now)| metrics.begin(&req, now));
        let timer = budget.zip(now).map(|(budget, now)| Timer {
            deadline: now + budget,
            budget,
            body: BodyWatch::watch(&mut req),
            sleep: None,
        });
        let deadline = timer.as_ref().map(|timer| timer.deadline);
        // The id and the deadline go with the task, not in the request's
        // extensions (a fourth entry makes the map grow: an allocation and
        // a rehash per request); their extractors find them there.
        // What this stack does not set, a layer further out may have: it
        // stays current.
        let context = (id.is_some() || deadline.is_some()).then(|| RequestContext {
            id: id.or_else(RequestId::current),
            deadline: deadline.map(Deadline).or_else(Deadline::current),
        });
        // Admission runs in the span and the context: a refusal made now,
        // the stack's or a layer's inside, carries the id.
        let (stage, permit) = {
            let _entered = trace.as_ref().map(Finished::enter);
            let inner = &mut self.inner;
            let admit = || guarded(&chain, || admit(&chain, inner, deadline, req));
            match &context {
                Some(context) => CURRENT.sync_scope(context.clone(), admit),
                None => admit(),
            }
        };
        let core = Core {
            stage,
            chain,
            timer,
            trace,
            record,
            permit,
        };
        ResponseFuture::new(context, core, echo)
    }
}

/// The request's id and timeout headers (the first value of each), found
/// in one pass over a short header list: a lookup by a name that is no
/// standard header hashes the name, and there were two per request.
fn sent_headers(headers: &HeaderMap) -> (Option<&HeaderValue>, Option<&HeaderValue>) {
    /// Beyond this many header values, two lookups cost less than a pass.
    const SCAN_UP_TO: usize = 16;
    if headers.len() > SCAN_UP_TO {
        return (
            headers.get(&request_id::HEADER_NAME),
            headers.get(&TIMEOUT_HEADER_NAME),
        );
    }
    let (mut id, mut timeout) = (None, None);
    for (name, value) in headers {
        if *name == request_id::HEADER_NAME {
            id = id.or(Some(value));
        } else if *name == TIMEOUT_HEADER_NAME {
            timeout = timeout.or(Some(value));
        }
    }
    (id, timeout)
}

/// Body limit, rate limit, load shedding, then the inner service (under
/// panic catching): the stage the future starts in, and the slot it holds.
fn admit<S>(
    chain: &Arc<Chain>,
    inner: &mut S,
    deadline: Option<Instant>,
    mut req: Request<Body>,
) -> (Stage<S::Future, S::Error>, Option<BulkheadPermit>)
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    if let Some(limit) = chain.body_limit {
        limit_body(limit, &mut req);
    }
    if !chain.exempt.is_empty() && chain.exempt.iter().any(|path| req.uri().path() == path) {
        return (Stage::running(inner.call(req)), None);
    }
    // The rate limit first: an over-limit client gets its own 429 without
    // taking a slot or a queue place (after the concurrency gate, under
    // load everyone got 503 instead).
    if let Some(limited) = chain
        .rate_limit
        .as_ref()
        .and_then(|rate| rate.limited(&req))
    {
        return (Stage::ready(ApiError::from(limited).into_response()), None);
    }
    let permit = match &chain.shed {
        None => None,
        Some(bulkhead) => match bulkhead.try_acquire_or_queue() {
            Ok(Some(permit)) => Some(permit),
            Err(overloaded) => {
                return (
                    Stage::ready(ApiError::from(overloaded).into_response()),
                    None,
                );
            }
            Ok(None) => {
                let waiting = wait_for_slot(bulkhead, inner, deadline, req);
                return (Stage::queued(waiting), None);
            }
        },
    };
    (Stage::running(inner.call(req)), permit)
}

/// Sets `limit` as the limit axum's body extractors enforce (413), as
/// `DefaultBodyLimit` does, so a route's own `DefaultBodyLimit` still wins;
/// a body of known size within both this limit and axum's default needs
/// none (no extension, one allocation less).
fn limit_body(limit: usize, req: &mut Request<Body>) {
    let within = limit.min(AXUM_DEFAULT_BODY_LIMIT) as u64;
    if req
        .body()
        .size_hint()
        .exact()
        .is_none_or(|exact| exact > within)
    {
        DefaultBodyLimit::max(limit).apply(req);
    }
}

/// Runs the admission, catching a panic in it (a rate-limit key function,
/// the inner service's `call`) when the chain catches panics; a slot taken
/// before the panic is given back as it unwinds.
fn guarded<F, E>(
    chain: &Chain,
    admit: impl FnOnce() -> (Stage<F, E>, Option<BulkheadPermit>),
) -> (Stage<F, E>, Option<BulkheadPermit>) {
    if !chain.catch_panic {
        return admit();
    }
    std::panic::catch_unwind(AssertUnwindSafe(admit))
        .unwrap_or_else(|payload| (Stage::ready(crate::middleware::panic_answer(payload)), None))
}
