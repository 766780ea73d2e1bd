//! W3C trace context across the process boundary (feature
//! `opentelemetry`).
//!
//! With the feature on and [`ServerSpans`] in the subscriber
//! (`pattern-server`'s `telemetry` puts it there), every request through
//! [`TraceLayer`](crate::middleware::TraceLayer) or
//! [`ApiStack`](crate::stack::ApiStack) gets an OpenTelemetry server span,
//! made with the SDK's tracer before anything else:
//!
//! - it continues the trace a caller sent: its `traceparent` and
//!   `tracestate` headers are read with the global propagator, and the
//!   span is a child of the caller's;
//! - the sampler decides first: an unsampled request keeps only the
//!   span's context (its ids, for the calls it makes and the logs it
//!   writes), no span is recorded and no tracing span is made for it;
//! - a sampled one is named and described after OpenTelemetry's HTTP
//!   server conventions when it ends: name `GET /v1/items/{id}` (method
//!   and route template; `HTTP` for a method the conventions do not know,
//!   whose attribute is `_OTHER`), kind server, `http.request.method`,
//!   `http.route`, `url.path`, `url.query`, `server.address`,
//!   `server.port`, `http.response.status_code`, with `error.type` and an
//!   error status for a 5xx; a request dropped before its answer (its
//!   client left) ends as an error of type `cancelled`;
//! - its context is current while the request is served: spans made
//!   inside are its children, events logged outside them its events (an
//!   ERROR event marks it an error), and
//!   `opentelemetry::Context::current().span()` reaches it (to add
//!   attributes). A task spawned while serving takes the trace along with
//!   OpenTelemetry's `FutureExt::with_current_context`; the log's request
//!   span, which `in_current_span` takes along, is not the server span;
//! - its trace id is in every problem body, beside the request id
//!   ([`Problem::trace_id`](crate::problem::Problem::trace_id)), and in
//!   the access event.
//!
//! An outgoing call carries its context: [`ClientTraceLayer`] gives each
//! call a client span and writes it into the call's headers (under a
//! retry layer, one span per attempt, all under the caller's), or
//! [`inject`] writes the current context. Without [`ServerSpans`] in the
//! subscriber no server span is made (the log's request span is never
//! one); without the feature, none of this is compiled.

mod client;
mod server;

pub use client::{ClientTrace, ClientTraceLayer, ResponseFuture};
pub use server::ServerSpans;
pub(crate) use server::{Hex, ServerSpan, as_str, hex};

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Reads propagation headers as W3C trace context says: a `traceparent`
/// sent more than once is no parent at all (which one would be the
/// caller's?), and the values of a `tracestate` sent more than once are
/// one list, in order.
struct HeaderExtractor<'a> {
    headers: &'a HeaderMap,
    /// The `tracestate` values joined, when there is more than one.
    tracestate: Option<String>,
}

impl<'a> HeaderExtractor<'a> {
    fn new(headers: &'a HeaderMap) -> Self {
        let tracestate = headers.get_all("tracestate").iter().nth(1).map(|_| {
            // A value that is not text spoils the list: none is kept.
            headers
                .get_all("tracestate")
                .iter()
                .map(http::HeaderValue::to_str)
                .collect::<Result<Vec<_>, _>>()
                .map(|values| values.join(","))
                .unwrap_or_default()
        });
        Self {
            headers,
            tracestate,
        }
    }
}

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key.eq_ignore_ascii_case("tracestate")
            && let Some(joined) = &self.tracestate
        {
            return Some(joined);
        }
        let mut values = self.headers.get_all(key).iter();
        let value = values.next()?;
        if values.next().is_some() && key.eq_ignore_ascii_case("traceparent") {
            return None;
        }
        value.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        self.headers.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes propagation headers.
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = http::HeaderName::from_bytes(key.as_bytes());
        let value = http::HeaderValue::from_str(&value);
        if let (Ok(name), Ok(value)) = (name, value) {
            self.0.insert(name, value);
        }
    }
}

/// The caller's context in `headers` (`traceparent`, `tracestate` with the
/// W3C propagator), as the global propagator reads it; empty without one.
pub fn extract(headers: &HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor::new(headers))
    })
}

/// Writes the current context into `headers` (`traceparent` and
/// `tracestate` with the W3C propagator), for an outgoing request: the
/// current span's, or, outside any exported span, the request's server
/// span's ([`ServerSpans`]); nothing outside a trace.
pub fn inject(headers: &mut HeaderMap) {
    let context = current_context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// The current trace id (32 hex digits), if there is a trace: the
/// current span's, or the request's server span's.
pub fn current_trace_id() -> Option<String> {
    let context = current_context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The current span's OpenTelemetry context if it has one, else the
/// current context (a server span's, while a request is served).
fn current_context() -> opentelemetry::Context {
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        context
    } else {
        opentelemetry::Context::current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    #[test]
    fn headers_round_trip_through_a_propagator() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let w3c = TraceContextPropagator::new();
        let context = w3c.extract(&HeaderExtractor::new(&headers));
        let span = context.span();
        assert_eq!(
            span.span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut out = HeaderMap::new();
        w3c.inject_context(&context, &mut HeaderInjector(&mut out));
        assert_eq!(out["traceparent"], headers["traceparent"]);
        // A value a header cannot hold is left out, not a panic.
        HeaderInjector(&mut out).set("traceparent", "bad\nvalue".to_owned());
        assert_eq!(out["traceparent"], headers["traceparent"]);
        assert_eq!(
            HeaderExtractor::new(&out).keys(),
            ["traceparent", "tracestate"]
        );
    }

    #[test]
    fn repeated_headers_as_w3c_trace_context_says() {
        let w3c = TraceContextPropagator::new();
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = HeaderMap::new();
        headers.append("traceparent", parent.parse().unwrap());
        headers.append("tracestate", "a=1,b=2".parse().unwrap());
        headers.append("tracestate", "c=3".parse().unwrap());
        let context = w3c.extract(&HeaderExtractor::new(&headers));
        let span = context.span();
        assert!(span.span_context().is_valid());
        assert_eq!(span.span_context().trace_state().header(), "a=1,b=2,c=3");
        // Two parents: none is the caller's.
        headers.append(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let context = w3c.extract(&HeaderExtractor::new(&headers));
        assert!(!context.span().span_context().is_valid());
        // A list value that is not text: no list, the parent stands.
        let mut headers = HeaderMap::new();
        headers.append("traceparent", parent.parse().unwrap());
        headers.append("tracestate", "a=1".parse().unwrap());
        headers.append(
            "tracestate",
            http::HeaderValue::from_bytes(b"b=\xff").unwrap(),
        );
        let context = w3c.extract(&HeaderExtractor::new(&headers));
        let span = context.span();
        assert!(span.span_context().is_valid());
        assert_eq!(span.span_context().trace_state().header(), "");
    }

    #[test]
    fn no_trace_without_a_subscriber() {
        assert_eq!(current_trace_id(), None);
        let mut headers = HeaderMap::new();
        inject(&mut headers);
        assert!(headers.is_empty());
    }
}
