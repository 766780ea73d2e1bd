//! What an event's call site writes into every line it logs (its level,
//! its target, its fields' names), rendered once per thread and call site
//! rather than escaped again for each event.

use tracing::Metadata;
use tracing::field::Field;

use super::write::write_str;

/// How many call sites a thread keeps rendered: a busy service logs from
/// a few, most lines from one (the access log); a call site pushed out is
/// rendered again when it logs next.
const KEPT: usize = 16;

/// A call site's constant parts of a line.
pub(super) struct Rendered {
    metadata: &'static Metadata<'static>,
    /// `","level":"INFO","target":"…"`: what follows the timestamp.
    head: String,
    /// Each field's `,"name":"`, by field index (the quote opens a string
    /// value; others take the name without it).
    names: Vec<Box<str>>,
}

impl Rendered {
    fn new(metadata: &'static Metadata<'static>) -> Self {
        let mut head = String::with_capacity(48);
        head.push_str("\",\"level\":\"");
        head.push_str(metadata.level().as_str());
        head.push_str("\",\"target\":");
        write_str(&mut head, metadata.target());
        let names = metadata
            .fields()
            .iter()
            .map(|field| {
                let mut name = String::new();
                push_name(&mut name, &field);
                name.push('"');
                name.into_boxed_str()
            })
            .collect();
        Self {
            metadata,
            head,
            names,
        }
    }

    /// What follows the timestamp: the level and the target.
    pub(super) fn head(&self) -> &str {
        &self.head
    }

    /// `,"name":` for `field`, with a string's opening quote if `quoted`,
    /// if it is one of this call site's (an event may carry the values of
    /// another call site's fields).
    pub(super) fn name(&self, field: &Field, quoted: bool) -> Option<&str> {
        if field.callsite() != self.metadata.callsite() {
            return None;
        }
        let name = self.names.get(field.index())?;
        Some(if quoted {
            name
        } else {
            &name[..name.len() - 1]
        })
    }
}

/// Appends `,"name":` for `field`.
pub(super) fn push_name(out: &mut String, field: &Field) {
    out.push_str(",\"");
    super::write::escape(out, field.name());
    out.push_str("\":");
}

/// The call sites a thread has rendered.
pub(super) struct Callsites {
    kept: Vec<Rendered>,
    /// The slot the next call site takes once all are in use.
    next: usize,
}

impl Callsites {
    /// None rendered yet.
    pub(super) const fn new() -> Self {
        Self {
            kept: Vec::new(),
            next: 0,
        }
    }

    /// `metadata`'s rendered parts, rendered now if they are not kept.
    pub(super) fn get(&mut self, metadata: &'static Metadata<'static>) -> &Rendered {
        let at = match self
            .kept
            .iter()
            .position(|kept| std::ptr::eq(kept.metadata, metadata))
        {
            Some(at) => at,
            None if self.kept.len() < KEPT => {
                self.kept.push(Rendered::new(metadata));
                self.kept.len() - 1
            }
            None => {
                let at = self.next;
                self.next = (self.next + 1) % KEPT;
                self.kept[at] = Rendered::new(metadata);
                at
            }
        };
        &self.kept[at]
    }
}

#[cfg(test)]
mod tests {
    use super::{Callsites, KEPT};

    /// More call sites than are kept, each logging twice: every line is
    /// the same as when its call site's parts are rendered afresh, and the
    /// names match their fields, also for a call site pushed out and
    /// rendered again.
    #[test]
    fn call_sites_beyond_those_kept_render_the_same() {
        struct Seen(std::sync::Mutex<Vec<(String, Vec<String>)>>);
        impl tracing::Subscriber for Seen {
            fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
                tracing::span::Id::from_u64(1)
            }
            fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
            fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
            fn event(&self, event: &tracing::Event<'_>) {
                thread_local! {
                    static SITES: std::cell::RefCell<Callsites> = const { std::cell::RefCell::new(Callsites::new()) };
                }
                SITES.with_borrow_mut(|sites| {
                    let rendered = sites.get(event.metadata());
                    let names = event
                        .metadata()
                        .fields()
                        .iter()
                        .map(|field| {
                            let mut fresh = String::new();
                            super::push_name(&mut fresh, &field);
                            assert_eq!(rendered.name(&field, false), Some(fresh.as_str()));
                            let quoted = format!("{fresh}\"");
                            assert_eq!(rendered.name(&field, true), Some(quoted.as_str()));
                            fresh
                        })
                        .collect();
                    self.0
                        .lock()
                        .unwrap()
                        .push((rendered.head().to_owned(), names));
                });
            }
            fn enter(&self, _: &tracing::span::Id) {}
            fn exit(&self, _: &tracing::span::Id) {}
        }

        let seen = std::sync::Arc::new(Seen(std::sync::Mutex::new(Vec::new())));
        tracing::subscriber::with_default(seen.clone(), || {
            macro_rules! sites {
                ($($n:literal)*) => {$(
                    for _ in 0..2 {
                        tracing::info!(target: "a\"target", site = $n, "weird\\name" = 1, "many");
                        tracing::warn!(other = $n);
                    }
                )*};
            }
            // Twice over: the second time, each call site was pushed out
            // by the sixteen after it, and is rendered again.
            for _ in 0..2 {
                sites!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);
            }
        });
        let seen = seen.0.lock().unwrap();
        assert_eq!(seen.len(), 2 * 20 * 2 * 2);
        // The same call sites logged the same heads and names both times.
        let (first, second) = seen.split_at(seen.len() / 2);
        assert_eq!(first, second);
        assert!(seen.len() / 2 > KEPT, "more call sites than are kept");
        let info = &seen[0];
        assert_eq!(info.0, "\",\"level\":\"INFO\",\"target\":\"a\\\"target\"");
        assert_eq!(
            info.1,
            [",\"message\":", ",\"site\":", ",\"weird\\\\name\":"]
        );
        assert_eq!(
            seen[1].0,
            "\",\"level\":\"WARN\",\"target\":\"pattern_server::logging::json::callsite::tests\""
        );
    }

    /// A field of another call site has no name here, even at an index
    /// this call site has: its own name is written instead.
    #[test]
    fn another_call_sites_field_is_not_named_by_index() {
        use tracing::callsite::Callsite as _;

        let mut sites = Callsites::new();
        let here =
            tracing::callsite!(name: "here", kind: tracing::metadata::Kind::EVENT, fields: a, b);
        let there =
            tracing::callsite!(name: "there", kind: tracing::metadata::Kind::EVENT, fields: x, y);
        let (here, there) = (here.metadata(), there.metadata());
        let foreign = there.fields().field("y").unwrap();
        let rendered = sites.get(here);
        assert_eq!(rendered.name(&foreign, false), None);
        assert_eq!(rendered.name(&foreign, true), None);
        let own = here.fields().field("b").unwrap();
        assert_eq!(rendered.name(&own, false), Some(",\"b\":"));
        assert_eq!(rendered.name(&own, true), Some(",\"b\":\""));
    }
}
