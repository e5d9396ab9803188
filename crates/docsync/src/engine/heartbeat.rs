//! The stages' heartbeats: each long-lived loop says it is alive, so a watchdog
//! (systemd's `WATCHDOG=1`, see the binary's `cli/systemd.rs`) is fed only while
//! every loop is.
//!
//! A loop beats at the top of every turn, and an idle loop wakes every
//! `every` to beat ([`Beat::idle`], [`Beat::idle_while`]), so a loop that waits
//! for work is alive and a loop stuck inside a step (a store call that never
//! answers, a scan that never ends) stops beating. [`Heartbeats::stale`] names the
//! loops whose last beat is too old. Without a watchdog `every` is `None`: loops
//! beat only as they turn, and never wake for it.
//!
//! What counts as alive: the intake (scans, the store), the upload stage's own
//! loop (it reads the store and hands each file to a task of its own) and the
//! engine's loop beat only between steps, so a store that stops answering or a
//! scan that hangs stops them. The poll and settle stages beat while they wait
//! on the API too: every request has its timeouts and its retries their bound,
//! and an API that asks for long waits (`Retry-After`) is no reason to restart.
//! A thread blocked outright (a deadlock) stops every beat of its task.
//!
//! Also here: when the folders were last scanned ([`LastScan`]), which the
//! intake records and the engine publishes.

use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Every loop's heartbeat. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Heartbeats {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    start: Instant,
    every: Option<Duration>,
    beats: Mutex<Vec<(&'static str, Arc<AtomicU64>)>>,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Heartbeats::new(None)
    }
}

impl Heartbeats {
    /// Idle loops beat every `every` (`None`: only when they turn).
    pub fn new(every: Option<Duration>) -> Heartbeats {
        Heartbeats {
            inner: Arc::new(Inner {
                start: Instant::now(),
                every,
                beats: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The heartbeat of the loop `name`, beating from now on.
    pub fn register(&self, name: &'static str) -> Beat {
        let last = Arc::new(AtomicU64::new(self.elapsed_ms()));
        if let Ok(mut beats) = self.inner.beats.lock() {
            beats.push((name, last.clone()));
        }
        Beat {
            beats: self.clone(),
            last,
        }
    }

    /// The loops that have not beaten within `within`, in the order they were
    /// registered (a loop registered twice is named twice).
    pub fn stale(&self, within: Duration) -> Vec<&'static str> {
        let now = self.elapsed_ms();
        let within = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
        self.inner
            .beats
            .lock()
            .map(|beats| {
                beats
                    .iter()
                    .filter(|(_, last)| now.saturating_sub(last.load(Ordering::Relaxed)) > within)
                    .map(|(name, _)| *name)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How often an idle loop beats.
    pub fn every(&self) -> Option<Duration> {
        self.inner.every
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.inner.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One loop's heartbeat (see [`Heartbeats::register`]).
#[derive(Debug)]
pub struct Beat {
    beats: Heartbeats,
    last: Arc<AtomicU64>,
}

impl Beat {
    /// The loop is alive now.
    pub fn beat(&self) {
        self.last.store(self.beats.elapsed_ms(), Ordering::Relaxed);
    }

    /// Wait for the next idle beat (then beat): every `every`, never without one.
    /// A `select!` branch of a loop's wait, so an idle loop turns and beats.
    pub async fn idle(&self) {
        match self.beats.every() {
            Some(every) => {
                tokio::time::sleep(every).await;
                self.beat();
            }
            None => std::future::pending().await,
        }
    }

    /// Wait for `wait` (a wait for work, never the work itself), beating
    /// meanwhile.
    pub async fn idle_while<F: Future>(&self, wait: F) -> F::Output {
        tokio::pin!(wait);
        loop {
            tokio::select! {
                out = &mut wait => {
                    self.beat();
                    return out;
                }
                _ = self.idle() => {}
            }
        }
    }
}

/// When a folder scan last finished (Unix ms; 0 before the first).
#[derive(Debug, Default)]
pub struct LastScan(AtomicI64);

impl LastScan {
    /// A scan finished at `at_ms`.
    pub fn mark(&self, at_ms: i64) {
        self.0.fetch_max(at_ms, Ordering::Relaxed);
    }

    /// When the last scan finished, if one did.
    pub fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&ms| ms > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop that waits for work beats; one stuck inside a step does not, and
    /// is named.
    #[tokio::test(start_paused = true)]
    async fn a_wedged_loop_is_stale_and_an_idle_one_is_not() {
        let beats = Heartbeats::new(Some(Duration::from_secs(5)));
        let idle = beats.register("poll");
        let wedged = beats.register("upload");
        let never = tokio::spawn(async move {
            // waits for work that never comes: beats every 5 s meanwhile
            idle.idle_while(std::future::pending::<()>()).await;
        });
        let stuck = tokio::spawn(async move {
            wedged.beat();
            // a step that never returns: no beat
            std::future::pending::<()>().await;
        });
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(beats.stale(Duration::from_secs(10)).is_empty());
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(beats.stale(Duration::from_secs(10)), vec!["upload"]);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(beats.stale(Duration::from_secs(10)), vec!["upload"]);
        never.abort();
        stuck.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_watchdog_an_idle_loop_never_wakes_to_beat() {
        let beats = Heartbeats::new(None);
        let beat = beats.register("settle");
        let waited = tokio::time::timeout(Duration::from_secs(3600), beat.idle()).await;
        assert!(waited.is_err(), "idle() returned without a watchdog");
    }

    #[test]
    fn last_scan_keeps_the_latest() {
        let scan = LastScan::default();
        assert_eq!(scan.get(), None);
        scan.mark(2_000);
        scan.mark(1_000);
        assert_eq!(scan.get(), Some(2_000));
    }
}
