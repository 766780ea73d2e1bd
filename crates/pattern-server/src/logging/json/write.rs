//! The pieces of a JSON line: strings escaped, numbers and the
//! timestamp written without the formatting machinery (a line per
//! request makes these the log's hot path).

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

/// A JSON string.
pub(super) fn write_str(out: &mut String, text: &str) {
    out.push('"');
    escape(out, text);
    out.push('"');
}

/// Appends `text` escaped for a JSON string. Most text has nothing to
/// escape: it is checked (eight bytes at a time, the last few one by one)
/// and copied whole. Otherwise the runs between the bytes to escape (a
/// quote, a backslash or a control byte, all ASCII, so every cut is at a
/// character boundary) are copied whole.
pub(super) fn escape(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let Some(mut at) = first_to_escape(bytes) else {
        out.push_str(text);
        return;
    };
    let mut run = 0;
    loop {
        out.push_str(&text[run..at]);
        let byte = bytes[at];
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
        at += 1;
        run = at;
        match first_to_escape(&bytes[at..]) {
            Some(next) => at += next,
            None => break,
        }
    }
    out.push_str(&text[run..]);
}

/// Where the first byte to escape in `bytes` is, if any.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let word_bytes = <[u8; 8]>::try_from(word).unwrap_or_default();
        if any_to_escape(u64::from_le_bytes(word_bytes)) {
            return word.iter().position(|&b| to_escape(b)).map(|i| at + i);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| TO_ESCAPE[usize::from(b)])
        .map(|i| at + i)
}

/// Whether a JSON string cannot hold a byte as it is, by byte (one load
/// per byte where three comparisons were).
const TO_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = byte < 0x20 || byte == b'"' as usize || byte == b'\\' as usize;
        byte += 1;
    }
    table
};

/// Whether a JSON string cannot hold `byte` as it is.
const fn to_escape(byte: u8) -> bool {
    TO_ESCAPE[byte as usize]
}

/// Whether any of eight bytes is a quote, a backslash or below a space
/// (the bit tricks of "Bit Twiddling Hacks": exact as a yes or no).
const fn any_to_escape(word: u64) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 0x80;
    /// Whether a byte of `word` is below `n` (`n` at most 128).
    const fn below(word: u64, n: u8) -> bool {
        word.wrapping_sub(ONES * n as u64) & !word & HIGH != 0
    }
    below(word, 0x20)
        || below(word ^ (ONES * b'"' as u64), 1)
        || below(word ^ (ONES * b'\\' as u64), 1)
}

/// Writes what it is given escaped for a JSON string (for `Debug` values).
pub(super) struct Escaped<'a>(pub(super) &'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escape(self.0, text);
        Ok(())
    }
}

/// Appends `value` in decimal.
pub(super) fn write_u64(out: &mut String, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // A digit: the cast keeps 0..=9.
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    push_digits(out, &digits[at..]);
}

/// Appends ASCII digits (one by one: cheaper for a few than checking them
/// as UTF-8 and copying them whole).
fn push_digits(out: &mut String, digits: &[u8]) {
    out.reserve(digits.len());
    for &digit in digits {
        out.push(char::from(digit));
    }
}

/// Appends `value` in decimal.
pub(super) fn write_i64(out: &mut String, value: i64) {
    if value < 0 {
        out.push('-');
    }
    write_u64(out, value.unsigned_abs());
}

/// Appends `value` as a JSON number, as `Display` writes it (the shortest
/// text that reads back as the same `f64`), or `null` when it is not
/// finite. A value of at most three decimals below 10⁹ (a latency in
/// milliseconds to the microsecond) is written from integers: at that
/// size two such values are far more than an `f64` step apart, so those
/// decimals are the shortest text that reads back.
pub(super) fn write_f64(out: &mut String, value: f64) {
    if !value.is_finite() {
        out.push_str("null");
        return;
    }
    let magnitude = value.abs();
    let thousandths = (magnitude * 1000.0).round();
    #[allow(clippy::float_cmp)] // exact: the fast path is for exact values
    let exact = magnitude < 1e9 && thousandths / 1000.0 == magnitude;
    if !exact {
        let _ = write!(out, "{value}");
        return;
    }
    if value.is_sign_negative() {
        out.push('-');
    }
    // Below 10¹²: the cast is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let thousandths = thousandths as u64;
    write_u64(out, thousandths / 1000);
    write_thousandths(out, thousandths % 1000);
}

