//! Deadlines from durations that may be as long as `Duration::MAX`, for
//! timeouts read from settings.

use std::time::Duration;

use tokio::time::Instant;

/// `from + after`, or a moment some thirty years on when that is past what
/// an `Instant` holds: a timeout of `Duration::MAX` means no timeout.
pub fn deadline(from: Instant, after: Duration) -> Instant {
    from.checked_add(after)
        .unwrap_or_else(|| from + Duration::from_secs(86_400 * 365 * 30))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    #[test]
    fn the_longest_duration_is_a_far_deadline() {
        let now = Instant::now();
        assert_eq!(
            super::deadline(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(super::deadline(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
    }
}
