//! A request's server span, made with the OpenTelemetry SDK's tracer
//! itself: the sampling decision comes first, so an unsampled request
//! costs an id and a context, not a tracing span.

use std::fmt;

use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, TraceId, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context as LayerContext;

/// The subscriber layer that makes the server spans of
/// [`TraceLayer`](crate::middleware::TraceLayer) and
/// [`ApiStack`](crate::stack::ApiStack): with it in the subscriber, each
/// request gets an OpenTelemetry span of kind server, made with `tracer`
/// (its sampler decides before anything else is spent on the request),
/// a child of the caller's `traceparent` or, without one, of the current
/// context. Its context is current while the request is served: spans
/// made inside it are its children, [`inject`](super::inject) writes it
/// into outgoing calls, and events logged outside any exported span
/// become its events when it is sampled.
///
/// `pattern-server`'s `telemetry` adds it; a subscriber of one's own adds
/// it beside `tracing-opentelemetry`'s layer, whose filter should leave
/// out [`REQUEST_TARGET`](crate::middleware::REQUEST_TARGET) (the log's
/// request span) and [`ACCESS_TARGET`](crate::middleware::ACCESS_TARGET)
/// (the access log).
#[derive(Clone, Debug)]
pub struct ServerSpans {
    tracer: opentelemetry_sdk::trace::Tracer,
}

impl ServerSpans {
    /// Server spans made with `tracer`.
    pub fn new(tracer: opentelemetry_sdk::trace::Tracer) -> Self {
        Self { tracer }
    }
}

impl<S> tracing_subscriber::Layer<S> for ServerSpans
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    /// An event no exported span holds is an event of the current server
    /// span, if it is sampled; an ERROR event marks the span an error, as
    /// in an exported span.
    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        if ctx.event_span(event).is_some() || RECORDING.get() {
            return; // the exported span it is in has it; or an event of the SDK's own
        }
        let _recording = Recording::start();
        Context::map_current(|cx| {
            let span = cx.span();
            if !span.is_recording() {
                return;
            }
            let meta = event.metadata();
            let mut fields = EventFields {
                name: None,
                attributes: vec![
                    KeyValue::new("level", meta.level().as_str()),
                    KeyValue::new("target", meta.target()),
                ],
            };
            event.record(&mut fields);
            let name = fields.name.unwrap_or_else(|| meta.name().to_owned());
            span.add_event(name, fields.attributes);
            if *meta.level() == tracing::Level::ERROR {
                span.set_status(Status::error(""));
            }
        });
    }
}

/// Set while an event is added to a span, until dropped (a field's
/// `Debug` that panics leaves it unset).
struct Recording;

impl Recording {
    fn start() -> Self {
        RECORDING.set(true);
        Self
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        RECORDING.set(false);
    }
}

