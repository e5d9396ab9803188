//! `docsync`: the command line. This file only parses arguments, sets up logging
//! and calls into [`cli`]; every command lives in its own module there.
//!
//! Exit codes: 0 success; 1 the command ran but found something wrong (a sync with
//! rejected, failed or invalid files, `config check` problems, an unknown path in
//! `history`); 2 a setup error (bad arguments or configuration, the state directory
//! locked by another docsync, an unreachable database); 3 `sync --once` timed out
//! with work left; 4 `status`/`history` found no state database yet (docsync has
//! not run with that state directory: the message says where it looked, and
//! `--json` still prints a valid `[]`); 130 interrupted.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConfigCommand};

fn main() -> ExitCode {
    let args = Cli::parse();
    let logs = cli::logging::init(&args.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(cli::EXIT_SETUP);
        }
    };
    let result = runtime.block_on(async {
        match args.command {
            Command::Run(a) => cli::run::run(a, &logs).await,
            Command::Sync(a) => cli::run::sync(a, &logs).await,
            Command::Status(a) => cli::status::status(a).await,
            Command::History(a) => cli::status::history(a).await,
            Command::Retry(a) => cli::status::retry(a).await,
            Command::Baseline(a) => cli::baseline::baseline(a).await,
            #[cfg(feature = "sandbox")]
            Command::Sandbox(a) => cli::sandbox::sandbox(a).await,
            Command::Config(ConfigCommand::Check(a)) => cli::check::check(a),
            Command::Completions(a) => cli::docs::completions(a.shell),
            Command::Man(a) => cli::docs::man(a.dir.as_deref()),
        }
    });
    // Blocking tasks (a store call, a hasher) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // its own lines kept (a configuration's problems, one a line), anything
            // else that could colour or rewrite the terminal escaped
            let message = format!("{e:#}");
            let shown: Vec<_> = message
                .split('\n')
                .map(docsync::model::text::escape_str)
                .collect();
            logs.suspend(|| eprintln!("error: {}", shown.join("\n")));
            ExitCode::from(cli::EXIT_SETUP)
        }
    }
}
