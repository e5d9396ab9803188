//! Figure 1c: `docsync sync --once` over 1,000 x 4 KiB files already in the
//! folder (written before the daemon starts, older than its quiet window): the
//! time from its start to every row `pending`, against the bare uploader on the
//! same number of files in the same run. Files that held still before the
//! daemon looked need no quiet window of their own.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use docsync_bench::fixtures;
use docsync_bench::report::{summary, Row, Verdict};
use docsync_bench::stats::Summary;
use docsync_bench::workdir::{Settings, Workdir};

use super::burst::{bare_upload, Timed, CONCURRENCY};
use super::{wait_pending, Bench, Figure};

const FILES: (usize, usize) = (1_000, 4 * 1024);
/// The daemon's quiet window (its default).
const QUIET: Duration = Duration::from_secs(1);

async fn daemon(
    bench: &Bench,
    dir: &std::path::Path,
    sandbox: &docsync_bench::process::SandboxProcess,
) -> Result<f64> {
    let w = Workdir::create(
        &dir.join("daemon"),
        &Settings {
            concurrency: CONCURRENCY,
            ..Settings::default()
        },
    )?;
    let files = fixtures::plan(&w.inbox, "o", FILES.0, FILES.1);
    fixtures::create(&files)?;
    // written "minutes ago" as far as the daemon can tell: older than its window
    std::thread::sleep(QUIET + Duration::from_millis(100));
    sandbox.clear_requests().await?;
    let started = Instant::now();
    let _sync = docsync_bench::process::DaemonProcess::spawn(
        &bench.bins.docsync,
        &w.dir,
        sandbox,
        &[
            "sync",
            "--once",
            "--config",
            "docsync.toml",
            "--timeout",
            "600s",
        ],
    )?;
    wait_for_db(&w)?;
    wait_pending(
        &w,
        files.len() as u64,
        Duration::from_secs(300),
        Duration::from_millis(5),
    )?;
    Ok(started.elapsed().as_secs_f64())
}

/// Until the run's database exists (it is created at start).
fn wait_for_db(w: &Workdir) -> Result<()> {
    docsync_bench::process::wait_for(
        "the database of sync --once",
        Duration::from_secs(30),
        Duration::from_millis(2),
        || Ok(w.db().is_file()),
    )
}

pub async fn run(bench: &Bench) -> Result<Figure> {
    let (mut b, mut d): (Vec<Timed>, Vec<f64>) = (Vec::new(), Vec::new());
    for run in 0..bench.runs {
        let dir = bench.run_dir("sync-once", run)?;
        let sandbox = bench.sandbox(&dir, 3600.0)?;
        let files = fixtures::plan(&dir.join("bare"), "q", FILES.0, FILES.1);
        fixtures::create(&files)?;
        b.push(bare_upload(bench, &files, &dir, &sandbox).await?);
        d.push(daemon(bench, &dir, &sandbox).await?);
        eprintln!(
            "  sync --once run {}: bare {:.2}s, docsync {:.2}s",
            run + 1,
            b[run].secs,
            d[run]
        );
        drop(sandbox);
    }
    let ratio: Vec<f64> = b.iter().zip(&d).map(|(b, d)| b.secs / d).collect();
    let ratio = Summary::of(&ratio).context("no sync --once runs")?;
    let secs = Summary::of(&d).context("no sync --once runs")?;
    let n = FILES.0 as f64;
    let mut fig = Figure::default();
    fig.rows.push(Row {
        figure: format!(
            "1c. sync --once: {} x {} KiB already present (start -> all pending)",
            FILES.0,
            FILES.1 / 1024
        ),
        value: format!(
            "{}; {}",
            summary(&secs, "s", 2),
            summary(&secs.map(|t| n / t), "files/s", 0)
        ),
        runs: bench.runs,
        versus: format!("{} bare", summary(&ratio, "x", 2)),
        target: ">= 0.8x bare".into(),
        verdict: Verdict::from_check(ratio.median >= 0.8),
    });
    Ok(fig)
}
