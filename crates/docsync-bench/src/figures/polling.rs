//! Figure 5: 100,000 pending files across 50 accounts; the requests each poll
//! cycle sends (one list call per account is the design) and the daemon's CPU
//! time per cycle.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use docsync::store::{State, Store};
use docsync_bench::fixtures::{self, PURPOSE};
use docsync_bench::process::CpuMeter;
use docsync_bench::report::{summary, Row, Verdict};
use docsync_bench::stats::{burst_sizes, Summary};
use docsync_bench::workdir::{Settings, Workdir};

use super::{seeded, wait_pending, Bench, Figure};

const FILES: usize = 100_000;
const ACCOUNTS: usize = 50;
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
    let mut cpu_per_cycle = Vec::new();
    let mut other = 0usize;
    for run in 0..bench.runs {
        sandbox.clear_requests().await?;
        let cpu_secs = {
            let daemon = bench.daemon(&w, &sandbox)?;
            let cpu = CpuMeter::start(daemon.pid());
            // cycles at about 0.2, 0.6, 1.4 and 3.0 s (the interval doubles while
            // nothing is decided)
            std::thread::sleep(Duration::from_millis(3300));
            cpu.seconds()
        };
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
        // the start (opening the database, the first scan of 100,000 files) is
        // counted too: an upper bound of what a cycle costs
        cpu_per_cycle.push(cpu_secs / sizes.len() as f64);
        per_cycle.extend(sizes.iter().map(|&n| n as f64));
    }
    drop(sandbox);
    bench.clean(&dir);
    let s = Summary::of(&per_cycle).context("no poll cycles")?;
    let cpu = Summary::of(&cpu_per_cycle).context("no poll cycles")?;
    Ok(Figure {
        rows: vec![
            Row {
                figure: "5. polling, 100,000 pending in 50 accounts: requests per cycle".into(),
                value: format!(
                    "{} (min {}, max {}, {} cycles)",
                    s.median, s.min, s.max, s.runs
                ),
                runs: bench.runs,
                versus: String::new(),
                target: "<= 50".into(),
                verdict: Verdict::from_check(s.max <= ACCOUNTS as f64 && s.min >= 1.0),
            },
            Row {
                figure: "5. polling: daemon CPU per cycle (its start and first scan included)"
                    .into(),
                value: summary(&cpu, "s", 3),
                runs: bench.runs,
                versus: String::new(),
                target: "<= 0.5 s".into(),
                verdict: Verdict::from_check(cpu.median <= 0.5),
            },
        ],
        notes: vec![format!(
            "Polling: {ACCOUNTS} files uploaded for real, their rows replicated to {FILES} \
             pending rows (made-up remote ids, so the poller keeps waiting); requests other \
             than the list calls in all runs: {other}. CPU: the daemon's user + system time \
             over the 3.3 s it ran, divided by the cycles in it."
        )],
    })
}