thread_local! {
    /// Set while an event is added to a span: an event logged meanwhile
    /// (by the SDK, holding the span's lock) is not added.
    static RECORDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// An event's message (its name) and other fields (its attributes).
struct EventFields {
    name: Option<String>,
    attributes: Vec<KeyValue>,
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.name = Some(value.to_owned());
        } else {
            self.attributes
                .push(KeyValue::new(field.name(), value.to_owned()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(value) => self.attributes.push(KeyValue::new(field.name(), value)),
            Err(_) => self.record_debug(field, &value),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.name = Some(text);
        } else {
            self.attributes.push(KeyValue::new(field.name(), text));
        }
    }
}

/// The W3C header a caller's context comes in: a name made once (looked
/// up by text, a name is parsed and hashed per request).
const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// A request's server span: its context (current while the request is
/// served), and, when sampled, the span itself and what its attributes
/// are made of. Dropped without an answer (the client left, or the
/// service failed), it ends as an error of type `cancelled`.
#[derive(Debug)]
pub(crate) struct ServerSpan {
    context: Context,
    recorded: Option<Described>,
}

/// What a recorded server span is named and described with at its end.
#[derive(Debug)]
struct Described {
    method: http::Method,
    uri: http::Uri,
    route: Option<axum::extract::MatchedPath>,
    host: Option<http::HeaderValue>,
}

impl ServerSpan {
    /// The server span of `req`, when the current subscriber has
    /// [`ServerSpans`].
    pub(crate) fn begin<B>(req: &http::Request<B>) -> Option<Self> {
        tracing::dispatcher::get_default(|dispatch| {
            let spans = dispatch.downcast_ref::<ServerSpans>()?;
            let headers = req.headers();
            let remote = headers
                .contains_key(&TRACEPARENT)
                .then(|| super::extract(headers))
                .filter(|cx| cx.span().span_context().is_valid());
            let parent = remote.unwrap_or_else(Context::current);
            // Named by the method alone until the end: the route makes
            // the name only of a sampled span (a name costs an allocation).
            let builder = spans
                .tracer
                .span_builder(SpanName(req.method(), None).method())
                .with_kind(SpanKind::Server);
            let span = spans.tracer.build_with_context(builder, &parent);
            if !span.is_recording() {
                // Not recorded: its context alone is kept, for the spans
                // and calls made while serving the request.
                let context = parent.with_remote_span_context(span.span_context().clone());
                return Some(Self {
                    context,
                    recorded: None,
                });
            }
            Some(Self {
                context: parent.with_span(span),
                recorded: Some(Described {
                    method: req.method().clone(),
                    uri: req.uri().clone(),
                    route: req.extensions().get().cloned(),
                    host: headers.get(http::header::HOST).cloned(),
                }),
            })
        })
    }

    /// The span's context (current while the request is served).
    pub(crate) fn context(&self) -> &Context {
        &self.context
    }

    /// Ends the span with `status`: named, described and ended if it is
    /// recorded, a 5xx marked an error (its status as `error.type`). Its
    /// trace id, if it has one (not after the export's shutdown).
    pub(crate) fn finish(mut self, status: http::StatusCode) -> Option<TraceId> {
        self.end(Some(status))
    }

    fn end(&mut self, status: Option<http::StatusCode>) -> Option<TraceId> {
        let span = self.context.span();
        let span_context = span.span_context();
        let trace_id = span_context.is_valid().then(|| span_context.trace_id());
        let Some(described) = self.recorded.take() else {
            return trace_id;
        };
        let route = described
            .route
            .as_ref()
            .map(axum::extract::MatchedPath::as_str);
        span.update_name(SpanName(&described.method, route).to_string());
        let method = method_name(&described.method);
        let mut attributes = Vec::with_capacity(9);
        attributes.push(KeyValue::new("http.request.method", method));
        if method == "_OTHER" {
            attributes.push(KeyValue::new(
                "http.request.method_original",
                described.method.as_str().to_owned(),
            ));
        }
        if let Some(route) = route {
            attributes.push(KeyValue::new("http.route", route.to_owned()));
        }
        attributes.push(KeyValue::new("url.path", described.uri.path().to_owned()));
        if let Some(query) = described.uri.query() {
            attributes.push(KeyValue::new("url.query", query.to_owned()));
        }
        let host = described.host.as_ref().and_then(|h| h.to_str().ok());
        let (address, port) = server_address(host, &described.uri);
        if let Some(address) = address {
            attributes.push(KeyValue::new("server.address", address.to_owned()));
        }
        if let Some(port) = port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        match status {
            Some(status) => {
                attributes.push(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
                if status.is_server_error() {
                    attributes.push(KeyValue::new("error.type", status.as_str().to_owned()));
                    span.set_status(Status::error(""));
                }
            }
            None => {
                attributes.push(KeyValue::new("error.type", "cancelled"));
                span.set_status(Status::error(""));
            }
        }
        span.set_attributes(attributes);
        span.end();
        trace_id
    }
}

impl Drop for ServerSpan {
    fn drop(&mut self) {
        if self.recorded.is_some() {
            let _ = self.end(None);
        }
    }
}

/// The method as the conventions name it: one of the nine known ones, or
/// `_OTHER` (a client's own method names are unbounded).
pub(crate) fn method_name(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// `GET /v1/items/{id}`: the method and the route template (the method
/// alone for a request no route matched; `HTTP` for a method the
/// conventions do not know).
pub(crate) struct SpanName<'a>(pub(crate) &'a http::Method, pub(crate) Option<&'a str>);

impl SpanName<'_> {
    /// The method part: `HTTP` for a method the conventions do not know.
    fn method(&self) -> &'static str {
        match method_name(self.0) {
            "_OTHER" => "HTTP",
            known => known,
        }
    }
}

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = self.method();
        match self.1 {
            Some(route) => write!(f, "{method} {route}"),
            None => f.write_str(method),
        }
    }
}

