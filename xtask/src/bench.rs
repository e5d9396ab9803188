//! `cargo xtask bench [--quick] [--only FIGURES]`: build the release binaries,
//! run the criterion micro-benchmarks, then the figures (`docsync-bench`), which
//! print a markdown table and write it to `bench/results.md`.
//!
//! The figures drive the real binaries as processes, so they live in their own
//! crate (`crates/docsync-bench`, with an HTTP client and SQLite); this xtask only
//! builds and starts them and keeps its own dependencies few.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn run(root: &Path, args: &[&str]) -> Result<()> {
    let mut quick = false;
    let mut only: Option<&str> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match *arg {
            "--quick" => quick = true,
            "--only" => only = Some(it.next().context("--only needs a list of figures")?),
            other => {
                bail!("unknown argument `{other}` for bench (try --quick, --only burst,latency)")
            }
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    cargo_step(
        root,
        &cargo,
        &[
            "build",
            "--release",
            "-p",
            "docsync",
            "-p",
            "docsync-sandbox",
            "-p",
            "docsync-bench",
        ],
        "building the release binaries",
    )?;
    if only.is_none() {
        let mut criterion = vec!["bench", "-p", "docsync", "--bench", "hashing", "--"];
        if quick {
            criterion.push("--quick");
        }
        cargo_step(root, &cargo, &criterion, "running the criterion benchmarks")?;
    }
    let release = root.join("target").join("release");
    let mut bench = Command::new(release.join("docsync-bench"));
    bench
        .current_dir(root)
        .arg("--bin-dir")
        .arg(&release)
        .arg("--out")
        .arg(root.join("bench").join("results.md"));
    if let Ok(xtask) = std::env::current_exe() {
        bench.arg("--xtask").arg(xtask);
    }
    if quick {
        bench.arg("--quick");
    }
    if let Some(only) = only {
        bench.args(["--only", only]);
    }
    let status = bench.status().context("starting docsync-bench")?;
    if !status.success() {
        bail!("docsync-bench failed ({status})");
    }
    Ok(())
}

fn cargo_step(root: &Path, cargo: &str, args: &[&str], what: &str) -> Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .current_dir(root)
        .args(args)
        .status()
        .with_context(|| format!("{what}: starting cargo"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
