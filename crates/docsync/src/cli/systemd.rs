//! systemd's notification protocol, for `Type=notify` units: only when systemd
//! set `NOTIFY_SOCKET`; nothing at all otherwise.
//!
//! - `READY=1` once the first scan has recorded what the folders held;
//! - `STATUS=3 uploading, 12 pending, 240 approved, 2 rejected; last scan 10:02`,
//!   sent again whenever it changes (`systemctl status docsync` shows it);
//! - `WATCHDOG=1` every half `WatchdogSec` (systemd's `WATCHDOG_USEC`), but only
//!   while every loop of the engine beats ([`Heartbeats`]): a wedged loop stops
//!   the pings, and systemd restarts the daemon;
//! - `STOPPING=1` when a stop begins (a signal) or the run ends.
//!
//! Messages go through the `sd-notify` crate, which also reads the watchdog
//! settings (it takes them only when `WATCHDOG_PID` is this process, as
//! `sd_watchdog_enabled(3)` says).

use std::time::Duration;

use docsync::engine::{Heartbeats, Snapshot};
use docsync::store::State;
use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where notifications go.
trait Sink: Send + 'static {
    fn send(&mut self, states: &[NotifyState<'_>]);
}

/// `$NOTIFY_SOCKET`.
struct Socket {
    warned: bool,
}

impl Sink for Socket {
    fn send(&mut self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(false, states) {
            // once: a socket that went away would otherwise log every ping
            if !self.warned {
                tracing::warn!(error = %e, "telling systemd how docsync is doing failed");
                self.warned = true;
            }
        }
    }
}

/// The service manager, when docsync runs under one.
#[derive(Debug)]
pub struct Systemd {
    /// `WatchdogSec`, when systemd watches this process.
    watchdog: Option<Duration>,
}

impl Systemd {
    /// `Some` when `NOTIFY_SOCKET` is set.
    pub fn from_env() -> Option<Systemd> {
        std::env::var_os("NOTIFY_SOCKET")?;
        let mut usec = 0;
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec)
            .then(|| Duration::from_micros(usec))
            .filter(|w| !w.is_zero());
        Some(Systemd { watchdog })
    }

    /// The heartbeats the engine's loops should beat on: idle loops wake every
    /// quarter `WatchdogSec` to beat, so a ping every half finds them fresh.
    pub fn heartbeats(&self) -> Heartbeats {
        Heartbeats::new(self.watchdog.map(|w| w / 4))
    }

    /// Follow `progress` and `beats` until `done` is cancelled; then `STOPPING=1`.
    pub fn start(
        self,
        progress: watch::Receiver<Snapshot>,
        beats: Heartbeats,
        done: CancellationToken,
    ) -> JoinHandle<()> {
        tracing::debug!(watchdog = ?self.watchdog, "notifying systemd");
        let notifier = Notifier {
            progress,
            beats,
            watchdog: self.watchdog,
            done,
        };
        tokio::spawn(notifier.run(Socket { warned: false }))
    }
}

struct Notifier {
    progress: watch::Receiver<Snapshot>,
    beats: Heartbeats,
    watchdog: Option<Duration>,
    done: CancellationToken,
}

