//! Shared harness for the end-to-end tests: the real `docsync` binary, an
//! in-process sandbox, and temp folders.
//!
//! - [`docsync_bin`] is the path of the binary cargo built for this test target.
//! - [`TestSandbox`] runs the sandbox in process, with a short decision delay, so a
//!   test can read its request log.
//! - [`Workspace`] is a temp dir with an inbox, a state dir and (optionally) a
//!   `docsync.toml`; it builds [`std::process::Command`]s with a clean environment
//!   pointing at the sandbox, runs them with a timeout, and spawns daemons that are
//!   killed on drop.
//! - [`RestartableSandbox`] is a sandbox that can be killed mid-request (every
//!   connection dropped at once) and started again on the same port and data.
//! - [`server_store::server_files`] reads what a sandbox holds from its own database.
//! - [`wait_until`] polls a condition with a short interval and panics with the last
//!   thing it saw (no bare sleeps).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod server_store;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use docsync_sandbox::{
    Credentials, DecisionRule, RequestLogEntry, Sandbox, SandboxConfig, SandboxHandle,
};
use serde_json::Value;

/// How long a one-shot command may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The Moov account ID of account `n` of the files named `name`: Moov's
/// account IDs are UUIDs (docsync syncs no other account folder, and the
/// sandbox answers any other ID 404). Deterministic, and distinct for every
/// `(name, n)`: the first half hashes the name, the second is `n`.
pub fn account_id(name: &str, n: usize) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    uuid::Uuid::from_u128((u128::from(h) << 64) | n as u128).to_string()
}

/// The `docsync` binary (cargo builds it before the tests of this package).
pub fn docsync_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_docsync"))
}

/// A sandbox running in this process (on its own runtime), stopped on drop.
pub struct TestSandbox {
    handle: Option<SandboxHandle>,
    runtime: tokio::runtime::Runtime,
    _data: tempfile::TempDir,
}

impl TestSandbox {
    /// Decisions after 200 ms; names matching `(?i)reject` are rejected.
    pub fn start() -> TestSandbox {
        TestSandbox::with_decision_delay(Duration::from_millis(200))
    }

    /// A sandbox whose files stay pending for `delay`.
    pub fn with_decision_delay(delay: Duration) -> TestSandbox {
        TestSandbox::with_config(SandboxConfig {
            decision: DecisionRule {
                delay,
                ..DecisionRule::default()
            },
            ..SandboxConfig::default()
        })
    }

    /// A sandbox on `config` (its data dir: a temp dir of the harness).
    pub fn with_config(config: SandboxConfig) -> TestSandbox {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the sandbox");
        let data = tempfile::tempdir().expect("a sandbox data dir");
        let handle = runtime
            .block_on(Sandbox::start(SandboxConfig {
                data_dir: Some(data.path().to_owned()),
                ..config
            }))
            .expect("starting the sandbox");
        TestSandbox {
            handle: Some(handle),
            runtime,
            _data: data,
        }
    }

    fn handle(&self) -> &SandboxHandle {
        self.handle.as_ref().expect("the sandbox is running")
    }

    pub fn url(&self) -> &str {
        self.handle().url()
    }

    pub fn credentials(&self) -> docsync_sandbox::Credentials {
        self.handle().credentials().clone()
    }

    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.handle().request_log()
    }

    pub fn clear_request_log(&self) {
        self.handle().clear_request_log()
    }

    /// Where it keeps its database and bytes.
    pub fn data_dir(&self) -> &Path {
        self.handle().data_dir()
    }

    /// Every Moov file it holds, from its own database.
    pub fn server_files(&self) -> Vec<server_store::ServerFile> {
        server_store::server_files(self.data_dir())
    }

    /// Replace its fault settings (see [`docsync_sandbox::FaultConfig`]).
    pub fn set_faults(&self, faults: docsync_sandbox::FaultConfig) {
        self.handle()
            .set_faults(faults)
            .expect("valid fault settings")
    }

    /// How many requests of this operation (e.g. `uploadFile`) the sandbox answered.
    pub fn count(&self, operation_id: &str) -> usize {
        self.request_log()
            .iter()
            .filter(|e| e.operation_id.as_deref() == Some(operation_id))
            .count()
    }
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = self.runtime.block_on(handle.shutdown());
        }
    }
}

/// A sandbox on its own runtime that can be killed abruptly and started again on
/// the same `127.0.0.1` port (the one the OS gave it the first time), with the
/// same data dir and credentials: clients see their connections reset, then
/// refused, then the same server with the same files again.
pub struct RestartableSandbox {
    config: SandboxConfig,
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    data: tempfile::TempDir,
}

