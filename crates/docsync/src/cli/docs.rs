//! `docsync completions SHELL` and `docsync man`: generated from the clap
//! definitions in `cli.rs`, so they never drift from the real arguments.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use super::{Cli, EXIT_OK};

/// Print the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "docsync", &mut script);
    write_stdout(&script)
}

/// Print the man page (roff) on stdout (`docsync man | man -l -`), or with `dir`
/// write every command's page there.
pub fn man(dir: Option<&Path>) -> anyhow::Result<u8> {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the man page directory {}", dir.display()))?;
        clap_mangen::generate_to(Cli::command(), dir)
            .with_context(|| format!("writing the man pages into {}", dir.display()))?;
        outln!("wrote the man pages into {}", dir.display());
        return Ok(EXIT_OK);
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .context("rendering the man page")?;
    write_stdout(&page)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        // `docsync man | head`: a closed pipe is not an error
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(EXIT_OK),
    }
}
