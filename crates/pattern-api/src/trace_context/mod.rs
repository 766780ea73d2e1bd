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
//!   inside are its children, events logged outside them its events, and
//!   `opentelemetry::Context::current()` reaches it (to add attributes);
//! - its trace id is in every problem body, beside the request id
//!   ([`Problem::trace_id`](crate::problem::Problem::trace_id)), and in
//!   the access event.
//!
//! An outgoing call carries its context: [`ClientTraceLayer`] gives each
//! call a client span and writes it into the call's headers (under a
//! retry layer, one span per attempt, all under the caller's), or
//! [`inject`] writes the current context. Without the feature, none of
//! this is compiled.

mod client;
mod server;

pub use client::{ClientTrace, ClientTraceLayer, ResponseFuture};
pub use server::ServerSpans;
pub(crate) use server::{ServerSpan, as_str, hex};

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Reads propagation headers.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
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
        propagator.extract(&HeaderExtractor(headers))
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
        let context = w3c.extract(&HeaderExtractor(&headers));
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
        assert_eq!(HeaderExtractor(&out).keys(), ["traceparent", "tracestate"]);
    }

    #[test]
    fn no_trace_without_a_subscriber() {
        assert_eq!(current_trace_id(), None);
        let mut headers = HeaderMap::new();
        inject(&mut headers);
        assert!(headers.is_empty());
    }
}
