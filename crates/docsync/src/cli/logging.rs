//! Logs: tracing-subscriber on stderr, text or JSON lines, the level from -v/-q or
//! `RUST_LOG`. While a progress bar is shown, log lines are written with the bar
//! hidden, so the two never mix.
//!
//! Secrets never reach a log: the configuration keeps them in `Secret`, whose
//! `Debug`/`Display` print `***`.
//!
//! One event is one line: in text logs every field's value, the message included,
//! goes through [`text::escape_str`] ([`EscapedFields`]), so a file name or a server
//! answer holding a newline, an ANSI escape or a bidi override cannot start a forged
//! line or colour the terminal. JSON logs keep values exact (JSON escapes them).

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use docsync::model::text;
use indicatif::ProgressBar;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;
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
        LogFormat::Text => builder
            .with_target(false)
            .fmt_fields(EscapedFields)
            .try_init(),
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

/// The fields of a text log line (an event's and its spans'), `name=value` with
/// every value escaped by [`text::escape_str`] and never quoted, the message first
/// without its name.
///
/// Not tracing-subscriber's `DefaultFields`: its ANSI sanitising (0.3.20 on) covers
/// the message and errors only, and only ESC, BEL, BS, FF, DEL and C1; a newline, CR
/// or tab, a bidi override, and every `%`/`?` field pass through as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'a> MakeVisitor<Writer<'a>> for EscapedFields {
    type Visitor = EscapedVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> EscapedVisitor<'a> {
        EscapedVisitor {
            writer,
            first: true,
            result: Ok(()),
        }
    }
}

/// Writes the fields of one event or span for [`EscapedFields`].
pub struct EscapedVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl EscapedVisitor<'_> {
    fn write(&mut self, field: &Field, value: &str) {
        let name = field.name();
        // a `log` record's metadata, which the line shows already
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let sep = if std::mem::take(&mut self.first) {
            ""
        } else {
            " "
        };
        let value = text::escape_str(value);
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = match (name, self.writer.has_ansi_escapes()) {
            ("message", _) => write!(self.writer, "{sep}{value}"),
            // italic name, dimmed `=`, as tracing-subscriber's default fields
            (name, true) => write!(
                self.writer,
                "{sep}\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m{value}"
            ),
            (name, false) => write!(self.writer, "{sep}{name}={value}"),
        };
    }
}

impl Visit for EscapedVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut shown = value.to_string();
        let mut source = value.source();
        while let Some(e) = source {
            shown.push_str(": ");
            shown.push_str(&e.to_string());
            source = e.source();
        }
        self.write(field, &shown);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for EscapedVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for EscapedVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Failure;
    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the server said:\nforged error line")
        }
    }
    impl std::error::Error for Failure {}

    /// What the text format logs for these events, one line per event.
    fn logged(ansi: bool) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(ansi)
            .with_target(false)
            .without_time()
            .fmt_fields(EscapedFields)
            .finish();
        let forged = "a.pdf\n2026-01-01T00:00:00Z  INFO forged line.pdf";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("file", path = %forged, id = 7);
            let _entered = span.enter();
            tracing::info!(path = %forged, "decided");
            tracing::info!(path = forged, "uploaded");
            tracing::info!(path = ?forged, "debug");
            tracing::info!("message with {forged} in it");
            tracing::warn!(
                error = &Failure as &(dyn std::error::Error + 'static),
                "failed"
            );
            tracing::warn!(
                status = %"\u{1b}[31mred\u{1b}[0m\r\tright-to-left\u{202e}txt.pdf",
                r#type = "raw",
                "unknown status"
            );
        });
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }

    #[test]
    fn every_field_is_escaped_and_one_event_is_one_line() {
        let log = logged(false);
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 6, "{log}");
        for line in &lines {
            assert!(
                line.trim_start().starts_with("INFO") || line.trim_start().starts_with("WARN"),
                "{line:?}\n{log}"
            );
            assert!(!line.chars().any(text::is_escaped), "{line:?}");
        }
        let forged = r"a.pdf\n2026-01-01T00:00:00Z  INFO forged line.pdf";
        assert!(
            lines[0].contains(&format!("file{{path={forged} id=7}}")),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].ends_with(&format!("decided path={forged}")),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with(&format!("uploaded path={forged}")),
            "{}",
            lines[1]
        );
        // `?` is Debug: quoted, with Rust's own escapes, then nothing left to escape
        assert!(
            lines[2].ends_with(r#"debug path="a.pdf\n2026-01-01T00:00:00Z  INFO forged line.pdf""#),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].ends_with(&format!("message with {forged} in it")),
            "{}",
            lines[3]
        );
        assert!(
            lines[4].ends_with(r"failed error=the server said:\nforged error line"),
            "{}",
            lines[4]
        );
        assert!(
            lines[5].ends_with(r"unknown status status=\u{1b}[31mred\u{1b}[0m\r\tright-to-left\u{202e}txt.pdf type=raw"),
            "{}",
            lines[5]
        );
    }

    #[test]
    fn on_a_terminal_only_our_own_styling_is_raw() {
        let log = logged(true);
        assert_eq!(log.lines().count(), 6, "{log}");
        // the forged ESC arrives escaped; the ESCs left are the formatter's styling
        assert!(log.contains(r"\u{1b}[31mred"), "{log}");
        assert!(!log.contains("\x1b[31mred"), "{log}");
        assert!(log.contains("\x1b[3mpath\x1b[0m\x1b[2m=\x1b[0m"), "{log}");
    }
}
