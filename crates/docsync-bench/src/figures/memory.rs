//! Figure 3: the daemon's peak resident memory (`VmHWM`) while it uploads
//! 16 x 20 MB files with concurrency 8.

use std::time::Duration;

use anyhow::{Context, Result};
use docsync_bench::fixtures;
use docsync_bench::process::peak_rss_kib;
use docsync_bench::report::{summary, Row, Verdict};
use docsync_bench::stats::Summary;
use docsync_bench::workdir::{Settings, Workdir};

use super::{wait_pending, Bench, Figure};

const FILES: usize = 16;
/// 20 MB (the API's limit is 20 MiB).
const SIZE: usize = 20_000_000;

pub async fn run(bench: &Bench) -> Result<Figure> {
    let dir = bench.run_dir("memory", 0)?;
    let files = fixtures::plan(&dir.join("files"), "mem", FILES, SIZE);
    fixtures::create(&files)?;
    let mut peaks = Vec::new();
    for run in 0..bench.runs {
        let run_dir = dir.join(format!("run-{run}"));
        let sandbox = bench.sandbox(&run_dir, 3600.0)?;
        let w = Workdir::create(&run_dir, &Settings::default())?;
        let daemon = bench.daemon(&w, &sandbox)?;
        // hard links: the same bytes, new names in the watched folder
        for f in &files {
            let rel = f.path.strip_prefix(dir.join("files"))?;
            let to = w.inbox.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::hard_link(&f.path, &to)
                .with_context(|| format!("linking {}", to.display()))?;
        }
        wait_pending(
            &w,
            FILES as u64,
            Duration::from_secs(300),
            Duration::from_millis(10),
        )?;
        let kib = peak_rss_kib(daemon.pid()).context("reading the daemon's VmHWM")?;
        let mib = kib as f64 / 1024.0;
        eprintln!("  memory run {}: peak RSS {mib:.1} MiB", run + 1);
        peaks.push(mib);
        drop(daemon);
        drop(sandbox);
    }
    let s = Summary::of(&peaks).context("no memory runs")?;
    Ok(Figure {
        rows: vec![Row {
            figure: "3. peak RSS, 16 x 20 MB at concurrency 8".into(),
            value: summary(&s, "MiB", 1),
            runs: bench.runs,
            versus: String::new(),
            target: "<= 64 MiB".into(),
            verdict: Verdict::from_check(s.median <= 64.0),
        }],
        notes: vec![],
    })
}
