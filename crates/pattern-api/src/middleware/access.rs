//! The access event: logged once per request when it ends, and offered to
//! log layers as a typed record while it is dispatched.
//!
//! A layer that writes access lines (a JSON log) can take the request's
//! method, path, route, id, trace, status and latency from the record
//! instead of visiting the event's fields one by one through `dyn Visit`:
//! every layer sees the same event, with the same values. The event is
//! made here rather than by `tracing::event!` (so that it is known by its
//! address), and goes to tracing subscribers only: with tracing's `log`
//! feature and no subscriber, the macro would also hand it to the `log`
//! crate.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use std::time::Duration;

use tracing::callsite::DefaultCallsite;
use tracing::field::{Field, Value};
use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing::{Event, Level};

use crate::request_id::RequestId;

/// The target of the access log's events: a filter directive such as
/// `pattern_api::access=off` silences them alone.
pub const ACCESS_TARGET: &str = "pattern_api::access";

/// What one request's access event says, typed: see
/// [`AccessRecord::of`]. The event carries the same values as fields
/// (`method`, `path`, `route`, `request_id`, `trace_id` when there is a
/// trace, `status`, `latency_ms`, `message`), in that order.
pub struct AccessRecord {
    method: http::Method,
    uri: http::Uri,
    route: Option<axum::extract::MatchedPath>,
    id: Option<RequestId>,
    #[cfg(feature = "opentelemetry")]
    trace: Option<crate::trace_context::Hex>,
    status: u16,
    /// The latency, in whole microseconds (as the event has it).
    micros: u64,
}

/// What the event says: the query stays out, as it does of the event.
impl std::fmt::Debug for AccessRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessRecord")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("route", &self.route())
            .field("request_id", &self.request_id())
            .field("trace_id", &self.trace_id())
            .field("status", &self.status)
            .field("latency", &self.latency())
            .finish()
    }
}

/// The access event being dispatched on a thread.
struct Dispatching {
    /// Its record.
    record: RefCell<Option<AccessRecord>>,
    /// The address of the event (never read through: only compared with
    /// the events layers ask about), 0 for none.
    event: Cell<usize>,
}

thread_local! {
    static DISPATCHING: Dispatching = const {
        Dispatching {
            record: RefCell::new(None),
            event: Cell::new(0),
        }
    };
}

/// Where `event` is, to tell it from any other.
fn address(event: &Event<'_>) -> usize {
    std::ptr::from_ref(event).addr()
}

impl AccessRecord {
    /// The record of `event`, given to `read`, while `event` is an access
    /// event of this crate's being dispatched on this thread; else `None`:
    /// any other event, one logged with the target [`ACCESS_TARGET`] by
    /// anyone else, a copy of an access event (the same call site, with
    /// values of its own), or an access event logged while another is
    /// dispatched. The event is known by its address, which no other
    /// event has while it is dispatched.
    pub fn of<R>(event: &Event<'_>, read: impl FnOnce(Option<&Self>) -> R) -> R {
        let mut read = Some(read);
        let answer = DISPATCHING.try_with(|state| {
            let read = read.take().expect("called once");
            if state.event.get() != address(event) {
                return read(None);
            }
            match state.record.try_borrow() {
                Ok(record) => read(record.as_ref()),
                Err(_) => read(None),
            }
        });
        match (answer, read) {
            (Ok(answer), _) => answer,
            // The thread's locals are gone (the thread is ending).
            (Err(_), Some(read)) => read(None),
            (Err(_), None) => unreachable!("read runs only inside"),
        }
    }

    /// The request's method (`GET`).
    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    /// The request's path, without its query.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The route template routing matched (`/items/{id}`), empty when
    /// none matched.
    pub fn route(&self) -> &str {
        self.route
            .as_ref()
            .map_or("", axum::extract::MatchedPath::as_str)
    }

    /// The request's id, empty when the stack gives none.
    pub fn request_id(&self) -> &str {
        self.id.as_ref().map_or("", RequestId::as_str)
    }

