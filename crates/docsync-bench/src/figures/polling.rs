//! Figure 5: 10,000 pending files across 5 accounts; the requests each poll
//! cycle sends (one list call per account is the design).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use docsync::store::{State, Store};
use docsync_bench::fixtures::{self, PURPOSE};
use docsync_bench::report::{Row, Verdict};
use docsync_bench::stats::{burst_sizes, Summary};
use docsync_bench::workdir::{Settings, Workdir};

use super::{seeded, wait_pending, Bench, Figure};

const FILES: usize = 10_000;
const ACCOUNTS: usize = 5;
const SIZE: usize = 1024;

pub async fn run(bench: &Bench) -> Result<Figure> {
    let dir = bench.run_dir("polling", 0)?;
    let sandbox = bench.sandbox(&dir, 3600.0)?;
    let w = Workdir::create(
        &dir.join("daemon"),
        &Settings {
            poll_interval: "200ms",
            ..Settings::default()
        },
    )?;
    // one real upload per account: the seed rows, pending on the sandbox
    let seed_rel = |k: usize| format!("{}/{PURPOSE}/seed.pdf", fixtures::account_id("poll", k));
    for k in 0..ACCOUNTS {
        fixtures::write(
            &w.inbox.join(seed_rel(k)),
            &fixtures::pdf_bytes(&seed_rel(k), SIZE),
        )?;
    }
    {
        let _daemon = bench.daemon(&w, &sandbox)?;
        wait_pending(
            &w,
            ACCOUNTS as u64,
            Duration::from_secs(60),
            Duration::from_millis(10),
        )?;
    }
    for k in 0..ACCOUNTS {
        let seed = seeded::row_id(&w.db(), &seed_rel(k))?;
        let files: Vec<_> = (0..FILES / ACCOUNTS - 1)
            .map(|i| fixtures::Planned {
                account: fixtures::account_id("poll", k),
                path: w
                    .inbox
                    .join(fixtures::account_id("poll", k))
                    .join(PURPOSE)
                    .join(format!("f{i:05}.pdf")),
                size: SIZE,
            })
            .collect();
        seeded::replicate(&w.db(), &w.inbox, seed, &files)?;
    }
    let pending = Store::open_read_only(&w.db())?.count_in_state(State::Pending)?;
    if pending != FILES as u64 {
        bail!("expected {FILES} pending rows, found {pending}");
    }

    let mut per_cycle = Vec::new();
    let mut other = 0usize;
    for run in 0..bench.runs {
        sandbox.clear_requests().await?;
        {
            let _daemon = bench.daemon(&w, &sandbox)?;
            // cycles at about 0.2, 0.6, 1.4 and 3.0 s (the interval doubles while
            // nothing is decided)
            std::thread::sleep(Duration::from_millis(3300));
        }
        let log = sandbox.requests().await?;
        let first = log.first().map(|r| r.received_at);
        let lists: Vec<f64> = log
            .iter()
            .filter(|r| r.operation_id.as_deref() == Some("listFiles"))
            .filter_map(|r| {
                first.map(|f| (r.received_at - f).num_microseconds().unwrap_or(0) as f64 / 1e3)
            })
            .collect();
        other += log
            .iter()
            .filter(|r| r.operation_id.as_deref() != Some("listFiles"))
            .count();
        let sizes = burst_sizes(&lists, 100.0);
        eprintln!("  polling run {}: requests per cycle {sizes:?}", run + 1);
        if sizes.is_empty() {
            bail!("polling run {}: no poll cycle in 3.3 s", run + 1);
        }
        per_cycle.extend(sizes.iter().map(|&n| n as f64));
    }
    drop(sandbox);
    bench.clean(&dir);
    let s = Summary::of(&per_cycle).context("no poll cycles")?;
    Ok(Figure {
        rows: vec![Row {
            figure: "5. polling, 10,000 pending in 5 accounts: requests per cycle".into(),
            value: format!(
                "{} (min {}, max {}, {} cycles)",
                s.median, s.min, s.max, s.runs
            ),
            runs: bench.runs,
            versus: String::new(),
            target: "5".into(),
            verdict: Verdict::from_check(s.max <= 5.0 && s.min >= 1.0),
        }],
        notes: vec![format!(
            "Polling: 5 files uploaded for real, their rows replicated to {FILES} pending rows \
             (made-up remote ids, so the poller keeps waiting); requests other than the list \
             calls in all runs: {other}."
        )],
    })
}
