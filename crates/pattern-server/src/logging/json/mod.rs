//! JSON lines written straight from events: no intermediate map, span
//! fields rendered once when the span is made, a cached timestamp prefix,
//! one buffer per thread (a busy service logs a line per request).

mod callsite;
mod write;

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::SystemTime;

use pattern_api::middleware::{ACCESS_TARGET, AccessRecord};
use pattern_api::request_id::RequestId;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use self::callsite::{Callsites, Rendered, push_name};
use self::write::{
    Escaped, escape, write_f64, write_i64, write_millis, write_str, write_timestamp, write_u64,
};

/// Writes each event as one JSON object per line: `timestamp`, `level`,
/// `target`, the event's fields in order (`message` among them), and
/// `span` with the fields of the innermost span it happened in (its `name`
/// first), and, while serving a request whose span that is not, the
/// request's `request_id`. Access events carry the request's fields
/// themselves and have no `span`. With the trace export, events in a
/// trace (an exported span, or a request's server span) carry its
/// `trace_id`.
pub(super) struct JsonLayer<W> {
    writer: W,
    /// The subscriber this layer is part of, to read the trace a span
    /// belongs to (the current dispatcher, inside a scoped one, may not
    /// be it).
    #[cfg(feature = "opentelemetry")]
    dispatch: std::sync::OnceLock<tracing::dispatcher::WeakDispatch>,
}

impl<W> JsonLayer<W> {
    pub(super) fn new(writer: W) -> Self {
        Self {
            writer,
            #[cfg(feature = "opentelemetry")]
            dispatch: std::sync::OnceLock::new(),
        }
    }
}

