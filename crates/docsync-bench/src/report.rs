//! The results table: markdown for the terminal and `bench/results.md`.

use std::fmt::Write;

use crate::machine::Machine;
use crate::stats::Summary;

/// Whether a figure meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// No target (a baseline, or a figure reported for information).
    Info,
}

impl Verdict {
    /// `Met` when `ok`, else `Missed`.
    pub fn from_check(ok: bool) -> Verdict {
        if ok {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }

    fn word(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::Info => "",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub figure: String,
    /// The measurement: median (min–max), or a single value.
    pub value: String,
    /// How many runs the value summarises.
    pub runs: usize,
    /// The ratio or comparison against the same-run baseline, if any.
    pub versus: String,
    pub target: String,
    pub verdict: Verdict,
}

/// A whole run: where, how, what.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub machine: Machine,
    pub quick: bool,
    /// Runs per figure asked for.
    pub runs: usize,
    pub started: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

/// `median unit (min–max)` with `decimals` digits.
pub fn summary(s: &Summary, unit: &str, decimals: usize) -> String {
    if s.runs == 1 {
        return format!("{:.*} {unit}", decimals, s.median);
    }
    format!(
        "{:.*} {unit} ({:.*}–{:.*})",
        decimals, s.median, decimals, s.min, decimals, s.max
    )
}

impl Report {
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "# docsync benchmark results\n");
        let _ = writeln!(
            out,
            "`cargo xtask bench{}` on {}.\n",
            if self.quick { " --quick" } else { "" },
            self.started
        );
        let _ = writeln!(out, "| machine | |\n|---|---|");
        let _ = writeln!(out, "| cpu | {} |", cell(&m.cpu_model));
        let _ = writeln!(out, "| cores | {} |", m.cores);
        let _ = writeln!(out, "| memory | {} |", cell(&m.memory));
        let _ = writeln!(out, "| kernel | {} |", cell(&m.kernel));
        let _ = writeln!(out, "| rustc | {} |\n", cell(&m.rustc));
        if self.quick {
            let _ = writeln!(
                out,
                "**Quick mode: {} run(s) per figure, not the 5 a full run takes; \
                 treat these numbers as a smoke test.**\n",
                self.runs
            );
        } else {
            let _ = writeln!(
                out,
                "Each figure: median (min–max) of {} runs; ratios are against baselines \
                 measured in the same runs.\n",
                self.runs
            );
        }
        let _ = writeln!(out, "| figure | value | runs | vs baseline | target | |");
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&r.figure),
                cell(&r.value),
                r.runs,
                cell(&r.versus),
                cell(&r.target),
                r.verdict.word()
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nNotes:\n");
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }
}

/// Text safe inside a table cell (no `|`, no line breaks).
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(quick: bool) -> Report {
        Report {
            machine: Machine {
                cpu_model: "Test CPU | 3GHz".into(),
                cores: 2,
                memory: "23.4 GiB".into(),
                kernel: "6.1.0".into(),
                rustc: "rustc 1.88.0".into(),
            },
            quick,
            runs: if quick { 1 } else { 5 },
            started: "2026-12-01 19:00 UTC".into(),
            rows: vec![
                Row {
                    figure: "burst".into(),
                    value: summary(&Summary::of(&[100.0, 120.0, 110.0]).unwrap(), "files/s", 0),
                    runs: 3,
                    versus: "12.0x curl".into(),
                    target: ">= 10x curl".into(),
                    verdict: Verdict::Met,
                },
                Row {
                    figure: "memory".into(),
                    value: "80.0 MiB".into(),
                    runs: 1,
                    versus: String::new(),
                    target: "<= 64 MiB".into(),
                    verdict: Verdict::Missed,
                },
            ],
            notes: vec!["the machine was shared".into()],
        }
    }

    #[test]
    fn renders_machine_rows_and_verdicts() {
        let md = report(false).to_markdown();
        assert!(md.contains("| cpu | Test CPU \\| 3GHz |"), "{md}");
        assert!(md.contains("| rustc | rustc 1.88.0 |"), "{md}");
        assert!(
            md.contains("| burst | 110 files/s (100–120) | 3 | 12.0x curl | >= 10x curl | met |"),
            "{md}"
        );
        assert!(
            md.contains("| memory | 80.0 MiB | 1 |  | <= 64 MiB | **missed** |"),
            "{md}"
        );
        assert!(md.contains("median (min–max) of 5 runs"), "{md}");
        assert!(md.contains("- the machine was shared"), "{md}");
        assert!(!md.contains("Quick mode"), "{md}");
    }

    #[test]
    fn quick_mode_says_so() {
        let md = report(true).to_markdown();
        assert!(md.contains("`cargo xtask bench --quick`"), "{md}");
        assert!(md.contains("Quick mode: 1 run(s) per figure"), "{md}");
    }

    #[test]
    fn single_run_has_no_range() {
        let s = Summary::of(&[2.5]).unwrap();
        assert_eq!(summary(&s, "ms", 1), "2.5 ms");
    }
}