    /// The request's trace id (32 hexadecimal digits), when it belongs to
    /// a trace (feature `opentelemetry`, with
    /// [`ServerSpans`](crate::trace_context::ServerSpans) in the
    /// subscriber), sampled or not.
    pub fn trace_id(&self) -> Option<&str> {
        #[cfg(feature = "opentelemetry")]
        return self.trace.as_ref().map(crate::trace_context::as_str);
        #[cfg(not(feature = "opentelemetry"))]
        None
    }

    /// The response's status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// From the request's arrival to its response, to the microsecond;
    /// the event's `latency_ms` is its microseconds / 1000.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.micros)
    }
}

/// What [`log`] is given: the request's side of the record.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: http::Method,
    pub(crate) uri: http::Uri,
    pub(crate) route: Option<axum::extract::MatchedPath>,
    pub(crate) id: Option<RequestId>,
}

/// Logs the access event at `level`, in span `parent`, with its record
/// offered to the layers while it is dispatched.
pub(crate) fn log(
    level: Level,
    parent: Option<tracing::Id>,
    request: Request,
    #[cfg(feature = "opentelemetry")] trace: Option<crate::trace_context::Hex>,
    status: u16,
    latency: Duration,
) {
    let record = AccessRecord {
        method: request.method,
        uri: request.uri,
        route: request.route,
        id: request.id,
        #[cfg(feature = "opentelemetry")]
        trace,
        status,
        // To the microsecond: a log writer writes it without float
        // formatting.
        micros: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
    };
    let mut record = Some(record);
    let _ = DISPATCHING.try_with(|state| {
        let free = matches!(state.record.try_borrow_mut(), Ok(slot) if slot.is_none());
        let Some(record) = record.take() else { return };
        if !free {
            // An access event logged while another is dispatched (a layer
            // serving a request inside its own): logged without a record
            // (the other's is not its: their addresses differ).
            event(level, parent.clone(), &record, None);
            return;
        }
        *state.record.borrow_mut() = Some(record);
        // Taken back even when a layer panics.
        let _unpublish = Unpublish(state);
        let published = state.record.borrow();
        if let Some(record) = published.as_ref() {
            event(level, parent.clone(), record, Some(&state.event));
        }
    });
    // The thread's locals are gone (the thread is ending): no record.
    if let Some(record) = record {
        event(level, parent, &record, None);
    }
}

/// Empties the slot when dropped.
struct Unpublish<'a>(&'a Dispatching);

impl Drop for Unpublish<'_> {
    fn drop(&mut self) {
        self.0.event.set(0);
        if let Ok(mut slot) = self.0.record.try_borrow_mut() {
            slot.take();
        }
    }
}

/// One of the access event's call sites (one per level: a level is part
/// of a call site's static metadata), and its fields in order.
struct Site {
    callsite: &'static DefaultCallsite,
    names: [Field; 8],
}

/// The call sites, by level from ERROR to TRACE: made and registered once
/// (the `callsite!` macro registers at each use).
fn sites() -> &'static [Site; 5] {
    static SITES: OnceLock<[Site; 5]> = OnceLock::new();
    SITES.get_or_init(|| {
        macro_rules! site {
            ($level:expr) => {{
                let callsite: &'static DefaultCallsite = tracing::callsite! {
                    name: concat!("event ", file!(), ":", line!()),
                    kind: tracing::metadata::Kind::EVENT,
                    target: ACCESS_TARGET,
                    level: $level,
                    fields: method, path, route, request_id, trace_id, status, latency_ms, message
                };
                let mut named = tracing::Callsite::metadata(callsite).fields().iter();
                Site {
                    callsite,
                    names: std::array::from_fn(|_| {
                        named.next().expect("the call site's eight fields")
                    }),
                }
            }};
        }
        [
            site!(Level::ERROR),
            site!(Level::WARN),
            site!(Level::INFO),
            site!(Level::DEBUG),
            site!(Level::TRACE),
        ]
    })
}

