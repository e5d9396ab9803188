//! A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` in a fresh
//! temporary directory, listening on a Unix socket in that directory only
//! (`listen_addresses = ''`: no TCP port at all), fsync off (on for
//! [`PgCluster::start_durable`], the benchmark's), stopped (`pg_ctl stop -m
//! immediate`) and removed when done.
//!
//! # One cluster per test binary, one database per test
//!
//! Starting a cluster costs a second or two, so a test binary shares one:
//! [`database_or_skip`] starts it on first use ([`shared`]) and gives each test
//! a database of its own ([`PgCluster::create_database`]), so tests run in
//! parallel without seeing each other's rows.
//!
//! A `static` is never dropped, so the shared cluster cannot be stopped by a
//! `Drop`. Every cluster therefore has a watchdog: a small `sh` started before
//! `initdb`, in a process group of its own (a Ctrl-C to the tests reaches
//! neither it nor the server), reading a pipe whose only writer is this
//! process. It starts the server when asked on that pipe, and when the process
//! ends, however it ends (the last test returned, a panic, a SIGKILL), the
//! kernel closes the pipe: the watchdog then runs `pg_ctl stop -m immediate`
//! and removes the directory. Since the watchdog starts the server itself, a
//! process killed while the server starts leaves nothing behind either. An
//! owned [`PgCluster`] closes the pipe in its `Drop` and waits for the
//! watchdog, so the same code path stops it.
//!
//! # Root
//!
//! `initdb` and `pg_ctl` refuse to run as root. When the tests run as root
//! (CI here does), both run as the unprivileged `postgres` user (through
//! `runuser -u postgres --`, else `su postgres`), and the temporary directory is
//! handed to that user; root still connects through the socket (trust
//! authentication, a socket only root and `postgres` can reach).
//!
//! # Not installed
//!
//! Without PostgreSQL, [`PgCluster::start`] returns [`Error::NotInstalled`],
//! which says how to install it. [`database_or_skip`] then fails the test when
//! `DOCSYNC_REQUIRE_POSTGRES=1` (CI sets it, so tests that did not run fail it)
//! and otherwise prints a loud skip message and returns `None`.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// The environment variable that turns a skip into a failure.
pub const REQUIRE_ENV: &str = "DOCSYNC_REQUIRE_POSTGRES";

/// The superuser `initdb` creates, as whom tests connect (trust authentication).
pub const SUPERUSER: &str = "docsync";

/// Where Debian's packages put the server binaries (one directory per version).
const DEBIAN_LIB: &str = "/usr/lib/postgresql";

/// What went wrong starting or using a throwaway cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `initdb` was found.
    #[error(
        "PostgreSQL is not installed: no `initdb` on PATH nor under {DEBIAN_LIB}/*/bin. \
         The PostgreSQL tests need it: install it (Debian/Ubuntu: `apt-get install postgresql`), \
         or put its bin directory on PATH"
    )]
    NotInstalled,

    /// Running as root, and there is no `postgres` user to run `initdb` as.
    #[error(
        "the tests run as root and initdb refuses to, but there is no `postgres` user to run it \
         as: install Debian's postgresql package (which creates it), create the user \
         (`useradd --system postgres`), or run the tests as another user"
    )]
    NoPostgresUser,

    /// Running as root, and neither `runuser` nor `su` is available.
    #[error(
        "the tests run as root, and neither runuser nor su was found to run initdb as `postgres`"
    )]
    NoRunuser,

    /// A file system step failed.
    #[error("throwaway PostgreSQL cluster: {what} {path} failed: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A command could not be started.
    #[error("throwaway PostgreSQL cluster: starting `{command}` failed: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },

    /// A command ran and failed.
    #[error("throwaway PostgreSQL cluster: `{command}` failed ({status}): {output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },

    /// A database name that is not a plain identifier.
    #[error("database name {0:?}: use lower-case letters, digits and `_` only (at most 63)")]
    BadName(String),
}

/// A running throwaway cluster. Stopped and removed on `Drop` (and, through its
/// watchdog, when the process ends).
#[derive(Debug)]
pub struct PgCluster {
    /// Holds the data directory, the socket and the log; `None` only in `Drop`.
    root: Option<tempfile::TempDir>,
    socket_dir: PathBuf,
    bindir: PathBuf,
    runner: Runner,
    watchdog: Mutex<Option<Watchdog>>,
    next_db: AtomicU32,
}

/// A database of a cluster, for one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub name: String,
    /// `host=... user=... dbname=...` (libpq's key-value form).
    pub conn_string: String,
    /// The same as a `postgresql://` URL (the socket directory percent-encoded
    /// in the `host` query parameter).
    pub url: String,
}

