//! JSON media types.

/// Whether a `Content-Type` is JSON: `application/json`, or any
/// `application/…+json` (problem+json, `vnd.api+json`), whatever its
/// parameters and case.
pub(crate) fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

#[cfg(test)]
mod tests {
    use super::is_json_media_type;

    #[test]
    fn json_media_types() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/problem+json",
            "application/vnd.api+json",
            " application/merge-patch+JSON ;x=y",
        ] {
            assert!(is_json_media_type(json), "{json}");
        }
        for other in [
            "text/html",
            "application/jsonx",
            "application/+json",
            "text/json",
            "application/json-seq",
            "",
            "json",
        ] {
            assert!(!is_json_media_type(other), "{other}");
        }
    }
}