/// Logs the access event at `level` with `record`'s values as its fields,
/// as `tracing::event!` does, but with the event made here: its address
/// is kept in `mark` (if given) while it is dispatched.
fn event(
    level: Level,
    parent: Option<tracing::Id>,
    record: &AccessRecord,
    mark: Option<&Cell<usize>>,
) {
    if level > STATIC_MAX_LEVEL || level > LevelFilter::current() {
        return;
    }
    let site = &sites()[match level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        _ => 4,
    }];
    let interest = site.callsite.interest();
    if interest.is_never() {
        return;
    }
    let meta = tracing::Callsite::metadata(site.callsite);
    let names = &site.names;
    let trace_id = record.trace_id();
    // From 64 bits: a 128-bit integer's conversion to a float takes a
    // call.
    #[allow(clippy::cast_precision_loss)] // exact below 2⁵³ µs
    let latency_ms = record.micros as f64 / 1e3;
    let values: [(&Field, Option<&dyn Value>); 8] = [
        (&names[0], Some(&record.method())),
        (&names[1], Some(&record.path())),
        (&names[2], Some(&record.route())),
        (&names[3], Some(&record.request_id())),
        (&names[4], trace_id.as_ref().map(|id| id as &dyn Value)),
        (&names[5], Some(&record.status)),
        (&names[6], Some(&latency_ms)),
        // A text, not `format_args!`: a log writer takes it without the
        // formatting machinery.
        (&names[7], Some(&"request finished")),
    ];
    let values = meta.fields().value_set(&values);
    tracing::dispatcher::get_default(|current| {
        if !interest.is_always() && !current.enabled(meta) {
            return;
        }
        let event = Event::new_child_of(parent.clone(), meta, &values);
        if let Some(mark) = mark {
            mark.set(address(&event));
        }
        current.event(&event);
    });
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tracing::field::{Field, Visit};
    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

    use super::{ACCESS_TARGET, AccessRecord, Request, log};

    /// For each event: the path its record gives (`None`: no record) and
    /// the path its fields carry.
    type Seen = Arc<Mutex<Vec<(Option<String>, String)>>>;

    /// Notes what each event says, and does `also` in the first access
    /// event's dispatch.
    struct Notes {
        seen: Seen,
        also: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    }

    struct PathField(String);

    impl Visit for PathField {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "path" {
                value.clone_into(&mut self.0);
            }
        }

        fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
    }

    impl<S: Subscriber> Layer<S> for Notes {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let typed = AccessRecord::of(event, |record| record.map(|r| r.path().to_owned()));
            let also = self.also.lock().unwrap().take();
            if let Some(also) = also {
                also();
            }
            let mut field = PathField(String::new());
            event.record(&mut field);
            self.seen.lock().unwrap().push((typed, field.0));
        }
    }

    fn request(path: &str) -> Request {
        Request {
            method: http::Method::GET,
            uri: path.parse().unwrap(),
            route: None,
            id: None,
        }
    }

    fn logged(path: &str) {
        log(
            Level::INFO,
            None,
            request(path),
            #[cfg(feature = "opentelemetry")]
            None,
            200,
            Duration::from_micros(1500),
        );
    }

    fn subscriber(also: Option<Box<dyn FnOnce() + Send>>) -> (impl Subscriber, Seen) {
        let seen = Seen::default();
        let notes = Notes {
            seen: seen.clone(),
            also: Mutex::new(also),
        };
        (tracing_subscriber::registry().with(notes), seen)
    }

    /// The record is the event's: same values, offered during its dispatch
    /// only; an event someone else logs with the access target has none.
    #[test]
    fn the_record_is_the_events_own() {
        let (subscriber, seen) = subscriber(None);
        tracing::subscriber::with_default(subscriber, || {
            logged("/a");
            tracing::info!(target: ACCESS_TARGET, path = "/forged", "request finished");
            logged("/b");
        });
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                (Some("/a".to_owned()), "/a".to_owned()),
                (None, "/forged".to_owned()),
                (Some("/b".to_owned()), "/b".to_owned()),
            ]
        );
    }

    /// An access event logged while another is dispatched leaves the other
    /// its record (under a scoped subscriber, as here, tracing drops the
    /// inner event; a global one takes it, without a record: their
    /// addresses differ).
    #[test]
    fn an_event_logged_during_dispatch_leaves_the_record() {
        let (subscriber, seen) = subscriber(Some(Box::new(|| logged("/inner"))));
        tracing::subscriber::with_default(subscriber, || {
            logged("/outer");
            logged("/next");
        });
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                (Some("/outer".to_owned()), "/outer".to_owned()),
                (Some("/next".to_owned()), "/next".to_owned()),
            ]
        );
    }

    /// Behind a filter (a call site's interest is then "sometimes", and
    /// each event asks the subscriber): only the levels it lets through
    /// are logged, each with its record.
    #[test]
    fn behind_a_filter_only_what_it_lets_through_comes_with_its_record() {
        use tracing_subscriber::EnvFilter;

        for (directives, logged_at) in [
            ("pattern_api::access=info", vec!["/error", "/info"]),
            ("pattern_api::access=off", vec![]),
            ("warn", vec!["/error"]),
        ] {
            let seen = Seen::default();
            let notes = Notes {
                seen: seen.clone(),
                also: Mutex::new(None),
            };
            let filter = EnvFilter::new(directives);
            let subscriber = tracing_subscriber::registry().with(notes.with_filter(filter));
            tracing::subscriber::with_default(subscriber, || {
                for (level, path) in [
                    (Level::ERROR, "/error"),
                    (Level::INFO, "/info"),
                    (Level::DEBUG, "/debug"),
                ] {
                    log(
                        level,
                        None,
                        request(path),
                        #[cfg(feature = "opentelemetry")]
                        None,
                        200,
                        Duration::ZERO,
                    );
                }
            });
            let want: Vec<_> = logged_at
                .iter()
                .map(|path| (Some((*path).to_owned()), (*path).to_owned()))
                .collect();
            assert_eq!(*seen.lock().unwrap(), want, "{directives}");
        }
    }

    /// Forwards a copy of each access event, its path replaced (a
    /// redacting layer), to another subscriber.
    struct Forward(tracing::Dispatch);

    impl<S: Subscriber> Layer<S> for Forward {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            let meta = event.metadata();
            if meta.target() != ACCESS_TARGET {
                return;
            }
            let fields = meta.fields();
            let path = fields.field("path").expect("a path");
            let redacted: [(&Field, Option<&dyn tracing::Value>); 1] =
                [(&path, Some(&"/redacted"))];
            let values = fields.value_set(&redacted);
            self.0.event(&Event::new(meta, &values));
        }
    }

    /// A copy of the access event (its call site, other values) sent to
    /// another subscriber while the event is dispatched is not offered the
    /// event's record: that subscriber writes the copy's values.
    #[test]
    fn a_copy_of_the_event_is_not_given_its_record() {
        let (other, copies) = subscriber(None);
        let (subscriber, seen) = subscriber(None);
        let subscriber = subscriber.with(Forward(tracing::Dispatch::new(other)));
        tracing::subscriber::with_default(subscriber, || logged("/secret"));
        assert_eq!(
            *copies.lock().unwrap(),
            [(None, "/redacted".to_owned())],
            "the copy"
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [(Some("/secret".to_owned()), "/secret".to_owned())],
            "the event"
        );
    }

    /// The latency of the record and of the event's `latency_ms` field,
    /// at zero, one microsecond, sub-microsecond (truncated) and
    /// `Duration::MAX` (held to `u64::MAX` microseconds, no overflow).
    #[test]
    fn latencies_at_their_edges_agree_with_the_field() {
        /// Each event's record latency and `latency_ms` field.
        type Latencies = Arc<Mutex<Vec<(Option<Duration>, f64)>>>;
        struct Latency(Latencies);
        struct Field64(f64);
        impl Visit for Field64 {
            fn record_f64(&mut self, field: &Field, value: f64) {
                if field.name() == "latency_ms" {
                    self.0 = value;
                }
            }
            fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
        }
        impl<S: Subscriber> Layer<S> for Latency {
            fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
                let typed = AccessRecord::of(event, |record| record.map(AccessRecord::latency));
                let mut field = Field64(f64::NAN);
                event.record(&mut field);
                self.0.lock().unwrap().push((typed, field.0));
            }
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Latency(seen.clone()));
        let cases = [
            (Duration::ZERO, 0),
            (Duration::from_nanos(999), 0),
            (Duration::from_micros(1), 1),
            (Duration::from_nanos(1_500_999), 1_500),
            (Duration::MAX, u64::MAX),
        ];
        tracing::subscriber::with_default(subscriber, || {
            for (latency, _) in cases {
                log(
                    Level::INFO,
                    None,
                    request("/"),
                    #[cfg(feature = "opentelemetry")]
                    None,
                    200,
                    latency,
                );
            }
        });
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), cases.len());
        for ((typed, field), (latency, micros)) in seen.into_iter().zip(cases) {
            assert_eq!(typed, Some(Duration::from_micros(micros)), "{latency:?}");
            #[allow(clippy::cast_precision_loss, clippy::float_cmp)]
            let same = field == micros as f64 / 1e3;
            assert!(same, "{latency:?}: the field says {field}");
        }
    }

    /// Many threads logging at once each see their own events' records:
    /// the record is the thread's, never another's.
    #[test]
    fn concurrent_threads_see_their_own_records() {
        let (subscriber, seen) = subscriber(None);
        let dispatch = tracing::Dispatch::new(subscriber);
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let dispatch = dispatch.clone();
                scope.spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        for n in 0..500 {
                            logged(&format!("/t{thread}/{n}"));
                        }
                    });
                });
            }
        });
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 8 * 500);
        for (typed, field) in seen.iter() {
            assert_eq!(typed.as_deref(), Some(field.as_str()));
        }
    }

    /// The record's `Debug` leaves the query out, as the event does.
    #[test]
    fn the_record_does_not_show_the_query() {
        let record = AccessRecord {
            method: http::Method::GET,
            uri: "/items?token=secret".parse().unwrap(),
            route: None,
            id: None,
            #[cfg(feature = "opentelemetry")]
            trace: None,
            status: 200,
            micros: 0,
        };
        let shown = format!("{record:?}");
        assert!(
            shown.contains("/items") && !shown.contains("secret"),
            "{shown}"
        );
    }

    /// A layer panicking in the event's dispatch leaves no record behind:
    /// the next event is offered its own.
    #[test]
    fn a_panicking_layer_leaves_no_record_behind() {
        let (subscriber, seen) = subscriber(Some(Box::new(|| panic!("a layer fails"))));
        tracing::subscriber::with_default(subscriber, || {
            let panicked = std::panic::catch_unwind(|| logged("/first"));
            assert!(panicked.is_err());
            logged("/second");
            tracing::info!(target: ACCESS_TARGET, path = "/forged", "request finished");
        });
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                (Some("/second".to_owned()), "/second".to_owned()),
                (None, "/forged".to_owned()),
            ]
        );
    }

    /// The record's values, each: what the stack saw of the request.
    #[test]
    fn the_record_reads_back() {
        let record = AccessRecord {
            method: http::Method::PATCH,
            uri: "/items/7?x=1".parse().unwrap(),
            route: None,
            id: Some(crate::request_id::RequestId::new("rid-1")),
            #[cfg(feature = "opentelemetry")]
            trace: None,
            status: 404,
            micros: 7,
        };
        assert_eq!(
            (
                record.method(),
                record.path(),
                record.route(),
                record.request_id(),
                record.trace_id(),
                record.status(),
                record.latency()
            ),
            (
                "PATCH",
                "/items/7",
                "",
                "rid-1",
                None,
                404,
                Duration::from_micros(7)
            )
        );
    }
}