/// Appends `micros / 1000` as [`write_f64`] writes that `f64` (the
/// latency in milliseconds), from the integer.
pub(super) fn write_millis(out: &mut String, micros: u64) {
    /// Below this, `micros as f64 / 1e3` is written from its thousandths,
    /// which are `micros`.
    const EXACT_BELOW: u64 = 1_000_000_000_000;
    if micros >= EXACT_BELOW {
        #[allow(clippy::cast_precision_loss)] // as the event's field
        write_f64(out, micros as f64 / 1e3);
        return;
    }
    write_u64(out, micros / 1000);
    write_thousandths(out, micros % 1000);
}

/// Appends `.` and a fraction of thousandths (below 1000) without its
/// trailing zeros; nothing for none.
fn write_thousandths(out: &mut String, mut fraction: u64) {
    if fraction == 0 {
        return;
    }
    out.push('.');
    let mut width = 3;
    while fraction.is_multiple_of(10) {
        fraction /= 10;
        width -= 1;
    }
    let mut digits = [b'0'; 3];
    for at in (0..width).rev() {
        // A digit: the cast keeps 0..=9.
        digits[at] = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    push_digits(out, &digits[..width]);
}

/// RFC 3339 in UTC with microseconds (`2026-11-27T12:04:48.123456Z`); the
/// date and time of the second are formatted once per second per thread.
pub(super) fn write_timestamp(
    out: &mut String,
    clock: &mut Option<(u64, String)>,
    now: SystemTime,
) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let prefix = match clock {
        Some((at, prefix)) if *at == secs => prefix,
        _ => {
            let (year, month, day) = civil_from_days(secs / 86_400);
            let of_day = secs % 86_400;
            let prefix = format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
                of_day / 3600,
                of_day / 60 % 60,
                of_day % 60
            );
            &mut clock.insert((secs, prefix)).1
        }
    };
    out.push_str(prefix);
    out.push('.');
    let micros = since.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        // A digit: the cast keeps 0..=9.
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    push_digits(out, &digits);
    out.push('Z');
}

