//! The decision hooks through the real binary: a signed webhook received by a
//! real HTTP server on 127.0.0.1:0 that checks the signature with the shared
//! secret (the way the README tells a receiver to), a command hook that writes
//! down what it was told, a receiver that fails (uploads go on; the event is
//! delivered after a restart), and `config check` on bad hooks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::harness::{elf, pdf, run_command, Output, TestSandbox, Workspace, COMMAND_TIMEOUT};

const SECRET: &str = "whsec_e2e_0f9a8b7c6d5e";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    /// What the receiver answered.
    status: u16,
    signature_ok: bool,
    event_id_header: String,
    body: Value,
}

struct ReceiverState {
    secret: String,
    failing: AtomicBool,
    got: Mutex<Vec<Delivery>>,
}

/// A webhook receiver on 127.0.0.1:0, on its own runtime, stopped on drop.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    stop: tokio_util::sync::CancellationToken,
    _runtime: tokio::runtime::Runtime,
}

/// What a receiver does, as the README says: HMAC-SHA256 with the shared secret
/// over `"{X-Docsync-Timestamp}.{raw body}"`, compared (in constant time) with
/// the hex after `sha256=` in `X-Docsync-Signature`; a timestamp more than five
/// minutes away is refused.
fn signature_ok(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(ts), Some(sig)) = (header("x-docsync-timestamp"), header("x-docsync-signature"))
    else {
        return false;
    };
    let Ok(ts_secs) = ts.parse::<u64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(ts_secs) > 300 {
        return false;
    }
    let Some(given) = sig
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature_ok = signature_ok(&state.secret, &headers, &body);
    let status = if !signature_ok {
        StatusCode::UNAUTHORIZED
    } else if state.failing.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    state.got.lock().unwrap().push(Delivery {
        status: status.as_u16(),
        signature_ok,
        event_id_header: headers
            .get("x-docsync-event-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    status
}

impl Receiver {
    fn start(secret: &str) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(ReceiverState {
            secret: secret.to_owned(),
            failing: AtomicBool::new(false),
            got: Mutex::new(Vec::new()),
        });
        let stop = tokio_util::sync::CancellationToken::new();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let until = stop.clone().cancelled_owned();
        runtime.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(until)
                .await
                .unwrap();
        });
        Receiver {
            url,
            state,
            stop,
            _runtime: runtime,
        }
    }

    fn fail(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    fn got(&self) -> Vec<Delivery> {
        self.state.got.lock().unwrap().clone()
    }

    /// The events answered 200, by path.
    fn accepted(&self) -> BTreeMap<String, Delivery> {
        let mut by_path = BTreeMap::new();
        for d in self.got().into_iter().filter(|d| d.status == 200) {
            let path = d.body["path"].as_str().unwrap().to_owned();
            assert!(
                by_path.insert(path.clone(), d).is_none(),
                "{path} was accepted twice"
            );
        }
        by_path
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `docsync sync --once` with the webhook secret in its environment.
fn sync_once(w: &Workspace) -> Output {
    let mut cmd = w.cmd(["sync", "--once", "--timeout", "60s"]);
    cmd.env("DOCSYNC_WEBHOOK_SECRET", SECRET);
    run_command(cmd, COMMAND_TIMEOUT)
}

fn remote_id(w: &Workspace, path: &str) -> String {
    let row = w.status_of(path).unwrap();
    row["remote_id"].as_str().unwrap().to_owned()
}

#[test]
fn the_webhook_gets_one_signed_event_per_decision() {
    let sandbox = TestSandbox::start();
    let receiver = Receiver::start(SECRET);
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config(&format!("\n[hooks]\nwebhook_url = \"{}\"\n", receiver.url));
    w.drop_file("good.pdf", &pdf("hooks-good"));
    w.drop_file("reject-me.pdf", &pdf("hooks-rejected"));

    let out = sync_once(&w);
    assert_eq!(out.code(), Some(1), "a rejection makes exit code 1\n{out}");

    let got = receiver.got();
    assert!(got.iter().all(|d| d.signature_ok), "{got:#?}");
    let accepted = receiver.accepted();
    assert_eq!(
        accepted.keys().collect::<Vec<_>>(),
        ["good.pdf", "reject-me.pdf"],
        "{got:#?}\n{out}"
    );
    assert_eq!(got.len(), 2, "one request per decision: {got:#?}");
    for (path, state) in [("good.pdf", "approved"), ("reject-me.pdf", "rejected")] {
        let event = &accepted[path].body;
        assert_eq!(event["type"], "file.decision", "{event}");
        assert_eq!(event["state"], state, "{event}");
        assert_eq!(event["previous_state"], "pending", "{event}");
        assert_eq!(event["remote_id"], remote_id(&w, path).as_str(), "{event}");
        assert_eq!(
            event["account"], "00000000-0000-4000-8000-000000000e2e",
            "{event}"
        );
        assert_eq!(event["target"], "moov-files", "{event}");
        assert_eq!(event["attempt"], 1, "{event}");
        assert_eq!(
            accepted[path].event_id_header,
            event["id"].as_str().unwrap()
        );
    }
    assert!(accepted["reject-me.pdf"].body["decision_reason"].is_string());
    assert_ne!(
        accepted["good.pdf"].body["id"],
        accepted["reject-me.pdf"].body["id"]
    );
    assert_eq!(w.store().outbox_undelivered().unwrap(), 0);
    // the secret is in no log line and nowhere in the state
    assert!(!out.stderr.contains(SECRET) && !out.stdout.contains(SECRET));
    for entry in std::fs::read_dir(&w.state).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "the secret is in {}",
                path.display()
            );
        }
    }
}

