//! `docsync run` (watch until stopped) and `docsync sync --once`.

use std::path::Path;

use anyhow::Context;
use docsync::config::{AdminConfig, Config};
use docsync::engine::{self, ApiChange, Engine, Mode, Report, Snapshot};
use docsync::model::{text, MaxAge};
use docsync::store::{InstanceLock, State};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::logging::Logs;
use super::progress::Progress;
use super::systemd::Systemd;
use super::{setup, ApiArgs, RunArgs, SyncArgs, EXIT_INTERRUPTED, EXIT_OK};

/// `docsync run [FOLDER]`: exit 0 on a clean stop. With `--dry-run`, one pass
/// that sends nothing (see [`super::dry_run`]).
pub async fn run(args: RunArgs, logs: &Logs) -> anyhow::Result<u8> {
    if args.dry.dry_run {
        let start = Start {
            api: &args.api,
            api_change: args.api_change.choice(),
            folder: args.folder.as_deref(),
            only_newer_than: args.age.only_newer_than.as_ref(),
        };
        return super::dry_run::dry_run(&start, args.dry.json).await;
    }
    let admin = args.admin.map(|address| AdminConfig {
        address,
        allow_remote: args.admin_allow_remote,
    });
    let admin = Admin::Configured(admin);
    let start = Start {
        api: &args.api,
        api_change: args.api_change.choice(),
        folder: args.folder.as_deref(),
        only_newer_than: args.age.only_newer_than.as_ref(),
    };
    let (report, _) = daemon(start, Mode::Watch, admin, logs).await?;
    tracing::info!(summary = %summary(&report), "stopped");
    Ok(EXIT_OK)
}

/// `docsync sync --once`: exit code from the report (0 all accepted, 1 something
/// rejected/failed/invalid, 3 timed out), 130 if interrupted.
pub async fn sync(args: SyncArgs, logs: &Logs) -> anyhow::Result<u8> {
    if args.dry.dry_run {
        let start = Start {
            api: &args.api,
            api_change: args.api_change.choice(),
            folder: args.folder.as_deref(),
            only_newer_than: args.age.only_newer_than.as_ref(),
        };
        return super::dry_run::dry_run(&start, args.dry.json).await;
    }
    let mode = Mode::Once {
        timeout: args.timeout,
    };
    let start = Start {
        api: &args.api,
        api_change: args.api_change.choice(),
        folder: args.folder.as_deref(),
        only_newer_than: args.age.only_newer_than.as_ref(),
    };
    let (report, interrupted) = daemon(start, mode, Admin::Off, logs).await?;
    let mut line = format!("sync: {}", summary(&report));
    if interrupted {
        line.push_str("; interrupted");
    } else if report.timed_out {
        line.push_str(&format!(
            "; timed out after {} with work left",
            humantime(args.timeout)
        ));
    }
    outln!("{line}");
    if interrupted {
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(u8::try_from(report.exit_code()).unwrap_or(super::EXIT_PROBLEMS))
}

/// Whether the daemon serves the admin listener.
enum Admin {
    /// Never (`sync --once`).
    Off,
    /// `--admin` (or `DOCSYNC_ADMIN`) when given, else the configuration's `[admin]`.
    Configured(Option<AdminConfig>),
}

/// What `run` and `sync` start on (and what a dry run looks at).
pub struct Start<'a> {
    pub api: &'a ApiArgs,
    /// `--start-over`, `--keep-history` or neither.
    pub api_change: ApiChange,
    pub folder: Option<&'a Path>,
    /// `--only-newer-than`: every folder's `max_age`.
    pub only_newer_than: Option<&'a MaxAge>,
}

/// Load, connect, run until done or signalled. Returns the report and whether a
/// signal stopped it.
async fn daemon(
    start: Start<'_>,
    mode: Mode,
    admin: Admin,
    logs: &Logs,
) -> anyhow::Result<(Report, bool)> {
    let mut config = setup::load(start.api, start.folder)?;
    setup::only_newer_than(&mut config, start.only_newer_than);
    // Fail fast, before starting anything, if another docsync holds the state
    // directory (the daemon takes the lock again for its whole run).
    InstanceLock::ensure_free(&config.state_dir)?;
    let admin = match admin {
        Admin::Off => None,
        Admin::Configured(flag) => flag.or(config.admin),
    };
    // Bind before starting anything: a taken port is a setup error.
    let admin = admin
        .map(|a| docsync::admin::Listener::bind(a.address, a.allow_remote))
        .transpose()?;
    let _sandbox = setup::embedded_sandbox(&mut config).await?;
    log_start(&config);
    let apis = docsync::remote::connect::apis(&config).context("connecting to the API")?;

    let shutdown = CancellationToken::new();
    let signals = listen_for_signals(shutdown.clone())?;
    let (tx, rx) = watch::channel(Snapshot::default());
    // under systemd (NOTIFY_SOCKET): READY, STATUS, WATCHDOG and STOPPING
    let systemd = Systemd::from_env();
    let beats = systemd
        .as_ref()
        .map(Systemd::heartbeats)
        .unwrap_or_default();
    let mut engine = Engine::new(config, apis)
        .mode(mode)
        .progress(tx)
        .heartbeats(beats.clone())
        .on_api_change(start.api_change);
    let notified = shutdown.child_token();
    let notifier = systemd.map(|systemd| systemd.start(rx.clone(), beats, notified.clone()));
    let progress = Progress::start(rx, logs);
    if let Some(admin) = admin {
        engine = engine.admin(admin);
    }
    let result = engine.run(shutdown.clone()).await;
    progress.finish();
    notified.cancel();
    if let Some(notifier) = notifier {
        // STOPPING=1 is sent before the process exits
        let _ = notifier.await;
    }
    signals.abort();
    let report = result?;
    Ok((report, shutdown.is_cancelled()))
}

fn log_start(config: &Config) {
    for folder in &config.folders {
        tracing::info!(folder = %text::lossless_path(&folder.path), "syncing");
    }
    let api = config.api_identity();
    let url = config.api.url.as_deref().unwrap_or("");
    if api.is_sandbox() {
        tracing::warn!(state_dir = %text::lossless_path(&config.state_dir), %api, url, "started on the embedded sandbox: nothing is sent to the real Moov API");
    } else {
        tracing::info!(state_dir = %text::lossless_path(&config.state_dir), %api, "started");
    }
}

/// SIGINT/SIGTERM cancel `token` (a graceful stop); a second one exits at once.
fn listen_for_signals(token: CancellationToken) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!(
            "stopping: in-flight uploads get {}s to finish (signal again to quit at once)",
            engine::GRACE.as_secs()
        );
        token.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("docsync: stopped at once; interrupted uploads are reconciled on the next start");
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    }))
}

/// `5 files: 3 approved, 1 rejected, 1 invalid` (states with no rows left out).
pub fn summary(report: &Report) -> String {
    let live: u64 = report
        .counts
        .iter()
        .filter(|(s, _)| s.is_live())
        .map(|(_, n)| n)
        .sum();
    let parts: Vec<String> = State::ALL
        .iter()
        .filter(|s| s.is_live())
        .filter_map(|s| match report.counts.get(s) {
            Some(&n) if n > 0 => Some(format!("{n} {s}")),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        format!("{live} files")
    } else {
        format!("{live} files: {}", parts.join(", "))
    }
}

fn humantime(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        format!("{}s", d.as_secs())
    }
}