/// How commands that refuse root are run.
#[derive(Debug, Clone)]
enum Runner {
    Direct,
    Runuser(PathBuf),
    Su(PathBuf),
}

impl Runner {
    fn command(&self, program: &Path) -> Command {
        match self {
            Runner::Direct => Command::new(program),
            Runner::Runuser(runuser) => {
                let mut c = Command::new(runuser);
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            }
            Runner::Su(su) => {
                // su passes the arguments after `-c CMD` to the shell as $0, $1, ...
                let mut c = Command::new(su);
                c.args(["postgres", "-s", "/bin/sh", "-c", "exec \"$0\" \"$@\""])
                    .arg(program);
                c
            }
        }
    }
}

impl PgCluster {
    /// `initdb` a fresh cluster in a temporary directory and start it, with
    /// no durability (fsync off, `synchronous_commit` off: a test cluster).
    pub fn start() -> Result<PgCluster, Error> {
        PgCluster::start_with(false)
    }

    /// [`PgCluster::start`], durable as a production server is (fsync on,
    /// PostgreSQL's defaults): for the benchmark, whose figures must pay
    /// what a real server's commits cost.
    pub fn start_durable() -> Result<PgCluster, Error> {
        PgCluster::start_with(true)
    }

    fn start_with(durable: bool) -> Result<PgCluster, Error> {
        let bindir = find_bindir(std::env::var_os("PATH").as_deref(), Path::new(DEBIAN_LIB))?;
        let runner = runner()?;
        let root = tempfile::Builder::new()
            .prefix("docsync-pg-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "creating",
                path: std::env::temp_dir(),
                source,
            })?;
        let socket_dir = root.path().to_owned();
        let io = |what| {
            let path = socket_dir.clone();
            move |source| Error::Io { what, path, source }
        };
        std::fs::set_permissions(&socket_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("restricting"))?;
        if !matches!(runner, Runner::Direct) {
            let (uid, gid) = postgres_ids()?;
            std::os::unix::fs::chown(&socket_dir, Some(uid), Some(gid))
                .map_err(io("handing to the postgres user"))?;
        }
        let data = socket_dir.join("data");
        // the watchdog first: from here on, whatever happens to this process,
        // nothing is left running and the directory is removed
        let mut watchdog = Watchdog::spawn(&runner, &bindir, &socket_dir)?;
        let mut initdb = runner.command(&bindir.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"]);
        run(initdb.current_dir(&socket_dir))?;
        let conf = data.join("postgresql.conf");
        let durability = if durable {
            "# durable: PostgreSQL's defaults (fsync on)\n"
        } else {
            "# no durability (a test cluster; synchronous_commit off as a careless \
             server might run: docsync must turn it on for its own sessions)\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        };
        let settings = format!(
            "\n# docsync-pgtest: a Unix socket only\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{}'\n\
             unix_socket_permissions = 0700\n\
             {durability}\
             max_connections = 300\n",
            socket_dir.display().to_string().replace('\'', "''")
        );
        append(&conf, &settings)?;
        watchdog.start_server(&socket_dir)?;
        Ok(PgCluster {
            root: Some(root),
            socket_dir,
            bindir,
            runner,
            watchdog: Mutex::new(Some(watchdog)),
            next_db: AtomicU32::new(0),
        })
    }

    /// Stop the server at once (`pg_ctl stop -m immediate`: every connection
    /// cut, as in a crash), for a test of an outage. The watchdog still stops
    /// it at the end if it is started again.
    pub fn stop_server(&self) -> Result<(), Error> {
        let mut stop = self.runner.command(&self.bindir.join("pg_ctl"));
        stop.arg("stop")
            .arg("-D")
            .arg(self.socket_dir.join("data"))
            .args(["-m", "immediate", "-w"]);
        run(stop.current_dir(&self.socket_dir)).map(drop)
    }

    /// Start the server again after [`PgCluster::stop_server`] (it accepts
    /// connections when this returns).
    pub fn start_server(&self) -> Result<(), Error> {
        let mut start = self.runner.command(&self.bindir.join("pg_ctl"));
        start
            .arg("start")
            .arg("-D")
            .arg(self.socket_dir.join("data"))
            .arg("-l")
            .arg(self.socket_dir.join("server.log"))
            .args(["-w", "-t", "60", "-s"]);
        run(start.current_dir(&self.socket_dir)).map(drop)
    }

    /// The directory holding the server's socket (libpq's `host`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The directory the server binaries were found in.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// Create an empty database `name` (lower-case letters, digits, `_`).
    pub fn create_database(&self, name: &str) -> Result<Database, Error> {
        let plain = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(Error::BadName(name.to_owned()));
        }
        let mut createdb = Command::new(self.bindir.join("createdb"));
        createdb
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-U", SUPERUSER, name]);
        run(&mut createdb)?;
        let host = self.socket_dir.display().to_string();
        Ok(Database {
            name: name.to_owned(),
            conn_string: format!(
                "host='{}' user={SUPERUSER} dbname={name}",
                host.replace('\\', "\\\\").replace('\'', "\\'")
            ),
            url: format!(
                "postgresql://{SUPERUSER}@/{name}?host={}",
                percent_encode(&host)
            ),
        })
    }

