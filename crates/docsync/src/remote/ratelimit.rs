//! A request-rate limit shared by every request the daemon sends
//! (`max_requests_per_second`).
//!
//! Requests leave one at a time, at least `1 / rate` apart, measured when each
//! one actually leaves (not when it booked a turn): a caller that was stalled
//! before its turn does not make up for it with a burst, so any window of one
//! second holds at most `rate + 1` requests. Callers queue on a fair (FIFO)
//! lock, so they go in the order they asked. A cancelled wait gives up its
//! place and leaves the budget untouched.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// A shared requests-per-second limit. Clones share the same budget.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    interval: Duration,
    /// When the last request left.
    last: Arc<tokio::sync::Mutex<Option<Instant>>>,
}

impl RateLimiter {
    /// At most `per_second` requests per second; `None` for a rate that is not
    /// a positive finite number.
    pub fn per_second(per_second: f64) -> Option<RateLimiter> {
        if !per_second.is_finite() || per_second <= 0.0 {
            return None;
        }
        let interval = Duration::try_from_secs_f64(1.0 / per_second).ok()?;
        Some(RateLimiter {
            interval,
            last: Arc::default(),
        })
    }

    /// The spacing between two requests.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Wait until the next request may be sent.
    pub async fn acquire(&self) {
        let mut last = self.last.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep_until(at + self.interval).await;
        }
        *last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn only_positive_finite_rates() {
        assert!(RateLimiter::per_second(0.0).is_none());
        assert!(RateLimiter::per_second(-1.0).is_none());
        assert!(RateLimiter::per_second(f64::NAN).is_none());
        assert!(RateLimiter::per_second(f64::INFINITY).is_none());
        assert_eq!(
            RateLimiter::per_second(4.0).map(|l| l.interval()),
            Some(Duration::from_millis(250))
        );
    }

    /// 100 requests from 10 concurrent tasks at 20/s: evenly spaced, never
    /// more than 21 in any second, done in about 5 s (virtual time).
    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_budget() {
        let limiter = RateLimiter::per_second(20.0).unwrap_or_else(|| unreachable!());
        let start = Instant::now();
        let times = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (limiter, times) = (limiter.clone(), times.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    limiter.acquire().await;
                    if let Ok(mut t) = times.lock() {
                        t.push(Instant::now() - start);
                    }
                }
            }));
        }
        for task in tasks {
            assert!(task.await.is_ok());
        }
        let mut times = times.lock().map(|t| t.clone()).unwrap_or_default();
        times.sort();
        assert_eq!(times.len(), 100);
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(in_window <= 21, "{in_window} requests within 1s of {t:?}");
        }
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(50), "{pair:?}");
        }
        let last = times.last().copied().unwrap_or_default();
        assert!(
            last >= Duration::from_millis(4950) && last <= Duration::from_millis(5050),
            "{last:?}"
        );
    }

    /// An idle limiter does not bank credit: after a pause the next request
    /// goes at once, the one after waits a full interval.
    #[tokio::test(start_paused = true)]
    async fn idle_time_is_not_banked() {
        let limiter = RateLimiter::per_second(2.0).unwrap_or_else(|| unreachable!());
        limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let before = Instant::now();
        limiter.acquire().await;
        assert_eq!(Instant::now(), before);
        limiter.acquire().await;
        assert_eq!(Instant::now() - before, Duration::from_millis(500));
    }
}
