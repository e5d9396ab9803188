use super::*;
use crate::config::{parse, Env};
use crate::ignore::IgnoreSet;
use crate::scanner::{reconcile_folder, scan_folder, StabilityTracker};
use std::time::{Duration, Instant};

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    folder: Folder,
    store: Store,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    std::fs::create_dir(&root).unwrap();
    let text = format!(
        "[[folder]]\npath = {:?}\ntarget = {{ kind = \"moov-files\", account_id = \"acct\", file_purpose = \"business_verification\" }}\n",
        root
    );
    let config = parse(&text, None, &Env::default()).unwrap();
    Fixture {
        _dir: dir,
        root,
        folder: config.folders[0].clone(),
        store: Store::open_in_memory().unwrap(),
    }
}

impl Fixture {
    /// Scan, then let the tracker call every file stable (as if the window passed).
    fn scan_and_settle(&mut self) -> Vec<FileRow> {
        let scan = scan_folder(&self.root, &IgnoreSet::for_folder(&self.folder).unwrap()).unwrap();
        reconcile_folder(&mut self.store, &self.folder, &scan).unwrap();
        let mut tracker = StabilityTracker::new(Duration::from_secs(1));
        let t0 = Instant::now();
        for f in &scan.files {
            tracker.observe(f.rel_bytes(), f.stat.size, f.stat.mtime_ns, t0);
        }
        let mut out = Vec::new();
        for ready in tracker.take_ready(t0 + Duration::from_secs(1)) {
            if let Some(row) = promote_stable(
                &mut self.store,
                &self.folder.key(),
                &ready.key,
                ready.size,
                ready.mtime_ns,
                "quiet for 1s",
            )
            .unwrap()
            {
                out.push(row);
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    fn prepare(&mut self, row: &FileRow) -> Prepared {
        let checked = check_file(&self.folder, row).unwrap();
        record_check(&mut self.store, row, checked).unwrap()
    }
}

#[test]
fn stable_file_gets_an_upload_intent() {
    let mut fx = fixture();
    std::fs::write(fx.root.join("a.pdf"), b"%PDF-1.4 hello").unwrap();
    let rows = fx.scan_and_settle();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, State::Stable);
    let Prepared::Upload { row, plan, .. } = fx.prepare(&rows[0]) else {
        panic!()
    };
    assert_eq!(row.state, State::Uploading);
    assert_eq!(row.sha256.as_deref().map(str::len), Some(64));
    assert_eq!(plan.content_type, "application/pdf");
    assert_eq!(plan.file_name, "a.pdf");
    assert_eq!(file_path(&fx.folder, &row), fx.root.join("a.pdf"));
    let states: Vec<State> = fx
        .store
        .events(row.id)
        .unwrap()
        .iter()
        .map(|e| e.to_state)
        .collect();
    assert_eq!(
        states,
        vec![State::Discovered, State::Stable, State::Uploading]
    );
}

#[test]
fn outcomes_table() {
    let mut fx = fixture();
    let long = format!("{}.pdf", "annual report ".repeat(6));
    std::fs::write(fx.root.join("a.pdf"), b"%PDF-1.4 same").unwrap();
    std::fs::write(fx.root.join("b copy.pdf"), b"%PDF-1.4 same").unwrap();
    std::fs::write(fx.root.join("empty.pdf"), b"").unwrap();
    std::fs::write(fx.root.join("fake.pdf"), b"MZ\x90\0 not a pdf").unwrap();
    std::fs::write(fx.root.join(&long), b"%PDF-1.4 long").unwrap();
    std::fs::write(fx.root.join("edited.pdf"), b"%PDF-1.4 v1").unwrap();
    std::fs::write(fx.root.join("gone.pdf"), b"%PDF-1.4 bye").unwrap();
    let rows = fx.scan_and_settle();
    assert_eq!(rows.len(), 7);

    // changes after the file looked complete
    std::fs::write(fx.root.join("edited.pdf"), b"%PDF-1.4 version two").unwrap();
    std::fs::remove_file(fx.root.join("gone.pdf")).unwrap();

    let mut got = Vec::new();
    for row in &rows {
        let name = row.path_display();
        let outcome = match fx.prepare(row) {
            Prepared::Upload { row, .. } => format!("upload {:?}", row.remote_name),
            Prepared::Duplicate { original, .. } => {
                format!("duplicate of {}", original.path_display())
            }
            Prepared::Invalid { row } => {
                format!(
                    "invalid: {}",
                    fx.store.events(row.id).unwrap().last().unwrap().reason
                )
            }
            Prepared::Restarted { row } => format!("restarted {}", row.state),
            Prepared::Deleted { row } => format!("deleted {}", row.state),
        };
        got.push((name, outcome));
    }
    let find = |n: &str| {
        got.iter()
            .find(|(name, _)| name == n)
            .map(|(_, o)| o.clone())
            .unwrap()
    };
    assert_eq!(find("a.pdf"), "upload None");
    assert_eq!(find("b copy.pdf"), "duplicate of a.pdf");
    assert!(find("empty.pdf").starts_with("invalid: the file is empty"));
    assert!(
        find("fake.pdf").contains("not its extension"),
        "{}",
        find("fake.pdf")
    );
    assert_eq!(find("edited.pdf"), "restarted discovered");
    assert_eq!(find("gone.pdf"), "deleted deleted");
    let long_outcome = find(&long);
    assert!(
        long_outcome.starts_with("upload Some(\"annual report"),
        "{long_outcome}"
    );
    let long_row = fx
        .store
        .find_live(&fx.folder.key(), long.as_bytes())
        .unwrap()
        .unwrap();
    let remote = long_row.remote_name.unwrap();
    assert!(remote.chars().count() <= 64 && remote.ends_with(".pdf"));
    let reason = &fx
        .store
        .events(long_row.id)
        .unwrap()
        .last()
        .unwrap()
        .reason
        .clone();
    assert!(reason.contains("longer than 64"), "{reason}");
}

#[test]
fn promote_stable_needs_the_same_stat() {
    let mut fx = fixture();
    std::fs::write(fx.root.join("a.pdf"), b"%PDF-1.4").unwrap();
    let scan = scan_folder(&fx.root, &IgnoreSet::for_folder(&fx.folder).unwrap()).unwrap();
    reconcile_folder(&mut fx.store, &fx.folder, &scan).unwrap();
    let f = &scan.files[0];
    let key = fx.folder.key();
    let stale = promote_stable(
        &mut fx.store,
        &key,
        &f.rel_bytes(),
        f.stat.size + 1,
        f.stat.mtime_ns,
        "x",
    );
    assert_eq!(stale.unwrap(), None);
    let ok = promote_stable(
        &mut fx.store,
        &key,
        &f.rel_bytes(),
        f.stat.size,
        f.stat.mtime_ns,
        "x",
    )
    .unwrap();
    assert_eq!(ok.unwrap().state, State::Stable);
    // already stable: nothing to do
    let again = promote_stable(
        &mut fx.store,
        &key,
        &f.rel_bytes(),
        f.stat.size,
        f.stat.mtime_ns,
        "x",
    );
    assert_eq!(again.unwrap(), None);
    assert_eq!(
        promote_stable(&mut fx.store, &key, b"nope", 1, 1, "x").unwrap(),
        None
    );
}

fn move_fixture() -> Fixture {
    let mut fx = fixture();
    fx.folder.after_decision = crate::config::AfterDecision::Move;
    fx
}

/// Drive a stable row to a decision (what the uploader and poller will do).
fn decide(fx: &mut Fixture, row: &FileRow, to: State) -> FileRow {
    let Prepared::Upload { row, .. } = fx.prepare(row) else {
        panic!()
    };
    fx.store
        .transition(
            row.id,
            State::Uploading,
            State::Pending,
            &Change::because("uploaded"),
        )
        .unwrap();
    fx.store
        .transition(row.id, State::Pending, to, &Change::because("decided"))
        .unwrap()
}

#[test]
fn decided_files_move_and_stay_decided() {
    let mut fx = move_fixture();
    std::fs::create_dir(fx.root.join("sub")).unwrap();
    std::fs::write(fx.root.join("sub/a.pdf"), b"%PDF-1.4 a").unwrap();
    std::fs::write(fx.root.join("b.pdf"), b"%PDF-1.4 b").unwrap();
    // a file already sits where a.pdf would go
    std::fs::create_dir_all(fx.root.join("sub/approved")).unwrap();
    std::fs::write(fx.root.join("sub/approved/a.pdf"), b"older").unwrap();
    let rows = fx.scan_and_settle();
    assert_eq!(rows.len(), 2, "approved/ is skipped");
    let b = decide(&mut fx, &rows[0], State::Rejected);
    let a = decide(&mut fx, &rows[1], State::Approved);
    assert_eq!(
        decision_destination(&fx.folder, &a),
        Some(PathBuf::from("sub/approved/a.pdf"))
    );

    let moved = move_decided_file(&mut fx.store, &fx.folder, &a).unwrap();
    assert_eq!(moved, Some(PathBuf::from("sub/approved/a (1).pdf")));
    assert!(fx.root.join("sub/approved/a (1).pdf").exists());
    assert_eq!(
        std::fs::read(fx.root.join("sub/approved/a.pdf")).unwrap(),
        b"older"
    );
    let moved = move_decided_file(&mut fx.store, &fx.folder, &b).unwrap();
    assert_eq!(moved, Some(PathBuf::from("rejected/b.pdf")));

    // a full rescan leaves the moved rows decided, not deleted
    let scan = scan_folder(&fx.root, &IgnoreSet::for_folder(&fx.folder).unwrap()).unwrap();
    let summary = reconcile_folder(&mut fx.store, &fx.folder, &scan).unwrap();
    assert!(summary.reconciled.deleted.is_empty());
    let a_row = fx.store.get(a.id).unwrap().unwrap();
    assert_eq!(a_row.state, State::Approved);
    assert_eq!(
        a_row.moved_to.as_deref(),
        Some(b"sub/approved/a (1).pdf".as_slice())
    );
    let last = fx.store.events(a.id).unwrap().pop().unwrap();
    assert_eq!(
        (last.from_state, last.to_state),
        (Some(State::Approved), State::Approved)
    );
    assert!(last.reason.contains("moved to"));
    // moving again is a no-op
    assert_eq!(
        move_decided_file(&mut fx.store, &fx.folder, &a_row).unwrap(),
        None
    );
}

#[test]
fn leave_means_no_move() {
    let mut fx = fixture();
    std::fs::write(fx.root.join("a.pdf"), b"%PDF-1.4 a").unwrap();
    let rows = fx.scan_and_settle();
    let a = decide(&mut fx, &rows[0], State::Approved);
    assert_eq!(decision_destination(&fx.folder, &a), None);
    assert_eq!(
        move_decided_file(&mut fx.store, &fx.folder, &a).unwrap(),
        None
    );
    assert!(fx.root.join("a.pdf").exists());
}

#[test]
fn content_hash_marker_round_trips() {
    let sha = "ab".repeat(32);
    let cases: &[(Option<&str>, String)] = &[
        (None, format!("[docsync-sha256:{sha}]")),
        (Some("  "), format!("[docsync-sha256:{sha}]")),
        (Some("kyb pack"), format!("kyb pack [docsync-sha256:{sha}]")),
    ];
    for (comment, want) in cases {
        let got = comment_with_marker(*comment, &sha);
        assert_eq!(&got, want);
        assert_eq!(marker_in(&got), Some(sha.as_str()));
    }
    assert_eq!(marker_in("no marker"), None);
    assert_eq!(marker_in("[docsync-sha256:abc]"), None, "too short");
    assert_eq!(
        marker_in(&format!("[docsync-sha256:{}]", "zz".repeat(32))),
        None
    );
}