    /// A fresh database whose name starts with `prefix` (made plain) and is
    /// unique in this cluster.
    pub fn fresh_database(&self, prefix: &str) -> Result<Database, Error> {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let mut name: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            name.insert(0, 't');
        }
        self.create_database(&format!("{name}_{n}"))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let watchdog = self
            .watchdog
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(watchdog) = watchdog {
            watchdog.finish();
        }
        // whatever the watchdog left
        drop(self.root.take());
    }
}

/// The cluster this test binary shares, started on first use.
pub fn shared() -> Result<&'static PgCluster, &'static Error> {
    static SHARED: OnceLock<Result<PgCluster, Error>> = OnceLock::new();
    SHARED.get_or_init(PgCluster::start).as_ref()
}

/// A fresh database in this binary's shared cluster for the test `test`, or
/// `None` (with a loud message on stderr) when PostgreSQL is not installed and
/// `DOCSYNC_REQUIRE_POSTGRES` is not `1`. Panics (fails the test) when it is
/// required and missing, or when an installed PostgreSQL fails to start.
pub fn database_or_skip(test: &str) -> Option<Database> {
    let cluster = match shared() {
        Ok(cluster) => cluster,
        Err(e) => {
            skip_or_fail(test, e);
            return None;
        }
    };
    match cluster.fresh_database(test) {
        Ok(db) => Some(db),
        Err(e) => panic!("{test}: {e}"),
    }
}

/// A cluster of the test's own (for a test that stops its server), or `None`
/// with the same loud message as [`database_or_skip`] when PostgreSQL is not
/// installed and not required.
pub fn own_cluster_or_skip(test: &str) -> Option<PgCluster> {
    match PgCluster::start() {
        Ok(cluster) => Some(cluster),
        Err(e) => {
            skip_or_fail(test, &e);
            None
        }
    }
}

/// No cluster for `test` because of `e`: said loudly when PostgreSQL is not
/// installed and not required (the test then passes without running); a
/// panic, failing the test, otherwise.
fn skip_or_fail(test: &str, e: &Error) {
    match e {
        Error::NotInstalled if !required() => eprintln!(
            "\n######## SKIPPED {test}: {e}\n######## (set {REQUIRE_ENV}=1 to make this a \
             failure, as CI does)\n"
        ),
        Error::NotInstalled => panic!("{test}: {e} ({REQUIRE_ENV}=1)"),
        e => panic!("{test}: {e}"),
    }
}

/// Whether a missing PostgreSQL fails the tests (`DOCSYNC_REQUIRE_POSTGRES=1`).
pub fn required() -> bool {
    std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1")
}

/// The directory with `initdb`, `pg_ctl` and `createdb`: `initdb` on `path`
/// (links followed to the real bin directory, as Debian's /usr/bin wrappers and
/// /usr/local/bin links point there), else the newest `debian_lib/*/bin`.
fn find_bindir(path: Option<&OsStr>, debian_lib: &Path) -> Result<PathBuf, Error> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "createdb"]
            .iter()
            .all(|b| is_exe(&dir.join(b)))
    };
    for dir in std::env::split_paths(path.unwrap_or_default()) {
        let initdb = dir.join("initdb");
        if is_exe(&initdb) {
            if let Some(real) = std::fs::canonicalize(&initdb)
                .ok()
                .and_then(|p| p.parent().map(Path::to_owned))
            {
                if complete(&real) {
                    return Ok(real);
                }
            }
            if complete(&dir) {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(debian_lib)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(Error::NotInstalled)
}

fn is_exe(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How to run `initdb` and `pg_ctl`: directly, or as `postgres` when root.
fn runner() -> Result<Runner, Error> {
    if !is_root() {
        return Ok(Runner::Direct);
    }
    postgres_ids()?;
    let search = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];
    let find = |name: &str| {
        search
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| is_exe(p))
    };
    if let Some(runuser) = find("runuser") {
        return Ok(Runner::Runuser(runuser));
    }
    find("su").map(Runner::Su).ok_or(Error::NoRunuser)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The `postgres` user's uid and gid, from `id`.
fn postgres_ids() -> Result<(u32, u32), Error> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    match (id("-u"), id("-g")) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err(Error::NoPostgresUser),
    }
}

