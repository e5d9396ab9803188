//! Figure 5: 100,000 pending files across 50 accounts; the requests each poll
//! cycle sends (one list call per account is the design) and the daemon's CPU
//! time per cycle. Measured with the state in SQLite, then (5p) in PostgreSQL.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use docsync::model::State;
use docsync::store::Store;
use docsync_bench::fixtures::{self, PURPOSE};
use docsync_bench::process::{CpuMeter, DaemonProcess, SandboxProcess};
use docsync_bench::report::{summary, Row, Verdict};
use docsync_bench::stats::{burst_sizes, Summary};
use docsync_bench::workdir::{Settings, Workdir};

use super::{seeded, wait_pending, wait_pending_pg, Bench, Figure};

const FILES: usize = 100_000;
const ACCOUNTS: usize = 50;
const SIZE: usize = 1024;

/// What the poll cycles of one backend cost.
struct Cycles {
    /// List requests per cycle, over every cycle of every run.
    per_cycle: Summary,
    /// Daemon CPU seconds per cycle, one value per run.
    cpu: Summary,
    /// Requests other than the list calls, in all runs, by operation.
    other: std::collections::BTreeMap<String, usize>,
    /// Seconds from the start to the first list call (PostgreSQL only).
    first_list: Option<Summary>,
}

pub async fn run(bench: &Bench) -> Result<Figure> {
    let dir = bench.run_dir("polling", 0)?;
    let sandbox = bench.sandbox(&dir, 3600.0)?;
    let sqlite = measure(bench, &sandbox, &dir, None).await?;
    let mut table = rows("5.", "", &sqlite, bench.runs);
    let mut notes = vec![format!(
        "Polling: {ACCOUNTS} files uploaded for real, their rows replicated to {FILES} \
         pending rows (made-up remote ids, so the poller keeps waiting); requests other \
         than the list calls in all runs: {}. CPU: the daemon's user + system time \
         over the 3.3 s it ran, divided by the cycles in it.",
        others(&sqlite)
    )];
    match bench.pg_database("polling") {
        Ok(db) => {
            let pg = measure(bench, &sandbox, &dir, Some(db.url)).await?;
            table.extend(rows("5p.", " (state in PostgreSQL)", &pg, bench.runs));
            notes.push(format!(
                "Polling on PostgreSQL (5p): the same {FILES} pending rows in a durable \
                 throwaway cluster (`[state] url`, Unix socket), one daemon; each cycle it \
                 claims each account's poll before listing it. Its start (the first scan of \
                 the {FILES} files against the shared state) took {} to the first list call, \
                 so its cycles are counted from there (SQLite's from the start). Other \
                 requests in all runs: {}.",
                pg.first_list
                    .as_ref()
                    .map_or_else(|| "?".to_owned(), |s| summary(s, "s", 1)),
                others(&pg)
            ));
        }
        Err(why) => table.push(Row {
            figure: "5p. polling, the state in PostgreSQL".into(),
            value: format!("not measured: {why}"),
            runs: 0,
            versus: String::new(),
            target: "reported beside SQLite".into(),
            verdict: Verdict::Info,
        }),
    }
    drop(sandbox);
    Ok(Figure { rows: table, notes })
}

/// `N (op: n, ...)`: the requests other than list calls.
fn others(c: &Cycles) -> String {
    let total: usize = c.other.values().sum();
    if total == 0 {
        return "0".into();
    }
    let each: Vec<String> = c.other.iter().map(|(op, n)| format!("{op}: {n}")).collect();
    format!("{total} ({})", each.join(", "))
}

/// The two rows of one backend's figure.
fn rows(number: &str, which: &str, c: &Cycles, runs: usize) -> Vec<Row> {
    let s = &c.per_cycle;
    vec![
        Row {
            figure: format!(
                "{number} polling, 100,000 pending in 50 accounts{which}: requests per cycle"
            ),
            value: format!(
                "{} (min {}, max {}, {} cycles)",
                s.median, s.min, s.max, s.runs
            ),
            runs,
            versus: String::new(),
            target: "<= 50".into(),
            verdict: Verdict::from_check(s.max <= ACCOUNTS as f64 && s.min >= 1.0),
        },
        Row {
            figure: format!(
                "{number} polling{which}: daemon CPU per cycle (its start and first scan included)"
            ),
            value: summary(&c.cpu, "s", 3),
            runs,
            versus: String::new(),
            target: "<= 0.5 s".into(),
            verdict: Verdict::from_check(c.cpu.median <= 0.5),
        },
    ]
}

/// Start the daemon of `w` (its state where `w` says) and wait until `n`
/// rows are pending.
async fn start(
    bench: &Bench,
    w: &Workdir,
    sandbox: &SandboxProcess,
) -> Result<(DaemonProcess, Option<docsync::store::pg::PgStore>)> {
    if w.state_url.is_some() {
        let (d, store) = bench.daemon_pg(w, sandbox).await?;
        Ok((d, Some(store)))
    } else {
        Ok((bench.daemon(w, sandbox)?, None))
    }
}

