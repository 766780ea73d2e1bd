//! Rate limiting: GCRA decisions, per-key independence, bounded memory.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use pattern_error::Kind;
use pattern_network::flow::rate::{KeyedLimiter, Limiter, Quota};

fn per_second(n: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(n).unwrap())
}

#[test]
fn direct_limiter_allows_the_burst_then_says_when() {
    let clock = FakeRelativeClock::default();
    let limiter = Limiter::with_clock(
        per_second(10).allow_burst(NonZeroU32::new(3).unwrap()),
        clock.clone(),
    );
    for _ in 0..3 {
        limiter.check().unwrap();
    }
    let refused = limiter.check().unwrap_err();
    assert_eq!(refused.retry_after(), Duration::from_millis(100));
    let err: pattern_error::Error = refused.into();
    assert_eq!(err.kind(), Kind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_millis(100)));
    clock.advance(Duration::from_millis(100));
    limiter.check().unwrap();
    limiter.check().unwrap_err();
}

#[test]
fn keys_are_limited_independently() {
    let clock = FakeRelativeClock::default();
    let limiter = KeyedLimiter::with_clock(per_second(1), 100, clock.clone());
    limiter.check(&"a").unwrap();
    let refused = limiter.check(&"a").unwrap_err();
    assert_eq!(refused.retry_after(), Duration::from_secs(1));
    limiter.check(&"b").unwrap();
    clock.advance(Duration::from_secs(1));
    limiter.check(&"a").unwrap();
}

#[test]
fn an_active_key_survives_a_flood_of_idle_ones() {
    let clock = FakeRelativeClock::default();
    let limiter = KeyedLimiter::with_clock(per_second(1), 64, clock.clone());
    for k in 0..64u32 {
        limiter.check(&k).unwrap();
    }
    // Every key has replenished: all idle.
    clock.advance(Duration::from_secs(2));
    limiter.check(&7).unwrap(); // key 7 uses its quota again: active
    for (i, k) in (1000..1500u32).enumerate() {
        // New keys, one call each, spaced so earlier newcomers go idle.
        limiter.check(&k).unwrap();
        clock.advance(Duration::from_millis(10));
        if i < 63 {
            // Key 7 is inside its period (1 s) and some of the 63 idle keys
            // are still tracked: those go first, so key 7 is still refused.
            // (Once only active keys are left, the newcomers, each active
            // for 1 s, the one closest to replenished goes, key 7 included.)
            assert!(
                limiter.check(&7).is_err(),
                "key 7 forgotten after {i} newcomers"
            );
        }
    }
    assert!(limiter.len() <= 64);
    assert!(limiter.evicted() >= 436, "{} evicted", limiter.evicted());
}

#[test]
fn a_million_distinct_keys_keep_memory_bounded() {
    let limiter = KeyedLimiter::new(per_second(5), 10_000);
    let info = allocation_counter::measure(|| {
        for k in 0..1_000_000u64 {
            let _ = limiter.check(&k);
        }
    });
    assert!(limiter.len() <= 10_000, "{} keys", limiter.len());
    assert_eq!(limiter.len(), 10_000, "the store is full, not emptied");
    // 10 000 keys of 8 bytes, in a slot vector and an index: well under a
    // megabyte once full, whatever the number of keys seen.
    assert!(
        info.bytes_max < 2 * 1024 * 1024,
        "peak {} bytes while tracking at most 10 000 keys",
        info.bytes_max
    );
    assert!(info.bytes_current < 2 * 1024 * 1024);
    eprintln!(
        "1M distinct keys: {} tracked, {} evicted, peak heap growth {} bytes",
        limiter.len(),
        limiter.evicted(),
        info.bytes_max
    );
}
