//! `max_age`: how old a file may be, when first seen, to be sent. Older files
//! are recorded `skipped` (already handled: not sent), decided from their
//! modification time alone, never read. A duration (`30d`, `12h`: older than
//! that before now) or a moment (`2024-06-01`, midnight UTC, or an RFC 3339
//! time: only files modified after it are sent).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, Utc};

/// The fix for a malformed `max_age` (config problems and command-line errors).
pub const MAX_AGE_FIX: &str = "write a duration such as \"30d\", \"12h\" or \"2w\", \
     or a date such as \"2024-06-01\" or \"2024-06-01T12:00:00Z\" (only files modified \
     after it are sent)";

/// A parsed `max_age` (or `--only-newer-than`), shown as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxAge {
    cutoff: Cutoff,
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cutoff {
    /// Older than this before now.
    Age(Duration),
    /// Modified before this moment (Unix nanoseconds).
    Since(i64),
}

impl MaxAge {
    /// `30d`, `12h`, `90m`, `45s`, `2w`; `2024-06-01` (midnight UTC); an RFC 3339
    /// time. `Err` says what is wrong (see [`MAX_AGE_FIX`] for the fix).
    pub fn parse(text: &str) -> Result<MaxAge, String> {
        let t = text.trim();
        let cutoff = if let Ok(day) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            let midnight = day
                .and_hms_opt(0, 0, 0)
                .map(|d| d.and_utc())
                .ok_or_else(|| format!("`{t}` is not a date"))?;
            Cutoff::Since(unix_ns(midnight)?)
        } else if let Ok(at) = DateTime::parse_from_rfc3339(t) {
            Cutoff::Since(unix_ns(at.with_timezone(&Utc))?)
        } else if looks_like_a_date(t) {
            return Err(format!(
                "`{t}` is not a date (YYYY-MM-DD) or an RFC 3339 time (2024-06-01T12:00:00Z)"
            ));
        } else {
            Cutoff::Age(age(t)?)
        };
        Ok(MaxAge {
            cutoff,
            text: t.to_owned(),
        })
    }

    /// As written (`30d`, `2024-06-01`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The oldest modification time (Unix nanoseconds) still sent at `now`.
    pub fn cutoff_ns(&self, now: SystemTime) -> i64 {
        match self.cutoff {
            Cutoff::Since(ns) => ns,
            Cutoff::Age(age) => {
                let now = now
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
                now.saturating_sub(i64::try_from(age.as_nanos()).unwrap_or(i64::MAX))
            }
        }
    }

    /// Whether a file modified at `mtime_ns` is too old to send at `now`.
    pub fn skips(&self, mtime_ns: i64, now: SystemTime) -> bool {
        mtime_ns < self.cutoff_ns(now)
    }

    /// The reason recorded with a file it skips.
    pub fn reason(&self, mtime_ns: i64) -> String {
        let modified = DateTime::<Utc>::from_timestamp_nanos(mtime_ns).format("%Y-%m-%d");
        format!(
            "older than max_age {} (modified {modified}): not sent; `docsync retry PATH` sends it",
            self.text
        )
    }
}

impl std::fmt::Display for MaxAge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn unix_ns(at: DateTime<Utc>) -> Result<i64, String> {
    at.timestamp_nanos_opt()
        .ok_or_else(|| format!("{at} is out of range"))
}

/// `2024-...`: four digits and a dash, meant as a date.
fn looks_like_a_date(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-'
}

/// `30d` and the like: a whole number and a unit (s, m, h, d, w), more than zero.
fn age(t: &str) -> Result<Duration, String> {
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{t}` is neither a duration nor a date"))?;
    let scale: u64 = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "" => return Err(format!("`{t}` has no unit")),
        other => {
            return Err(format!(
                "`{other}` is not a unit of max_age (s, m, h, d, w)"
            ))
        }
    };
    match n.checked_mul(scale) {
        Some(0) => Err("max_age must be more than zero".into()),
        // at most 1000 years: a bigger one means "no limit", which is no max_age
        Some(secs) if secs <= 1000 * 365 * 86_400 => Ok(Duration::from_secs(secs)),
        _ => Err(format!("`{t}` is out of range")),
    }
}

#[cfg(test)]
mod tests;