/// Seed 100,000 pending rows in a state of their own (SQLite, or
/// PostgreSQL at `state_url`), then run the daemon `bench.runs` times for
/// 3.3 s and count its poll cycles' requests and CPU.
async fn measure(
    bench: &Bench,
    sandbox: &SandboxProcess,
    dir: &std::path::Path,
    state_url: Option<String>,
) -> Result<Cycles> {
    let on_pg = state_url.is_some();
    let w = Workdir::create(
        &dir.join(if on_pg { "daemon-pg" } else { "daemon" }),
        &Settings {
            poll_interval: "200ms",
            state_url: state_url.clone(),
            ..Settings::default()
        },
    )?;
    // accounts of its own per backend: one sandbox serves both
    let prefix = if on_pg { "pollpg" } else { "poll" };
    let seed_rel = |k: usize| format!("{}/{PURPOSE}/seed.pdf", fixtures::account_id(prefix, k));
    for k in 0..ACCOUNTS {
        fixtures::write(
            &w.inbox.join(seed_rel(k)),
            &fixtures::pdf_bytes(&seed_rel(k), SIZE),
        )?;
    }
    {
        let (_daemon, store) = start(bench, &w, sandbox).await?;
        let (n, timeout, every) = (
            ACCOUNTS as u64,
            Duration::from_secs(60),
            Duration::from_millis(10),
        );
        match &store {
            Some(store) => wait_pending_pg(store, &w, n, timeout, every).await?,
            None => wait_pending(&w, n, timeout, every)?,
        }
    }
    for k in 0..ACCOUNTS {
        let files: Vec<_> = (0..FILES / ACCOUNTS - 1)
            .map(|i| fixtures::Planned {
                account: fixtures::account_id(prefix, k),
                path: w
                    .inbox
                    .join(fixtures::account_id(prefix, k))
                    .join(PURPOSE)
                    .join(format!("f{i:05}.pdf")),
                size: SIZE,
            })
            .collect();
        match &state_url {
            Some(url) => seeded::replicate_pg(url, &w.inbox, &seed_rel(k), &files).await?,
            None => {
                let seed = seeded::row_id(&w.db(), &seed_rel(k))?;
                seeded::replicate(&w.db(), &w.inbox, seed, &files)?;
            }
        }
    }
    let pending = match &state_url {
        Some(url) => {
            let store = docsync::store::pg::PgStore::connect_viewer(url, "docsync-bench")
                .await?
                .context("the PostgreSQL state is gone")?;
            let counts = store.counts_by_state().await?;
            counts.get(&State::Pending).copied().unwrap_or(0)
        }
        None => Store::open_read_only(&w.db())?.count_in_state(State::Pending)?,
    };
    if pending != FILES as u64 {
        bail!("expected {FILES} pending rows, found {pending}");
    }

    let mut per_cycle = Vec::new();
    let mut cpu_per_cycle = Vec::new();
    let mut other = std::collections::BTreeMap::new();
    let mut first_list = Vec::new();
    for run in 0..bench.runs {
        sandbox.clear_requests().await?;
        let cpu_secs = {
            let started = std::time::Instant::now();
            let (daemon, _store) = start(bench, &w, sandbox).await?;
            let cpu = CpuMeter::start(daemon.pid());
            if on_pg {
                // its start (the first scan of 100,000 files against the
                // shared state) takes longer than SQLite's: the cycles are
                // counted from its first list call
                first_list_call(sandbox, Duration::from_secs(300)).await?;
                first_list.push(started.elapsed().as_secs_f64());
            }
            // cycles at about 0.2, 0.6, 1.4 and 3.0 s (the interval doubles while
            // nothing is decided)
            tokio::time::sleep(Duration::from_millis(3300)).await;
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
        // the bench's own calls to the sandbox's request log are not the daemon's
        for r in log.iter().filter(|r| {
            r.operation_id.as_deref() != Some("listFiles") && !r.path.starts_with("/_sandbox/")
        }) {
            *other
                .entry(r.operation_id.clone().unwrap_or_else(|| "(unknown)".into()))
                .or_insert(0) += 1;
        }
        let sizes = burst_sizes(&lists, 100.0);
        eprintln!(
            "  polling{} run {}: requests per cycle {sizes:?}",
            if on_pg { " (PostgreSQL)" } else { "" },
            run + 1
        );
        if sizes.is_empty() {
            bail!("polling run {}: no poll cycle in 3.3 s", run + 1);
        }
        // the start (opening the database, the first scan of 100,000 files) is
        // counted too: an upper bound of what a cycle costs
        cpu_per_cycle.push(cpu_secs / sizes.len() as f64);
        per_cycle.extend(sizes.iter().map(|&n| n as f64));
    }
    Ok(Cycles {
        per_cycle: Summary::of(&per_cycle).context("no poll cycles")?,
        cpu: Summary::of(&cpu_per_cycle).context("no poll cycles")?,
        other,
        first_list: Summary::of(&first_list),
    })
}

/// Wait until the sandbox received a list call; fails after `timeout`.
async fn first_list_call(sandbox: &SandboxProcess, timeout: Duration) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        let log = sandbox.requests().await?;
        if log
            .iter()
            .any(|r| r.operation_id.as_deref() == Some("listFiles"))
        {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!("no poll cycle within {} s of the start", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
