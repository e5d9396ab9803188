//! The admin listener of `docsync run --admin`, through HTTP: probes, metrics, the
//! status page and its retry button's cross-site protection; the address rules;
//! shell completions and the man page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value;

use crate::harness::{pdf, wait_until, Daemon, TestSandbox, Workspace};

const WAIT: Duration = Duration::from_secs(30);

/// The admin URL the daemon logged (`admin listener on http://127.0.0.1:PORT/`).
pub(crate) fn admin_url(daemon: &Daemon) -> String {
    wait_until(WAIT, "the admin listener's address in the log", || {
        let log = daemon.log();
        log.split("admin listener on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|url| url.trim_end_matches('/').to_owned())
            .ok_or(log)
    })
}

/// `GET url`: status, content type, body.
pub(crate) fn get(url: &str) -> (u16, String, String) {
    send(reqwest::Client::new().get(url))
}

/// Send `request` on a small runtime of its own (the tests are sync).
fn send(request: reqwest::RequestBuilder) -> (u16, String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let response = request
            .send()
            .await
            .expect("a response from the admin listener");
        let status = response.status().as_u16();
        let ctype = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, ctype, response.text().await.unwrap())
    })
}

/// The value of the sample `name` (e.g. `docsync_files{state="approved"}`).
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        (key == name).then(|| value.parse().ok())?
    })
}