/// A span's fields, rendered as JSON object members (`"name":"request",…`),
/// and where each member after the name starts (to replace it when the
/// field is recorded again).
struct SpanFields {
    text: String,
    starts: Vec<(&'static str, usize)>,
}

impl SpanFields {
    /// Records `values` over the fields already there: a field recorded
    /// again replaces its member, a new one is appended.
    fn record(&mut self, values: &Record<'_>) {
        let mut fresh = String::new();
        let mut starts = Vec::new();
        values.record(&mut Fields::tracking(&mut fresh, &mut starts));
        for (k, &(name, from)) in starts.iter().enumerate() {
            let to = starts.get(k + 1).map_or(fresh.len(), |next| next.1);
            if let Some(at) = self.starts.iter().position(|(known, _)| *known == name) {
                let start = self.starts[at].1;
                let end = self
                    .starts
                    .get(at + 1)
                    .map_or(self.text.len(), |next| next.1);
                self.text.replace_range(start..end, "");
                self.starts.remove(at);
                for later in &mut self.starts[at..] {
                    later.1 -= end - start;
                }
            }
            self.starts.push((name, self.text.len()));
            self.text.push_str(&fresh[from..to]);
        }
    }
}

/// A thread's line being written, the last second's timestamp prefix, and
/// the call sites it rendered.
struct Line {
    text: String,
    clock: Option<(u64, String)>,
    callsites: Callsites,
}

thread_local! {
    static LINE: RefCell<Line> = const {
        RefCell::new(Line {
            text: String::new(),
            clock: None,
            callsites: Callsites::new(),
        })
    };
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    #[cfg(feature = "opentelemetry")]
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = String::with_capacity(96);
        fields.push_str("\"name\":");
        write_str(&mut fields, attrs.metadata().name());
        let mut starts = Vec::new();
        attrs.record(&mut Fields::tracking(&mut fields, &mut starts));
        span.extensions_mut().insert(SpanFields {
            text: fields,
            starts,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            fields.record(values);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        LINE.with(|cell| {
            let Ok(mut cell) = cell.try_borrow_mut() else {
                return; // an event logged while writing one: dropped
            };
            let Line {
                text: line,
                clock,
                callsites,
            } = &mut *cell;
            line.clear();
            line.push_str("{\"timestamp\":\"");
            write_timestamp(line, clock, SystemTime::now());
            let meta = event.metadata();
            let rendered = callsites.get(meta);
            line.push_str(rendered.head());
            // A request's access line from its typed record: the same
            // members, without visiting each field through `dyn Visit`.
            let typed = meta.target() == ACCESS_TARGET
                && AccessRecord::of(event, |record| {
                    record.map(|record| write_access(line, record)).is_some()
                });
            if !typed {
                event.record(&mut Fields {
                    out: line,
                    starts: None,
                    rendered: Some(rendered),
                });
            }
            if meta.target() != ACCESS_TARGET {
                let mut named = false;
                if let Some(span) = ctx.event_span(event)
                    && let Some(SpanFields { text: fields, .. }) =
                        span.extensions().get::<SpanFields>()
                {
                    line.push_str(",\"span\":{");
                    line.push_str(fields);
                    line.push('}');
                    named = fields.contains("\"request_id\":");
                }
                // No request span (below the filter, or an inner span of
                // the handler's): the request this task serves still names
                // itself.
                if !named && let Some(id) = RequestId::current() {
                    line.push_str(",\"request_id\":");
                    write_str(line, id.as_str());
                }
            }
            // Access events name their trace themselves.
            #[cfg(feature = "opentelemetry")]
            if meta.target() != ACCESS_TARGET {
                // The innermost span the export sees names the trace; else
                // the current context (a request's server span).
                let in_span = self
                    .dispatch
                    .get()
                    .and_then(|weak| weak.upgrade())
                    .zip(ctx.event_scope(event))
                    .is_some_and(|(dispatch, mut scope)| {
                        scope.any(|span| trace_id(line, &span.id(), &dispatch))
                    });
                if !in_span {
                    opentelemetry::Context::map_current(|context| write_trace_id(line, context));
                }
            }
            line.push_str("}\n");
            let _ = self.writer.make_writer().write_all(line.as_bytes());
        });
    }
}

/// Appends `,"trace_id":"…"` when span `id` belongs to an OpenTelemetry
/// trace (the subscriber has the export's layer); whether it did.
#[cfg(feature = "opentelemetry")]
fn trace_id(line: &mut String, id: &Id, dispatch: &tracing::Dispatch) -> bool {
    tracing_opentelemetry::get_otel_context(id, dispatch)
        .is_some_and(|context| write_trace_id(line, &context))
}

/// Appends `,"trace_id":"…"` when `context` belongs to a trace; whether
/// it did.
#[cfg(feature = "opentelemetry")]
fn write_trace_id(line: &mut String, context: &opentelemetry::Context) -> bool {
    use opentelemetry::trace::TraceContextExt as _;
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return false;
    }
    let _ = write!(line, ",\"trace_id\":\"{}\"", span_context.trace_id());
    true
}

/// Appends an access event's members from its record, as visiting its
/// fields writes them: `method`, `path`, `route`, `request_id`, `trace_id`
/// (when there is one), `status`, `latency_ms` and `message`.
fn write_access(line: &mut String, record: &AccessRecord) {
    // A string's closing quote goes with the next member's name: one
    // copy where there were two.
    line.push_str(",\"method\":\"");
    escape(line, record.method());
    line.push_str("\",\"path\":\"");
    escape(line, record.path());
    line.push_str("\",\"route\":\"");
    escape(line, record.route());
    line.push_str("\",\"request_id\":\"");
    escape(line, record.request_id());
    if let Some(trace_id) = record.trace_id() {
        line.push_str("\",\"trace_id\":\"");
        escape(line, trace_id);
    }
    line.push_str("\",\"status\":");
    write_u64(line, u64::from(record.status()));
    line.push_str(",\"latency_ms\":");
    write_millis(
        line,
        u64::try_from(record.latency().as_micros()).unwrap_or(u64::MAX),
    );
    line.push_str(",\"message\":\"request finished\"");
}

/// Appends `,"name":value` for each field to `out`, noting where each
/// member starts in `starts` if given; the names as the call site's
/// `rendered` parts have them, if given.
struct Fields<'a> {
    out: &'a mut String,
    starts: Option<&'a mut Vec<(&'static str, usize)>>,
    rendered: Option<&'a Rendered>,
}

