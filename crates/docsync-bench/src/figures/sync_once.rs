//! Figure 1c: `docsync sync --once` over 1,000 x 4 KiB files already in the
//! folder (written before the daemon starts, older than its quiet window): the
//! time from its start to every row `pending`, against the bare uploader on the
//! same number of files in the same run. Files that held still before the
//! daemon looked need no quiet window of their own. Row 1i: the CPU each
//! party spent per file.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use docsync_bench::fixtures;
use docsync_bench::process::CpuMeter;
use docsync_bench::report::{summary, Row, Verdict};
use docsync_bench::stats::Summary;
use docsync_bench::workdir::{Settings, Workdir};

use super::burst::{bare_upload, Timed, CONCURRENCY};
use super::{wait_pending, Bench, Figure};

const FILES: (usize, usize) = (1_000, 4 * 1024);
/// The daemon's quiet window (its default).
const QUIET: Duration = Duration::from_secs(1);

/// One run of the daemon, timed as the burst times its uploaders: until every
/// row is pending, with the daemon's CPU (from its start) as the uploader's.
async fn daemon(
    bench: &Bench,
    dir: &std::path::Path,
    sandbox: &docsync_bench::process::SandboxProcess,
) -> Result<Timed> {
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
    let sandbox_cpu = CpuMeter::start(sandbox.pid());
    let started = Instant::now();
    let sync = docsync_bench::process::DaemonProcess::spawn(
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
    // from its start: the ticks it spent before this line are counted too
    let cpu = CpuMeter::from_start(sync.pid());
    wait_for_db(&w)?;
    wait_pending(
        &w,
        files.len() as u64,
        Duration::from_secs(300),
        Duration::from_millis(5),
    )?;
    let secs = started.elapsed().as_secs_f64();
    Ok(Timed {
        secs,
        sandbox_cpu: sandbox_cpu.share(),
        sandbox_cpu_secs: sandbox_cpu.seconds(),
        uploader_cpu_secs: cpu.seconds(),
    })
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
    let (mut b, mut d): (Vec<Timed>, Vec<Timed>) = (Vec::new(), Vec::new());
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
            d[run].secs
        );
        drop(sandbox);
    }
    let ratio: Vec<f64> = b.iter().zip(&d).map(|(b, d)| b.secs / d.secs).collect();
    let ratio = Summary::of(&ratio).context("no sync --once runs")?;
    let secs: Vec<f64> = d.iter().map(|d| d.secs).collect();
    let secs = Summary::of(&secs).context("no sync --once runs")?;
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
    fig.rows
        .push(cpu_row(&b, &d, n).context("no sync --once runs")?);
    fig.notes.push(
        "sync --once CPU (1i): CPU seconds from /proc of the daemon (from its start until \
         every row was pending, its walk and its database's creation included), of the bare \
         uploader (as it prints them) and of the sandbox during each, per file. On 2 cores \
         the figure is CPU-bound: what the daemon spends beyond the bare uploader, per file, \
         is what keeps it from the bare uploader's time."
            .into(),
    );
    Ok(fig)
}

/// Row 1i: CPU per file of the daemon, of the bare uploader, and of the
/// sandbox during each; against the bare uploader's.
fn cpu_row(bare: &[Timed], daemon: &[Timed], files: f64) -> Option<Row> {
    let per_file =
        |v: Vec<f64>| Summary::of(&v.iter().map(|s| s * 1000.0 / files).collect::<Vec<_>>());
    let docsync = per_file(daemon.iter().map(|d| d.uploader_cpu_secs).collect())?;
    let uploader = per_file(bare.iter().map(|b| b.uploader_cpu_secs).collect())?;
    let sandbox_daemon = per_file(daemon.iter().map(|d| d.sandbox_cpu_secs).collect())?;
    let sandbox_bare = per_file(bare.iter().map(|b| b.sandbox_cpu_secs).collect())?;
    let versus: Vec<f64> = daemon
        .iter()
        .zip(bare)
        .map(|(d, b)| d.uploader_cpu_secs / b.uploader_cpu_secs.max(f64::EPSILON))
        .collect();
    Some(Row {
        figure: "1i. sync --once: CPU per file (user + system), docsync; the bare uploader; \
                 the sandbox during docsync; during the bare uploader"
            .into(),
        value: format!(
            "{}; {}; {}; {}",
            summary(&docsync, "ms", 2),
            summary(&uploader, "ms", 2),
            summary(&sandbox_daemon, "ms", 2),
            summary(&sandbox_bare, "ms", 2)
        ),
        runs: daemon.len(),
        versus: summary(&Summary::of(&versus)?, "x", 2) + " the bare uploader's CPU",
        target: String::new(),
        verdict: Verdict::Info,
    })
}
