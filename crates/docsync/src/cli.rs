//! The `docsync` commands (binary only): argument definitions here, one module per
//! command group. Commands return the process exit code; an `Err` is a setup error
//! (printed as `error: ...` by `main`, exit code [`EXIT_SETUP`]).

/// `println!` that does not panic when stdout is closed (`docsync status | head`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::emit(&format!($($arg)*))
    };
}

pub mod baseline;
pub mod check;
pub mod docs;
pub mod dry_run;
pub mod folder_summary;
pub mod logging;
pub mod progress;
pub mod run;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod setup;
pub mod status;
pub mod systemd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use docsync::model::{MaxAge, MAX_AGE_FIX};
use docsync::store::State;

/// The command ran and everything is fine.
pub const EXIT_OK: u8 = 0;
/// The command ran and found something wrong (rejected files, config problems...).
pub const EXIT_PROBLEMS: u8 = 1;
/// Setup failed: arguments, configuration, lock, database.
pub const EXIT_SETUP: u8 = 2;
// 3: `sync --once` stopped at its timeout with work left (`Report::exit_code`).
/// `status` or `history` found no state database: docsync has not run with this
/// state directory yet (the message says where it looked).
pub const EXIT_NO_STATE: u8 = 4;
/// Stopped by SIGINT/SIGTERM before `sync --once` finished.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Keeps local folders in step with a document-upload API.
#[derive(Debug, Parser)]
#[command(name = "docsync", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Logging flags, accepted before or after the subcommand.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// More logs (-v debug, -vv trace). Without -v/-q, RUST_LOG decides (default info).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Fewer logs (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub quiet: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch the folders and sync until stopped (SIGINT/SIGTERM).
    Run(RunArgs),
    /// Scan, upload and wait for decisions once; the exit code says how it went.
    Sync(SyncArgs),
    /// List files and their states from the state database (read-only), under a
    /// line naming the API they were synced against; then, on stderr, a line per
    /// folder (its files by state, how long the oldest pending file has waited).
    /// Exit 4 when there is no state yet (docsync has not run with this state
    /// directory).
    Status(StatusArgs),
    /// Every recorded step of one file.
    History(HistoryArgs),
    /// Queue failed (and invalid) files again; a skipped file when named.
    Retry(RetryArgs),
    /// Mark every file the folders hold now as already handled: recorded
    /// `skipped`, never sent (nothing is read or sent, the API is not
    /// contacted). Files added afterwards are uploaded as usual. Run it before
    /// the first `docsync run` over a folder with years of files; refused
    /// while a daemon runs on the state directory.
    Baseline(BaselineArgs),
    /// Run the local sandbox API in the foreground and print its URL and credentials.
    #[cfg(feature = "sandbox")]
    Sandbox(SandboxArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (e.g. `docsync completions bash > /etc/bash_completion.d/docsync`).
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `docsync man | man -l -`; with --dir, write
    /// one page per command (docsync.1, docsync-run.1, ...) into a directory.
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write docsync.1 and one page per subcommand here (created if missing),
    /// e.g. /usr/local/share/man/man1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and explain every problem with its location and a fix.
    Check(CheckArgs),
}

/// Where the configuration and the state are.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// The configuration file (default: docsync.toml in the working directory, if present).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The state directory (database, lock, embedded sandbox data); wins over the
    /// configuration and DOCSYNC_STATE_DIR.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

/// The configuration plus the API override (commands that talk to the API).
#[derive(Debug, Clone, Default, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The Moov API base URL (wins over the configuration and DOCSYNC_API_URL).
    /// A configuration file must name an API: this, api.url, or --sandbox.
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// Use the embedded sandbox (a local stand-in for the API whose approvals are
    /// not real) instead of an API URL; also DOCSYNC_SANDBOX=true or
    /// api.sandbox = true. Without a configuration file and an API URL, the
    /// sandbox is used anyway.
    #[arg(long, conflicts_with = "api_url")]
    pub sandbox: bool,
}

/// What to do when the state database was synced against another API than the
/// one configured now (otherwise the daemon refuses to start). Once is enough:
/// the new API is recorded.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ApiChangeArgs {
    /// The API changed: forget the rows synced against the old one and upload
    /// every file in the folders to the new one (a backup of the old database
    /// is kept next to it, as docsync.db.before-start-over-TIME).
    #[arg(long, conflicts_with = "keep_history")]
    pub start_over: bool,
    /// The API changed: record the new one and keep the rows as they are (files
    /// already synced with the old API are not sent again).
    #[arg(long)]
    pub keep_history: bool,
}