fn counts_by_state(rows: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for row in rows {
        *counts
            .entry(row["state"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

#[test]
fn probes_metrics_and_status_page_over_http() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    // a name with markup in it: shown, never interpreted
    let good = pdf("admin-good");
    w.drop_file("<img src=x onerror=alert(1)>.pdf", &good);
    let rejected = pdf("admin-rejected");
    w.drop_file("reject-this.pdf", &rejected);
    w.drop_file("empty.pdf", b"");
    let daemon = w.spawn(["run", "--admin", "127.0.0.1:0"]);
    let url = admin_url(&daemon);

    // the daemon decides both uploads; /metrics shows it
    let metrics = wait_until(WAIT, "two decisions in /metrics", || {
        let (_, _, text) = get(&format!("{url}/metrics"));
        let approved = sample(&text, r#"docsync_files{state="approved"}"#);
        let rejected = sample(&text, r#"docsync_files{state="rejected"}"#);
        if approved == Some(1.0) && rejected == Some(1.0) {
            Ok(text)
        } else {
            Err(text)
        }
    });
    let (status, ctype, _) = get(&format!("{url}/metrics"));
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert_eq!(
        sample(&metrics, "docsync_uploads_total"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "docsync_sent_bytes_total"),
        Some((good.len() + rejected.len()) as f64),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "docsync_upload_duration_seconds_count"),
        Some(2.0)
    );
    assert!(sample(&metrics, "docsync_poll_duration_seconds_count").unwrap_or(0.0) >= 1.0);
    assert_eq!(
        sample(&metrics, r#"docsync_files{state="invalid"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "docsync_queue_depth"), Some(0.0));
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");

    let (status, _, body) = get(&format!("{url}/healthz"));
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, body) = get(&format!("{url}/readyz"));
    assert_eq!(status, 200, "{body}");
    for check in ["watcher: ok", "database: ok", "api: ok"] {
        assert!(body.contains(check), "no `{check}` in\n{body}");
    }

    // the page: counts as the store has them, the rejected file (escaped) with its
    // reason and request id, the invalid one with its reason
    let rows = w.status_json();
    let counts = counts_by_state(&rows);
    let (status, ctype, page) = get(&format!("{url}/"));
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    for (state, n) in &counts {
        let cell = format!(r#"data-state="{state}"><a href="#);
        let at = page
            .find(&cell)
            .unwrap_or_else(|| panic!("no {state} cell in\n{page}"));
        let shown = &page[at..];
        let number = shown.split('>').nth(2).unwrap().split('<').next().unwrap();
        assert_eq!(number, n.to_string(), "{state}");
    }
    let (_, _, approved) = get(&format!("{url}/files?states=approved"));
    assert!(
        approved.contains("&lt;img src=x onerror=alert(1)&gt;.pdf"),
        "{approved}"
    );
    assert!(!approved.contains("<img"), "a file name was not escaped");
    let rejected_row = rows.iter().find(|r| r["state"] == "rejected").unwrap();
    let reason = rejected_row["reason"].as_str().unwrap();
    assert!(!reason.is_empty());
    assert!(
        page.contains(&html_escape(reason)),
        "no reason `{reason}` in\n{page}"
    );
    let invalid_row = rows.iter().find(|r| r["state"] == "invalid").unwrap();
    assert!(page.contains(&html_escape(invalid_row["reason"].as_str().unwrap())));

    // a file's history, linked from the page
    let link = page.split("href=\"/files/").nth(1).unwrap();
    let id: i64 = link.split('"').next().unwrap().parse().unwrap();
    let (status, _, history) = get(&format!("{url}/files/{id}"));
    assert_eq!(status, 200);
    assert!(history.contains("id=\"history\""), "{history}");
    assert!(history.contains("seen on disk"), "{history}");
    let (status, _, _) = get(&format!("{url}/files/999999"));
    assert_eq!(status, 404);
    let (status, _, body) = get(&format!("{url}/files?states=nonsense"));
    assert_eq!(status, 400);
    assert!(body.contains("unknown state `nonsense`"), "{body}");

    // the retry button's protection: no token, another origin, another site
    let invalid_id = invalid_row_id(&url);
    let post = |token: &str, headers: &[(&str, &str)]| {
        let mut request = reqwest::Client::new()
            .post(format!("{url}/files/{invalid_id}/retry"))
            .form(&[("token", token)]);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        send(request)
    };
    let token = form_token(&url, invalid_id);
    let (status, _, body) = post("wrong", &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("token"), "{body}");
    let (status, _, body) = post(&token, &[("origin", "http://evil.example")]);
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = post(&token, &[("sec-fetch-site", "cross-site")]);
    assert_eq!(status, 403, "{body}");
    // a rebinding page: the Host names another site
    let (status, _, _) = send(
        reqwest::Client::new()
            .get(format!("{url}/"))
            .header("host", "evil.example"),
    );
    assert_eq!(status, 421);
    // none of that touched the file
    let still = w.status_of("empty.pdf").unwrap();
    assert_eq!(still["state"], "invalid");
    // the real form retries it (invalid: checked again, and invalid again)
    let (status, _, _) = post(
        &token,
        &[("origin", url.as_str()), ("sec-fetch-site", "same-origin")],
    );
    assert_eq!(status, 200, "the redirect to the file's page");
    let (_, _, history) = get(&format!("{url}/files/{invalid_id}"));
    assert!(
        history.contains("retry requested on the status page"),
        "{history}"
    );

    // the watched folder goes away: not ready, and the body says which check failed
    let aside = w.path().join("inbox-aside");
    std::fs::rename(&w.inbox, &aside).unwrap();
    let (status, _, body) = get(&format!("{url}/readyz"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("watcher: FAIL"), "{body}");
    assert!(body.contains("no longer a directory"), "{body}");
    assert!(body.contains("api: ok"), "{body}");
    std::fs::rename(&aside, &w.inbox).unwrap();
    let (status, _, body) = get(&format!("{url}/readyz"));
    assert_eq!(status, 200, "{body}");

    // the API goes away: not ready, and the body says which check failed
    drop(sandbox);
    let body = wait_until(WAIT, "/readyz to fail without the API", || {
        let (status, _, body) = get(&format!("{url}/readyz"));
        if status == 503 {
            Ok(body)
        } else {
            Err(body)
        }
    });
    assert!(body.contains("api: FAIL"), "{body}");
    assert!(body.contains("database: ok"), "{body}");
    daemon.stop(WAIT);
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn invalid_row_id(url: &str) -> i64 {
    let (_, _, page) = get(&format!("{url}/files?states=invalid"));
    let link = page
        .split("href=\"/files/")
        .nth(1)
        .expect("an invalid file listed");
    link.split('"').next().unwrap().parse().unwrap()
}

fn form_token(url: &str, id: i64) -> String {
    let (_, _, page) = get(&format!("{url}/files/{id}"));
    let at = page.find("name=\"token\" value=\"").expect("a retry form");
    page[at + 20..].split('"').next().unwrap().to_owned()
}

#[test]
fn a_non_loopback_admin_address_is_refused_unless_allowed() {
    let w = Workspace::new();
    let out = w.run(["run", "--admin", "0.0.0.0:0", "inbox"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains("0.0.0.0:0 is not a loopback address"),
        "{out}"
    );
    assert!(out.stderr.contains("--admin-allow-remote"), "{out}");
    // the flag alone needs an address
    let out = w.run(["run", "--admin-allow-remote", "inbox"]);
    assert_eq!(out.code(), Some(2), "{out}");
}

#[test]
fn the_admin_section_of_the_config_starts_the_listener() {
    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("\n[admin]\naddress = \"127.0.0.1:0\"\n");
    let daemon = w.spawn(["run"]);
    let url = admin_url(&daemon);
    let (status, _, body) = get(&format!("{url}/healthz"));
    assert_eq!(status, 200, "{body}");
    drop(daemon);
    // a reachable address is refused by `config check`, with where and what to do
    w.write_config("\n[admin]\naddress = \"0.0.0.0:8384\"\n");
    let out = w.run(["config", "check"]);
    assert_eq!(out.code(), Some(1), "{out}");
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("admin.address"), "{out}");
    assert!(text.contains("can be reached from other machines"), "{out}");
    assert!(text.contains("allow_remote = true"), "{out}");
}

#[test]
fn a_taken_admin_port_is_a_setup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let w = Workspace::new();
    let out = w.run(["run", "--admin", &addr, "inbox"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(
        out.stderr
            .contains(&format!("listening on the admin address {addr} failed")),
        "{out}"
    );
}

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    let w = Workspace::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = w.run(["completions", shell]);
        assert_eq!(out.code(), Some(0), "{out}");
        for sub in [
            "run",
            "sync",
            "status",
            "history",
            "retry",
            "sandbox",
            "completions",
            "baseline",
        ] {
            assert!(out.stdout.contains(sub), "{shell} completions lack `{sub}`");
        }
        for flag in ["--admin", "--dry-run", "--json", "--only-newer-than"] {
            // fish names a long flag `-l NAME`
            let fish = format!("-l {}", flag.trim_start_matches('-'));
            assert!(
                out.stdout.contains(flag) || out.stdout.contains(&fish),
                "{shell} completions lack {flag}"
            );
        }
    }
    let out = w.run(["completions", "tcsh"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(
        out.stderr.contains("bash"),
        "the error lists the shells\n{out}"
    );
}

#[test]
fn the_man_pages_are_roff_for_every_subcommand() {
    let w = Workspace::new();
    let out = w.run(["man"]);
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains(".TH docsync 1"), "{out}");
    for sub in [
        "run",
        "sync",
        "status",
        "history",
        "retry",
        "baseline",
        "completions",
        "man",
    ] {
        assert!(
            out.stdout.contains(&format!("docsync\\-{sub}(1)")),
            "the page does not list `{sub}`\n{out}"
        );
    }
    let dir = w.path().join("man1");
    let out = w.run(["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(out.code(), Some(0), "{out}");
    let run = std::fs::read_to_string(dir.join("docsync-run.1")).unwrap();
    assert!(run.contains(".TH docsync-run 1"), "{run}");
    assert!(
        run.contains("\\-\\-admin"),
        "docsync-run.1 does not document --admin\n{run}"
    );
    for page in ["docsync-run.1", "docsync-sync.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        for flag in [
            "sandbox",
            "start\\-over",
            "keep\\-history",
            "dry\\-run",
            "json",
            "only\\-newer\\-than",
        ] {
            assert!(
                text.contains(&format!("\\-\\-{flag}")),
                "{page} does not document --{flag}\n{text}"
            );
        }
    }
    assert!(dir.join("docsync.1").is_file());
    let baseline = std::fs::read_to_string(dir.join("docsync-baseline.1")).unwrap();
    assert!(baseline.contains("skipped"), "{baseline}");
}

#[test]
fn help_shows_the_dry_run_and_the_baseline() {
    let w = Workspace::new();
    let top = w.run(["--help"]);
    assert_eq!(top.code(), Some(0), "{top}");
    assert!(top.stdout.contains("baseline"), "{top}");
    for sub in ["run", "sync"] {
        let out = w.run([sub, "--help"]);
        assert_eq!(out.code(), Some(0), "{out}");
        for flag in ["--dry-run", "--json", "--only-newer-than <DURATION|DATE>"] {
            assert!(
                out.stdout.contains(flag),
                "{sub} --help lacks {flag}\n{out}"
            );
        }
    }
    // --json means nothing without --dry-run
    let out = w.run(["sync", "--once", "--json"]);
    assert_eq!(out.code(), Some(2), "{out}");
}

#[test]
fn the_systemd_unit_is_hardened_and_its_command_line_parses() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/docsync.service"),
    )
    .unwrap();
    for line in [
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadWritePaths=/var/lib/docsync",
        "Environment=DOCSYNC_STATE_DIR=/var/lib/docsync",
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=120s",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks `{line}`");
    }
    // ExecStart's arguments are ones this docsync accepts (the parser stops at
    // --help only after every earlier argument parsed)
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    args.push("--help");
    let out = Workspace::new().run(&args);
    assert_eq!(out.code(), Some(0), "ExecStart={exec}\n{out}");
}