impl Notifier {
    async fn run(mut self, mut sink: impl Sink) {
        let mut ready = false;
        let mut status = String::new();
        let mut open = true;
        let mut ping = self.watchdog.map(|w| {
            let mut tick = tokio::time::interval(w / 2);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        });
        let mut stale_before: Vec<&'static str> = Vec::new();
        loop {
            tokio::select! {
                _ = self.done.cancelled() => break,
                changed = self.progress.changed(), if open => {
                    if changed.is_err() {
                        open = false;
                        continue;
                    }
                    let snapshot = self.progress.borrow_and_update().clone();
                    let line = status_line(&snapshot);
                    if !ready && snapshot.scanned_at.is_some() {
                        ready = true;
                        sink.send(&[NotifyState::Ready, NotifyState::Status(&line)]);
                        status = line;
                    } else if ready && line != status {
                        sink.send(&[NotifyState::Status(&line)]);
                        status = line;
                    }
                }
                _ = tick(&mut ping) => {
                    let within = self.watchdog.unwrap_or_default() / 2;
                    let stale = self.beats.stale(within);
                    if stale.is_empty() {
                        sink.send(&[NotifyState::Watchdog]);
                    } else if stale != stale_before {
                        tracing::error!(
                            loops = %stale.join(", "),
                            within_secs = within.as_secs_f64(),
                            "not alive: no watchdog ping to systemd, which restarts docsync after WatchdogSec"
                        );
                    }
                    stale_before = stale;
                }
            }
        }
        sink.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

async fn tick(ping: &mut Option<tokio::time::Interval>) {
    match ping {
        Some(ping) => {
            ping.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// `3 uploading, 12 pending, 240 approved, 2 rejected; last scan 10:02` (states
/// with no files left out; the scan in local time).
pub fn status_line(s: &Snapshot) -> String {
    let parts: Vec<String> = State::ALL
        .iter()
        .filter(|st| st.is_live())
        .filter_map(|st| match s.counts.get(st) {
            Some(&n) if n > 0 => Some(format!("{n} {st}")),
            _ => None,
        })
        .collect();
    let files = if parts.is_empty() {
        "no files".to_owned()
    } else {
        parts.join(", ")
    };
    let scan = s
        .scanned_at
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string());
    match scan {
        Some(at) => format!("{files}; last scan {at}"),
        None => format!("{files}; scanning"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<String>>>);

    impl Sink for Recorded {
        fn send(&mut self, states: &[NotifyState<'_>]) {
            let msg: Vec<String> = states.iter().map(ToString::to_string).collect();
            self.0.lock().unwrap().push(msg.join("\n"));
        }
    }

    impl Recorded {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn start(
        watchdog: Duration,
    ) -> (
        watch::Sender<Snapshot>,
        Heartbeats,
        CancellationToken,
        Recorded,
        JoinHandle<()>,
    ) {
        let (tx, rx) = watch::channel(Snapshot::default());
        let beats = Heartbeats::new(Some(watchdog / 4));
        let done = CancellationToken::new();
        let sink = Recorded::default();
        let notifier = Notifier {
            progress: rx,
            beats: beats.clone(),
            watchdog: Some(watchdog),
            done: done.clone(),
        };
        let task = tokio::spawn(notifier.run(sink.clone()));
        (tx, beats, done, sink, task)
    }

    /// Pings while every loop beats; none once one loop is stuck; pings again
    /// when it recovers.
    #[tokio::test(start_paused = true)]
    async fn a_wedged_loop_stops_the_watchdog_pings() {
        let watchdog = Duration::from_secs(20);
        let (_tx, beats, done, sink, task) = start(watchdog);
        let alive = beats.register("poll");
        let wedged = beats.register("upload");
        let idle = tokio::spawn(async move {
            alive.idle_while(std::future::pending::<()>()).await;
        });
        // both beat for a while
        for _ in 0..4 {
            wedged.beat();
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let pings = sink.take();
        assert!(pings.len() >= 2, "{pings:?}");
        assert!(pings.iter().all(|p| p == "WATCHDOG=1"), "{pings:?}");
        // upload stops beating: after at most half the watchdog, no more pings
        tokio::time::sleep(watchdog / 2).await;
        sink.take();
        tokio::time::sleep(watchdog * 3).await;
        assert_eq!(sink.take(), Vec::<String>::new());
        // it recovers
        wedged.beat();
        tokio::time::sleep(watchdog / 2 + Duration::from_secs(1)).await;
        assert!(sink.take().contains(&"WATCHDOG=1".to_owned()));
        done.cancel();
        task.await.unwrap();
        assert_eq!(sink.take(), vec!["STOPPING=1\nSTATUS=stopping".to_owned()]);
        idle.abort();
    }

    /// READY=1 only once the first scan is recorded, with the status; the
    /// status again only when it changes.
    #[tokio::test(start_paused = true)]
    async fn ready_after_the_first_scan_then_status_on_change() {
        let (tx, _beats, done, sink, task) = start(Duration::from_secs(3600));
        let counts = |pairs: &[(State, u64)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        tx.send_replace(Snapshot {
            counts: counts(&[(State::Discovered, 2)]),
            ..Snapshot::default()
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(sink.take().iter().all(|m| m == "WATCHDOG=1"));
        let scanned = Snapshot {
            counts: counts(&[(State::Discovered, 2)]),
            scanned_at: Some(1_000),
            ..Snapshot::default()
        };
        tx.send_replace(scanned.clone());
        tokio::time::sleep(Duration::from_millis(10)).await;
        let line = status_line(&scanned);
        assert!(line.starts_with("2 discovered; last scan "), "{line}");
        assert_eq!(sink.take(), vec![format!("READY=1\nSTATUS={line}")]);
        tx.send_replace(scanned.clone());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(sink.take(), Vec::<String>::new());
        let later = Snapshot {
            counts: counts(&[(State::Uploading, 1), (State::Approved, 1)]),
            ..scanned
        };
        tx.send_replace(later.clone());
        tokio::time::sleep(Duration::from_millis(10)).await;
        let line = status_line(&later);
        assert!(
            line.starts_with("1 uploading, 1 approved; last scan "),
            "{line}"
        );
        assert_eq!(sink.take(), vec![format!("STATUS={line}")]);
        done.cancel();
        task.await.unwrap();
    }
}