#[test]
fn the_command_runs_per_decision_with_the_event_in_its_environment() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    let heard = w.path().join("heard.log");
    // run without a shell: the arguments arrive as given; the daemon's own
    // DOCSYNC_SECRET_KEY (set by the workspace) must not
    let script = w.write_file(
        "hooks/notify.sh",
        r#"#!/bin/sh
out="$2"
{
  printf 'ARG=%s\n' "$1"
  printf 'STATE=%s\n' "$DOCSYNC_STATE"
  printf 'PATH=%s\n' "$DOCSYNC_PATH"
  printf 'FULL=%s\n' "$DOCSYNC_FULL_PATH"
  printf 'REMOTE=%s\n' "$DOCSYNC_REMOTE_ID"
  printf 'ACCOUNT=%s\n' "$DOCSYNC_ACCOUNT"
  printf 'REASON=%s\n' "$DOCSYNC_REASON"
  printf 'ID=%s\n' "$DOCSYNC_EVENT_ID"
  printf 'LEAK=%s%s\n' "$DOCSYNC_SECRET_KEY" "$DOCSYNC_PUBLIC_KEY"
  printf 'END\n'
} >> "$out"
"#,
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.write_config(&format!(
        "\n[hooks]\non_decision = [{:?}, \"one $arg; two\", {:?}]\n",
        script.display().to_string(),
        heard.display().to_string()
    ));
    w.drop_file("good.pdf", &pdf("cmd-good"));
    w.drop_file("reject-me.pdf", &pdf("cmd-rejected"));
    w.drop_file("program.pdf", &elf());

    let out = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(out.code(), Some(1), "{out}");

    let text = std::fs::read_to_string(&heard).unwrap_or_default();
    let mut blocks: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for block in text.split("END\n").filter(|b| !b.is_empty()) {
        let vars: BTreeMap<String, String> = block
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let path = vars["PATH"].clone();
        assert!(
            blocks.insert(path.clone(), vars).is_none(),
            "{path} heard twice:\n{text}"
        );
    }
    assert_eq!(
        blocks.keys().collect::<Vec<_>>(),
        ["good.pdf", "program.pdf", "reject-me.pdf"],
        "{text}\n{out}"
    );
    for (path, state) in [
        ("good.pdf", "approved"),
        ("reject-me.pdf", "rejected"),
        ("program.pdf", "invalid"),
    ] {
        let vars = &blocks[path];
        assert_eq!(vars["STATE"], state, "{text}");
        assert_eq!(vars["ARG"], "one $arg; two", "{text}");
        assert_eq!(
            vars["FULL"],
            w.inbox.join(path).display().to_string(),
            "{text}"
        );
        assert_eq!(vars["ACCOUNT"], "00000000-0000-4000-8000-000000000e2e");
        assert_eq!(vars["LEAK"], "", "the daemon's secrets reached the hook");
        assert_eq!(vars["ID"].len(), 32, "{text}");
        assert!(!vars["REASON"].is_empty(), "{text}");
    }
    assert_eq!(blocks["good.pdf"]["REMOTE"], remote_id(&w, "good.pdf"));
    assert_eq!(
        blocks["reject-me.pdf"]["REMOTE"],
        remote_id(&w, "reject-me.pdf")
    );
    assert_eq!(blocks["program.pdf"]["REMOTE"], "");
}

#[test]
fn a_failing_receiver_blocks_nothing_and_hears_after_a_restart() {
    let sandbox = TestSandbox::start();
    let receiver = Receiver::start(SECRET);
    receiver.fail(true);
    let w = Workspace::with_sandbox(&sandbox);
    // no second try within the run: only the restart delivers
    w.write_config(&format!(
        "\n[hooks]\nwebhook_url = \"{}\"\nretry_initial = \"1h\"\n",
        receiver.url
    ));
    w.drop_file("good.pdf", &pdf("restart-good"));

    let out = sync_once(&w);
    assert_eq!(out.code(), Some(0), "the upload goes on\n{out}");
    assert_eq!(w.status_of("good.pdf").unwrap()["state"], "approved");
    let failed = receiver.got();
    assert_eq!(failed.len(), 1, "{failed:#?}\n{out}");
    assert_eq!(failed[0].status, 500);
    assert!(failed[0].signature_ok);
    assert!(
        out.stderr.contains("hook failed; will try again in 1h"),
        "{out}"
    );
    assert_eq!(w.store().outbox_undelivered().unwrap(), 1);

    // the receiver is back; the next run delivers the event it missed, once
    receiver.fail(false);
    let out = sync_once(&w);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(
        out.stderr
            .contains("hook events undelivered at the last stop: trying them again now"),
        "{out}"
    );
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1, "{:#?}\n{out}", receiver.got());
    let event = &accepted["good.pdf"].body;
    assert_eq!(event["state"], "approved");
    assert_eq!(event["id"], failed[0].body["id"], "the same event, again");
    assert_eq!(event["attempt"], 2);
    assert_eq!(w.store().outbox_undelivered().unwrap(), 0);
    assert_eq!(receiver.got().len(), 2, "{:#?}", receiver.got());
}

