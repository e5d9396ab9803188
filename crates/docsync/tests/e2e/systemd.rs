//! `docsync run` under systemd's notification protocol (`Type=notify`): the test
//! plays systemd, binding the `NOTIFY_SOCKET` datagram socket in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use docsync::store::State;

use crate::harness::{pdf, TestSandbox, Workspace};

const DEADLINE: Duration = Duration::from_secs(60);

/// systemd's side of `NOTIFY_SOCKET`: every message received, in order.
struct Manager {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Manager {
    fn bind(path: &std::path::Path) -> Manager {
        let socket = UnixDatagram::bind(path).expect("binding the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Manager {
            socket,
            seen: Vec::new(),
        }
    }

    /// The next message, if one arrives within the read timeout.
    fn recv(&mut self) -> Option<String> {
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(msg.clone());
                Some(msg)
            }
            Err(_) => None,
        }
    }

    /// Receive until a message satisfies `want` (returned), failing after
    /// [`DEADLINE`] with everything seen and the daemon's log.
    fn until(
        &mut self,
        what: &str,
        log: impl Fn() -> String,
        want: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(msg) = self.recv() {
                if want(&msg) {
                    return msg;
                }
            }
        }
        panic!(
            "no {what} within {DEADLINE:?}; received:\n{:#?}\n--- daemon log\n{}",
            self.seen,
            log()
        );
    }
}

/// The `STATUS=` line of a message.
fn status_of(msg: &str) -> Option<&str> {
    msg.lines().find_map(|l| l.strip_prefix("STATUS="))
}

/// `3 pending, 1 approved; last scan 10:02` → the number of files it counts.
fn files_in(status: &str) -> u64 {
    let counts = status.split(';').next().unwrap_or_default();
    counts
        .split(", ")
        .filter_map(|part| part.split_once(' '))
        .filter_map(|(n, _)| n.parse::<u64>().ok())
        .sum()
}

/// READY=1 only once the files already in the folder are recorded, STATUS= with
/// the counts as they change, WATCHDOG=1 again and again while the daemon is
/// alive, STOPPING=1 on SIGTERM.
#[test]
fn run_tells_systemd_ready_status_watchdog_and_stopping() {
    // decisions take an hour: the files stay pending
    let sandbox = TestSandbox::with_decision_delay(Duration::from_secs(3600));
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    for i in 0..3 {
        w.drop_file(&format!("present-{i}.pdf"), &pdf(&format!("present {i}")));
    }
    let socket_path = w.path().join("notify.sock");
    let mut manager = Manager::bind(&socket_path);

    // sd_watchdog_enabled(3): WATCHDOG_PID is the service's pid, so the shell
    // passes its own before it becomes docsync
    let mut cmd = w.program("/bin/sh");
    cmd.args([
        "-c",
        "WATCHDOG_PID=$$ exec \"$0\" run",
        &crate::harness::docsync_bin().display().to_string(),
    ])
    .env("NOTIFY_SOCKET", &socket_path)
    .env("WATCHDOG_USEC", "3000000");
    let daemon = w.spawn_command(cmd);

    let ready = manager.until(
        "READY=1",
        || daemon.log(),
        |m| m.lines().any(|l| l == "READY=1"),
    );
    // at this moment the first scan has recorded every file already present
    let recorded: u64 = w.store().counts_by_state().unwrap().values().sum();
    assert_eq!(recorded, 3, "READY=1 before the first scan was recorded");
    let status = status_of(&ready).unwrap_or_else(|| panic!("READY without STATUS: {ready:?}"));
    assert_eq!(files_in(status), 3, "{status}");
    assert!(status.contains("; last scan "), "{status}");
    assert!(
        manager.seen[..manager.seen.len() - 1]
            .iter()
            .all(|m| m == "WATCHDOG=1\n"),
        "something but pings before READY: {:#?}",
        manager.seen
    );

    // the counts follow the files: uploaded, waiting for the decision
    let pending = manager.until(
        "STATUS= with 3 pending",
        || daemon.log(),
        |m| status_of(m).is_some_and(|s| s.starts_with("3 pending; last scan ")),
    );
    assert!(!pending.contains("READY=1"), "READY=1 twice: {pending:?}");

    // pings keep coming (every 1.5 s with a 3 s watchdog) while it is alive
    let pings_before = manager.seen.iter().filter(|m| *m == "WATCHDOG=1\n").count();
    for _ in 0..3 {
        manager.until("WATCHDOG=1", || daemon.log(), |m| m == "WATCHDOG=1\n");
    }
    let pings = manager.seen.iter().filter(|m| *m == "WATCHDOG=1\n").count();
    assert!(pings >= pings_before + 3);

    let status = daemon.stop(DEADLINE);
    assert!(status.success(), "{status}");
    let stopping = manager.until("STOPPING=1", String::new, |m| {
        m.lines().any(|l| l == "STOPPING=1")
    });
    assert!(stopping.contains("STATUS=stopping"), "{stopping:?}");
    // the rows are still pending: nothing was decided behind our back
    assert_eq!(w.store().count_in_state(State::Pending).unwrap(), 3);
}

/// With `NOTIFY_SOCKET` set but no watchdog asked for, no WATCHDOG=1 is sent.
#[test]
fn no_watchdog_pings_unless_systemd_asks_for_them() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    w.drop_file("one.pdf", &pdf("one"));
    let socket_path = w.path().join("notify.sock");
    let mut manager = Manager::bind(&socket_path);
    let mut cmd = w.cmd(["run"]);
    cmd.env("NOTIFY_SOCKET", &socket_path);
    let daemon = w.spawn_command(cmd);
    manager.until("READY=1", || daemon.log(), |m| m.starts_with("READY=1\n"));
    manager.until(
        "STATUS= with 1 approved",
        || daemon.log(),
        |m| status_of(m).is_some_and(|s| s.starts_with("1 approved; ")),
    );
    let status = daemon.stop(DEADLINE);
    assert!(status.success(), "{status}");
    manager.until("STOPPING=1", String::new, |m| m.starts_with("STOPPING=1\n"));
    assert!(
        !manager.seen.iter().any(|m| m.contains("WATCHDOG")),
        "{:#?}",
        manager.seen
    );
}
