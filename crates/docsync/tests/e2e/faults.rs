//! The daemon against a sandbox that fails a third of all requests (seeded):
//! 5xx, 429 with Retry-After, connection resets and short stalls. Every file
//! must still end decided, on the server exactly once; no file is tried again
//! before the Retry-After it was given; the request rate stays within
//! `max_requests_per_second`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use docsync::config::{parse, Env};
use docsync::engine::{Engine, Mode, Snapshot};
use docsync::store::{ListFilter, State, Store};
use docsync_client::moov;
use docsync_client::moov::types::FileStatus;
use docsync_client::MoovCredentials;
use docsync_sandbox::{DecisionRule, FaultConfig, RequestLogEntry, Sandbox, SandboxConfig};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const ACCOUNTS: [&str; 2] = [
    "00000000-0000-4000-8000-000000000017",
    "00000000-0000-4000-8000-000000000018",
];
const FILES_PER_ACCOUNT: usize = 30;
const RPS: u32 = 50;
const RETRY_AFTER_SECS: u64 = 1;

fn faults() -> FaultConfig {
    FaultConfig {
        seed: 0x5eed_f417,
        error_rate: 0.18,
        rate_limit_rate: 0.08,
        retry_after_secs: Some(RETRY_AFTER_SECS),
        reset_rate: 0.06,
        stall_rate: 0.05,
        // far below the client's 60 s read timeout: a slow answer, not a lost one
        stall_ms: 300,
        ..FaultConfig::default()
    }
}

/// A small valid file whose content is unique to `n`.
fn content(n: usize) -> (Vec<u8>, &'static str) {
    if n.is_multiple_of(3) {
        (format!("id,amount\n{n},{}\n", n * 7).into_bytes(), "csv")
    } else {
        (
            format!("%PDF-1.4\n% file {n}\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n").into_bytes(),
            "pdf",
        )
    }
}

fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_of_requests_failing_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxConfig {
        decision: DecisionRule {
            delay: Duration::from_millis(100),
            rejection_rate: 0.2,
            seed: 11,
            ..DecisionRule::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();

    // <root>/<account>/business_verification/<file>: the convention mapping.
    let root = dir.path().join("inbox");
    let mut local: HashMap<String, (String, String)> = HashMap::new(); // sha256 -> (account, path)
    for (a, account) in ACCOUNTS.iter().enumerate() {
        let folder = root.join(account).join("business_verification");
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..FILES_PER_ACCOUNT {
            let n = a * 1000 + i;
            let (bytes, ext) = content(n);
            let name = format!("doc-{n:04}.{ext}");
            std::fs::write(folder.join(&name), &bytes).unwrap();
            let sha = hex::encode(Sha256::digest(&bytes));
            local.insert(sha, (account.to_string(), name));
        }
    }
    let total = ACCOUNTS.len() * FILES_PER_ACCOUNT;
    assert_eq!(local.len(), total);

    let text = format!(
        r#"
state_dir = "{state}"
quiet_window = "100ms"
poll_interval = "100ms"
retry_initial = "20ms"
max_requests_per_second = {RPS}
concurrency = 4
[api]
url = "{url}"
[[folder]]
path = "{root}"
"#,
        state = dir.path().join("state").display(),
        url = sandbox.url(),
        root = root.display(),
    );
    let creds = sandbox.credentials().clone();
    let env = Env::from_pairs([
        ("DOCSYNC_PUBLIC_KEY", creds.public_key.as_str()),
        ("DOCSYNC_SECRET_KEY", creds.secret_key.as_str()),
    ]);
    let config = parse(&text, None, &env).unwrap();
    assert_eq!(config.retry_initial, Duration::from_millis(20));
    let apis = docsync::remote::connect::apis(&config).unwrap();

    sandbox.set_faults(faults()).unwrap();
    sandbox.clear_request_log();
    let started = Instant::now();
    let (tx, _rx) = watch::channel(Snapshot::default());
    let report = Engine::new(config, apis)
        .mode(Mode::Once {
            timeout: Duration::from_secs(45),
        })
        .progress(tx)
        .run(CancellationToken::new())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let log = sandbox.request_log();
    sandbox.set_faults(FaultConfig::default()).unwrap();

    // --- every file decided ------------------------------------------------------
    assert!(!report.timed_out, "{report:?}");
    let decided = report.counts.get(&State::Approved).copied().unwrap_or(0)
        + report.counts.get(&State::Rejected).copied().unwrap_or(0);
    assert_eq!(decided, total as u64, "{report:?}");

    // --- exactly once on the server, and the same decision ------------------------
    let client = moov::Client::builder(
        sandbox.url(),
        MoovCredentials::basic(creds.public_key.clone(), creds.secret_key.clone()),
    )
    .build()
    .unwrap();
    let mut server: HashMap<String, (String, FileStatus, String)> = HashMap::new(); // file id -> (account, status, sha)
    let mut per_sha: BTreeMap<String, u32> = BTreeMap::new();
    for account in ACCOUNTS {
        let files = client.list_files(account, None).await.unwrap().into_inner();
        assert_eq!(
            files.len(),
            FILES_PER_ACCOUNT,
            "{account} holds {} files, the folder {FILES_PER_ACCOUNT}",
            files.len()
        );
        for f in files {
            let meta: serde_json::Value = serde_json::from_str(&f.metadata).unwrap();
            let comment = meta["comment"].as_str().unwrap_or_default();
            let sha = docsync::remote::marker::marker_in(comment)
                .unwrap_or_else(|| panic!("no marker in {comment:?}"))
                .to_owned();
            let (want_account, want_name) = local
                .get(&sha)
                .unwrap_or_else(|| panic!("server file {} matches no local file", f.file_id));
            assert_eq!(want_account, account);
            assert_eq!(f.file_name.to_string(), *want_name);
            *per_sha.entry(sha.clone()).or_default() += 1;
            server.insert(f.file_id.clone(), (account.to_owned(), f.file_status, sha));
        }
    }
    let duplicated: Vec<_> = per_sha.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "uploaded twice: {duplicated:?}");
    let missing: Vec<_> = local.keys().filter(|s| !per_sha.contains_key(*s)).collect();
    assert!(missing.is_empty(), "never uploaded: {missing:?}");

    let store = Store::open_read_only(&dir.path().join("state/docsync.db")).unwrap();
    let rows = store
        .list(&ListFilter {
            include_history: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), total, "one row per file: {rows:#?}");
    for row in &rows {
        let id = row
            .remote_id
            .as_deref()
            .expect("decided rows have a remote id");
        let (_, status, sha) = server.get(id).unwrap();
        assert_eq!(row.sha256.as_deref(), Some(sha.as_str()));
        let want = match status {
            FileStatus::Approved => State::Approved,
            FileStatus::Rejected => State::Rejected,
            other => panic!("server still says {other:?} for {id}"),
        };
        assert_eq!(row.state, want, "{row:#?}");
        if want == State::Rejected {
            assert!(row
                .decision_reason
                .as_deref()
                .is_some_and(|r| !r.is_empty()));
        }
    }

    // --- Retry-After honoured ------------------------------------------------------
    // Per file, from the store's events joined with the request log by x-request-id:
    // for every upload attempt that ended in an injected 429 (received at t), the
    // file's next attempt (retrying -> uploading, committed before any request of
    // that attempt is sent) and the next request of that file the server answered
    // (its id recorded on a later event) come no earlier than t + Retry-After.
    let by_request: HashMap<&str, &RequestLogEntry> =
        log.iter().map(|e| (e.request_id.as_str(), e)).collect();
    let retry_after_ms = i64::try_from(RETRY_AFTER_SECS * 1000).unwrap();
    let mut file_429s = 0;
    let mut retried_after = Vec::new();
    for row in &rows {
        let events = store.events(row.id).unwrap();
        for (k, event) in events.iter().enumerate() {
            let Some(hit) = event
                .request_id
                .as_deref()
                .and_then(|r| by_request.get(r))
                .filter(|e| e.fault.as_deref() == Some("429"))
            else {
                continue;
            };
            assert_eq!(event.to_state, State::Retrying, "{event:#?}");
            file_429s += 1;
            let t = ms(hit.received_at);
            let next_attempt = events[k + 1..]
                .iter()
                .find(|e| e.from_state == Some(State::Retrying))
                .expect("a retried file is tried again");
            assert!(
                next_attempt.at >= t + retry_after_ms,
                "{}: tried again {} ms after a 429 asking for {retry_after_ms} ms",
                row.path_display(),
                next_attempt.at - t
            );
            if let Some(next_request) = events[k + 1..]
                .iter()
                .filter_map(|e| e.request_id.as_deref().and_then(|r| by_request.get(r)))
                .next()
            {
                let gap = ms(next_request.received_at) - t;
                assert!(
                    gap >= retry_after_ms,
                    "{}: next request after {gap} ms",
                    row.path_display()
                );
                retried_after.push(gap);
            }
        }
    }

    // --- the request rate ------------------------------------------------------------
    let mut times: Vec<i64> = log.iter().map(|e| ms(e.received_at)).collect();
    times.sort_unstable();
    let mut busiest = 0;
    for (i, t) in times.iter().enumerate() {
        let n = times[i..].iter().take_while(|u| **u < t + 1000).count();
        busiest = busiest.max(n);
    }
    assert!(
        busiest <= RPS as usize + 1,
        "{busiest} requests within one second; the limit is {RPS}/s"
    );

    // --- numbers ---------------------------------------------------------------------
    let mut by_fault: BTreeMap<String, usize> = BTreeMap::new();
    for e in &log {
        let kind = match e.fault.as_deref() {
            None => continue,
            Some(f) if f.starts_with("stall") => "stall",
            Some(f) => f,
        };
        *by_fault.entry(kind.to_owned()).or_default() += 1;
    }
    let injected: usize = by_fault
        .iter()
        .filter(|(k, _)| k.as_str() != "stall")
        .map(|(_, n)| n)
        .sum();
    let mut by_op: BTreeMap<String, usize> = BTreeMap::new();
    for e in &log {
        *by_op
            .entry(e.operation_id.clone().unwrap_or_else(|| e.path.clone()))
            .or_default() += 1;
    }
    let ok_uploads = log
        .iter()
        .filter(|e| {
            e.operation_id.as_deref() == Some("uploadFile")
                && e.fault.as_deref().is_none_or(|f| f.starts_with("stall"))
                && e.status.is_some_and(|s| (200..300).contains(&s))
        })
        .count();
    assert_eq!(
        ok_uploads, total,
        "successful uploadFile requests: {by_op:?}"
    );
    let faulted = by_fault.values().sum::<usize>();
    eprintln!(
        "fault run: {total} files, {} requests in {:.1}s ({by_op:?}); faults {faulted} \
         ({:.0}%: {by_fault:?}); failed requests {injected}; {file_429s} uploads answered 429, \
         next request of the file after {retried_after:?} ms; busiest second {busiest} requests \
         (limit {RPS}); {} approved, {} rejected",
        log.len(),
        elapsed.as_secs_f64(),
        100.0 * faulted as f64 / log.len().max(1) as f64,
        report.counts.get(&State::Approved).copied().unwrap_or(0),
        report.counts.get(&State::Rejected).copied().unwrap_or(0),
    );
    assert!(
        faulted * 100 >= log.len() * 25,
        "too few faults to mean anything: {by_fault:?} of {}",
        log.len()
    );
}
