//! The burst's CPU budget: the CPU each party spent per file, and the
//! earliest any uploader as cheap as the bare one could finish the figure on
//! this machine's cores, writer included.
//!
//! On a machine with few cores the figure is CPU-bound: the writer, the
//! sandbox and the uploader share the cores. Wall time then says little about
//! where the daemon stands, and the CPU per file says it directly.

use docsync_bench::report::{summary, Row, Verdict};
use docsync_bench::stats::Summary;

/// CPU seconds of one run.
pub(super) struct Spent {
    /// The bench's writer, writing the files alone.
    pub writer: f64,
    /// The bare uploader itself, and the sandbox while it ran.
    pub bare: f64,
    pub bare_sandbox: f64,
    /// The daemon over the burst (1), and the sandbox meanwhile.
    pub daemon: f64,
    pub daemon_sandbox: f64,
    /// The daemon over the burst into existing folders (1f).
    pub existing: f64,
}

impl Spent {
    /// The earliest an uploader that costs what the bare one costs could
    /// finish the burst, writer included, if the cores never idled: every
    /// CPU second of the writer, the sandbox and that uploader, spread over
    /// `cores`.
    fn bound(&self, cores: usize) -> f64 {
        (self.writer + self.bare + self.bare_sandbox) / cores.max(1) as f64
    }
}

/// The rows and the note: CPU per file, and the CPU bound against the
/// target's time (`bare_secs` / `target_ratio`).
pub(super) fn report(
    spent: &[Spent],
    bare_secs: &[f64],
    files: f64,
    cores: usize,
    target_ratio: f64,
) -> Option<(Vec<Row>, String)> {
    let of = |f: &dyn Fn(&Spent) -> f64| Summary::of(&spent.iter().map(f).collect::<Vec<_>>());
    let per_file = |f: &dyn Fn(&Spent) -> f64| of(&|s| f(s) * 1000.0 / files);
    let daemon = per_file(&|s| s.daemon)?;
    let existing = per_file(&|s| s.existing)?;
    let bare = per_file(&|s| s.bare)?;
    let versus = of(&|s| s.daemon / s.bare.max(f64::EPSILON))?;
    let sandbox_bare = per_file(&|s| s.bare_sandbox)?;
    let sandbox_daemon = per_file(&|s| s.daemon_sandbox)?;
    let bounds: Vec<f64> = spent.iter().map(|s| s.bound(cores)).collect();
    let target: Vec<f64> = bare_secs.iter().map(|b| b / target_ratio).collect();
    let over: Vec<f64> = bounds.iter().zip(&target).map(|(b, t)| b / t).collect();
    let (bound, target, over) = (
        Summary::of(&bounds)?,
        Summary::of(&target)?,
        Summary::of(&over)?,
    );
    let runs = spent.len();
    let rows = vec![
        Row {
            figure: "1g. burst: CPU per file (user + system), docsync (1); (1f); the bare \
                     uploader"
                .into(),
            value: format!(
                "{}; {}; {}",
                summary(&daemon, "ms", 2),
                summary(&existing, "ms", 2),
                summary(&bare, "ms", 2)
            ),
            runs,
            versus: summary(&versus, "x", 2) + " the bare uploader's CPU",
            target: String::new(),
            verdict: Verdict::Info,
        },
        Row {
            figure: format!(
                "1h. burst: CPU bound, (writer + sandbox + an uploader as cheap as the bare \
                 one) / {cores} cores"
            ),
            value: summary(&bound, "s", 2),
            runs,
            versus: format!(
                "{} of the time {target_ratio}x bare allows ({})",
                summary(&over, "x", 2),
                summary(&target, "s", 2)
            ),
            target: String::new(),
            verdict: Verdict::Info,
        },
    ];
    let note = format!(
        "Burst CPU (1g, 1h): CPU seconds from /proc of the daemon, the sandbox and the bare \
         uploader over each one's run, and of the bench itself while its writer wrote the \
         files alone. The sandbox spent {} per upload while the bare uploader ran and {} \
         while docsync (1) ran. The bound (1h) is every CPU second the writer, the sandbox \
         and an uploader exactly as cheap as the bare one would spend, spread over {cores} \
         cores that never idle: no daemon that costs more CPU than the bare uploader can \
         finish sooner. Where it is above 1x of the time the target allows, the target \
         needs a daemon cheaper than the bare uploader on this machine: there the figure \
         that says where the daemon stands is its CPU per file (1g).",
        summary(&sandbox_bare, "ms", 2),
        summary(&sandbox_daemon, "ms", 2),
    );
    Some((rows, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_spreads_every_cpu_second_over_the_cores() {
        let spent = Spent {
            writer: 0.6,
            bare: 0.6,
            bare_sandbox: 1.2,
            daemon: 1.4,
            daemon_sandbox: 1.5,
            existing: 1.3,
        };
        assert!((spent.bound(2) - 1.2).abs() < 1e-9);
        let (rows, note) = report(&[spent], &[1.0], 2000.0, 2, 0.8).unwrap();
        // 1.4 s over 2,000 files, against 0.6 s: 0.70 ms, 2.33x
        assert!(rows[0].value.starts_with("0.70 ms"), "{}", rows[0].value);
        assert!(rows[0].versus.starts_with("2.33 x"), "{}", rows[0].versus);
        // 1.2 s against the 1.25 s that 0.8x of a 1 s bare run allows
        assert!(rows[1].versus.starts_with("0.96 x"), "{}", rows[1].versus);
        assert!(note.contains("0.60 ms per upload"), "{note}");
    }
}
