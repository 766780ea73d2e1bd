//! The access event: logged once per request when it ends, and offered to
//! log layers as a typed record while it is dispatched.
//!
//! A layer that writes access lines (a JSON log) can take the request's
//! method, path, route, id, trace, status and latency from the record
//! instead of visiting the event's fields one by one through `dyn Visit`:
//! the event stays what every other layer sees, with the same values.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use tracing::{Event, Level};

use super::trace::ACCESS_TARGET;
use crate::request_id::RequestId;

/// What one request's access event says, typed: see
/// [`AccessRecord::of`]. The event carries the same values as fields
/// (`method`, `path`, `route`, `request_id`, `trace_id` when there is a
/// trace, `status`, `latency_ms`, `message`), in that order.
#[derive(Debug)]
pub struct AccessRecord {
    method: http::Method,
    uri: http::Uri,
    route: Option<axum::extract::MatchedPath>,
    id: Option<RequestId>,
    #[cfg(feature = "opentelemetry")]
    trace: Option<crate::trace_context::Hex>,
    status: u16,
    latency: Duration,
}

/// The access event being dispatched on a thread.
struct Dispatching {
    /// Its record.
    record: RefCell<Option<AccessRecord>>,
    /// How many access events are being dispatched within its dispatch
    /// (without a record of their own: the one here is not theirs).
    nested: Cell<u32>,
}

thread_local! {
    static DISPATCHING: Dispatching = const {
        Dispatching {
            record: RefCell::new(None),
            nested: Cell::new(0),
        }
    };
}

impl AccessRecord {
    /// The record of `event`, while it is an access event of this crate's
    /// being dispatched on this thread (given to `read`), else `None`: any
    /// other event, an event someone else logs with the target
    /// [`ACCESS_TARGET`], or an access event logged while another one is
    /// dispatched (it carries its fields only).
    pub fn of<R>(event: &Event<'_>, read: impl FnOnce(Option<&Self>) -> R) -> R {
        let meta = event.metadata();
        // The call sites below are the only ones of this module with the
        // access target: a `module_path` is the macro's caller's, never
        // an argument.
        if meta.target() != ACCESS_TARGET || meta.module_path() != Some(module_path!()) {
            return read(None);
        }
        let mut read = Some(read);
        let answer = DISPATCHING.try_with(|state| {
            let read = read.take().expect("called once");
            if state.nested.get() != 0 {
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

    /// The request's trace id (32 hexadecimal digits), when its server
    /// span was sampled (feature `opentelemetry`).
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
        self.latency
    }
}

/// What [`log`] is given: the request's side of the record.
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
        latency: Duration::from_micros(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)),
    };
    let mut record = Some(record);
    let _ = DISPATCHING.try_with(|state| {
        let free = matches!(state.record.try_borrow_mut(), Ok(slot) if slot.is_none());
        let Some(record) = record.take() else { return };
        if !free {
            // An access event logged while another is dispatched (a layer
            // serving a request inside its own): logged without a record,
            // and the other's is not offered as its.
            let _nested = Nested::enter(&state.nested);
            event(level, parent.clone(), &record);
            return;
        }
        *state.record.borrow_mut() = Some(record);
        // Taken back even when a layer panics.
        let _unpublish = Unpublish(&state.record);
        let published = state.record.borrow();
        if let Some(record) = published.as_ref() {
            event(level, parent.clone(), record);
        }
    });
    // The thread's locals are gone (the thread is ending): no record.
    if let Some(record) = record {
        event(level, parent, &record);
    }
}

/// Counts an access event dispatched within another's, until dropped.
struct Nested<'a>(&'a Cell<u32>);

impl<'a> Nested<'a> {
    fn enter(nested: &'a Cell<u32>) -> Self {
        nested.set(nested.get().saturating_add(1));
        Self(nested)
    }
}

impl Drop for Nested<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Empties the slot when dropped.
struct Unpublish<'a>(&'a RefCell<Option<AccessRecord>>);

impl Drop for Unpublish<'_> {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.0.try_borrow_mut() {
            slot.take();
        }
    }
}

/// The access event itself, with `record`'s values as its fields.
fn event(level: Level, parent: Option<tracing::Id>, record: &AccessRecord) {
    let method = record.method();
    let path = record.path();
    let route = record.route();
    let request_id = record.request_id();
    let trace_id = record.trace_id();
    let status = record.status;
    // To the microsecond: a log writer writes it without float
    // formatting. In 64 bits: a 128-bit integer's conversion to a float
    // takes a call.
    let micros = u64::try_from(record.latency.as_micros()).unwrap_or(u64::MAX);
    #[allow(clippy::cast_precision_loss)] // exact below 2⁵³ µs
    let latency_ms = micros as f64 / 1e3;
    // A level is part of an event's static metadata: one call site each.
    macro_rules! access {
        ($level:expr) => {
            tracing::event!(
                target: ACCESS_TARGET,
                parent: parent,
                $level,
                method,
                path,
                route,
                request_id,
                trace_id,
                status,
                latency_ms,
                // A text, not `format_args!`: a log writer takes it
                // without the formatting machinery.
                message = "request finished",
            )
        };
    }
    match level {
        Level::ERROR => access!(Level::ERROR),
        Level::WARN => access!(Level::WARN),
        Level::INFO => access!(Level::INFO),
        Level::DEBUG => access!(Level::DEBUG),
        _ => access!(Level::TRACE),
    }
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

    /// An access event logged while another is dispatched (tracing drops
    /// it: a subscriber is not entered again from its own dispatch) leaves
    /// the other its record.
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
            latency: Duration::from_micros(7),
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
