//! The id of the request a task is handling.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The id of the request being handled.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(Repr);

/// Generated ids live inline (16 hex digits, no allocation); a client's id
/// is shared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Repr {
    Generated(Digits),
    Client(Arc<str>),
}

/// A generated id's digits, aligned to a word: the UTF-8 check `as_str`
/// makes then reads them a word at a time (unaligned, byte by byte, it
/// cost several times as much, twice per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C, align(8))]
struct Digits([u8; 16]);

impl RequestId {
    /// Wraps an id.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(Repr::Client(id.into()))
    }

    /// A fresh id.
    pub fn generate() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = *SEED.get_or_init(|| {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(std::process::id())
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // SplitMix64 of seed + n: distinct for every n, unpredictable order.
        let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 16];
        for (i, digit) in digits.iter_mut().enumerate() {
            *digit = HEX[((z >> (60 - 4 * i)) & 0xf) as usize];
        }
        Self(Repr::Generated(Digits(digits)))
    }

    /// Accepts a client's id if it is 1 to 128 visible ASCII characters.
    pub fn from_header(value: &[u8]) -> Option<Self> {
        let ok =
            !value.is_empty() && value.len() <= 128 && value.iter().all(|b| b.is_ascii_graphic());
        if !ok {
            return None;
        }
        std::str::from_utf8(value)
            .ok()
            .map(|id| Self(Repr::Client(Arc::from(id))))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Hex digits are ASCII: always valid UTF-8.
            Repr::Generated(Digits(digits)) => std::str::from_utf8(digits).unwrap_or_default(),
            Repr::Client(id) => id,
        }
    }

    /// The id of the request this task is handling, if it runs inside
    /// [`RequestIdLayer`](crate::request_id::RequestIdLayer) or [`ApiStack`](crate::stack::ApiStack) with its
    /// request id on.
    pub fn current() -> Option<RequestId> {
        super::with(|context| context.id.clone())
    }
}

impl RequestId {
    /// The id of a request with these extensions: the request id layer's,
    /// else the task's.
    pub(crate) fn find(extensions: &http::Extensions) -> Option<Self> {
        extensions
            .get::<RequestId>()
            .cloned()
            .or_else(Self::current)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_hex() {
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| RequestId::generate().to_string())
            .collect();
        assert_eq!(ids.len(), 10_000);
        // Word-aligned: the UTF-8 check of `as_str` reads them by the word.
        let id = RequestId::generate();
        assert_eq!(id.as_str().as_ptr().align_offset(8), 0);
        let moved = Box::new(id.clone());
        assert_eq!(moved.as_str().as_ptr().align_offset(8), 0);
        assert!(
            ids.iter()
                .all(|id| id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()))
        );
    }

    #[test]
    fn client_ids_are_checked() {
        assert_eq!(
            RequestId::from_header(b"abc-123").unwrap().as_str(),
            "abc-123"
        );
        assert!(RequestId::from_header(b"").is_none());
        assert!(RequestId::from_header(b"has space").is_none());
        assert!(RequestId::from_header(&[b'a'; 129]).is_none());
    }
}