#[test]
fn a_hook_that_keeps_failing_is_given_up_and_the_history_says_so() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    let script = w.write_file(
        "fail.sh",
        "#!/bin/sh\necho 'the chat is down' >&2\nexit 7\n",
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.write_config(&format!(
        "\n[hooks]\non_decision = [{:?}]\nmax_attempts = 2\nretry_initial = \"100ms\"\n",
        script.display().to_string()
    ));
    w.drop_file("good.pdf", &pdf("given-up"));
    let out = w.run(["sync", "--once", "--timeout", "60s"]);
    assert_eq!(out.code(), Some(0), "{out}");
    // the second attempt happened in this run or the next start makes it
    let out2 = if w.store().outbox_undelivered().unwrap() > 0 {
        w.run(["sync", "--once", "--timeout", "60s"])
    } else {
        out
    };
    assert_eq!(w.store().outbox_undelivered().unwrap(), 0, "{out2}");
    let history = w.run(["history", "good.pdf"]);
    assert_eq!(history.code(), Some(0), "{history}");
    assert!(
        history
            .stdout
            .contains("the command hook gave up on this event after 2 attempts"),
        "{history}"
    );
    assert!(history.stdout.contains("the chat is down"), "{history}");
}

#[test]
fn config_check_names_each_bad_hook() {
    struct Case {
        name: &'static str,
        hooks: &'static str,
        secret: bool,
        expect: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "a command that is not there",
            hooks: "on_decision = [\"./nope.sh\"]",
            secret: false,
            expect: &[
                "hooks.on_decision: error",
                "nope.sh cannot be used: No such file or directory",
            ],
        },
        Case {
            name: "a bare name not in PATH",
            hooks: "on_decision = [\"docsync-notify-nowhere\"]",
            secret: false,
            expect: &[
                "command `docsync-notify-nowhere` was not found in PATH",
                "fix: give its full path",
            ],
        },
        Case {
            name: "a command that is not executable",
            hooks: "on_decision = [\"./plain.sh\"]",
            secret: false,
            expect: &[
                "plain.sh is not executable (mode 0644)",
                "fix: run `chmod +x {dir}/plain.sh`",
            ],
        },
        Case {
            name: "an empty command",
            hooks: "on_decision = []",
            secret: false,
            expect: &["on_decision names no command"],
        },
        Case {
            name: "a URL that is not one",
            hooks: "webhook_url = \"hooks.example.com/x\"",
            secret: true,
            expect: &[
                "hooks.webhook_url: error",
                "webhook_url `hooks.example.com/x` is not a URL",
                "fix: use an http:// or https:// URL",
            ],
        },
        Case {
            name: "a URL without its secret",
            hooks: "webhook_url = \"http://127.0.0.1:9/hook\"",
            secret: false,
            expect: &[
                "the webhook secret is missing",
                "fix: set DOCSYNC_WEBHOOK_SECRET, or add webhook_secret to the credentials file",
            ],
        },
        Case {
            name: "a good webhook",
            hooks: "webhook_url = \"http://127.0.0.1:9/hook\"\nmax_attempts = 3",
            secret: true,
            expect: &["ok: 1 folder"],
        },
    ];
    for case in cases {
        let w = Workspace::new();
        w.write_file("plain.sh", "#!/bin/sh\n");
        std::fs::set_permissions(
            w.path().join("plain.sh"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        w.write_config(&format!("[api]\nsandbox = true\n[hooks]\n{}\n", case.hooks));
        let mut cmd = w.cmd(["config", "check"]);
        if case.secret {
            cmd.env("DOCSYNC_WEBHOOK_SECRET", SECRET);
        }
        let out = run_command(cmd, COMMAND_TIMEOUT);
        let ok = case.expect == ["ok: 1 folder"];
        assert_eq!(
            out.code(),
            Some(if ok { 0 } else { 1 }),
            "{}\n{out}",
            case.name
        );
        let dir = w.path().display().to_string();
        for needle in case.expect {
            let needle = needle.replace("{dir}", &dir);
            assert!(
                out.stdout.contains(&needle),
                "{}: stdout lacks {needle:?}\n{out}",
                case.name
            );
        }
        assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
    }
}
