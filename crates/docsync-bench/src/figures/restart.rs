//! Figure 4: restart at scale. 1,000,000 files on disk (100,000 with `--quick`),
//! all synced (approved);
//! `docsync sync --once` from start to exit (it exits as soon as nothing is left
//! to do: the time to idle), the upload requests it sends and the files it
//! hashes again (rows that went back to `stable`, the state before hashing).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use docsync::store::{State, Store};
use docsync_bench::fixtures::{self, PURPOSE};
use docsync_bench::process::DaemonProcess;
use docsync_bench::report::{summary, Row, Verdict};
use docsync_bench::stats::Summary;
use docsync_bench::workdir::{Settings, Workdir};

use super::{seeded, Bench, Figure};

/// Files on disk in a full run, and with `--quick`.
const FILES: (usize, usize) = (1_000_000, 100_000);
const PER_ACCOUNT: usize = 1_000;
const SIZE: usize = 1024;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub async fn run(bench: &Bench) -> Result<Figure> {
    let n_files = if bench.quick { FILES.1 } else { FILES.0 };
    let dir = bench.run_dir("restart", 0)?;
    let sandbox = bench.sandbox(&dir, 0.1)?;
    let w = Workdir::create(&dir.join("daemon"), &Settings::default())?;
    let once = [
        "sync",
        "--once",
        "--config",
        "docsync.toml",
        "--timeout",
        "600s",
    ];

    // one real sync: the seed row
    let seed_rel = format!("{}/{PURPOSE}/seed.pdf", fixtures::account_id("seed", 0));
    fixtures::write(&w.inbox.join(&seed_rel), &fixtures::pdf_bytes("seed", SIZE))?;
    let status = DaemonProcess::spawn(&bench.bins.docsync, &w.dir, &sandbox, &once)?
        .wait(Duration::from_secs(120))?;
    if !status.success() {
        bail!("seeding the restart state: docsync sync --once exited {status}");
    }
    let seed = seeded::row_id(&w.db(), &seed_rel)?;
    eprintln!("  restart: creating {n_files} synced files");
    let files: Vec<_> = (0..n_files)
        .map(|i| {
            let account = fixtures::account_id("rs", i / PER_ACCOUNT);
            let path = w
                .inbox
                .join(&account)
                .join(PURPOSE)
                .join(format!("f{i:06}.pdf"));
            fixtures::Planned {
                account,
                path,
                size: SIZE,
            }
        })
        .collect();
    seeded::replicate(&w.db(), &w.inbox, seed, &files)?;
    let db = Store::open_read_only(&w.db())?;
    let approved = db.count_in_state(State::Approved)?;
    if approved != n_files as u64 + 1 {
        bail!("expected {} approved rows, found {approved}", n_files + 1);
    }

    let (mut secs, mut uploads, mut rehashed, mut events) = (vec![], vec![], vec![], vec![]);
    let mut rss = vec![];
    for run in 0..bench.runs {
        sandbox.clear_requests().await?;
        let since = now_ms();
        let started = Instant::now();
        let mut daemon = DaemonProcess::spawn(&bench.bins.docsync, &w.dir, &sandbox, &once)?;
        let pid = daemon.pid();
        let mut peak = 0u64;
        let status = loop {
            // VmHWM is gone once the process is reaped: sample it while it runs
            peak = peak.max(docsync_bench::process::peak_rss_kib(pid).unwrap_or(0));
            if let Some(status) = daemon.child.try_wait()? {
                break status;
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!(
                    "restart run {}: docsync did not finish within 600 s",
                    run + 1
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = started.elapsed().as_secs_f64();
        rss.push(peak as f64 / 1024.0);
        if !status.success() {
            bail!(
                "restart run {}: docsync sync --once exited {status}",
                run + 1
            );
        }
        let log = sandbox.requests().await?;
        let sent = log
            .iter()
            .filter(|r| {
                r.operation_id
                    .as_deref()
                    .is_some_and(|op| op.starts_with("upload") || op == "replaceImage")
            })
            .count();
        let hashed = db.count_events_since(since, Some(State::Stable))?;
        let all = db.count_events_since(since, None)?;
        eprintln!(
            "  restart run {}: {took:.2}s, {sent} uploads, {hashed} re-hashed, {all} events, {} requests",
            run + 1,
            log.len()
        );
        secs.push(took);
        uploads.push(sent as f64);
        rehashed.push(hashed as f64);
        events.push(all as f64);
    }
    drop(sandbox);
    let of = |v: &[f64]| Summary::of(v).context("no restart runs");
    let (t, u, h, m) = (of(&secs)?, of(&uploads)?, of(&rehashed)?, of(&rss)?);
    let scale = if n_files >= 1_000_000 {
        format!("{},000,000", n_files / 1_000_000)
    } else {
        format!("{},000", n_files / 1_000)
    };
    // the targets are set at 1,000,000 files; --quick measures a tenth
    let (max_secs, max_rss) = (5.0, 64.0);
    let runs = bench.runs;
    Ok(Figure {
        rows: vec![
            Row {
                figure: format!("4. restart, {scale} synced files: start -> idle"),
                value: summary(&t, "s", 2),
                runs,
                versus: String::new(),
                target: "<= 5 s at 1,000,000".into(),
                verdict: Verdict::from_check(t.median <= max_secs),
            },
            Row {
                figure: "4. restart: the daemon's peak RSS".into(),
                value: summary(&m, "MiB", 1),
                runs,
                versus: String::new(),
                target: "<= 64 MiB at 1,000,000".into(),
                verdict: Verdict::from_check(m.max <= max_rss),
            },
            Row {
                figure: "4. restart: upload requests sent".into(),
                value: format!("{}", u.max),
                runs,
                versus: String::new(),
                target: "0".into(),
                verdict: Verdict::from_check(u.max == 0.0),
            },
            Row {
                figure: "4. restart: files re-hashed".into(),
                value: format!("{}", h.max),
                runs,
                versus: String::new(),
                target: "0".into(),
                verdict: Verdict::from_check(h.max == 0.0),
            },
        ],
        notes: vec![format!(
            "Restart: one file synced for real, its row replicated for {n_files} files created on \
             disk (real size, mtime and sha256, {PER_ACCOUNT} per account, state approved); \
             timed is `docsync sync --once` from spawn to exit (it exits when nothing is left \
             to do). Re-hashed = rows that went back to `stable`; state changes in all runs: {}.",
            of(&events).map(|s| s.max).unwrap_or(0.0)
        )],
    })
}
