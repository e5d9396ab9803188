//! The processes a benchmark drives: the sandbox and the daemon (release
//! binaries), and what `/proc` says about them.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::machine::kib_field;

/// Where the release binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub docsync: PathBuf,
    pub sandbox: PathBuf,
    pub bare_uploader: PathBuf,
}

impl Binaries {
    /// The binaries in `dir` (e.g. `target/release`), each checked to exist.
    pub fn in_dir(dir: &Path) -> Result<Binaries> {
        let dir =
            std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
        let bin = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                bail!(
                    "{} is missing: build it with `cargo build --release -p docsync -p docsync-sandbox -p docsync-bench`",
                    p.display()
                )
            }
        };
        Ok(Binaries {
            docsync: bin("docsync")?,
            sandbox: bin("docsync-sandbox")?,
            bare_uploader: bin("bare-uploader")?,
        })
    }
}

/// A sandbox process on 127.0.0.1 (any free port), stopped on drop.
pub struct SandboxProcess {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pub url: String,
    pub public_key: String,
    pub secret_key: String,
    pub api_key: String,
    http: reqwest::Client,
}

/// One line of the sandbox's request log (`GET /_sandbox/requests`).
#[derive(Debug, Clone, Deserialize)]
pub struct LoggedRequest {
    pub received_at: DateTime<Utc>,
    pub path: String,
    pub operation_id: Option<String>,
    pub status: Option<u16>,
}

impl SandboxProcess {
    /// Start it with its data in `data` and files pending for `decision_delay_s`.
    pub fn start(bin: &Path, data: &Path, decision_delay_s: f64) -> Result<SandboxProcess> {
        let log = File::create(data.with_extension("log"))
            .with_context(|| format!("creating {}", data.with_extension("log").display()))?;
        let mut child = Command::new(bin)
            .args(["--addr", "127.0.0.1:0", "--reject-pattern", ""])
            .arg("--data")
            .arg(data)
            .arg("--decision-delay")
            .arg(decision_delay_s.to_string())
            // DOCSYNC_BENCH_RUST_LOG: the daemons' log filter, to look into a figure
            .env(
                "RUST_LOG",
                std::env::var("DOCSYNC_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("the sandbox's stdout was not captured")?;
        let mut stdout = BufReader::new(stdout);
        let (mut url, mut pk, mut sk, mut ak) = (None, None, None, None);
        let mut line = String::new();
        while ak.is_none() {
            line.clear();
            if stdout
                .read_line(&mut line)
                .context("reading the sandbox's output")?
                == 0
            {
                let _ = child.kill();
                bail!(
                    "the sandbox exited before printing its URL and keys (see {})",
                    data.with_extension("log").display()
                );
            }
            let field = |prefix: &str| line.strip_prefix(prefix).map(|v| v.trim().to_owned());
            url = url.or(field("docsync-sandbox listening on "));
            pk = pk.or(field("moov public key:"));
            sk = sk.or(field("moov secret key:"));
            ak = ak.or(field("attachments key:"));
        }
        let (Some(url), Some(public_key), Some(secret_key), Some(api_key)) = (url, pk, sk, ak)
        else {
            let _ = child.kill();
            bail!("the sandbox printed its keys but not its URL");
        };
        Ok(SandboxProcess {
            child,
            _stdout: stdout,
            url,
            public_key,
            secret_key,
            api_key,
            http: reqwest::Client::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything in the request log, oldest first.
    pub async fn requests(&self) -> Result<Vec<LoggedRequest>> {
        let url = format!("{}/_sandbox/requests", self.url);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !resp.status().is_success() {
            bail!("GET {url}: {}", resp.status());
        }
        resp.json().await.with_context(|| format!("decoding {url}"))
    }

    pub async fn clear_requests(&self) -> Result<()> {
        let url = format!("{}/_sandbox/requests", self.url);
        self.http
            .delete(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("DELETE {url}"))?;
        Ok(())
    }

    /// The environment a `docsync` process needs to talk to this sandbox.
    pub fn docsync_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DOCSYNC_API_URL", self.url.clone()),
            ("DOCSYNC_ATTACHMENTS_URL", self.url.clone()),
            ("DOCSYNC_PUBLIC_KEY", self.public_key.clone()),
            ("DOCSYNC_SECRET_KEY", self.secret_key.clone()),
            ("DOCSYNC_ATTACHMENTS_API_KEY", self.api_key.clone()),
        ]
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(5));
    }
}

/// Ask `child` to stop (SIGINT, as Ctrl-C), kill it after `grace`.
pub fn stop(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A `docsync` process, stopped (SIGINT) on drop.
pub struct DaemonProcess {
    pub child: Child,
}

impl DaemonProcess {
    /// `docsync ARGS` in `dir` against `sandbox`, its log in `dir/daemon.log`.
    pub fn spawn(bin: &Path, dir: &Path, sandbox: &SandboxProcess, args: &[&str]) -> Result<Self> {
        let log_path = dir.join("daemon.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(bin)
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("HOME", dir)
            // DOCSYNC_BENCH_RUST_LOG: the daemons' log filter, to look into a figure
            .env(
                "RUST_LOG",
                std::env::var("DOCSYNC_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(sandbox.docsync_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(DaemonProcess { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for it to exit by itself, at most `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for docsync")? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("docsync did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(15));
    }
}

/// Peak resident memory (`VmHWM`) of a live process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmHWM")
}

/// CPU time (user + system) a live process has used so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_ticks_of_stat(&stat)
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line.
pub fn cpu_ticks_of_stat(stat: &str) -> Option<u64> {
    // the command name (field 2) is in parentheses and may contain spaces
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14 -> index 11
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
pub fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU used by `pid` between `start()` and `share()`, as a fraction of one core.
pub struct CpuMeter {
    pid: u32,
    ticks: u64,
    at: Instant,
}

impl CpuMeter {
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            ticks: cpu_ticks(pid).unwrap_or(0),
            at: Instant::now(),
        }
    }

    /// A meter of everything `pid` spent since it started (its share counts
    /// from now).
    pub fn from_start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            ticks: 0,
            at: Instant::now(),
        }
    }

    /// CPU seconds used since `start` (user and system, every thread).
    pub fn seconds(&self) -> f64 {
        let used = cpu_ticks(self.pid).unwrap_or(self.ticks) - self.ticks;
        used as f64 / ticks_per_second()
    }

    /// Cores busy on average since `start` (1.0 = one core all the time).
    pub fn share(&self) -> f64 {
        let used = cpu_ticks(self.pid).unwrap_or(self.ticks) - self.ticks;
        let wall = self.at.elapsed().as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        used as f64 / ticks_per_second() / wall
    }
}

/// Poll `cond` every `every` until it holds, failing after `timeout` with `what`.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut cond: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if cond()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_from_a_stat_line_with_spaces_in_the_name() {
        let stat = "4242 (docsync sand box) S 1 4242 4242 0 -1 4194560 1225 0 0 0 37 15 0 0 20 0 9 0 123 456 789";
        assert_eq!(cpu_ticks_of_stat(stat), Some(52));
        assert_eq!(cpu_ticks_of_stat("garbage"), None);
    }
}
