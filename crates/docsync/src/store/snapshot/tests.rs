use super::*;
use crate::model::{State, TargetKey, TargetKind};
use crate::store::{Change, Observed, DB_FILE};

fn observed(path: &[u8]) -> Observed {
    Observed {
        path: path.to_vec(),
        size: 10,
        mtime_ns: 1,
        target: TargetKey {
            kind: TargetKind::MoovFiles,
            account: "00000000-0000-4000-8000-00000000acc0".into(),
            purpose: "business_verification".into(),
        },
    }
}

/// The bytes of the database and of every file beside it.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn no_database_is_an_empty_copy_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join(DB_FILE);
    let mut copy = Store::open_snapshot(&path).unwrap();
    copy.observe_batch("inbox", &[observed(b"a.pdf")], false)
        .unwrap();
    assert!(!dir.path().join("state").exists());
}

#[test]
fn writes_to_the_copy_leave_the_database_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let id = {
        let mut store = Store::open(&path).unwrap();
        store
            .observe_batch("inbox", &[observed(b"a.pdf")], false)
            .unwrap()
            .observations[0]
            .id()
    };
    // closed cleanly: no WAL beside it, opened immutable
    let before = files_of(dir.path());
    let mut copy = Store::open_snapshot(&path).unwrap();
    assert_eq!(copy.get(id).unwrap().unwrap().state, State::Discovered);
    copy.transition(id, State::Discovered, State::Stable, &Change::because("x"))
        .unwrap();
    copy.observe_batch("inbox", &[observed(b"b.pdf")], false)
        .unwrap();
    drop(copy);
    assert_eq!(
        files_of(dir.path()),
        before,
        "not a byte changed, nothing created"
    );
    let real = Store::open_read_only(&path).unwrap();
    assert_eq!(real.get(id).unwrap().unwrap().state, State::Discovered);

    // with a writer holding the database open (its WAL beside it), the copy
    // has what it committed
    let mut writer = Store::open(&path).unwrap();
    writer
        .transition(id, State::Discovered, State::Stable, &Change::because("y"))
        .unwrap();
    let db_bytes = std::fs::read(&path).unwrap();
    let copy = Store::open_snapshot(&path).unwrap();
    assert_eq!(copy.get(id).unwrap().unwrap().state, State::Stable);
    drop(copy);
    assert_eq!(std::fs::read(&path).unwrap(), db_bytes);
}

#[test]
fn an_older_database_is_migrated_in_the_copy_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd name?#%.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        rusqlite_migration::Migrations::from_slice(&super::super::MIGRATION_LIST[..5])
            .to_latest(&mut conn)
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let mut copy = Store::open_snapshot(&path).unwrap();
    let id = copy
        .observe_batch("inbox", &[observed(b"a.pdf")], false)
        .unwrap()
        .observations[0]
        .id();
    copy.transition(
        id,
        State::Discovered,
        State::Skipped,
        &Change::because("old"),
    )
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
}