impl ApiChangeArgs {
    /// The engine's choice.
    pub fn choice(self) -> docsync::engine::ApiChange {
        use docsync::engine::ApiChange;
        match (self.start_over, self.keep_history) {
            (true, _) => ApiChange::StartOver,
            (false, true) => ApiChange::KeepHistory,
            (false, false) => ApiChange::Refuse,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The folder to sync with the <accountID>/<filePurpose>/<file> layout, when
    /// there is no configuration file.
    #[arg(value_name = "FOLDER", conflicts_with = "config")]
    pub folder: Option<PathBuf>,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub api_change: ApiChangeArgs,
    /// Serve the status page, /metrics, /healthz and /readyz on this address
    /// (e.g. 127.0.0.1:8384; port 0: any free port, logged). Off by default.
    #[arg(long, value_name = "ADDR", env = "DOCSYNC_ADMIN")]
    pub admin: Option<SocketAddr>,
    /// Let --admin listen on a non-loopback address. The page has no login: put it
    /// behind a firewall or an authenticating proxy.
    #[arg(long, requires = "admin", env = "DOCSYNC_ADMIN_ALLOW_REMOTE")]
    pub admin_allow_remote: bool,
    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub dry: DryRunArgs,
}

/// `--dry-run` and its `--json` (`run` and `sync`).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct DryRunArgs {
    /// Show what one pass would send, skip, refuse or wait for, and why, per
    /// file; send nothing (no request at all) and change nothing (the state
    /// database is read into memory, never written; none is created). Exit 0
    /// when nothing would be refused, 1 when a file is invalid.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print a JSON array, one object per file (folder, path,
    /// verdict, reason, target, account, size, sha256 when hashed); the summary
    /// goes to stderr.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
}

/// The `max_age` override of `run` and `sync`.
#[derive(Debug, Clone, Default, Args)]
pub struct AgeArgs {
    /// Only send files modified within this (30d, 12h, 2w) or after this date
    /// (2024-06-01, or RFC 3339): older ones are recorded `skipped` when first
    /// seen, never read. Wins over every max_age of the configuration.
    #[arg(long, value_name = "DURATION|DATE", value_parser = parse_max_age)]
    pub only_newer_than: Option<MaxAge>,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// Only this folder: one of the configuration's folders (by its path), or,
    /// without a configuration file, the folder to sync with the
    /// <accountID>/<filePurpose>/<file> layout.
    #[arg(value_name = "FOLDER")]
    pub folder: Option<PathBuf>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Run once: scan, upload, wait for decisions, stop (the only mode for now).
    #[arg(long, required = true)]
    pub once: bool,
    /// Stop waiting after this long (e.g. 90s, 5m); exit code 3 if work was left.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The folder to sync with the <accountID>/<filePurpose>/<file> layout, when
    /// there is no configuration file.
    #[arg(value_name = "FOLDER", conflicts_with = "config")]
    pub folder: Option<PathBuf>,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub api_change: ApiChangeArgs,
    #[command(flatten)]
    pub age: AgeArgs,
    #[command(flatten)]
    pub dry: DryRunArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print a JSON array (keys: path, state, remote_id, remote_status, reason,
    /// updated; path_bytes_hex for names that are not UTF-8; next_attempt for
    /// a retrying file; held_by with the state in PostgreSQL); the API line and
    /// the per-folder summary go to stderr.
    #[arg(long)]
    pub json: bool,
    /// Only files in this state (repeatable).
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
    pub states: Vec<State>,
    /// Only files of this synced folder (its root path).
    #[arg(long, value_name = "FOLDER")]
    pub folder: Option<PathBuf>,
    /// At most this many rows.
    #[arg(long, default_value_t = 1000)]
    pub limit: u32,
    /// Include superseded and deleted rows.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The file: relative to its synced folder, or any path inside one.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["path", "all_failed"]))]
pub struct RetryArgs {
    /// The file: relative to its synced folder, or any path inside one.
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Every failed and invalid file (not skipped ones: name those).
    #[arg(long)]
    pub all_failed: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Data directory (database and bytes); default: a temp dir removed on exit.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Write one line to stdout; a closed pipe ends the output quietly.
pub fn emit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match docsync::config::parse_duration(s)? {
        d if d.is_zero() => Err("the timeout must be more than zero".into()),
        d => Ok(d),
    }
}

fn parse_max_age(s: &str) -> Result<MaxAge, String> {
    MaxAge::parse(s).map_err(|e| format!("{e}; {MAX_AGE_FIX}"))
}

fn parse_state(s: &str) -> Result<State, String> {
    s.parse::<State>().map_err(|e| {
        let all: Vec<_> = State::ALL.iter().map(|s| s.as_str()).collect();
        format!("{e}; use one of {}", all.join(", "))
    })
}
