//! The PostgreSQL store's core (issue 16, step 1) against a throwaway cluster
//! (`docsync-pgtest`: one per test binary, a database per test, a Unix socket
//! only). Two `PgStore`s with their own pools and instance ids stand for two
//! hosts. Without PostgreSQL each test says so loudly and passes, unless
//! `DOCSYNC_REQUIRE_POSTGRES=1` (CI), where it fails.

// the helpers below are test code too: a failed step fails the test
#![allow(clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use docsync::model::{ApiIdentity, HookKind, State, TargetKey, TargetKind};
use docsync::store::pg::{ApiCheck, PgError, PgStore, PollClaim, PG_SCHEMA_VERSION};
use docsync::store::{
    BeginUpload, Change, Observation, Observed, OutboxFailure, Promotion, UploadIntent,
};
use docsync_pgtest::{database_or_skip, Database};
use tokio_postgres::NoTls;

/// A lease nobody outlives in a test.
const LONG: Duration = Duration::from_secs(600);
/// A lease that is over by the next statement (how a test makes one expire).
const GONE: Duration = Duration::from_millis(1);
const ACCOUNT: &str = "7f888113-d35a-4536-b9bc-c55076736ab6";

fn target(account: &str) -> TargetKey {
    TargetKey {
        kind: TargetKind::MoovFiles,
        account: account.to_owned(),
        purpose: "identity_verification".to_owned(),
    }
}

fn intent(sha256: &str, quota: Option<u64>) -> UploadIntent {
    UploadIntent {
        sha256: sha256.to_owned(),
        remote_name: None,
        quota,
        reason: "checked; sending".to_owned(),
    }
}

/// A connection of its own, as a third process (`docsync status`) would have.
async fn raw(db: &Database) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&db.url, NoTls)
        .await
        .expect("a raw connection");
    tokio::spawn(conn);
    client
}

async fn host(db: &Database, id: &str) -> PgStore {
    PgStore::connect(&db.url, id).await.expect("connect")
}

/// `n` rows of `folder` for `account`, made `stable` through the store.
async fn stable_rows(store: &PgStore, folder: &str, account: &str, n: usize) -> Vec<i64> {
    let observed: Vec<Observed> = (0..n)
        .map(|i| Observed {
            path: format!("doc-{i}.pdf").into_bytes(),
            size: 100 + i as u64,
            mtime_ns: 1,
            target: target(account),
        })
        .collect();
    let mut ids = Vec::new();
    for obs in store
        .observe_batch(folder, &observed)
        .await
        .expect("observe")
    {
        let Observation::New { id } = obs else {
            panic!("expected a new row, got {obs:?}")
        };
        store
            .transition(
                id,
                State::Discovered,
                State::Stable,
                &Change::because("quiet"),
            )
            .await
            .expect("stable");
        ids.push(id);
    }
    ids
}

/// Claim everything `store` can get, `batch` at a time, until a claim comes back empty.
async fn claim_all(store: &PgStore, batch: u32) -> Vec<i64> {
    let mut got = Vec::new();
    loop {
        let claimed = store.claim_uploads(batch, LONG).await.expect("claim");
        if claimed.is_empty() {
            return got;
        }
        for c in claimed {
            let lease = c.lease.expect("a claimed row is leased");
            assert_eq!(lease.owner, store.instance_id());
            got.push(c.row.id);
        }
    }
}

/// How long a test waits for a lease to run out: the condition is polled (no
/// fixed sleep), this is only the deadline for a failure.
struct Deadline {
    at: Instant,
    what: &'static str,
}

impl Deadline {
    fn new(what: &'static str) -> Self {
        Deadline {
            at: Instant::now() + Duration::from_secs(10),
            what,
        }
    }