impl RestartableSandbox {
    /// Started on a free port, on `config` (its data dir: a temp dir of the
    /// harness; its credentials: random ones, kept across restarts).
    pub fn start(config: SandboxConfig) -> RestartableSandbox {
        let data = tempfile::tempdir().expect("a sandbox data dir");
        let config = SandboxConfig {
            data_dir: Some(data.path().to_owned()),
            credentials: Some(Credentials::random()),
            ..config
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("binding 127.0.0.1:0 for the sandbox");
        let addr = listener.local_addr().expect("the sandbox's address");
        let mut sandbox = RestartableSandbox {
            config,
            addr,
            runtime: None,
            data,
        };
        sandbox.serve(listener);
        sandbox
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the sandbox");
        let config = self.config.clone();
        runtime.spawn(async move {
            let listener =
                tokio::net::TcpListener::from_std(listener).expect("registering the listener");
            let stop = tokio_util::sync::CancellationToken::new();
            if let Err(e) = Sandbox::run(config, listener, stop).await {
                eprintln!("the restartable sandbox stopped: {e}");
            }
        });
        self.runtime = Some(runtime);
    }

    /// Stop at once: every task dropped, every connection closed (requests in
    /// flight get a reset, not an answer). Bytes and records already written stay.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Start again on the same port and data (waits while the port is still
    /// being released).
    pub fn restart(&mut self) {
        assert!(self.runtime.is_none(), "the sandbox is still running");
        let addr = self.addr;
        let listener = wait_until(
            Duration::from_secs(10),
            "the sandbox's port to be free again",
            || std::net::TcpListener::bind(addr).map_err(|e| format!("{addr}: {e}")),
        );
        self.serve(listener);
    }

    pub fn is_running(&self) -> bool {
        self.runtime.is_some()
    }

    /// Base URL (the same across restarts).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn credentials(&self) -> Credentials {
        self.config
            .credentials
            .clone()
            .expect("the credentials are fixed")
    }

    /// Every Moov file it holds, from its own database (works while it is down).
    pub fn server_files(&self) -> Vec<server_store::ServerFile> {
        server_store::server_files(self.data.path())
    }
}

impl Drop for RestartableSandbox {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// A temp dir with `inbox/` and `state/`, and the API the commands talk to.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub inbox: PathBuf,
    pub state: PathBuf,
    api: Option<(String, docsync_sandbox::Credentials)>,
    logs: std::sync::atomic::AtomicUsize,
}

impl Default for Workspace {
    fn default() -> Self {
        Workspace::new()
    }
}

