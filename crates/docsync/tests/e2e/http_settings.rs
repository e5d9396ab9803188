//! `[http]` through the real binary: the proxy (explicit, and the environment's
//! variables with `NO_PROXY` and the loopback rule), `read_timeout` against a
//! stalling sandbox, `ca_file` checked at start, and the retry budget
//! (`retry_for`): a failing file shows its next attempt in `status`, is sent
//! exactly once when the server is back, and ends `failed` with the way out
//! when the budget is spent.
//!
//! The proxy is a small forward proxy run here on 127.0.0.1:0 that records
//! every request it forwards (to the sandbox, whatever host the request
//! names). An API URL of `http://0.0.0.0:PORT` reaches the sandbox on
//! 127.0.0.1 when sent directly, without being a loopback name that the
//! environment's proxy would skip anyway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use docsync_sandbox::FaultConfig;
use serde_json::Value;

use crate::harness::{
    pdf, run_command, wait_until, Output, TestSandbox, Workspace, COMMAND_TIMEOUT,
};

const ACCOUNT: &str = "00000000-0000-4000-8000-000000000e2e";

/// A forward proxy on 127.0.0.1:0 that sends every request to `upstream` and
/// records `METHOD URI` of each; stopped on drop.
struct RecordingProxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
    /// The `Proxy-Authorization` of each request (empty: none).
    logins: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct Forward {
    upstream: String,
    client: reqwest::Client,
    seen: Arc<Mutex<Vec<String>>>,
    logins: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    fn start(upstream: &str) -> RecordingProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (seen, logins) = (Arc::default(), Arc::default());
        let state = Forward {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            seen: Arc::clone(&seen),
            logins: Arc::clone(&logins),
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state(state);
        runtime.spawn(async move { axum::serve(listener, app).await });
        RecordingProxy {
            url,
            seen,
            logins,
            _runtime: runtime,
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn uploads(&self) -> usize {
        self.seen()
            .iter()
            .filter(|r| r.starts_with("POST ") && r.ends_with("/files"))
            .count()
    }
}

async fn forward(State(st): State<Forward>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    st.seen
        .lock()
        .unwrap()
        .push(format!("{} {}", parts.method, parts.uri));
    let login = parts
        .headers
        .get("proxy-authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    st.logins.lock().unwrap().push(login.to_owned());
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut out = st
        .client
        .request(parts.method.clone(), format!("{}{path}", st.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "host"
                | "content-length"
                | "connection"
                | "proxy-connection"
                | "proxy-authorization"
                | "transfer-encoding"
        ) {
            out = out.header(name, value);
        }
    }
    let Ok(answer) = out.send().await else {
        return Response::builder().status(502).body(Body::empty()).unwrap();
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).unwrap()
}

/// A workspace talking to `url` with the sandbox's keys, its configuration
/// (the harness's, plus `extra`) written.
fn workspace(sandbox: &TestSandbox, url: &str, extra: &str) -> Workspace {
    let w = Workspace::with_api(url, sandbox.credentials());
    w.write_config(extra);
    w
}

/// `docsync sync --once` with these extra environment variables.
fn sync_once(w: &Workspace, env: &[(&str, &str)]) -> Output {
    let mut cmd = w.cmd(["sync", "--once", "--timeout", "45s"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_command(cmd, COMMAND_TIMEOUT)
}

/// `path`'s `status --json` row, once the daemon recorded it.
fn state_of(w: &Workspace, path: &str) -> Result<Value, String> {
    let out = w.run(["status", "--json"]);
    if out.code() != Some(0) {
        return Err(out.to_string());
    }
    let rows: Vec<Value> = serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {out}"))?;
    rows.into_iter()
        .find(|r| r["path"] == path)
        .ok_or_else(|| format!("{path} not recorded yet"))
}

/// How many files the sandbox holds with exactly these bytes.
fn copies_on_server(sandbox: &TestSandbox, bytes: &[u8]) -> usize {
    use sha2::{Digest, Sha256};
    let sha = hex::encode(Sha256::digest(bytes));
    sandbox
        .server_files()
        .iter()
        .filter(|f| f.sha256 == sha)
        .count()
}

const CANARY: &str = "s3cr3t-proxy-canary";

/// `[http] proxy`: every request goes through it, the sandbox on loopback
/// included, with the proxy's login; its password is never printed.
#[test]
fn an_explicit_proxy_carries_every_request() {
    let sandbox = TestSandbox::start();
    let proxy = RecordingProxy::start(sandbox.url());
    let with_login = proxy
        .url
        .replace("http://", &format!("http://docsync:{CANARY}@"));
    let w = workspace(
        &sandbox,
        sandbox.url(),
        &format!("[http]\nproxy = \"{with_login}\"\n"),
    );
    w.drop_file("a.pdf", &pdf("explicit proxy"));
    let out = sync_once(&w, &[]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert_eq!(proxy.uploads(), 1, "{:?}", proxy.seen());
    let upload = format!("POST {}/accounts/{ACCOUNT}/files", sandbox.url());
    assert!(proxy.seen().contains(&upload), "{:?}", proxy.seen());
    assert_eq!(copies_on_server(&sandbox, &pdf("explicit proxy")), 1);
    // the login reached the proxy, and nowhere else
    assert!(
        proxy
            .logins
            .lock()
            .unwrap()
            .iter()
            .all(|l| l.starts_with("Basic ")),
        "every request carried the proxy's login"
    );
    assert!(!out.to_string().contains(CANARY), "{out}");
    assert!(
        out.stderr.contains("every request through [http] proxy")
            && out.stderr.contains("docsync:***@127.0.0.1"),
        "{out}"
    );
    let check = w.run(["config", "check"]);
    assert_eq!(check.code(), Some(0), "{check}");
    assert!(!check.to_string().contains(CANARY), "{check}");
    // a bad proxy URL is reported without its password
    w.write_config(&format!(
        "[http]\nproxy = \"ftp://docsync:{CANARY}@proxy:21\"\n"
    ));
    let check = w.run(["config", "check"]);
    assert_eq!(check.code(), Some(1), "{check}");
    assert!(
        check
            .stdout
            .contains("http.proxy: error: proxy scheme `ftp` is not supported")
            && check.stdout.contains("docsync:***@proxy")
            && !check.to_string().contains(CANARY),
        "{check}"
    );
}

/// Without `proxy`: `HTTP_PROXY` carries the requests, `NO_PROXY` exempts its
/// hosts, and a loopback API is never sent through an environment proxy.
#[test]
fn the_environment_proxy_is_honoured_except_no_proxy_and_loopback() {
    let sandbox = TestSandbox::start();
    let proxy = RecordingProxy::start(sandbox.url());
    // not a loopback name: the environment's proxy applies
    let unspecified = sandbox.url().replace("127.0.0.1", "0.0.0.0");
    // (case, API URL, environment, whether the upload goes through the proxy)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], bool);
    let cases: [Case; 4] = [
        (
            "via HTTP_PROXY",
            &unspecified,
            &[("HTTP_PROXY", &proxy.url)],
            true,
        ),
        (
            "via all_proxy",
            &unspecified,
            &[("all_proxy", &proxy.url)],
            true,
        ),
        (
            "NO_PROXY names the host",
            &unspecified,
            &[
                ("HTTP_PROXY", &proxy.url),
                ("NO_PROXY", "example.org, 0.0.0.0"),
            ],
            false,
        ),
        (
            "a loopback API",
            sandbox.url(),
            &[("HTTP_PROXY", &proxy.url), ("HTTPS_PROXY", &proxy.url)],
            false,
        ),
    ];
    for (n, (name, url, env, proxied)) in cases.into_iter().enumerate() {
        let before = proxy.uploads();
        let w = workspace(&sandbox, url, "");
        let bytes = pdf(&format!("environment proxy {n}"));
        w.drop_file("a.pdf", &bytes);
        let out = sync_once(&w, env);
        assert_eq!(out.code(), Some(0), "{name}: {out}");
        let through = proxy.uploads() - before;
        assert_eq!(
            through,
            usize::from(proxied),
            "{name}: uploads through the proxy; it saw {:?}",
            proxy.seen()
        );
        assert_eq!(copies_on_server(&sandbox, &bytes), 1, "{name}");
    }
}

/// A server that goes silent mid-request is given up on after `read_timeout`
/// and the file is retried (asking the server first), then sent once.
#[test]
fn a_silent_server_times_out_after_read_timeout_and_the_file_is_retried() {
    let sandbox = TestSandbox::start();
    sandbox.set_faults(FaultConfig {
        stall_rate: 1.0,
        stall_ms: 30_000,
        ..FaultConfig::default()
    });
    let w = workspace(&sandbox, sandbox.url(), "[http]\nread_timeout = \"1s\"\n");
    let bytes = pdf("stalled");
    w.drop_file("a.pdf", &bytes);
    let daemon = w.spawn(["run"]);
    // Each request is given up after 1 s (the lookup before the upload too,
    // retried in memory for ~25 s at most); with the default read timeout
    // (60 s) each would wait out the 30 s stall and succeed, never timing out.
    let row = wait_until(Duration::from_secs(75), "a timed-out upload", || {
        let row = state_of(&w, "a.pdf")?;
        let reason = row["reason"].as_str().unwrap_or_default();
        if row["state"] == "retrying" && reason.contains("timed out") {
            Ok(row)
        } else {
            Err(format!("{row}\n{}", daemon.log()))
        }
    });
    assert!(
        row["reason"].as_str().unwrap().contains("read_timeout"),
        "{row}"
    );
    sandbox.set_faults(FaultConfig::default());
    wait_until(Duration::from_secs(60), "a.pdf approved", || {
        let row = state_of(&w, "a.pdf")?;
        if row["state"] == "approved" {
            Ok(())
        } else {
            Err(format!("{row}\n{}", daemon.log()))
        }
    });
    assert_eq!(copies_on_server(&sandbox, &bytes), 1);
    daemon.stop(Duration::from_secs(20));
}

/// `ca_file`: missing or garbage is refused by `config check` and `run`, with
/// the file named; a PEM bundle is accepted.
#[test]
fn a_ca_file_is_checked_at_start() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_api(sandbox.url(), sandbox.credentials());
    let garbage = w.write_file("garbage.pem", "this is no certificate\n");
    let cases = [
        ("missing.pem", "does not exist"),
        ("garbage.pem", "is not a usable PEM bundle"),
    ];
    for (file, why) in cases {
        w.write_config(&format!("[http]\nca_file = \"{file}\"\n"));
        let check = w.run(["config", "check"]);
        assert_eq!(check.code(), Some(1), "{check}");
        let shown = w.path().join(file);
        assert!(
            check
                .stdout
                .contains("docsync.toml:10:11: http.ca_file: error")
                && check
                    .stdout
                    .contains(&format!("CA file {} {why}", shown.display()))
                && check.stdout.contains("fix: "),
            "{check}"
        );
        let run = w.run(["sync", "--once", "--timeout", "10s"]);
        assert_eq!(run.code(), Some(2), "{run}");
        assert!(
            run.stderr
                .contains(&format!("CA file {} {why}", shown.display())),
            "{run}"
        );
    }
    assert!(garbage.exists());

    let pem = include_str!("fixtures/test-ca.pem");
    w.write_file("corp-ca.pem", pem);
    w.write_config("[http]\nca_file = \"corp-ca.pem\"\n");
    let check = w.run(["config", "check"]);
    assert_eq!(check.code(), Some(0), "{check}");
    w.drop_file("a.pdf", &pdf("with a CA"));
    let out = w.run(["sync", "--once", "--timeout", "45s"]);
    assert_eq!(out.code(), Some(0), "{out}");
}

/// A file whose upload keeps failing waits in `retrying` with its next attempt
/// shown, and is sent exactly once when the server is back.
#[test]
fn a_failing_upload_shows_its_next_attempt_and_is_sent_once_when_the_server_is_back() {
    let sandbox = TestSandbox::start();
    sandbox.set_faults(FaultConfig {
        error_rate: 1.0,
        error_statuses: vec![503],
        ..FaultConfig::default()
    });
    let w = workspace(&sandbox, sandbox.url(), "[http]\nretry_for = \"1h\"\n");
    let bytes = pdf("server down");
    w.drop_file("a.pdf", &bytes);
    let daemon = w.spawn(["run"]);
    // (a lookup before the upload may first retry in memory for ~25 s)
    let row = wait_until(Duration::from_secs(75), "a.pdf retrying", || {
        let row = state_of(&w, "a.pdf")?;
        if row["state"] == "retrying" && row["next_attempt"].is_string() {
            Ok(row)
        } else {
            Err(format!("{row}\n{}", daemon.log()))
        }
    });
    let next = chrono::DateTime::parse_from_rfc3339(row["next_attempt"].as_str().unwrap()).unwrap();
    let updated = chrono::DateTime::parse_from_rfc3339(row["updated"].as_str().unwrap()).unwrap();
    assert!(next > updated, "the next attempt is ahead: {row}");
    assert!(row["reason"].as_str().unwrap().contains("503"), "{row}");
    // the table shows it too
    let table = w.run(["status"]);
    assert_eq!(table.code(), Some(0), "{table}");
    assert!(table.stdout.contains("NEXT ATTEMPT"), "{table}");
    let line = table
        .stdout
        .lines()
        .find(|l| l.starts_with("a.pdf"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains("retrying"), "{line}");
    let shown = line.matches("Z ").count() + usize::from(line.ends_with('Z'));
    assert!(shown >= 2, "updated and next attempt: {line}");
    sandbox.set_faults(FaultConfig::default());
    wait_until(Duration::from_secs(90), "a.pdf approved", || {
        let row = state_of(&w, "a.pdf")?;
        if row["state"] == "approved" {
            Ok(())
        } else {
            Err(format!("{row}\n{}", daemon.log()))
        }
    });
    assert_eq!(copies_on_server(&sandbox, &bytes), 1);
    daemon.stop(Duration::from_secs(20));
}

/// With a tiny `retry_for`, a file whose upload keeps failing ends `failed`,
/// saying the retries are exhausted and how to retry; `docsync retry` then
/// sends it, once.
#[test]
fn a_spent_retry_budget_ends_failed_with_the_way_out() {
    let sandbox = TestSandbox::start();
    sandbox.set_faults(FaultConfig {
        error_rate: 1.0,
        error_statuses: vec![503],
        ..FaultConfig::default()
    });
    let w = workspace(&sandbox, sandbox.url(), "[http]\nretry_for = \"1s\"\n");
    let bytes = pdf("budget spent");
    w.drop_file("a.pdf", &bytes);
    let daemon = w.spawn(["run"]);
    let row = wait_until(Duration::from_secs(90), "a.pdf failed", || {
        let row = state_of(&w, "a.pdf")?;
        if row["state"] == "failed" {
            Ok(row)
        } else {
            Err(format!("{row}\n{}", daemon.log()))
        }
    });
    let reason = row["reason"].as_str().unwrap();
    assert!(
        reason.contains("retries exhausted")
            && reason.contains("retry_for = 1s")
            && reason.contains("docsync retry"),
        "{row}"
    );
    assert!(row.get("next_attempt").is_none(), "{row}");
    assert_eq!(copies_on_server(&sandbox, &bytes), 0);

    sandbox.set_faults(FaultConfig::default());
    let retry = w.run(["retry", "--all-failed"]);
    assert_eq!(retry.code(), Some(0), "{retry}");
    wait_until(Duration::from_secs(60), "a.pdf approved", || {
        let row = state_of(&w, "a.pdf")?;
        if row["state"] == "approved" {
            Ok(())
        } else {
            Err(format!("{row}\n{}", daemon.log()))
        }
    });
    assert_eq!(copies_on_server(&sandbox, &bytes), 1);
    daemon.stop(Duration::from_secs(20));
}
