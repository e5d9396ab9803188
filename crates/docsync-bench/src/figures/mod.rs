//! One module per figure; each runs its measurement `runs` times and returns
//! its rows of the table (and notes).

pub mod burst;
pub mod codegen;
pub mod latency;
pub mod memory;
pub mod polling;
pub mod restart;
mod seeded;
pub mod sync_once;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use docsync::store::pg::PgStore;
use docsync::store::{State, Store};
use docsync_bench::process::{wait_for, Binaries, DaemonProcess, SandboxProcess};
use docsync_bench::report::Row;
use docsync_bench::workdir::Workdir;
use docsync_pgtest::PgCluster;

/// What every figure gets.
pub struct Bench {
    pub bins: Binaries,
    pub runs: usize,
    pub quick: bool,
    pub tmp: PathBuf,
    pub xtask: Option<PathBuf>,
    /// A durable throwaway PostgreSQL for the figures on the shared state,
    /// or why there is none (not installed: those rows say so).
    pub pg: std::result::Result<PgCluster, String>,
}

/// What a figure adds to the report.
#[derive(Default)]
pub struct Figure {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Bench {
    /// A fresh directory for one run of one figure.
    pub fn run_dir(&self, figure: &str, run: usize) -> Result<PathBuf> {
        let dir = self.tmp.join(format!("{figure}-{run}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// A sandbox with its data under `dir`.
    pub fn sandbox(&self, dir: &Path, decision_delay_s: f64) -> Result<SandboxProcess> {
        std::fs::create_dir_all(dir)?;
        SandboxProcess::start(&self.bins.sandbox, &dir.join("sandbox"), decision_delay_s)
    }

    /// A fresh database of [`Bench::pg`] for one run, and the bench's own
    /// connection to it (opened once the daemon created the schema, see
    /// [`Bench::daemon_pg`]).
    pub fn pg_database(&self, prefix: &str) -> Result<docsync_pgtest::Database> {
        let cluster = self.pg.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(cluster.fresh_database(prefix)?)
    }

    /// `docsync run` in `w` with its state in PostgreSQL (`w.state_url`),
    /// returned once it created the schema and had time for its first scan,
    /// with a connection that reads the state as `docsync status` does.
    pub async fn daemon_pg(
        &self,
        w: &Workdir,
        sandbox: &SandboxProcess,
    ) -> Result<(DaemonProcess, PgStore)> {
        let url = w
            .state_url
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the workdir has no state URL"))?;
        let mut d = self.spawn_run(w, sandbox)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let store = loop {
            not_exited(&mut d, w)?;
            if let Ok(Some(store)) = PgStore::connect_viewer(&url, "docsync-bench").await {
                if store.counts_by_state().await.is_ok() {
                    break store;
                }
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("the daemon did not create its PostgreSQL schema within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        // the watchers are installed right after the store opens
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok((d, store))
    }

    /// `docsync run` in `w`, started.
    fn spawn_run(&self, w: &Workdir, sandbox: &SandboxProcess) -> Result<DaemonProcess> {
        DaemonProcess::spawn(
            &self.bins.docsync,
            &w.dir,
            sandbox,
            &["run", "--config", "docsync.toml"],
        )
    }

    /// `docsync run` in `w`, returned once its database exists and its first scan
    /// has had time to finish (the database is created before the watchers start).
    pub fn daemon(&self, w: &Workdir, sandbox: &SandboxProcess) -> Result<DaemonProcess> {
        let mut d = self.spawn_run(w, sandbox)?;
        let db = w.db();
        wait_for(
            "the daemon's database",
            Duration::from_secs(30),
            Duration::from_millis(5),
            || {
                not_exited(&mut d, w)?;
                Ok(db.is_file()
                    && Store::open_read_only(&db)
                        .and_then(|s| s.count_in_state(State::Pending))
                        .is_ok())
            },
        )?;
        // the watchers are installed right after the store opens
        std::thread::sleep(Duration::from_millis(300));
        Ok(d)
    }
}

/// An error if the daemon `d` of `w` exited (it should be starting).
fn not_exited(d: &mut DaemonProcess, w: &Workdir) -> Result<()> {
    if let Some(status) = d.child.try_wait()? {
        anyhow::bail!(
            "docsync exited ({status}) before starting: see {}",
            w.dir.join("daemon.log").display()
        );
    }
    Ok(())
}

/// Wait until `n` rows of `w`'s database are `pending` (failing early, with the
/// daemon's log, if rows end up invalid or failed).
pub fn wait_pending(w: &Workdir, n: u64, timeout: Duration, every: Duration) -> Result<()> {
    let db = Store::open_read_only(&w.db())?;
    wait_for(&format!("{n} pending rows"), timeout, every, || {
        let pending = db.count_in_state(State::Pending)?;
        if pending >= n {
            return Ok(true);
        }
        let bad = db.count_in_state(State::Invalid)? + db.count_in_state(State::Failed)?;
        if bad > 0 {
            anyhow::bail!(
                "{bad} rows invalid or failed: see `docsync status` in {}",
                w.dir.display()
            );
        }
        Ok(false)
    })
}

/// [`wait_pending`] for a state in PostgreSQL, read through `store`.
pub async fn wait_pending_pg(
    store: &PgStore,
    w: &Workdir,
    n: u64,
    timeout: Duration,
    every: Duration,
) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let counts = store.counts_by_state().await?;
        let count = |s: State| counts.get(&s).copied().unwrap_or(0);
        if count(State::Pending) >= n {
            return Ok(());
        }
        let bad = count(State::Invalid) + count(State::Failed);
        if bad > 0 {
            anyhow::bail!(
                "{bad} rows invalid or failed: see `docsync status` in {}",
                w.dir.display()
            );
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "timed out waiting for {n} pending rows ({} pending)",
                count(State::Pending)
            );
        }
        tokio::time::sleep(every).await;
    }
}
