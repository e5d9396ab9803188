//! `docsync-bench`: the figures of `cargo xtask bench`, run against release
//! binaries, printed as a markdown table and written to a file.
//!
//! ```text
//! docsync-bench --bin-dir target/release --out bench/results.md [--quick]
//!               [--xtask PATH] [--only burst,sync-once,latency,memory,restart,polling,codegen]
//! ```
//!
//! Every figure runs 5 times (once with `--quick`) and reports the median with
//! min and max; ratios are against baselines measured in the same runs.

mod figures;

use std::path::PathBuf;

use anyhow::{Context, Result};
use docsync_bench::machine::Machine;
use docsync_bench::process::Binaries;
use docsync_bench::report::Report;

use figures::{Bench, Figure};

const FIGURES: [&str; 7] = [
    "burst",
    "sync-once",
    "latency",
    "memory",
    "restart",
    "polling",
    "codegen",
];

/// The figures of `cargo xtask bench`, run against release binaries.
#[derive(clap::Parser)]
#[command(name = "docsync-bench")]
struct Args {
    /// One run per figure instead of five (a smoke test, under 2 minutes)
    #[arg(long)]
    quick: bool,
    /// Where the release binaries are (docsync, docsync-sandbox, bare-uploader)
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where to write the results (markdown)
    #[arg(long)]
    out: Option<PathBuf>,
    /// The built xtask, for the codegen figure
    #[arg(long)]
    xtask: Option<PathBuf>,
    /// Only these figures, comma-separated
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(FIGURES), default_values_t = FIGURES.map(String::from))]
    only: Vec<String>,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let tmp = tempfile::Builder::new()
        .prefix("docsync-bench-")
        .tempdir()
        .context("creating a temp dir")?;
    // Every run's files stay until the bench ends (removed with this directory),
    // not after each run: on ext4 without a journal (as on the machines this
    // runs on), the inodes of files deleted in the last minute or more are
    // passed over one by one when a new file is created, which made every file
    // the next run created (the writer's, the sandbox's blobs) cost up to ~10x
    // (0.06 ms a file without recent deletions, 0.5-0.7 ms after them).
    // DOCSYNC_BENCH_KEEP=1: keep the files, databases and logs of every run
    let (tmp_path, _removed_on_exit) = if std::env::var_os("DOCSYNC_BENCH_KEEP").is_some() {
        let kept = tmp.keep();
        eprintln!("keeping the runs' files in {}", kept.display());
        (kept, None)
    } else {
        (tmp.path().to_owned(), Some(tmp))
    };
    let bench = Bench {
        bins: Binaries::in_dir(&args.bin_dir)?,
        runs: if args.quick { 1 } else { 5 },
        quick: args.quick,
        tmp: tmp_path.clone(),
        xtask: args.xtask.clone(),
        pg: if args.only.iter().any(|f| f == "burst" || f == "polling") {
            eprintln!("starting a durable throwaway PostgreSQL for the shared-state figures");
            docsync_pgtest::PgCluster::start_durable().map_err(|e| e.to_string())
        } else {
            Err("not needed by the figures asked for".to_owned())
        },
    };
    let machine = Machine::detect();
    let load_before = load_average();
    let started = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let mut report = Report {
        machine,
        quick: bench.quick,
        runs: bench.runs,
        started,
        rows: Vec::new(),
        notes: Vec::new(),
    };
    for name in &args.only {
        eprintln!("{name}:");
        let fig: Figure = match name.as_str() {
            "burst" => figures::burst::run(&bench).await,
            "sync-once" => figures::sync_once::run(&bench).await,
            "latency" => figures::latency::run(&bench).await,
            "memory" => figures::memory::run(&bench).await,
            "restart" => figures::restart::run(&bench).await,
            "polling" => figures::polling::run(&bench).await,
            "codegen" => figures::codegen::run(&bench).await,
            _ => continue,
        }
        .with_context(|| format!("figure `{name}` (its files are in {})", tmp_path.display()))?;
        report.rows.extend(fig.rows);
        report.notes.extend(fig.notes);
    }
    report.notes.push(format!(
        "Noise: the machine is shared ({} cores; other builds may be running): load average \
         {load_before} at the start, {} at the end. Compare ratios, not absolute numbers. \
         Creating a file is what varies most here: the runs delete nothing until the bench \
         ends, yet files deleted shortly before it (a build, an earlier bench) still make \
         each new file (the writer's, the sandbox's blob per upload) cost up to ~10x.",
        report.machine.cores,
        load_average()
    ));
    let md = report.to_markdown();
    print!("{md}");
    if let Some(out) = &args.out {
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(out, &md).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("written to {}", out.display());
    }
    Ok(())
}
