//! The progress bar of `run` and `sync`: shown on a terminal only, driven by the
//! daemon's [`Snapshot`]s. On anything else (a pipe, a log file, systemd) nothing
//! is drawn.
//!
//! `⠋ 3/10 files [#####>      ] 1.20 MiB/4.00 MiB 512.00 KiB/s ETA 6s 2 uploading, 5 pending`:
//! files decided of those known, bytes uploaded of those to upload, the upload
//! rate and what is left at that rate, then the files by state.

use std::io::IsTerminal;

use docsync::engine::Snapshot;
use docsync::store::State;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::logging::Logs;

/// A progress bar task; [`Progress::finish`] clears it.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    task: Option<JoinHandle<()>>,
    logs: Logs,
}

impl Progress {
    /// Follow `rx` with a bar on stderr if stderr is a terminal; do nothing otherwise.
    pub fn start(mut rx: watch::Receiver<Snapshot>, logs: &Logs) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                task: None,
                logs: logs.clone(),
            };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} {prefix} files [{bar:20}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}  {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        logs.set_bar(Some(bar.clone()));
        let task_bar = bar.clone();
        let task = tokio::spawn(async move {
            loop {
                let snapshot = rx.borrow_and_update().clone();
                draw(&task_bar, &snapshot);
                if rx.changed().await.is_err() {
                    break;
                }
            }
        });
        Progress {
            bar: Some(bar),
            task: Some(task),
            logs: logs.clone(),
        }
    }

    /// Remove the bar (before printing a summary).
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(bar) = self.bar.take() {
            self.logs.set_bar(None);
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

fn count(s: &Snapshot, state: State) -> u64 {
    s.counts.get(&state).copied().unwrap_or(0)
}

fn draw(bar: &ProgressBar, s: &Snapshot) {
    let done = [
        State::Approved,
        State::Rejected,
        State::Invalid,
        State::Failed,
        State::Duplicate,
        // already handled, never sent: nothing left to do
        State::Skipped,
    ];
    let live: u64 = State::ALL
        .iter()
        .filter(|st| st.is_live())
        .map(|st| count(s, *st))
        .sum();
    let decided: u64 = done.iter().map(|st| count(s, *st)).sum();
    bar.set_prefix(format!("{decided}/{live}"));
    // bytes: uploaded by this run, of those plus the ones still to upload (the
    // rate and ETA follow them)
    bar.set_length(s.bytes_sent.saturating_add(s.bytes_left));
    bar.set_position(s.bytes_sent);
    // only the states that have files, so the line fits a terminal
    let parts: Vec<String> = [
        (
            "waiting",
            count(s, State::Discovered) + count(s, State::Stable),
        ),
        ("uploading", count(s, State::Uploading)),
        ("pending", count(s, State::Pending)),
        ("retrying", count(s, State::Retrying)),
        ("approved", count(s, State::Approved)),
        ("rejected", count(s, State::Rejected)),
        ("invalid", count(s, State::Invalid)),
        ("failed", count(s, State::Failed)),
        ("duplicate", count(s, State::Duplicate)),
        ("skipped", count(s, State::Skipped)),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{n} {what}"))
    .collect();
    bar.set_message(parts.join(", "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_files_count_as_done() {
        let bar = ProgressBar::hidden();
        let mut s = Snapshot::default();
        s.counts.insert(State::Approved, 1);
        s.counts.insert(State::Skipped, 2);
        s.counts.insert(State::Pending, 1);
        s.counts.insert(State::Superseded, 5);
        draw(&bar, &s);
        assert_eq!(bar.prefix(), "3/4");
        assert_eq!(bar.message(), "1 pending, 1 approved, 2 skipped");
    }
}
