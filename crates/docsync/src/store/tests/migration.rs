//! Migration 0006 (the `skipped` state) on a database created at version 5
//! with rows in it: every row, event, outbox row, index and foreign key kept.

use super::*;
use rusqlite_migration::Migrations;

/// A database at schema version 5 (migrations 0001..0005 only) at `path`.
fn at_version_5(path: &Path) -> Connection {
    let mut conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")
        .unwrap();
    Migrations::from_slice(&MIGRATION_LIST[..5])
        .to_latest(&mut conn)
        .unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 5);
    conn
}

/// Fill a version-5 database: `n` files, each with two events; every tenth
/// approved with an outbox row, the last one superseding the first.
fn fill(conn: &mut Connection, n: i64) {
    let tx = conn.transaction().unwrap();
    for i in 1..=n {
        let state = if i % 10 == 0 { "approved" } else { "pending" };
        tx.execute(
            "INSERT INTO files (id, folder, path, target, account, purpose, size, mtime_ns, \
             sha256, state, remote_id, supersedes, created_at, updated_at) \
             VALUES (?1, 'inbox', ?2, 'moov-files', ?3, 'business_verification', ?1, ?1, \
             'abc', ?4, ?5, NULL, ?1, ?1)",
            params![
                i,
                format!("f-{i}.pdf").into_bytes(),
                ACCT,
                state,
                format!("r-{i}")
            ],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO events (file_id, at, from_state, to_state, reason) \
             VALUES (?1, ?1, NULL, 'discovered', 'seen on disk')",
            [i],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO events (file_id, at, from_state, to_state, reason) \
             VALUES (?1, ?1, 'uploading', ?2, 'step')",
            params![i, state],
        )
        .unwrap();
        if state == "approved" {
            let event = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO hook_outbox (uid, event_id, hook, next_attempt_at) \
                 VALUES (?1, ?2, 'webhook', 0)",
                params![format!("uid-{i}"), event],
            )
            .unwrap();
        }
    }
    tx.execute("UPDATE files SET state = 'superseded' WHERE id = 1", [])
        .unwrap();
    tx.execute(
        "INSERT INTO files (id, folder, path, target, account, size, mtime_ns, state, \
         supersedes, created_at, updated_at) \
         VALUES (?1, 'inbox', ?2, 'moov-files', ?3, 1, 1, 'discovered', 1, 1, 1)",
        params![n + 1, b"f-1.pdf".to_vec(), ACCT],
    )
    .unwrap();
    tx.commit().unwrap();
}

/// Every row of `table`, each column as text, in id order.
fn dump(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {table} ORDER BY id"))
        .unwrap();
    let columns = stmt.column_count();
    stmt.query_map([], |r| {
        let mut line = Vec::with_capacity(columns);
        for c in 0..columns {
            let v: rusqlite::types::Value = r.get(c)?;
            line.push(format!("{v:?}"));
        }
        Ok(line.join("|"))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

/// The schema's indexes and triggers: (name, table, sql).
fn schema_objects(conn: &Connection) -> Vec<(String, String, Option<String>)> {
    let mut stmt = conn
        .prepare(
            "SELECT name, tbl_name, sql FROM sqlite_schema \
             WHERE type IN ('index', 'trigger') ORDER BY name",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn version_5_with_rows_migrates_keeping_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let (files, events, outbox, objects) = {
        let mut conn = at_version_5(&path);
        fill(&mut conn, 2000);
        (
            dump(&conn, "files"),
            dump(&conn, "events"),
            dump(&conn, "hook_outbox"),
            schema_objects(&conn),
        )
    };
    assert_eq!(files.len(), 2001);
    assert_eq!(outbox.len(), 200);

    let mut store = Store::open(&path).unwrap();
    let version: i64 = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION as i64);
    assert_eq!(dump(&store.conn, "files"), files, "files kept, ids and all");
    assert_eq!(dump(&store.conn, "events"), events, "no event lost");
    assert_eq!(dump(&store.conn, "hook_outbox"), outbox);
    // the same indexes and triggers, but for 0007's: `files_state` replaced by
    // the partial `files_retry_due`
    let mut after = schema_objects(&store.conn);
    let retry_due = after
        .iter()
        .position(|(name, ..)| name == "files_retry_due");
    assert!(retry_due.map(|i| after.remove(i)).is_some(), "{after:?}");
    let mut before = objects;
    let state = before.iter().position(|(name, ..)| name == "files_state");
    assert!(state.map(|i| before.remove(i)).is_some(), "{before:?}");
    assert_eq!(after, before, "the same indexes");
    assert!(!before.is_empty());
    let fk: i64 = store
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1, "foreign keys on again after migrating");
    let broken: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(broken, 0);
    // the rebuilt table's foreign keys still hold: a file's events go with it,
    // and `supersedes` must name a file
    let bad = store.conn.execute(
        "INSERT INTO files (folder, path, target, account, size, mtime_ns, state, supersedes, \
         created_at, updated_at) VALUES ('inbox', x'00', 'moov-files', '', 1, 1, 'skipped', \
         999999, 1, 1)",
        [],
    );
    assert!(bad.is_err(), "supersedes must name a file");
    // the live-path index still holds: one live row per path
    let dup = store.conn.execute(
        "INSERT INTO files (folder, path, target, account, size, mtime_ns, state, \
         created_at, updated_at) VALUES ('inbox', CAST('f-2.pdf' AS BLOB), 'moov-files', '', \
         1, 1, 'skipped', 1, 1)",
        [],
    );
    assert!(dup.is_err(), "files_live_path kept");
    // the new state is accepted, and the row's history reads back
    let id = new_row(&mut store, b"new.pdf");
    store
        .transition(
            id,
            State::Discovered,
            State::Skipped,
            &Change::because("old"),
        )
        .unwrap();
    assert_eq!(store.get(id).unwrap().unwrap().state, State::Skipped);
    assert_eq!(store.events(2).unwrap().len(), 2);
    // the store reads what it migrated, through its own queries
    let row = store.get(2001).unwrap().unwrap();
    assert_eq!(row.supersedes, Some(1));
    store
        .conn
        .execute("DELETE FROM files WHERE id = 10", [])
        .unwrap();
    let left: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM events WHERE file_id = 10", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(left, 0, "ON DELETE CASCADE kept");
    drop(store);
    // and it opens again without migrating anything
    let again = Store::open(&path).unwrap();
    assert_eq!(dump(&again.conn, "files").len(), 2001 - 1 + 1);
}

#[test]
fn the_hooks_trigger_fires_on_a_migrated_database_but_never_for_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    drop(at_version_5(&path));
    let mut store = Store::open(&path).unwrap();
    store
        .enable_outbox(&[HookKind::Command, HookKind::Webhook])
        .unwrap();
    let skipped = new_row(&mut store, b"old.pdf");
    store
        .transition(
            skipped,
            State::Discovered,
            State::Skipped,
            &Change::because("old"),
        )
        .unwrap();
    assert_eq!(
        store.outbox_undelivered().unwrap(),
        0,
        "no hook for skipped"
    );
    let invalid = new_row(&mut store, b"bad.pdf");
    store
        .transition(
            invalid,
            State::Discovered,
            State::Invalid,
            &Change::because("bad"),
        )
        .unwrap();
    assert_eq!(store.outbox_undelivered().unwrap(), 2, "one row per hook");
}
