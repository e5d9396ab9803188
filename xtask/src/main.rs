//! Project automation: `cargo xtask codegen [--check]`, `cargo xtask bench`.
//!
//! Dependencies stay few: this binary is built on every `cargo xtask` call.

mod bench;
mod codegen;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  codegen [--check]   regenerate the typed client from openapi/*.yaml
                      (--check: fail if the checked-in code is stale)
  bench [--quick]     build release binaries, run the benchmarks, write
                      bench/results.md (--quick: one run per figure, < 2 min;
                      --only burst,latency,memory,restart,polling,codegen)
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["codegen"] => codegen::run(&project_root(), codegen::Mode::Write),
        ["codegen", "--check"] => codegen::run(&project_root(), codegen::Mode::Check),
        ["bench", rest @ ..] => bench::run(&project_root(), rest),
        ["help" | "--help" | "-h"] | [] => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown arguments {other:?}\n\n{USAGE}"),
    }
}

/// The workspace root, found from this crate's manifest dir (`<root>/xtask`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}