/// What the watchdog runs. Its standard input is a pipe whose only writer is
/// this process. It reads one line: `start` starts the server (its exit status
/// is the answer, on standard output); end of file (the process ended before)
/// starts nothing. Then it waits for end of file, stops the server and removes
/// the directory. A server being started when the process dies is started
/// completely, then stopped: never left behind half-way.
const WATCHDOG: &str = r#"
trap '' PIPE INT
run() {
    case "$PGTEST_RUNNER" in
        runuser) "$PGTEST_RUNNER_PATH" -u postgres -- "$@" ;;
        su) "$PGTEST_RUNNER_PATH" postgres -s /bin/sh -c 'exec "$0" "$@"' "$@" ;;
        *) "$@" ;;
    esac
}
if read -r line && [ "$line" = start ]; then
    run "$PGTEST_BIN/pg_ctl" start -D "$PGTEST_ROOT/data" -l "$PGTEST_ROOT/server.log" \
        -w -t 60 -s >"$PGTEST_ROOT/start.out" 2>&1
    echo "$?"
    cat >/dev/null
fi
run "$PGTEST_BIN/pg_ctl" stop -D "$PGTEST_ROOT/data" -m immediate -w >/dev/null 2>&1
rm -rf "$PGTEST_ROOT"
"#;

/// The process that stops the cluster and removes its directory when this
/// process ends (however it ends) or the cluster is dropped.
#[derive(Debug)]
struct Watchdog {
    child: Child,
    stdin: ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Watchdog {
    fn spawn(runner: &Runner, bindir: &Path, root: &Path) -> Result<Watchdog, Error> {
        let what = "/bin/sh (the cluster's watchdog)";
        let (kind, path) = match runner {
            Runner::Direct => ("direct", Path::new("")),
            Runner::Runuser(p) => ("runuser", p.as_path()),
            Runner::Su(p) => ("su", p.as_path()),
        };
        let mut child = Command::new("/bin/sh")
            .args(["-c", WATCHDOG, "docsync-pgtest-watchdog"])
            .env("PGTEST_RUNNER", kind)
            .env("PGTEST_RUNNER_PATH", path)
            .env("PGTEST_BIN", bindir)
            .env("PGTEST_ROOT", root)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // its own process group: a Ctrl-C to the tests does not reach it
            // (nor the server it starts)
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                command: what.into(),
                source,
            })?;
        match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => Ok(Watchdog {
                child,
                stdin,
                stdout: std::io::BufReader::new(stdout),
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(Error::Spawn {
                    command: what.into(),
                    source: io::Error::other("no pipes to it"),
                })
            }
        }
    }

    /// Have the watchdog start the server (`pg_ctl start -w`: it accepts
    /// connections when this returns).
    fn start_server(&mut self, root: &Path) -> Result<(), Error> {
        use std::io::{BufRead, Write};
        let command = "pg_ctl start (by the cluster's watchdog)".to_owned();
        let mut status = String::new();
        self.stdin
            .write_all(b"start\n")
            .and_then(|()| self.stdin.flush())
            .and_then(|()| self.stdout.read_line(&mut status).map(drop))
            .map_err(|source| Error::Spawn {
                command: command.clone(),
                source,
            })?;
        if status.trim() == "0" {
            return Ok(());
        }
        let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
        Err(Error::Command {
            command,
            status: format!("exit status {}", status.trim()),
            output: format!("{}\nserver log:\n{}", read("start.out"), read("server.log")),
        })
    }

    /// End of file on its pipe: it stops the server and removes the directory;
    /// wait for it.
    fn finish(self) {
        let Watchdog {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let _ = child.wait();
    }
}

/// Run `cmd` to completion; an error with its output unless it succeeded.
fn run(cmd: &mut Command) -> Result<Output, Error> {
    let command = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(out);
    }
    Err(Error::Command {
        command,
        status: out.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn append(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| Error::Io {
            what: "configuring",
            path: path.to_owned(),
            source,
        })
}

/// Percent-encoding for a URL's query value (all but unreserved characters).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests;
