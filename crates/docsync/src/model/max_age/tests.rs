use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn durations_count_back_from_now() {
    let now = at(100 * 86_400);
    let m = MaxAge::parse("30d").unwrap();
    assert_eq!(m.as_str(), "30d");
    assert_eq!(m.cutoff_ns(now), 70 * DAY_NS);
    assert!(m.skips(70 * DAY_NS - 1, now));
    assert!(!m.skips(70 * DAY_NS, now));
    for (text, secs) in [
        ("12h", 43_200),
        ("2w", 14 * 86_400),
        ("90m", 5400),
        ("45s", 45),
    ] {
        let m = MaxAge::parse(text).unwrap();
        let want = (100 * 86_400 - secs) * 1_000_000_000_i64;
        assert_eq!(m.cutoff_ns(now), want, "{text}");
    }
}

#[test]
fn dates_are_fixed_moments() {
    let day = MaxAge::parse("2024-01-02").unwrap();
    // 2024-01-02T00:00:00Z
    let cutoff = 1_704_153_600 * 1_000_000_000;
    assert_eq!(day.cutoff_ns(at(0)), cutoff);
    assert_eq!(day.cutoff_ns(at(2_000_000_000)), cutoff);
    let exact = MaxAge::parse("2024-01-02T01:00:00+01:00").unwrap();
    assert_eq!(exact.cutoff_ns(at(0)), cutoff);
    assert!(exact.skips(cutoff - 1, at(0)));
    assert!(!exact.skips(cutoff, at(0)));
}

#[test]
fn the_reason_says_what_and_how_to_send_it() {
    let m = MaxAge::parse("30d").unwrap();
    assert_eq!(
        m.reason(1_704_153_600 * 1_000_000_000),
        "older than max_age 30d (modified 2024-01-02): not sent; `docsync retry PATH` sends it"
    );
}

#[test]
fn bad_values_say_why() {
    for (text, want) in [
        ("30", "has no unit"),
        ("30y", "not a unit"),
        ("0d", "more than zero"),
        ("soon", "neither a duration nor a date"),
        ("2024-13-01", "is not a date (YYYY-MM-DD)"),
        ("2024-06-01T25:00:00Z", "is not a date"),
        ("99999999999999w", "out of range"),
        ("", "neither"),
    ] {
        let err = MaxAge::parse(text).unwrap_err();
        assert!(err.contains(want), "{text}: {err}");
    }
}
