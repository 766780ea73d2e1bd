//! Stable codes for validation failures: garde's messages, with the rule
//! that failed.

use std::borrow::Cow;
use std::fmt::Display;

use garde::i18n::{
    DefaultI18n, I18n, InvalidCreditCard, InvalidEmail, InvalidPhoneNumber, InvalidUrl, IpKind,
};

/// Separates a code from its message inside a garde error's text.
const MARK: char = '\u{1f}';

/// garde's English messages, each tagged with its rule's code.
pub(super) struct Coded;

fn tag(code: &str, message: Cow<'static, str>) -> Cow<'static, str> {
    Cow::Owned(format!("{code}{MARK}{message}"))
}

/// A garde error's code and message: the rule's code for a built-in rule,
/// `custom` for a custom one.
pub(super) fn split(text: &str) -> (&str, &str) {
    text.split_once(MARK).unwrap_or(("custom", text))
}

impl I18n for Coded {
    fn length_lower_than(&self, min: usize) -> Cow<'static, str> {
        tag("length", DefaultI18n.length_lower_than(min))
    }

    fn length_greater_than(&self, max: usize) -> Cow<'static, str> {
        tag("length", DefaultI18n.length_greater_than(max))
    }

    fn range_lower_than(&self, min: &dyn Display) -> Cow<'static, str> {
        tag("range", DefaultI18n.range_lower_than(min))
    }

    fn range_greater_than(&self, max: &dyn Display) -> Cow<'static, str> {
        tag("range", DefaultI18n.range_greater_than(max))
    }

    fn credit_card_invalid(&self, reason: InvalidCreditCard) -> Cow<'static, str> {
        tag("credit_card", DefaultI18n.credit_card_invalid(reason))
    }

    fn pattern_no_match(&self, pattern: &dyn Display) -> Cow<'static, str> {
        tag("pattern", DefaultI18n.pattern_no_match(pattern))
    }

    fn contains_missing(&self, pattern: &dyn Display) -> Cow<'static, str> {
        tag("contains", DefaultI18n.contains_missing(pattern))
    }

    fn url_invalid(&self, reason: InvalidUrl) -> Cow<'static, str> {
        tag("url", DefaultI18n.url_invalid(reason))
    }

    fn prefix_missing(&self, pattern: &dyn Display) -> Cow<'static, str> {
        tag("prefix", DefaultI18n.prefix_missing(pattern))
    }

    fn suffix_missing(&self, pattern: &dyn Display) -> Cow<'static, str> {
        tag("suffix", DefaultI18n.suffix_missing(pattern))
    }

    fn phone_number_invalid(&self, reason: InvalidPhoneNumber) -> Cow<'static, str> {
        tag("phone_number", DefaultI18n.phone_number_invalid(reason))
    }

    fn ip_invalid(&self, kind: IpKind) -> Cow<'static, str> {
        tag("ip", DefaultI18n.ip_invalid(kind))
    }

    fn matches_field_mismatch(&self, field: &dyn Display) -> Cow<'static, str> {
        tag("matches", DefaultI18n.matches_field_mismatch(field))
    }

    fn email_invalid(&self, reason: InvalidEmail) -> Cow<'static, str> {
        tag("email", DefaultI18n.email_invalid(reason))
    }

    fn ascii_invalid(&self) -> Cow<'static, str> {
        tag("ascii", DefaultI18n.ascii_invalid())
    }

    fn alphanumeric_invalid(&self) -> Cow<'static, str> {
        tag("alphanumeric", DefaultI18n.alphanumeric_invalid())
    }

    fn required_not_set(&self) -> Cow<'static, str> {
        tag("required", DefaultI18n.required_not_set())
    }
}