    /// Fail past the deadline; else yield a little before the next look.
    async fn tick(&self) {
        assert!(
            Instant::now() < self.at,
            "timed out waiting for {}",
            self.what
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_even_when_two_daemons_start_together() {
    let Some(db) = database_or_skip("pg_migrations") else {
        return;
    };
    let (a, b) = tokio::join!(
        PgStore::connect(&db.url, "host-a"),
        PgStore::connect(&db.url, "host-b")
    );
    let (a, _b) = (a.expect("host a"), b.expect("host b"));
    // a restart of one of them: nothing left to apply
    let again = host(&db, "host-a").await;
    assert_eq!(
        again.schema_version().await.expect("version"),
        PG_SCHEMA_VERSION
    );
    assert_eq!(
        a.schema_version().await.expect("version"),
        PG_SCHEMA_VERSION
    );
    let client = raw(&db).await;
    let row = client
        .query_one("SELECT count(*), max(version) FROM schema_migrations", &[])
        .await
        .expect("schema_migrations");
    assert_eq!(row.get::<_, i64>(0), i64::from(PG_SCHEMA_VERSION));
    assert_eq!(row.get::<_, i32>(1), PG_SCHEMA_VERSION);
    let instances: i64 = client
        .query_one("SELECT count(*) FROM instances", &[])
        .await
        .expect("instances")
        .get(0);
    assert_eq!(instances, 2);

    // a database a newer docsync migrated is refused, with what to do
    client
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future')",
            &[],
        )
        .await
        .expect("a future migration");
    let err = PgStore::connect(&db.url, "host-c")
        .await
        .expect_err("a newer schema");
    assert!(
        matches!(err, PgError::SchemaTooNew { found: 999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade docsync"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_is_never_in_an_error_or_a_debug_print() {
    let Some(db) = database_or_skip("pg_password") else {
        return;
    };
    let canary = "pw-canary-5b1e";
    // the cluster trusts local connections: the password is sent, never checked
    let url = db
        .url
        .replacen("docsync@", &format!("docsync:{canary}@"), 1);
    let store = PgStore::connect(&url, "host-a").await.expect("connect");
    let shown = format!("{store:?} {}", store.target());
    assert!(!shown.contains(canary), "{shown}");
    assert!(shown.contains(&db.name), "{shown}");

    let nowhere = format!(
        "postgres://docsync:{canary}@/{}?host=/nonexistent-docsync-dir",
        db.name
    );
    let err = PgStore::connect(&nowhere, "host-a")
        .await
        .expect_err("no server there");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(canary), "{text}");
    }
    assert!(
        err.to_string().contains("/nonexistent-docsync-dir"),
        "{err}"
    );

    let err = PgStore::connect(&format!("postgres://docsync:{canary}@/x?port=nan"), "a")
        .await
        .expect_err("a bad port");
    assert!(matches!(err, PgError::BadUrl { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains(canary));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_claiming_2000_rows_at_once_never_get_the_same_row_and_get_them_all() {
    let Some(db) = database_or_skip("pg_claims") else {
        return;
    };
    let (a, b) = (host(&db, "host-a").await, host(&db, "host-b").await);
    let observed: Vec<Observed> = (0..2000)
        .map(|i| Observed {
            path: format!("scan-{i:04}.pdf").into_bytes(),
            size: 10,
            mtime_ns: i,
            target: target(ACCOUNT),
        })
        .collect();
    let recorded = a.observe_batch("shared", &observed).await.expect("observe");
    assert_eq!(recorded.len(), 2000);
    // the same scan seen by the other host: nothing new
    let seen = b.observe_batch("shared", &observed).await.expect("observe");
    assert!(seen.iter().all(|o| matches!(
        o,
        Observation::Unchanged {
            state: State::Discovered,
            ..
        }
    )));
    // the quiet window, in bulk (the transition itself is tested elsewhere)
    let promoted = raw(&db)
        .await
        .execute("UPDATE files SET state = 'stable'", &[])
        .await
        .expect("promote");
    assert_eq!(promoted, 2000);

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let run = |store: PgStore| {
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            claim_all(&store, 10).await
        })
    };
    let (got_a, got_b) = tokio::join!(run(a.clone()), run(b.clone()));
    let (got_a, got_b) = (got_a.expect("host a"), got_b.expect("host b"));
    let set_a: HashSet<i64> = got_a.iter().copied().collect();
    let set_b: HashSet<i64> = got_b.iter().copied().collect();
    assert_eq!(set_a.len(), got_a.len(), "host a got a row twice");
    assert_eq!(set_b.len(), got_b.len(), "host b got a row twice");
    assert!(set_a.is_disjoint(&set_b), "a row was claimed by both hosts");
    assert_eq!(set_a.len() + set_b.len(), 2000, "every row claimed");
    assert!(
        !set_a.is_empty() && !set_b.is_empty(),
        "both hosts claimed concurrently ({} and {})",
        set_a.len(),
        set_b.len()
    );
    // and the database agrees on who holds what
    let held: Vec<(String, i64)> = raw(&db)
        .await
        .query(
            "SELECT lease_owner, count(*) FROM files GROUP BY lease_owner ORDER BY 1",
            &[],
        )
        .await
        .expect("leases")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        held,
        vec![
            ("host-a".to_owned(), set_a.len() as i64),
            ("host-b".to_owned(), set_b.len() as i64)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_goes_to_another_host_and_the_first_may_no_longer_begin() {
    let Some(db) = database_or_skip("pg_lease_expiry") else {
        return;
    };
    let (a, b) = (host(&db, "host-a").await, host(&db, "host-b").await);
    let ids = stable_rows(&a, "shared", ACCOUNT, 1).await;
    let claimed = a.claim_uploads(10, LONG).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(b.claim_uploads(10, LONG).await.expect("claim").is_empty());
    // b may not move a row a holds either
    let err = b
        .transition(ids[0], State::Stable, State::Invalid, &Change::because("x"))
        .await
        .expect_err("held by a");
    assert!(matches!(err, PgError::LeaseLost { .. }), "{err}");

    // a stops renewing (it hangs, or lost the database): its lease runs out
    assert_eq!(a.renew(&ids, GONE).await.expect("renew"), ids);
    let deadline = Deadline::new("host b to claim the expired row");
    let taken = loop {
        let taken = b.claim_uploads(10, LONG).await.expect("claim");
        if !taken.is_empty() {
            break taken;
        }
        deadline.tick().await;
    };
    assert_eq!(taken[0].row.id, ids[0]);
    assert_eq!(
        taken[0].lease.as_ref().map(|l| l.owner.as_str()),
        Some("host-b")
    );

    let err = a
        .begin_upload(ids[0], State::Stable, &intent("aa", None))
        .await
        .expect_err("a's lease is gone");
    assert!(
        matches!(err, PgError::LeaseLost { id, .. } if id == ids[0]),
        "{err}"
    );
    assert!(err.to_string().contains("held by host-b"), "{err}");
    assert_eq!(a.renew(&ids, LONG).await.expect("renew"), Vec::<i64>::new());
    let row = b.get(ids[0]).await.expect("get").expect("row");
    assert_eq!(
        row.row.state,
        State::Stable,
        "a's refused intent changed nothing"
    );

    let started = b
        .begin_upload(ids[0], State::Stable, &intent("aa", None))
        .await
        .expect("b holds it");
    assert!(matches!(started, BeginUpload::Started(ref r) if r.state == State::Uploading));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_left_by_a_dead_host_is_taken_over_for_reconciling_never_resent_directly() {
    let Some(db) = database_or_skip("pg_takeover") else {
        return;
    };
    let (a, b) = (host(&db, "host-a").await, host(&db, "host-b").await);
    let ids = stable_rows(&a, "shared", ACCOUNT, 2).await;
    a.claim_uploads(10, LONG).await.expect("claim");
    for &id in &ids {
        let started = a
            .begin_upload(id, State::Stable, &intent(&format!("sha-{id}"), None))
            .await;
        assert!(matches!(started.expect("begin"), BeginUpload::Started(_)));
    }
    // still held: nothing to take over
    assert!(b
        .take_over_expired(10, LONG)
        .await
        .expect("take")
        .is_empty());
    // host a dies with both requests in flight: its leases run out
    a.renew(&ids, GONE).await.expect("renew");
    let deadline = Deadline::new("both intents to be taken over");
    let mut orphans = Vec::new();
    while orphans.len() < 2 {
        orphans.extend(b.take_over_expired(10, LONG).await.expect("take"));
        if orphans.len() < 2 {
            deadline.tick().await;
        }
    }
    for (orphan, &id) in orphans.iter().zip(&ids) {
        assert_eq!(orphan.row.id, id);
        assert_eq!(orphan.row.state, State::Uploading);
        assert_eq!(orphan.previous_owner, "host-a");
        assert_eq!(orphan.lease.owner, "host-b");
    }
    // taken once: a third look finds nothing
    assert!(b
        .take_over_expired(10, LONG)
        .await
        .expect("take")
        .is_empty());
    // an uploading row cannot be sent again directly, only reconciled
    let err = b
        .begin_upload(ids[0], State::Stable, &intent("x", None))
        .await
        .expect_err("uploading");
    assert!(
        matches!(
            err,
            PgError::StaleState {
                actual: State::Uploading,
                ..
            }
        ),
        "{err}"
    );
    // a, back, may not decide about a row b holds ...
    let err = a
        .transition(
            ids[0],
            State::Uploading,
            State::Retrying,
            &Change::because("x"),
        )
        .await
        .expect_err("b holds it");
    assert!(matches!(err, PgError::LeaseLost { .. }), "{err}");
    // ... but its request's answer is recorded, whoever holds the lease
    let recorded = a.record_uploaded(ids[0], "remote-1", Some("req-1")).await;
    assert_eq!(recorded.expect("recorded").state, State::Pending);
    // b's reconciliation of the other found nothing on the server: retry later
    let retry = Change {
        next_attempt_at: Some(0),
        ..Change::because("not on the server after the takeover")
    };
    let moved = b.transition(ids[1], State::Uploading, State::Retrying, &retry);
    assert_eq!(moved.await.expect("retrying").state, State::Retrying);
    let again = b.claim_uploads(10, LONG).await.expect("claim");
    assert_eq!(
        again.iter().map(|c| c.row.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    let reasons: Vec<(String, Option<String>)> = raw(&db)
        .await
        .query(
            "SELECT reason, instance FROM events WHERE file_id = $1 ORDER BY id",
            &[&ids[0]],
        )
        .await
        .expect("events")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|(reason, by)| reason.contains("lease of host-a expired")
                && by.as_deref() == Some("host-b")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_counts_every_hosts_uploads() {
    let Some(db) = database_or_skip("pg_quota") else {
        return;
    };
    let (a, b) = (host(&db, "host-a").await, host(&db, "host-b").await);
    let in_a = stable_rows(&a, "office-a", ACCOUNT, 2).await;
    let in_b = stable_rows(&b, "office-b", ACCOUNT, 2).await;
    // each host claims its own office's rows (what a host watching one folder does)
    assert_eq!(claim_all_of(&a, &in_a).await, in_a);
    assert_eq!(claim_all_of(&b, &in_b).await, in_b);
    let quota = Some(3);
    for &id in &in_a {
        let out = a
            .begin_upload(id, State::Stable, &intent(&format!("a{id}"), quota))
            .await;
        assert!(matches!(out.expect("begin"), BeginUpload::Started(_)));
    }
    let out = b
        .begin_upload(in_b[0], State::Stable, &intent("b0", quota))
        .await;
    assert!(matches!(out.expect("begin"), BeginUpload::Started(_)));
    let out = b
        .begin_upload(in_b[1], State::Stable, &intent("b1", quota))
        .await;
    match out.expect("begin") {
        BeginUpload::QuotaExceeded { row, used, limit } => {
            assert_eq!((used, limit), (3, 3));
            assert_eq!(row.state, State::Invalid);
        }
        other => panic!("expected the quota to be full, got {other:?}"),
    }
    assert_eq!(a.quota_used(&target(ACCOUNT)).await.expect("used"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_intents_for_one_account_respect_the_quota_and_find_duplicates() {
    let Some(db) = database_or_skip("pg_quota_race") else {
        return;
    };
    let (a, b) = (host(&db, "host-a").await, host(&db, "host-b").await);
    let in_a = stable_rows(&a, "office-a", ACCOUNT, 10).await;
    let in_b = stable_rows(&b, "office-b", ACCOUNT, 10).await;
    assert_eq!(claim_all_of(&a, &in_a).await, in_a);
    assert_eq!(claim_all_of(&b, &in_b).await, in_b);
    let begin_all = |store: PgStore, ids: Vec<i64>| {
        tokio::spawn(async move {
            let mut started = 0;
            for id in ids {
                let out = store
                    .begin_upload(id, State::Stable, &intent(&format!("s{id}"), Some(5)))
                    .await;
                if matches!(out.expect("begin"), BeginUpload::Started(_)) {
                    started += 1;
                }
            }
            started
        })
    };
    let (sa, sb) = tokio::join!(begin_all(a.clone(), in_a), begin_all(b.clone(), in_b));
    assert_eq!(
        sa.expect("a") + sb.expect("b"),
        5,
        "exactly the quota started"
    );

    // the same content in both offices at once: one upload, one duplicate
    let other = "00000000-0000-4000-8000-000000000002";
    let (x, y) = (
        stable_rows(&a, "office-a2", other, 1).await[0],
        stable_rows(&b, "office-b2", other, 1).await[0],
    );
    assert_eq!(claim_all_of(&a, &[x]).await, vec![x]);
    assert_eq!(claim_all_of(&b, &[y]).await, vec![y]);
    let same = intent("the-same-sha", Some(50));
    let (ox, oy) = tokio::join!(
        a.begin_upload(x, State::Stable, &same),
        b.begin_upload(y, State::Stable, &same)
    );
    let outcomes = [ox.expect("a"), oy.expect("b")];
    let started = outcomes
        .iter()
        .filter(|o| matches!(o, BeginUpload::Started(_)))
        .count();
    let duplicates: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            BeginUpload::Duplicate { row, original } => Some((row.id, original.id)),
            _ => None,
        })
        .collect();
    assert_eq!(started, 1, "{outcomes:?}");
    assert_eq!(duplicates.len(), 1, "{outcomes:?}");
    let (dup, original) = duplicates[0];
    assert_eq!(HashSet::from([dup, original]), HashSet::from([x, y]));
}

/// Claim until `store` holds every row of `ids` (others' rows claimed on the way are released).
async fn claim_all_of(store: &PgStore, ids: &[i64]) -> Vec<i64> {
    let mut mine = Vec::new();
    let mut others = Vec::new();
    for id in claim_all(store, 100).await {
        if ids.contains(&id) {
            mine.push(id);
        } else {
            others.push(id);
        }
    }
    store.release(&others).await.expect("release");
    mine.sort_unstable();
    mine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_polls_an_account_per_cycle() {
    let Some(db) = database_or_skip("pg_poll_lease") else {
        return;
    };
    let (a, b) = (host(&db, "host-a").await, host(&db, "host-b").await);
    let kind = TargetKind::MoovFiles;
    let (ca, cb) = tokio::join!(
        a.claim_poll_account(kind, ACCOUNT, LONG),
        b.claim_poll_account(kind, ACCOUNT, LONG)
    );
    let (ca, cb) = (ca.expect("a"), cb.expect("b"));
    let (winner, loser) = match (&ca, &cb) {
        (PollClaim::Mine { .. }, PollClaim::Held(l)) => {
            assert_eq!(l.owner, "host-a");
            (&a, &b)
        }
        (PollClaim::Held(l), PollClaim::Mine { .. }) => {
            assert_eq!(l.owner, "host-b");
            (&b, &a)
        }
        other => panic!("exactly one host must get the poll: {other:?}"),
    };
    // the holder keeps it cycle after cycle; the other keeps being told who has it
    let kept = winner.claim_poll_account(kind, ACCOUNT, LONG).await;
    assert!(matches!(kept.expect("again"), PollClaim::Mine { .. }));
    let told = loser
        .claim_poll_account(kind, ACCOUNT, LONG)
        .await
        .expect("again");
    assert!(matches!(told, PollClaim::Held(ref l) if l.owner == winner.instance_id()));
    // another account is free
    let free = loser.claim_poll_account(kind, "another", LONG).await;
    assert!(matches!(free.expect("other"), PollClaim::Mine { .. }));
    // the holder dies: its lease runs out and the other takes over
    winner
        .claim_poll_account(kind, ACCOUNT, GONE)
        .await
        .expect("shorten");
    let deadline = Deadline::new("the other host to get the poll");
    while !matches!(
        loser
            .claim_poll_account(kind, ACCOUNT, LONG)
            .await
            .expect("claim"),
        PollClaim::Mine { .. }
    ) {
        deadline.tick().await;
    }
    let lost = winner.claim_poll_account(kind, ACCOUNT, LONG).await;
    assert!(matches!(lost.expect("claim"), PollClaim::Held(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_is_committed_when_begin_upload_returns() {
    let Some(db) = database_or_skip("pg_intent_visible") else {
        return;
    };
    let a = host(&db, "host-a").await;
    let observer = raw(&db).await;
    let ids = stable_rows(&a, "shared", ACCOUNT, 1).await;
    a.claim_uploads(1, LONG).await.expect("claim");
    let started = a
        .begin_upload(ids[0], State::Stable, &intent("cafe", Some(50)))
        .await
        .expect("begin");
    assert!(matches!(started, BeginUpload::Started(_)));
    // no wait: another connection sees the intent as soon as the call returned
    let row = observer
        .query_one(
            "SELECT state, lease_owner, sha256, \
             (SELECT count(*) FROM events e WHERE e.file_id = f.id AND e.to_state = 'uploading') \
             FROM files f WHERE id = $1",
            &[&ids[0]],
        )
        .await
        .expect("row");
    assert_eq!(row.get::<_, String>(0), "uploading");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("host-a"));
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("cafe"));
    assert_eq!(row.get::<_, i64>(3), 1);
    // the answer arrives: pending, the lease released
    let pending = a
        .record_uploaded(ids[0], "remote-9", None)
        .await
        .expect("pending");
    assert_eq!(pending.remote_id.as_deref(), Some("remote-9"));
    let leased = a.get(ids[0]).await.expect("get").expect("row");
    assert_eq!((leased.row.state, leased.lease), (State::Pending, None));
    // and a transition into uploading other than the intent is refused
    let err = a
        .transition(
            ids[0],
            State::Pending,
            State::Uploading,
            &Change::because("x"),
        )
        .await
        .expect_err("not an intent");
    assert!(matches!(err, PgError::NotAnIntent { .. }), "{err}");
}

/// The throwaway cluster runs `synchronous_commit = off`, as a careless
/// server might: a crash then takes back commits it had already answered.
/// The store turns it on for its own sessions, so an intent `begin_upload`
/// returned survives PostgreSQL crashing right after (`pg_ctl stop -m
/// immediate`), and a request sent on it is never followed by a row that
/// looks unsent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_survives_postgres_crashing_right_after_begin_upload_returns() {
    let Some(cluster) = docsync_pgtest::own_cluster_or_skip("pg_intent_durable") else {
        return;
    };
    let db = cluster
        .fresh_database("intent_durable")
        .expect("a database");
    let a = host(&db, "host-a").await;
    let ids = stable_rows(&a, "shared", ACCOUNT, 40).await;
    assert_eq!(claim_all(&a, 40).await.len(), ids.len());
    for (i, id) in ids.iter().enumerate() {
        let started = a
            .begin_upload(*id, State::Stable, &intent(&format!("{i:064x}"), None))
            .await
            .expect("begin");
        assert!(matches!(started, BeginUpload::Started(_)));
    }
    // the crash, as soon as the last intent was answered
    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.stop_server().expect("crashing PostgreSQL");
        cluster.start_server().expect("starting PostgreSQL again");
        cluster
    })
    .await
    .expect("the crash");
    let observer = raw(&db).await;
    let uploading: i64 = observer
        .query_one(
            "SELECT count(*) FROM files WHERE id = ANY($1) AND state = 'uploading'",
            &[&ids],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(uploading, 40, "intents answered before the crash were lost");
}

/// What `docsync status`, `history` and `retry` read from the shared state:
/// the rows with who holds them (a live lease and an expired one), each
/// change with the daemon that made it, and a retry recorded under the
/// command's own name; a database no daemon has used is "no state yet".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_history_and_retry_see_every_host_and_name_the_holder() {
    let Some(db) = database_or_skip("pg_overview") else {
        return;
    };
    let Some(empty) = database_or_skip("pg_overview_empty") else {
        return;
    };
    assert!(
        PgStore::connect_viewer(&empty.url, "ops: docsync status")
            .await
            .expect("a viewer of an empty database")
            .is_none(),
        "a database without docsync's schema holds no state"
    );

    let (a, b) = (host(&db, "host-a").await, host(&db, "host-b").await);
    let ids = stable_rows(&a, "/inbox", ACCOUNT, 4).await;
    // host a holds two rows, host b one whose lease ran out at once
    let got_a: Vec<i64> = a
        .claim_uploads(2, LONG)
        .await
        .expect("claim")
        .iter()
        .map(|c| c.row.id)
        .collect();
    assert_eq!(got_a, ids[..2]);
    let got_b = b.claim_uploads(1, GONE).await.expect("claim");
    assert_eq!(got_b.len(), 1);
    assert_eq!(got_b[0].row.id, ids[2]);
    // host a gives up on its first row: invalid, the lease released
    a.transition(
        ids[0],
        State::Stable,
        State::Invalid,
        &Change::because("not a PDF"),
    )
    .await
    .expect("invalid");

    let viewer = PgStore::connect_viewer(&db.url, "ops: docsync retry")
        .await
        .expect("a viewer")
        .expect("the state exists");
    let deadline = Deadline::new("host b's lease to run out");
    let holders = loop {
        let holders = viewer.holders(&ids).await.expect("holders");
        if holders.get(&ids[2]).is_some_and(|h| h.expired) {
            break holders;
        }
        deadline.tick().await;
    };
    let holder = |id: i64| holders.get(&id).map(|h| (h.instance.as_str(), h.expired));
    assert_eq!(holder(ids[0]), None, "an invalid row is held by nobody");
    assert_eq!(holder(ids[1]), Some(("host-a", false)));
    assert_eq!(holder(ids[2]), Some(("host-b", true)));
    assert_eq!(holder(ids[3]), None, "an unclaimed row is held by nobody");
    let held = &holders[&ids[1]];
    assert_eq!(held.pid, i32::try_from(std::process::id()).ok());

    // status: live rows by path, states as the hosts left them
    let listed = viewer
        .list(&docsync::store::ListFilter::default())
        .await
        .expect("list");
    let states: Vec<(String, State)> = listed
        .iter()
        .map(|r| (String::from_utf8_lossy(&r.path).into_owned(), r.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("doc-0.pdf".to_owned(), State::Invalid),
            ("doc-1.pdf".to_owned(), State::Stable),
            ("doc-2.pdf".to_owned(), State::Stable),
            ("doc-3.pdf".to_owned(), State::Stable),
        ]
    );
    let only_invalid = docsync::store::ListFilter {
        states: vec![State::Invalid],
        ..Default::default()
    };
    assert_eq!(viewer.list(&only_invalid).await.expect("list").len(), 1);

    // retry: the invalid row goes back to stable, recorded as the command's
    viewer.register().await.expect("register the command");
    let moved = viewer
        .retry(None, None, "docsync retry --all-failed")
        .await
        .expect("retry");
    assert_eq!(moved, vec![ids[0]]);
    // history: every change with the host that made it
    let history = viewer.history(None, b"doc-0.pdf").await.expect("history");
    assert_eq!(history.len(), 1);
    let trail: Vec<(Option<State>, State, Option<&str>)> = history[0]
        .events
        .iter()
        .map(|e| (e.from_state, e.to_state, e.instance.as_deref()))
        .collect();
    assert_eq!(
        trail,
        vec![
            (None, State::Discovered, Some("host-a")),
            (Some(State::Discovered), State::Stable, Some("host-a")),
            (Some(State::Stable), State::Invalid, Some("host-a")),
            (
                Some(State::Invalid),
                State::Stable,
                Some("ops: docsync retry")
            ),
        ]
    );

    // the status page: counts per folder, pages, one file's detail
    let counts = viewer.counts_by_folder().await.expect("counts");
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].folder, "/inbox");
    assert_eq!(counts[0].counts.get(&State::Stable), Some(&4));
    let (first, next) = viewer
        .explained_page(&[State::Stable], None, None, 3)
        .await
        .expect("page");
    assert_eq!(first.len(), 3);
    let (rest, last) = viewer
        .explained_page(&[State::Stable], Some("/inbox"), next, 3)
        .await
        .expect("page");
    assert_eq!(rest.len(), 1);
    assert_eq!(last, None);
    let detail = viewer
        .file_detail(ids[0])
        .await
        .expect("detail")
        .expect("the row");
    assert_eq!(detail.reason, "docsync retry --all-failed");
    assert_eq!(detail.events.len(), 4);
}

/// A scan's new and unchanged files are recorded in bulk: two hosts seeing
/// the same 2,000 new files at once get one row per path between them (each
/// host's answer naming it), with one creation event each; a path seen twice
/// in one call is new once, then unchanged; a second scan changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_in_bulk_records_each_path_once_even_when_two_hosts_race() {
    let Some(db) = database_or_skip("pg_bulk_scan") else {
        return;
    };
    let (a, b) = (host(&db, "host-a").await, host(&db, "host-b").await);
    let observed: Vec<Observed> = (0..2000)
        .map(|i| Observed {
            path: format!("new-{i:04}.pdf").into_bytes(),
            size: 10,
            mtime_ns: i,
            target: target(ACCOUNT),
        })
        .collect();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
    let run = |store: PgStore| {
        let (barrier, observed) = (barrier.clone(), observed.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            store
                .observe_batch("shared", &observed)
                .await
                .expect("observe")
        })
    };
    let (seen_a, seen_b) = tokio::join!(run(a.clone()), run(b.clone()));
    let (seen_a, seen_b) = (seen_a.expect("host a"), seen_b.expect("host b"));
    let client = raw(&db).await;
    let rows: Vec<(Vec<u8>, i64)> = client
        .query("SELECT path, id FROM files ORDER BY path", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows.len(), 2000, "one row per path");
    for (i, (path, id)) in rows.iter().enumerate() {
        assert_eq!(path, &observed[i].path);
        assert_eq!(seen_a[i].id(), *id, "host a names the row of {i}");
        assert_eq!(seen_b[i].id(), *id, "host b names the row of {i}");
    }
    let created: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM events WHERE from_state IS NULL AND to_state = 'discovered'",
            &[],
        )
        .await
        .expect("events")
        .get(0);
    assert_eq!(created, 2000, "one creation event per row");

    // one path twice in one call: new, then unchanged
    let twice = vec![
        Observed {
            path: b"twice.pdf".to_vec(),
            size: 5,
            mtime_ns: 1,
            target: target(ACCOUNT),
        };
        2
    ];
    let seen = a.observe_batch("shared", &twice).await.expect("observe");
    let Observation::New { id } = seen[0] else {
        panic!("the first sighting is new: {seen:?}")
    };
    assert_eq!(
        seen[1],
        Observation::Unchanged {
            id,
            state: State::Discovered
        }
    );
    // a second scan: every file unchanged, nothing written
    let before: i64 = client
        .query_one("SELECT COUNT(*) FROM events", &[])
        .await
        .expect("events")
        .get(0);
    let again = b.observe_batch("shared", &observed).await.expect("observe");
    assert!(again.iter().zip(&rows).all(|(o, (_, id))| *o
        == Observation::Unchanged {
            id: *id,
            state: State::Discovered
        }));
    let after: i64 = client
        .query_one("SELECT COUNT(*) FROM events", &[])
        .await
        .expect("events")
        .get(0);
    assert_eq!(before, after, "an unchanged scan writes nothing");
}

/// The API the shared rows were synced against: recorded by the first daemon,
/// completed by one that agrees, refused to one configured with another, and
/// replaced only when told (`--keep-history`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_recorded_once_and_another_one_is_refused() {
    let Some(db) = database_or_skip("pg_api_identity") else {
        return;
    };
    let (a, b) = (host(&db, "host-a").await, host(&db, "host-b").await);
    let remote = |moov: &str, attachments: Option<&str>| ApiIdentity::Remote {
        moov: Some(moov.to_owned()),
        attachments: attachments.map(str::to_owned),
    };
    let first = remote("https://api.moov.io", None);
    assert_eq!(a.api_identity().await.expect("read"), None);
    assert_eq!(
        a.check_api(&first, false).await.expect("check"),
        ApiCheck::Same
    );
    assert_eq!(a.api_identity().await.expect("read"), Some(first.clone()));
    // another Moov API: refused, nothing recorded
    let other = remote("https://moov.example.com", None);
    assert_eq!(
        b.check_api(&other, false).await.expect("check"),
        ApiCheck::Changed {
            recorded: first.clone()
        }
    );
    assert_eq!(b.api_identity().await.expect("read"), Some(first.clone()));
    // the same Moov API and an attachments API: the record completed
    let more = remote("https://api.moov.io", Some("https://files.example.com"));
    assert_eq!(
        b.check_api(&more, false).await.expect("check"),
        ApiCheck::Same
    );
    assert_eq!(b.api_identity().await.expect("read"), Some(more.clone()));
    // --keep-history: the other API recorded, the old one said
    assert_eq!(
        a.check_api(&other, true).await.expect("check"),
        ApiCheck::KeptHistory { recorded: more }
    );
    assert_eq!(a.api_identity().await.expect("read"), Some(other));
}

/// Daemons sharing a state share their hooks: a decision by a daemon without
/// hooks still reaches the hooks another daemon subscribed; one daemon
/// delivers it while its claim lasts, another after the claim expired; and
/// once every daemon withdrew its hooks, decisions write no more events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_reaches_a_shared_hook_once_whichever_host_decides() {
    let Some(db) = database_or_skip("outbox_hosts") else {
        return;
    };
    let a = host(&db, "host-a").await;
    let b = host(&db, "host-b").await;
    let c = host(&db, "host-c").await;
    let webhook = [HookKind::Webhook];
    a.subscribe_hooks(&webhook).await.expect("a subscribes");
    c.subscribe_hooks(&webhook).await.expect("c subscribes");
    b.subscribe_hooks(&[]).await.expect("b has no hooks");

    let ids = stable_rows(&b, "inbox", ACCOUNT, 2).await;
    b.transition(
        ids[0],
        State::Stable,
        State::Invalid,
        &Change::because("not a PDF"),
    )
    .await
    .expect("b decides");
    assert_eq!(b.outbox_undelivered().await.expect("count"), 1);
    assert!(
        b.claim_outbox(&[HookKind::Command], 10, LONG)
            .await
            .expect("claim")
            .is_empty(),
        "no command hook is subscribed"
    );

    let claimed = a.claim_outbox(&webhook, 10, GONE).await.expect("a claims");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].file_id, ids[0]);
    assert_eq!(claimed[0].state, State::Invalid);
    // a's claim is over by now: c takes the event over and delivers it
    let deadline = Instant::now() + Duration::from_secs(10);
    let taken = loop {
        let taken = c.claim_outbox(&webhook, 10, LONG).await.expect("c claims");
        if !taken.is_empty() || Instant::now() > deadline {
            break taken;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(taken.len(), 1, "c takes over the expired claim");
    assert_eq!(taken[0].uid, claimed[0].uid, "the same event");
    assert!(
        a.claim_outbox(&webhook, 10, LONG)
            .await
            .expect("a claims")
            .is_empty(),
        "held by c"
    );
    let due_in = a
        .outbox_next_due_in(&webhook)
        .await
        .expect("next")
        .expect("one");
    assert!(
        due_in > 500_000,
        "due for a when c's claim ends, not in {due_in} ms"
    );
    c.outbox_delivered(taken[0].id).await.expect("delivered");
    assert_eq!(
        a.outbox_failed(claimed[0].id, "timed out", None)
            .await
            .expect("failed"),
        OutboxFailure::DeliveredElsewhere,
        "a's late failure neither gives up nor undoes c's delivery"
    );
    assert_eq!(a.outbox_undelivered().await.expect("count"), 0);

    a.subscribe_hooks(&[]).await.expect("a withdraws");
    c.subscribe_hooks(&[]).await.expect("c withdraws");
    b.transition(
        ids[1],
        State::Stable,
        State::Invalid,
        &Change::because("empty"),
    )
    .await
    .expect("b decides");
    assert_eq!(
        a.outbox_undelivered().await.expect("count"),
        0,
        "nobody subscribed"
    );
    let events: i64 = raw(&db)
        .await
        .query_one("SELECT COUNT(*) FROM hook_outbox", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(events, 1);
}

/// Three hosts promoting the same 1,500 files at once, each in its own
/// order: no deadlock, no error, each row promoted once (one event), and
/// every row promoted by one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_promoting_the_same_files_at_once_promote_each_once() {
    let Some(db) = database_or_skip("pg_promote_race") else {
        return;
    };
    let hosts = [
        host(&db, "host-a").await,
        host(&db, "host-b").await,
        host(&db, "host-c").await,
    ];
    let observed: Vec<Observed> = (0..1500)
        .map(|i| Observed {
            path: format!("quiet-{i:04}.pdf").into_bytes(),
            size: 10,
            mtime_ns: i,
            target: target(ACCOUNT),
        })
        .collect();
    hosts[0]
        .observe_batch("shared", &observed)
        .await
        .expect("observe");
    let promotions: Vec<Promotion> = observed
        .iter()
        .map(|o| Promotion {
            folder: "shared".into(),
            path: o.path.clone(),
            size: o.size,
            mtime_ns: o.mtime_ns,
            reason: "held still",
        })
        .collect();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(hosts.len()));
    let runs: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(n, store)| {
            let (barrier, store) = (barrier.clone(), store.clone());
            let mut mine = promotions.clone();
            // a, b: forwards and backwards; c: interleaved, in chunks
            match n {
                1 => mine.reverse(),
                2 => mine.sort_by_key(|p| (p.mtime_ns % 7, p.mtime_ns)),
                _ => {}
            }
            tokio::spawn(async move {
                barrier.wait().await;
                let mut promoted = 0;
                for part in mine.chunks(500) {
                    promoted += store.promote_stable(part).await.expect("promoted").len();
                }
                promoted
            })
        })
        .collect();
    let mut total = 0;
    for run in runs {
        total += run.await.expect("a host");
    }
    assert_eq!(total, 1500, "each file promoted by one host");
    let client = raw(&db).await;
    let (stable, events): (i64, i64) = {
        let r = client
            .query_one(
                "SELECT (SELECT COUNT(*) FROM files WHERE state = 'stable'), \
                 (SELECT COUNT(*) FROM events WHERE to_state = 'stable')",
                &[],
            )
            .await
            .expect("counts");
        (r.get(0), r.get(1))
    };
    assert_eq!((stable, events), (1500, 1500));
}