/// The host the client addressed (`host`, the `Host` header, or the URI's
/// authority) and its port, if it names one.
pub(crate) fn server_address<'a>(
    host: Option<&'a str>,
    uri: &'a http::Uri,
) -> (Option<&'a str>, Option<u16>) {
    let host = host.or_else(|| uri.host()).unwrap_or("");
    let (name, port) = match host.rsplit_once(':') {
        // An IPv6 literal keeps its brackets' inside whole.
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') => {
            (name, port.parse().ok())
        }
        _ => (host, None),
    };
    ((!name.is_empty()).then_some(name), port)
}

/// A trace id's 32 lowercase hex digits, aligned to a word (the UTF-8
/// check [`as_str`] makes then reads them a word at a time).
#[repr(C, align(8))]
pub(crate) struct Hex([u8; 32]);

impl std::fmt::Debug for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(as_str(self))
    }
}

/// A trace id's digits, without `core::fmt`.
pub(crate) fn hex(id: TraceId) -> Hex {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, byte) in id.to_bytes().iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(byte >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
    }
    Hex(out)
}

/// The digits [`hex`] wrote, as text.
pub(crate) fn as_str(hex: &Hex) -> &str {
    // Only ASCII digits and letters were written.
    std::str::from_utf8(&hex.0).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use opentelemetry::trace::{Link, TraceState, TracerProvider as _};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{
        Sampler, SamplingDecision, SamplingResult, SdkTracerProvider, ShouldSample, SpanData,
        SpanProcessor,
    };
    use tracing_subscriber::layer::SubscriberExt as _;

    /// The spans that end, kept.
    #[derive(Clone, Debug, Default)]
    struct Ended(Arc<Mutex<Vec<SpanData>>>);

    impl SpanProcessor for Ended {
        fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

        fn on_end(&self, span: SpanData) {
            self.0.lock().unwrap().push(span);
        }

        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }

        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    /// Records every span without sampling it.
    #[derive(Clone, Debug)]
    struct RecordOnly;

    impl ShouldSample for RecordOnly {
        fn should_sample(
            &self,
            _: Option<&Context>,
            _: TraceId,
            _: &str,
            _: &SpanKind,
            _: &[KeyValue],
            _: &[Link],
        ) -> SamplingResult {
            SamplingResult {
                decision: SamplingDecision::RecordOnly,
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            }
        }
    }

    /// Serves `req` as far as its server span goes (made, then finished
    /// with `status`) under a subscriber with a provider of `sampler`: the
    /// trace id the access log would name, and the spans that ended.
    fn serve(
        sampler: impl ShouldSample + 'static,
        shut_down: bool,
        req: &http::Request<()>,
        status: Option<http::StatusCode>,
    ) -> (Option<TraceId>, Vec<SpanData>) {
        let ended = Ended::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_span_processor(ended.clone())
            .build();
        let tracer = provider.tracer("test");
        if shut_down {
            provider.shutdown().unwrap();
        }
        let subscriber = tracing_subscriber::registry().with(ServerSpans::new(tracer));
        let trace_id = tracing::subscriber::with_default(subscriber, || {
            let span = ServerSpan::begin(req).expect("ServerSpans is in the subscriber");
            match status {
                Some(status) => span.finish(status),
                None => {
                    drop(span);
                    None
                }
            }
        });
        let spans = ended.0.lock().unwrap().clone();
        (trace_id, spans)
    }

    fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a opentelemetry::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    #[test]
    fn a_recorded_span_is_described_and_an_unrecorded_one_keeps_its_ids() {
        let req = http::Request::builder()
            .uri("/v1/items?page=2")
            .header("host", "api.example:8080")
            .body(())
            .unwrap();
        let (id, spans) = serve(
            Sampler::AlwaysOn,
            false,
            &req,
            Some(http::StatusCode::BAD_GATEWAY),
        );
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(Some(span.span_context.trace_id()), id);
        assert_eq!(span.name, "GET");
        assert_eq!(span.span_kind, SpanKind::Server);
        assert_eq!(attribute(span, "url.path").unwrap().as_str(), "/v1/items");
        assert_eq!(attribute(span, "url.query").unwrap().as_str(), "page=2");
        assert_eq!(attribute(span, "server.port"), Some(&8080_i64.into()));
        assert_eq!(attribute(span, "error.type").unwrap().as_str(), "502");
        assert!(matches!(span.status, Status::Error { .. }));

        // Recorded but not sampled (a sampler's RecordOnly): described and
        // ended all the same, for the processors that want it.
        let (id, spans) = serve(RecordOnly, false, &req, Some(http::StatusCode::OK));
        assert_eq!(spans.len(), 1);
        assert!(!spans[0].span_context.is_sampled());
        assert_eq!(
            attribute(&spans[0], "http.response.status_code"),
            Some(&200_i64.into())
        );
        assert!(id.is_some());

        // Not recorded: nothing ends, the ids stay for the logs and calls.
        let (id, spans) = serve(Sampler::AlwaysOff, false, &req, Some(http::StatusCode::OK));
        assert!(spans.is_empty());
        assert!(id.is_some_and(|id| id != TraceId::INVALID));

        // Dropped before its answer: cancelled.
        let (_, spans) = serve(Sampler::AlwaysOn, false, &req, None);
        assert_eq!(
            attribute(&spans[0], "error.type").unwrap().as_str(),
            "cancelled"
        );
        assert_eq!(attribute(&spans[0], "http.response.status_code"), None);

        // After the export's shutdown: no trace, so no id (not zeros).
        let (id, spans) = serve(Sampler::AlwaysOn, true, &req, Some(http::StatusCode::OK));
        assert_eq!(id, None);
        assert!(spans.is_empty());
    }

    #[test]
    fn no_server_span_without_the_layer() {
        let req = http::Request::new(());
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            assert!(ServerSpan::begin(&req).is_none());
        });
        assert!(ServerSpan::begin(&req).is_none());
    }

    #[test]
    fn names_and_addresses() {
        let get = http::Method::GET;
        assert_eq!(
            SpanName(&get, Some("/v1/items/{id}")).to_string(),
            "GET /v1/items/{id}"
        );
        assert_eq!(SpanName(&get, None).to_string(), "GET");
        let path: http::Uri = "/x".parse().unwrap();
        assert_eq!(
            server_address(Some("api.example:8080"), &path),
            (Some("api.example"), Some(8080))
        );
        assert_eq!(
            server_address(Some("api.example"), &path),
            (Some("api.example"), None)
        );
        assert_eq!(
            server_address(Some("[::1]:8080"), &path),
            (Some("[::1]"), Some(8080))
        );
        assert_eq!(server_address(Some("[::1]"), &path), (Some("[::1]"), None));
        let full: http::Uri = "http://h.example:81/x".parse().unwrap();
        assert_eq!(server_address(None, &full), (Some("h.example"), None));
        assert_eq!(server_address(None, &path), (None, None));
        // A method of a client's own: one name for all of them.
        let own = http::Method::from_bytes(b"FROB").unwrap();
        assert_eq!(method_name(&own), "_OTHER");
        assert_eq!(SpanName(&own, Some("/x")).to_string(), "HTTP /x");
        assert_eq!(method_name(&http::Method::PATCH), "PATCH");
        for text in [
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00000000000000000000000000000001",
        ] {
            let id = TraceId::from_hex(text).unwrap();
            assert_eq!(as_str(&hex(id)), text);
            assert_eq!(as_str(&hex(id)), id.to_string());
        }
    }
}
