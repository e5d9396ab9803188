//! Figure 2: single files written one at a time into a running daemon; the time
//! from the writer's close to the sandbox receiving the upload request, p50 and
//! p99 over 200 files per run. The next file is written once the previous one is
//! `pending` (its upload answered and recorded).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use docsync_bench::fixtures::{self, FILES_PER_ACCOUNT, PURPOSE};
use docsync_bench::report::{summary, Row, Verdict};
use docsync_bench::stats::{percentile, Summary};
use docsync_bench::workdir::{Settings, Workdir};

use super::{wait_pending, Bench, Figure};

const FILES: usize = 200;
const SIZE: usize = 4 * 1024;

pub async fn run(bench: &Bench) -> Result<Figure> {
    let settings = Settings::default();
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for run in 0..bench.runs {
        let dir = bench.run_dir("latency", run)?;
        let sandbox = bench.sandbox(&dir, 3600.0)?;
        let w = Workdir::create(&dir.join("daemon"), &settings)?;
        let accounts = FILES.div_ceil(FILES_PER_ACCOUNT);
        for k in 0..accounts {
            std::fs::create_dir_all(w.inbox.join(fixtures::account_id("lat", k)).join(PURPOSE))?;
        }
        let _daemon = bench.daemon(&w, &sandbox)?;
        sandbox.clear_requests().await?;
        let mut closed = Vec::with_capacity(FILES);
        for i in 0..FILES {
            let path = w
                .inbox
                .join(fixtures::account_id("lat", i / FILES_PER_ACCOUNT))
                .join(PURPOSE)
                .join(format!("f{i:04}.pdf"));
            let bytes = fixtures::pdf_bytes(&format!("lat-{run}-{i}"), SIZE);
            fixtures::write(&path, &bytes)?; // returns after close
            closed.push(Utc::now());
            wait_pending(
                &w,
                i as u64 + 1,
                Duration::from_secs(30),
                Duration::from_micros(500),
            )?;
        }
        let received: Vec<_> = sandbox
            .requests()
            .await?
            .into_iter()
            .filter(|r| r.operation_id.as_deref() == Some("uploadFile"))
            .map(|r| r.received_at)
            .collect();
        if received.len() != FILES {
            bail!(
                "expected {FILES} uploads in the sandbox's log, found {}",
                received.len()
            );
        }
        let ms: Vec<f64> = received
            .iter()
            .zip(&closed)
            .map(|(r, c)| (*r - *c).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0)
            .collect();
        let p50 = percentile(&ms, 50.0).context("no latencies")?;
        let p99 = percentile(&ms, 99.0).context("no latencies")?;
        eprintln!(
            "  latency run {}: p50 {p50:.2} ms, p99 {p99:.2} ms",
            run + 1
        );
        p50s.push(p50);
        p99s.push(p99);
        drop(_daemon);
        drop(sandbox);
    }
    let p50 = Summary::of(&p50s).context("no latency runs")?;
    let p99 = Summary::of(&p99s).context("no latency runs")?;
    let mut fig = Figure::default();
    fig.rows.push(Row {
        figure: "2. latency close -> sandbox receipt, p50".into(),
        value: summary(&p50, "ms", 2),
        runs: bench.runs,
        versus: String::new(),
        target: "<= 2 ms".into(),
        verdict: Verdict::from_check(p50.median <= 2.0),
    });
    fig.rows.push(Row {
        figure: "2. latency close -> sandbox receipt, p99".into(),
        value: summary(&p99, "ms", 2),
        runs: bench.runs,
        versus: String::new(),
        target: "<= 10 ms".into(),
        verdict: Verdict::from_check(p99.median <= 10.0),
    });
    fig.notes.push(format!(
        "Latency: {FILES} x {} KiB files per run written one after the other (the next once \
         the previous is pending), quiet_window = \"{}\" (a close_write makes a file complete \
         without waiting for it); the state database is in WAL mode, each upload intent \
         committed with synchronous = FULL (synced to disk) before its request is sent.",
        SIZE / 1024,
        settings.quiet_window
    ));
    Ok(fig)
}