impl<'a> Fields<'a> {
    fn tracking(out: &'a mut String, starts: &'a mut Vec<(&'static str, usize)>) -> Self {
        Self {
            out,
            starts: Some(starts),
            rendered: None,
        }
    }

    /// Appends `,"name":`, and a string's opening quote if `quoted`.
    fn name(&mut self, field: &Field, quoted: bool) {
        if let Some(starts) = &mut self.starts {
            starts.push((field.name(), self.out.len()));
        }
        match self
            .rendered
            .and_then(|rendered| rendered.name(field, quoted))
        {
            Some(name) => self.out.push_str(name),
            None => {
                push_name(self.out, field);
                if quoted {
                    self.out.push('"');
                }
            }
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field, true);
        escape(self.out, value);
        self.out.push('"');
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field, false);
        write_u64(self.out, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field, false);
        write_i64(self.out, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field, false);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.name(field, false);
        write_f64(self.out, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.name(field, true);
        let _ = write!(Escaped(self.out), "{value:?}");
        self.out.push('"');
    }
}

#[cfg(test)]
mod tests {
    /// A field recorded on a span after it was made, then again, appears
    /// once in the events' `span`, with its last value (it was appended
    /// each time: two `status` members in one object).
    #[test]
    fn a_field_recorded_again_replaces_its_value() {
        use tracing_subscriber::layer::SubscriberExt as _;

        let lines = Capture::default();
        let subscriber = tracing_subscriber::registry().with(super::JsonLayer::new(lines.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                method = "GET",
                status = tracing::field::Empty,
                route = tracing::field::Empty,
                user = "a,\"status\":1"
            );
            span.record("status", 200);
            span.record("route", "/items");
            span.record("status", 503);
            span.in_scope(|| tracing::info!("done"));
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(text.matches("\"status\":").count(), 1, "{text}");
        let span = &line["span"];
        assert_eq!(span["status"], 503, "{text}");
        assert_eq!(
            (&span["method"], &span["route"]),
            (&"GET".into(), &"/items".into())
        );
        assert_eq!(span["user"], "a,\"status\":1");
    }

    /// Lines captured in memory.
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn events_carry_their_span_access_events_their_own_fields() {
        use tracing_subscriber::layer::SubscriberExt;

        let capture = Capture::default();
        let subscriber =
            tracing_subscriber::registry().with(super::JsonLayer::new(capture.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                method = "GET",
                path = "/a\"b",
                late = tracing::field::Empty
            );
            let _entered = span.enter();
            span.record("late", 7);
            tracing::warn!(attempt = 2, ok = false, took = ?std::time::Duration::from_millis(3), "retrying {}", "now");
            tracing::info!(target: pattern_api::middleware::ACCESS_TARGET, method = "GET", status = 200u64, latency_ms = 0.5, "request finished");
        });
        tracing::info!("outside any subscriber: not captured");
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let event = &lines[0];
        assert_eq!(event["level"], "WARN");
        assert_eq!(event["message"], "retrying now");
        assert_eq!(
            (event["attempt"].as_u64(), event["ok"].as_bool()),
            (Some(2), Some(false))
        );
        assert_eq!(event["took"], "3ms");
        assert_eq!(event["span"]["name"], "request");
        assert_eq!(event["span"]["path"], "/a\"b");
        assert_eq!(event["span"]["late"], 7, "recorded after the span was made");
        let access = &lines[1];
        assert_eq!(
            (access["status"].as_u64(), access["latency_ms"].as_f64()),
            (Some(200), Some(0.5))
        );
        assert!(access.get("span").is_none(), "{access}");
        assert!(access["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    /// The access event is in the request's span; with that span below the
    /// filter, it stays in the span the request is served in (it had no
    /// parent at all: a text or tracing layer lost that context).
    #[tokio::test(flavor = "current_thread")]
    async fn the_access_event_keeps_its_context() {
        use std::sync::{Arc, Mutex};

        use axum::routing::get;
        use pattern_api::middleware::ACCESS_TARGET;
        use pattern_api::stack::ApiStack;
        use pattern_api::testing::TestClient;
        use tracing::Instrument as _;
        use tracing_subscriber::layer::{Context, SubscriberExt};
        use tracing_subscriber::registry::LookupSpan;
        use tracing_subscriber::{Layer, filter::LevelFilter};

        /// The span each access event is in.
        #[derive(Clone, Default)]
        struct Parents(Arc<Mutex<Vec<Option<&'static str>>>>);
        impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Parents {
            fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
                if event.metadata().target() == ACCESS_TARGET {
                    let span = ctx.event_span(event).map(|span| span.name());
                    self.0.lock().unwrap().push(span);
                }
            }
        }

        for (span_level, want) in [
            (tracing::Level::INFO, "request"),
            (tracing::Level::DEBUG, "outer"),
        ] {
            let parents = Parents::default();
            let subscriber =
                tracing_subscriber::registry().with(parents.clone().with_filter(LevelFilter::INFO));
            let _default = tracing::subscriber::set_default(subscriber);
            let app = ApiStack::new()
                .span_level(span_level)
                .apply(axum::Router::new().route("/work", get(|| async { "done" })));
            let req = http::Request::get("/work")
                .body(axum::body::Body::empty())
                .unwrap();
            TestClient::new(app)
                .request(req)
                .instrument(tracing::info_span!("outer"))
                .await
                .assert_status(200);
            assert_eq!(*parents.0.lock().unwrap(), [Some(want)], "{span_level}");
        }
    }

    /// The access line the stack's record writes is, byte for byte, the
    /// line its event's fields write when visited one by one (an event
    /// with the same values from elsewhere has no record).
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_typed_access_line_is_the_visited_one() {
        use axum::routing::get;
        use pattern_api::middleware::ACCESS_TARGET;
        use pattern_api::stack::ApiStack;
        use pattern_api::testing::TestClient;
        use tracing::Level;
        use tracing_subscriber::layer::SubscriberExt;

        for (level, path, micros, latency_ms, route) in [
            (Level::INFO, "/items/7", 1500, "1.5", "/items/{id}"),
            (
                Level::WARN,
                "/items/%22x%5C",
                12_345_678,
                "12345.678",
                "/items/{id}",
            ),
            // No route: answered before any handler, at once.
            (Level::ERROR, "/nowhere", 0, "0", ""),
        ] {
            let capture = Capture::default();
            let subscriber =
                tracing_subscriber::registry().with(super::JsonLayer::new(capture.clone()));
            let _default = tracing::subscriber::set_default(subscriber);
            let app = ApiStack::new()
                .access_log(Some(level))
                .apply(axum::Router::new().route(
                    "/items/{id}",
                    get(move || async move {
                        tokio::time::advance(std::time::Duration::from_micros(micros)).await;
                        (http::StatusCode::ACCEPTED, "done")
                    }),
                ));
            let mut req = http::Request::get(format!("{path}?full=1"))
                .body(axum::body::Body::empty())
                .unwrap();
            req.headers_mut()
                .insert("x-request-id", "rid-\"42\\".parse().unwrap());
            let status = TestClient::new(app).request(req).await.status.as_u16();
            let latency: f64 = latency_ms.parse().unwrap();
            macro_rules! visited {
                ($level:expr) => {
                    tracing::event!(
                        target: ACCESS_TARGET,
                        $level,
                        method = "GET",
                        path,
                        route,
                        request_id = "rid-\"42\\",
                        trace_id = None::<&str>,
                        status,
                        latency_ms = latency,
                        message = "request finished",
                    )
                };
            }
            match level {
                Level::INFO => visited!(Level::INFO),
                Level::WARN => visited!(Level::WARN),
                _ => visited!(Level::ERROR),
            }
            let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
            let lines: Vec<&str> = text
                .lines()
                .filter(|line| line.contains("\"target\":\"pattern_api::access\""))
                .map(|line| &line[line.find("\",\"level\"").expect("a timestamp")..])
                .collect();
            assert_eq!(lines.len(), 2, "{text}");
            assert_eq!(lines[0], lines[1], "{text}");
            let line: serde_json::Value =
                serde_json::from_str(text.lines().next().unwrap()).unwrap();
            assert_eq!(
                (
                    line["path"].as_str(),
                    line["request_id"].as_str(),
                    line["level"].as_str()
                ),
                (Some(path), Some("rid-\"42\\"), Some(level.as_str())),
                "{text}"
            );
            assert!(
                lines[0].contains(&format!("\"latency_ms\":{latency_ms},")),
                "{text}"
            );
        }
    }

    /// With the request span below the filter, an event logged while
    /// serving a request still carries the request's id; the access line
    /// carries method, path, id and status.
    #[tokio::test(flavor = "current_thread")]
    async fn events_without_a_span_name_their_request() {
        use axum::routing::get;
        use pattern_api::stack::ApiStack;
        use pattern_api::testing::TestClient;
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;

        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(
            super::JsonLayer::new(capture.clone())
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        );
        let _default = tracing::subscriber::set_default(subscriber);
        let app =
            ApiStack::new()
                .span_level(tracing::Level::DEBUG)
                .apply(axum::Router::new().route(
                    "/work",
                    get(|| async {
                        tracing::info!("inside the handler");
                        "done"
                    }),
                ));
        let mut req = http::Request::get("/work")
            .body(axum::body::Body::empty())
            .unwrap();
        req.headers_mut()
            .insert("x-request-id", "rid-42".parse().unwrap());
        TestClient::new(app).request(req).await.assert_status(200);
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let inside = lines
            .iter()
            .find(|l| l["message"] == "inside the handler")
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(inside["request_id"], "rid-42", "{inside}");
        assert!(
            inside.get("span").is_none(),
            "no span at DEBUG under an INFO filter: {inside}"
        );
        let access = lines
            .iter()
            .find(|l| l["message"] == "request finished")
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            (access["request_id"].as_str(), access["status"].as_u64()),
            (Some("rid-42"), Some(200))
        );
    }
}
