//! Logs: tracing-subscriber on stderr, text or JSON lines, the level from -v/-q or
//! `RUST_LOG`. While a progress bar is shown, log lines are written with the bar
//! hidden, so the two never mix.
//!
//! Secrets never reach a log: the configuration keeps them in `Secret`, whose
//! `Debug`/`Display` print `***`.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use indicatif::ProgressBar;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use super::{LogArgs, LogFormat};

/// The default filter: our own info logs, the embedded sandbox's warnings only.
const DEFAULT_FILTER: &str = "info,docsync_sandbox=warn,tower_http=warn,rusqlite_migration=warn";

/// The logging setup, shared with the progress bar.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    bar: Arc<Mutex<Option<ProgressBar>>>,
}

impl Logs {
    /// Route log lines around `bar` while it is shown (`None` to stop).
    pub fn set_bar(&self, bar: Option<ProgressBar>) {
        if let Ok(mut slot) = self.bar.lock() {
            *slot = bar;
        }
    }

    /// Run `f` (which writes to stderr) with the progress bar hidden.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let bar = self.bar.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}

/// Install the global subscriber. Returns the handle the progress bar uses.
pub fn init(args: &LogArgs) -> Logs {
    let filter = match (args.verbose, args.quiet) {
        (0, 0) => {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
        }
        (1, _) => EnvFilter::new("debug"),
        (v, _) if v >= 2 => EnvFilter::new("trace"),
        (_, 1) => EnvFilter::new("warn"),
        _ => EnvFilter::new("error"),
    };
    let logs = Logs::default();
    let writer = BarWriter { logs: logs.clone() };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match args.log_format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Err(e) = installed {
        eprintln!("docsync: logging is not available: {e}");
    }
    logs
}

#[derive(Debug, Clone)]
struct BarWriter {
    logs: Logs,
}

impl<'a> MakeWriter<'a> for BarWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            logs: self.logs.clone(),
        }
    }
}

/// Writes each formatted event (one `write_all`) to stderr with the bar hidden.
#[derive(Debug)]
pub struct LineWriter {
    logs: Logs,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.logs
            .suspend(|| std::io::stderr().lock().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
