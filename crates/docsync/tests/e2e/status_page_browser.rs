//! The status page in headless Chromium (through chromedriver and WebDriver): the
//! counts match the store, a click opens a file's history, the retry button sends
//! a failed file again and the page shows it approved. A screenshot is kept in
//! `target/test-artifacts/status-page*.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).
//! Without them the test says loudly that it was skipped, unless
//! `DOCSYNC_REQUIRE_BROWSER=1` (set by `.ci/run`) makes that a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::harness::{pdf, wait_until, TestSandbox, Workspace};

const WAIT: Duration = Duration::from_secs(30);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a port of its choosing, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        let mut child = Command::new(CHROMEDRIVER)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let stdout = child.stdout.take().unwrap();
        // "ChromeDriver was started successfully on port 42897."
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .map(|p| p.trim_end_matches('.').trim().to_owned())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(WAIT)
            .expect("chromedriver did not say which port it listens on");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

fn browser_missing() -> Option<String> {
    [CHROMIUM, CHROMEDRIVER]
        .iter()
        .find(|p| !Path::new(p).is_file())
        .map(|p| format!("{p} is missing"))
}

fn artifacts_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn connect(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::rustls()
        .expect("a WebDriver client")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver")
}

/// Poll `check` until it returns `Some`, for at most `timeout`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn text(client: &Client, css: &str) -> Result<String, String> {
    let element = client
        .find(Locator::Css(css))
        .await
        .map_err(|e| format!("{css}: {e}"))?;
    element.text().await.map_err(|e| format!("{css}: {e}"))
}

#[test]
fn status_page_in_headless_chromium() {
    if let Some(missing) = browser_missing() {
        if std::env::var_os("DOCSYNC_REQUIRE_BROWSER").is_some_and(|v| v == "1") {
            panic!(
                "{missing}, and DOCSYNC_REQUIRE_BROWSER=1: install chromium and chromium-driver"
            );
        }
        // straight to stderr: the test harness captures eprintln! of passing tests
        let _ = writeln!(
            std::io::stderr(),
            "\n########## SKIPPED status_page_in_headless_chromium: {missing} ##########\n\
             install Debian's chromium and chromium-driver to run it \
             (DOCSYNC_REQUIRE_BROWSER=1 makes this a failure)\n"
        );
        return;
    }

    let sandbox = TestSandbox::start();
    let w = Workspace::with_sandbox(&sandbox);
    w.write_config("");
    // one file fails for good: sent with a wrong secret, the API refuses it (401)
    w.drop_file("needs-retry.pdf", &pdf("browser-retry"));
    let mut wrong = w.cmd(["sync", "--once", "--timeout", "30s"]);
    wrong.env("DOCSYNC_SECRET_KEY", "not-the-secret");
    let out = crate::harness::run_command(wrong, WAIT);
    assert_eq!(out.code(), Some(1), "{out}");
    assert_eq!(w.status_of("needs-retry.pdf").unwrap()["state"], "failed");
    // then the daemon, with the right secret, and files it decides
    w.drop_file("fine.pdf", &pdf("browser-fine"));
    w.drop_file("reject-me.pdf", &pdf("browser-reject"));
    let daemon = w.spawn(["run", "--admin", "127.0.0.1:0"]);
    let admin = wait_until(WAIT, "the admin listener's address in the log", || {
        let log = daemon.log();
        log.split("admin listener on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(|url| url.trim_end_matches('/').to_owned())
            .ok_or(log)
    });
    let counts = wait_until(WAIT, "fine.pdf and reject-me.pdf decided", || {
        let rows = w.status_json();
        let state = |name: &str| {
            rows.iter()
                .find(|r| r["path"] == name)
                .map(|r| r["state"].as_str().unwrap_or("").to_owned())
        };
        if state("fine.pdf").as_deref() == Some("approved")
            && state("reject-me.pdf").as_deref() == Some("rejected")
        {
            let mut counts = std::collections::BTreeMap::<String, usize>::new();
            for r in &rows {
                *counts
                    .entry(r["state"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
            Ok(counts)
        } else {
            Err(format!("{rows:?}"))
        }
    });

    let profile = tempfile::tempdir().unwrap();
    let driver = Driver::start();
    let artifacts = artifacts_dir();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = connect(&driver, profile.path()).await;
        client.goto(&format!("{admin}/")).await.unwrap();

        // the folder's counts are the store's
        for (state, n) in &counts {
            let shown = text(&client, &format!("tr.folder td[data-state='{state}']"))
                .await
                .unwrap();
            assert_eq!(shown, n.to_string(), "the page's {state} count");
        }
        assert_eq!(
            text(&client, "tr.folder td[data-state='failed']")
                .await
                .unwrap(),
            "1"
        );
        // the failed file is listed with why
        let problems = text(&client, "table#files").await.unwrap();
        assert!(problems.contains("needs-retry.pdf"), "{problems}");
        assert!(problems.contains("unauthorized"), "{problems}");
        assert!(problems.contains("reject-me.pdf"), "{problems}");
        let png = client.screenshot().await.unwrap();
        std::fs::write(artifacts.join("status-page.png"), png).unwrap();

        // a click opens its history
        let link = client
            .find(Locator::XPath(
                "//a[@class='file-link'][text()='needs-retry.pdf']",
            ))
            .await
            .unwrap();
        link.click().await.unwrap();
        assert_eq!(text(&client, "td#state").await.unwrap(), "failed");
        let history = text(&client, "table#history").await.unwrap();
        assert!(history.contains("seen on disk"), "{history}");
        assert!(history.contains("unauthorized"), "{history}");
        let png = client.screenshot().await.unwrap();
        std::fs::write(artifacts.join("status-page-file.png"), png).unwrap();

        // retry: the file is sent again and approved; the page shows it. The page
        // reloads itself every few seconds, so the button is pressed again if a
        // reload made the one found stale; the page is then only read, never
        // reloaded by the test: a reload right after the click could cancel the
        // form's POST, and the page's own refresh is part of what is tested.
        eventually("the retry button pressed", || async {
            let button = client
                .find(Locator::Css("form#retry button"))
                .await
                .map_err(|e| format!("the retry button: {e}"))?;
            button
                .click()
                .await
                .map_err(|e| format!("pressing retry: {e}"))
        })
        .await;
        eventually("the retried file approved on its page", || async {
            let state = text(&client, "td#state").await?;
            if state == "approved" {
                return Ok(());
            }
            let history = text(&client, "table#history").await.unwrap_or_default();
            let log = daemon.log();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            Err(format!(
                "state {state}; history:\n{history}\nthe daemon's last log lines (newest first):\n{}",
                tail.join("\n")
            ))
        })
        .await;
        let history = text(&client, "table#history").await.unwrap();
        assert!(
            history.contains("retry requested on the status page"),
            "{history}"
        );
        assert!(
            client.find(Locator::Css("form#retry")).await.is_err(),
            "an approved file has no retry button"
        );
        let png = client.screenshot().await.unwrap();
        std::fs::write(artifacts.join("status-page-retried.png"), png).unwrap();
        client.close().await.unwrap();
    });
    assert_eq!(w.status_of("needs-retry.pdf").unwrap()["state"], "approved");
    drop(daemon);
    eprintln!("screenshots in {}", artifacts.display());
}