/// The calendar date of a day counted from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use proptest::prelude::*;

    use super::{
        civil_from_days, write_f64, write_i64, write_millis, write_str, write_timestamp, write_u64,
    };

    fn written(write: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        write(&mut out);
        out
    }

    #[test]
    fn integers_at_their_edges() {
        for value in [0, 1, 9, 10, 99, 100, 1_000_000, u64::MAX - 1, u64::MAX] {
            assert_eq!(written(|out| write_u64(out, value)), value.to_string());
        }
        for value in [i64::MIN, i64::MIN + 1, -10, -1, 0, 1, i64::MAX] {
            assert_eq!(written(|out| write_i64(out, value)), value.to_string());
        }
    }

    #[test]
    fn millis_at_their_edges() {
        for (micros, text) in [
            (0, "0"),
            (1, "0.001"),
            (10, "0.01"),
            (999, "0.999"),
            (1000, "1"),
            (1001, "1.001"),
            (1500, "1.5"),
            (999_999_999_999, "999999999.999"),
            (1_000_000_000_000, "1000000000"),
            (1_000_000_000_001, "1000000000.001"),
            (u64::MAX, "18446744073709550"),
        ] {
            assert_eq!(written(|out| write_millis(out, micros)), text, "{micros}");
        }
    }

    #[test]
    fn floats_at_their_edges() {
        for value in [
            0.0,
            -0.0,
            0.001,
            0.0005,
            0.1,
            0.12,
            1.0,
            1.5,
            -2.25,
            999_999_999.999,
            1e9,
            1e9 + 0.5,
            1e-7,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            0.1 + 0.2,
        ] {
            assert_eq!(written(|out| write_f64(out, value)), format!("{value}"));
        }
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(written(|out| write_f64(out, value)), "null");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// Any finite `f64`, by its bits: the text `Display` writes.
        #[test]
        fn any_float_as_display_writes_it(bits in any::<u64>()) {
            let value = f64::from_bits(bits);
            prop_assume!(value.is_finite());
            prop_assert_eq!(written(|out| write_f64(out, value)), format!("{value}"));
        }

        /// Latencies in milliseconds to the microsecond (the fast path),
        /// and around them.
        #[test]
        fn latencies_as_display_writes_them(micros in 0u64..2_000_000_000_000, nudge in -2i64..=2) {
            let value = micros as f64 / 1000.0;
            let value = f64::from_bits(value.to_bits().wrapping_add_signed(nudge));
            prop_assert_eq!(written(|out| write_f64(out, value)), format!("{value}"));
            prop_assert_eq!(written(|out| write_f64(out, -value)), format!("{}", -value));
        }

        /// A latency written from its microseconds is the text of the
        /// event's `f64` field, at any size, on either side of the integer
        /// path's end.
        #[test]
        fn millis_as_the_float_writes_them(micros in prop_oneof![
            0u64..10_000_000,
            0u64..2_000_000_000_000,
            999_999_999_990u64..1_000_000_000_010,
            any::<u64>(),
        ]) {
            #[allow(clippy::cast_precision_loss)]
            let value = micros as f64 / 1e3;
            prop_assert_eq!(written(|out| write_millis(out, micros)), written(|out| write_f64(out, value)));
            prop_assert_eq!(written(|out| write_millis(out, micros)), format!("{value}"));
        }

        #[test]
        fn any_integer_as_display_writes_it(value in any::<i64>()) {
            prop_assert_eq!(written(|out| write_i64(out, value)), value.to_string());
            prop_assert_eq!(written(|out| write_u64(out, value as u64)), (value as u64).to_string());
        }

        /// The eight-byte check says yes exactly when one byte is to be
        /// escaped: bytes drawn mostly from the edges (a quote, a backslash,
        /// the control bytes and their neighbours, bytes above 127).
        #[test]
        fn the_word_check_is_exact(bytes in proptest::array::uniform8(prop_oneof![
            Just(b'"'), Just(b'\\'), Just(0x1f), Just(0x20), Just(b'!'), Just(b'#'),
            Just(b'['), Just(b']'), Just(0x7f), Just(0x80), Just(0xff), 0u8..0x20, any::<u8>(),
        ])) {
            let naive = bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
            prop_assert_eq!(super::any_to_escape(u64::from_le_bytes(bytes)), naive);
        }

        /// Text dense in what must be escaped, at every offset from a
        /// word's start, reads back as itself.
        #[test]
        fn text_to_escape_reads_back(text in "[a\"\\\\\u{0}-\u{1f}é✓ ]{0,40}") {
            let out = written(|out| write_str(out, &text));
            let back: String = serde_json::from_str(&out).map_err(|err| TestCaseError::fail(format!("{out}: {err}")))?;
            prop_assert_eq!(back, text);
        }

        /// Any text reads back as itself.
        #[test]
        fn any_text_reads_back(text in any::<String>()) {
            let out = written(|out| write_str(out, &text));
            let back: String = serde_json::from_str(&out).map_err(|err| TestCaseError::fail(format!("{out}: {err}")))?;
            prop_assert_eq!(back, text);
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        for (secs, micros, want) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 7, "2000-02-29T00:00:00.000007Z"),
            (1_798_373_088, 123_456, "2026-12-27T12:04:48.123456Z"),
            (4_102_444_799, 999_999, "2099-12-31T23:59:59.999999Z"),
        ] {
            let mut clock = None;
            let mut out = String::new();
            let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            write_timestamp(&mut out, &mut clock, at);
            assert_eq!(out, want);
            // The cached prefix gives the same text within the second.
            out.clear();
            write_timestamp(&mut out, &mut clock, at);
            assert_eq!(out, want);
        }
        // Every day of four centuries against a slower count.
        let (mut year, mut month, mut day) = (1970, 1, 1);
        for days in 0..146_097 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let length = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ][month as usize - 1];
            day += 1;
            if day > length {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    #[test]
    fn strings_are_escaped_as_json() {
        for text in [
            "plain",
            "a \"quoted\" \\ path",
            "line\nbreak\ttab\r\u{1}\u{1f}",
            "ünïcode ✓",
            "",
        ] {
            let mut out = String::new();
            write_str(&mut out, text);
            let back: String =
                serde_json::from_str(&out).unwrap_or_else(|err| panic!("{out}: {err}"));
            assert_eq!(back, text);
        }
    }
}