impl Workspace {
    /// No API configured: `run FOLDER` starts the embedded sandbox; a configuration
    /// file must name an API or ask for the sandbox (`--sandbox`, `api.sandbox = true`).
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().expect("a temp dir");
        let inbox = dir.path().join("inbox");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&inbox).expect("creating the inbox");
        Workspace {
            dir,
            inbox,
            state,
            api: None,
            logs: Default::default(),
        }
    }

    /// Commands talk to `sandbox` (DOCSYNC_API_URL and the keys in their environment).
    pub fn with_sandbox(sandbox: &TestSandbox) -> Workspace {
        Workspace::with_api(sandbox.url(), sandbox.credentials())
    }

    /// Commands talk to the API at `url` with these keys.
    pub fn with_api(url: &str, credentials: Credentials) -> Workspace {
        let mut w = Workspace::new();
        w.api = Some((url.to_owned(), credentials));
        w
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `docsync.toml` (in the working dir of every command): fast timings, the
    /// state dir, and one moov-files folder `inbox` for `00000000-0000-4000-8000-000000000e2e`, unless `folders`
    /// is given. `extra` is appended.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        let text = format!(
            r#"state_dir = "state"
quiet_window = "200ms"
poll_interval = "200ms"
retry_initial = "500ms"

[[folder]]
path = "inbox"
target = {{ kind = "moov-files", account_id = "00000000-0000-4000-8000-000000000e2e", file_purpose = "business_verification" }}
{extra}"#
        );
        self.write_file("docsync.toml", &text)
    }

    /// Write `name` (relative to the workspace) and return its path.
    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating a parent dir");
        }
        std::fs::write(&path, text).expect("writing a file");
        path
    }

    /// Drop a file into the inbox the way a careful producer does: written
    /// elsewhere, then renamed in (so the daemon never sees it half-written).
    pub fn drop_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let tmp = self.path().join("staging").join(name);
        if let Some(parent) = tmp.parent() {
            std::fs::create_dir_all(parent).expect("creating the staging dir");
        }
        std::fs::write(&tmp, bytes).expect("writing a file to drop");
        let dest = self.inbox.join(name);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).expect("creating a folder in the inbox");
        }
        std::fs::rename(&tmp, &dest).expect("moving a file into the inbox");
        dest
    }

    /// `docsync ARGS` in the workspace, with a clean environment: HOME is the
    /// workspace, DOCSYNC_STATE_DIR its `state/`, and the sandbox's URL and keys if
    /// there is one.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = self.program(docsync_bin());
        cmd.args(args);
        cmd
    }

    /// `program` with the environment of [`Workspace::cmd`] (e.g. `script`, which
    /// runs docsync on a pseudo-terminal).
    pub fn program(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(self.path())
            .env_clear()
            .env("HOME", self.path())
            .env("DOCSYNC_STATE_DIR", &self.state)
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null());
        if let Some((url, c)) = &self.api {
            cmd.env("DOCSYNC_API_URL", url)
                .env("DOCSYNC_PUBLIC_KEY", &c.public_key)
                .env("DOCSYNC_SECRET_KEY", &c.secret_key)
                .env("DOCSYNC_ATTACHMENTS_API_KEY", &c.attachments_api_key);
        }
        cmd
    }

    /// Run `docsync ARGS` to the end (failing the test after [`COMMAND_TIMEOUT`]).
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        run_command(self.cmd(args), COMMAND_TIMEOUT)
    }

    /// Start `docsync ARGS` in the background (stderr kept in a log file); killed
    /// on drop.
    pub fn spawn<I, S>(&self, args: I) -> Daemon
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let n = self.logs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = self.path().join(format!("daemon-{n}.log"));
        let mut cmd = self.cmd(args);
        cmd.stdout(Stdio::null())
            .stderr(File::create(&log).expect("creating the daemon log"));
        let child = cmd.spawn().expect("starting docsync");
        Daemon {
            child: Some(child),
            log,
        }
    }

    /// The state database.
    pub fn db_path(&self) -> PathBuf {
        self.state.join(docsync::store::DB_FILE)
    }

    /// The state database opened read-only (as `docsync status` does).
    pub fn store(&self) -> docsync::store::Store {
        let path = self.db_path();
        docsync::store::Store::open_read_only(&path)
            .unwrap_or_else(|e| panic!("opening {} read-only: {e}", path.display()))
    }

    /// `docsync status --json`, parsed (no rows before the daemon created its
    /// database). Panics (with the output) unless it succeeds.
    pub fn status_json(&self) -> Vec<Value> {
        let out = self.run(["status", "--json"]);
        // exit 4, `[]`: no state database yet (a daemon just spawned has not
        // created it): no rows, as a waiting test needs
        if out.code() == Some(4) && out.stdout.trim() == "[]" {
            return Vec::new();
        }
        assert_eq!(out.code(), Some(0), "status --json failed\n{out}");
        match serde_json::from_str(&out.stdout) {
            Ok(Value::Array(rows)) => rows,
            other => panic!("status --json did not print an array: {other:?}\n{out}"),
        }
    }

    /// The `status --json` row of `path` (relative to its folder).
    pub fn status_of(&self, path: &str) -> Option<Value> {
        self.status_json()
            .into_iter()
            .find(|r| r["path"] == Value::String(path.to_owned()))
    }
}

/// Run `cmd` with stdout and stderr captured, killing it after `timeout`.
pub fn run_command(mut cmd: Command, timeout: Duration) -> Output {
    let dir = tempfile::tempdir().expect("a temp dir for output");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    cmd.stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"));
    let mut child = cmd.spawn().expect("starting docsync");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for docsync") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {timeout:?}\n--- stdout\n{}--- stderr\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// A background `docsync` process, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The file its stderr goes to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL it (no chance to clean up) and reap it. Panics if it had already
    /// exited: a test that means to kill a running daemon must not pass because
    /// the daemon died by itself.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("the daemon is running");
        if let Some(status) = child.try_wait().expect("polling the daemon") {
            panic!(
                "the daemon exited ({status}) before it was killed\n--- log\n{}",
                self.log()
            );
        }
        child.kill().expect("sending SIGKILL");
        let status = child.wait().expect("reaping the killed daemon");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "not killed by SIGKILL: {status}");
    }

    /// Send SIGTERM and wait (up to `timeout`) for a graceful exit.
    pub fn stop(mut self, timeout: Duration) -> ExitStatus {
        let pid = self.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let log = self.log.clone();
        let child = self.child.as_mut().expect("the daemon is running");
        // on a timeout the panic drops `self`, which kills the process
        wait_until(timeout, "the daemon to stop after SIGTERM", || match child
            .try_wait()
            .expect("waiting for the daemon")
        {
            Some(status) => Ok(status),
            None => Err(std::fs::read_to_string(&log).unwrap_or_default()),
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Poll `check` every 50 ms until it returns `Ok`, for at most `timeout`. On
/// timeout, panic naming `what` and showing the last `Err` (e.g. the last status).
pub fn wait_until<T, D: std::fmt::Display>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, D>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen:\n{last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A small valid PDF whose content is unique to `tag`.
pub fn pdf(tag: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {tag}\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n").into_bytes()
}

/// The start of an ELF executable: a type no target accepts (by its bytes).
pub fn elf() -> Vec<u8> {
    let mut bytes = b"\x7fELF\x02\x01\x01\x00".to_vec();
    bytes.resize(256, 0);
    bytes
}
