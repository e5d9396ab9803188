//! Figure 6: `cargo xtask codegen` once built: the xtask binary itself, in check
//! mode (the same generation and formatting, compared instead of written, so the
//! checked-in files are not touched).

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use docsync_bench::report::{summary, Row, Verdict};
use docsync_bench::stats::Summary;

use super::{Bench, Figure};

pub async fn run(bench: &Bench) -> Result<Figure> {
    let Some(xtask) = &bench.xtask else {
        return Ok(Figure::default());
    };
    let mut secs = Vec::new();
    for _ in 0..bench.runs {
        let started = Instant::now();
        let out = Command::new(xtask)
            .args(["codegen", "--check"])
            .output()
            .with_context(|| format!("running {}", xtask.display()))?;
        secs.push(started.elapsed().as_secs_f64());
        if !out.status.success() {
            bail!(
                "xtask codegen --check failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let s = Summary::of(&secs).context("no codegen runs")?;
    Ok(Figure {
        rows: vec![Row {
            figure: "6. codegen (built xtask, --check)".into(),
            value: summary(&s, "s", 2),
            runs: bench.runs,
            versus: String::new(),
            target: "(no target)".into(),
            verdict: Verdict::Info,
        }],
        notes: vec![],
    })
}
