use super::*;
use crate::config::{Env, Mapping};
use std::ffi::OsStr;
use std::os::unix::fs::symlink;

fn names(scan: &Scan) -> Vec<String> {
    scan.files
        .iter()
        .map(|f| f.rel.to_string_lossy().into_owned())
        .collect()
}

fn touch(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn walks_recursively_and_skips_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(&root.join("a.pdf"), b"12345");
    touch(&root.join("sub/deeper/b.png"), b"x");
    touch(&root.join("sub/c.pdf.part"), b"x");
    touch(&root.join(".hidden/d.pdf"), b"x");
    touch(&root.join("~$lock.docx"), b"x");
    touch(&root.join("approved/e.pdf"), b"x");
    let scan = scan_folder(root, &IgnoreSet::new::<&str>(&[], true).unwrap()).unwrap();
    assert_eq!(names(&scan), vec!["a.pdf", "sub/deeper/b.png"]);
    assert!(scan.complete);
    assert_eq!(scan.files[0].stat.size, 5);
    assert_eq!(scan.files[0].abs, root.join("a.pdf"));
    assert!(scan.files[0].stat.mtime_ns > 0);
}

#[test]
fn symlinks_stay_inside_the_root() {
    let outside = tempfile::tempdir().unwrap();
    touch(&outside.path().join("secret.pdf"), b"x");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(&root.join("real/a.pdf"), b"x");
    touch(&root.join(".stash/kept.pdf"), b"x");
    touch(&root.join(".stash/dir/deep.pdf"), b"x");
    symlink(outside.path().join("secret.pdf"), root.join("out-file.pdf")).unwrap();
    symlink(outside.path(), root.join("out-dir")).unwrap();
    symlink(root.join("real/a.pdf"), root.join("a-link.pdf")).unwrap();
    symlink(root.join("real"), root.join("a-dir-link")).unwrap();
    symlink(root.join("real"), root.join("real/loop")).unwrap();
    symlink(root.join("nowhere"), root.join("dangling.pdf")).unwrap();
    symlink(root.join(".stash/kept.pdf"), root.join("kept.pdf")).unwrap();
    symlink(root.join(".stash/dir"), root.join("stash-dir")).unwrap();
    symlink(root.join("real/a.pdf"), root.join("ignored.tmp")).unwrap();
    let scan = scan_folder(root, &IgnoreSet::defaults()).unwrap();
    // real paths first; links only where they reach what the walk does not
    assert_eq!(
        names(&scan),
        vec!["kept.pdf", "real/a.pdf", "stash-dir/deep.pdf"]
    );
    assert!(scan.complete);
    let mut skipped: Vec<(String, String)> = scan
        .skipped
        .iter()
        .map(|s| {
            (
                s.path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                s.reason.clone(),
            )
        })
        .collect();
    skipped.sort();
    let dir_seen = "symlink to a directory already walked (synced at its real path, or a loop)";
    assert_eq!(
        skipped,
        vec![
            ("a-dir-link".into(), dir_seen.into()),
            (
                "a-link.pdf".into(),
                "symlink to a file in the folder, synced at its real path".into()
            ),
            ("dangling.pdf".into(), "dangling symlink".into()),
            ("out-dir".into(), "symlink points outside the folder".into()),
            (
                "out-file.pdf".into(),
                "symlink points outside the folder".into()
            ),
            ("real/loop".into(), dir_seen.into()),
        ]
    );
    // deterministic
    assert_eq!(scan, scan_folder(root, &IgnoreSet::defaults()).unwrap());
}

#[test]
fn non_utf8_names_are_reported_as_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"caf\xe9.pdf");
    touch(&dir.path().join(name), b"x");
    let scan = scan_folder(dir.path(), &IgnoreSet::defaults()).unwrap();
    assert_eq!(scan.files[0].rel_bytes(), b"caf\xe9.pdf".to_vec());
}

#[test]
fn unreadable_directory_makes_the_scan_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    touch(&locked.join("a.pdf"), b"x");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let readable = std::fs::read_dir(&locked).is_ok();
    let scan = scan_folder(dir.path(), &IgnoreSet::defaults()).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    if readable {
        // running with privileges that ignore modes: nothing to check
        return;
    }
    assert!(!scan.complete);
    assert_eq!(scan.errors.len(), 1);
    assert!(scan.errors[0].contains("locked"), "{:?}", scan.errors);
}

use std::os::unix::fs::PermissionsExt;

#[test]
fn subtree_scan_is_never_complete() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join("new/x/a.pdf"), b"x");
    touch(&dir.path().join("other.pdf"), b"x");
    let scan = scan_subtree(dir.path(), Path::new("new"), &IgnoreSet::defaults()).unwrap();
    assert_eq!(names(&scan), vec!["new/x/a.pdf"]);
    assert!(!scan.complete);
    assert!(scan_folder(&dir.path().join("missing"), &IgnoreSet::defaults()).is_err());
}

#[test]
fn reconcile_records_scans_and_convention_problems() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    touch(&root.join("acct-1/business_verification/a.pdf"), b"%PDF-");
    touch(&root.join("loose.pdf"), b"%PDF-");
    touch(&root.join("acct-1/selfies/b.pdf"), b"%PDF-");
    let config = Config::zero_config(root, &Env::default()).unwrap();
    let folder = &config.folders[0];
    assert_eq!(folder.mapping, Mapping::Convention);
    let mut store = Store::open_in_memory().unwrap();
    let scan = scan_folder(root, &IgnoreSet::for_folder(folder).unwrap()).unwrap();
    let summary = reconcile_folder(&mut store, folder, &scan).unwrap();
    assert_eq!(summary.reconciled.observations.len(), 3);
    assert_eq!(summary.invalid.len(), 2);
    let counts = store.counts_by_state().unwrap();
    assert_eq!(counts.get(&State::Discovered), Some(&1));
    assert_eq!(counts.get(&State::Invalid), Some(&2));
    let good = store
        .find_live(&folder.key(), b"acct-1/business_verification/a.pdf")
        .unwrap()
        .unwrap();
    assert_eq!(good.target.account, "acct-1");
    assert_eq!(good.target.purpose, "business_verification");
    let bad = store
        .find_live(&folder.key(), b"acct-1/selfies/b.pdf")
        .unwrap()
        .unwrap();
    let reason = store.events(bad.id).unwrap().last().unwrap().reason.clone();
    assert!(reason.contains("not a file purpose"), "{reason}");

    // a second scan changes nothing; a vanished file is deleted
    std::fs::remove_file(root.join("loose.pdf")).unwrap();
    let scan = scan_folder(root, &IgnoreSet::for_folder(folder).unwrap()).unwrap();
    let summary = reconcile_folder(&mut store, folder, &scan).unwrap();
    assert!(summary.invalid.is_empty());
    assert_eq!(summary.reconciled.deleted.len(), 1);
    assert_eq!(
        store.counts_by_state().unwrap().get(&State::Deleted),
        Some(&1)
    );
}

use crate::config::Config;

#[test]
fn stability_table() {
    let quiet = Duration::from_millis(1000);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    enum Step {
        Observe(u64, u64, i64),
        Close(u64, u64, i64),
        Forget,
        Ready(u64, Option<(u64, i64)>),
    }
    use Step::*;
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "still for the window",
            vec![
                Observe(0, 10, 1),
                Ready(999, None),
                Ready(1000, Some((10, 1))),
            ],
        ),
        (
            "growing restarts the window",
            vec![
                Observe(0, 10, 1),
                Observe(800, 20, 2),
                Ready(1000, None),
                Observe(1500, 20, 2),
                Ready(1799, None),
                Ready(1800, Some((20, 2))),
            ],
        ),
        (
            "same stat does not restart",
            vec![
                Observe(0, 10, 1),
                Observe(900, 10, 1),
                Ready(1000, Some((10, 1))),
            ],
        ),
        (
            "close_write is immediate",
            vec![
                Observe(0, 10, 1),
                Close(10, 12, 2),
                Ready(10, Some((12, 2))),
            ],
        ),
        (
            "a write after close_write waits again",
            vec![
                Close(0, 10, 1),
                Observe(5, 11, 2),
                Ready(5, None),
                Ready(1005, Some((11, 2))),
            ],
        ),
        (
            "forgotten files never become ready",
            vec![Observe(0, 10, 1), Forget, Ready(5000, None)],
        ),
    ];
    for (name, steps) in cases {
        let mut tracker = StabilityTracker::new(quiet);
        for step in steps {
            match step {
                Observe(ms, size, mtime) => tracker.observe("f", size, mtime, at(ms)),
                Close(ms, size, mtime) => tracker.close_write("f", size, mtime, at(ms)),
                Forget => tracker.forget(&"f"),
                Ready(ms, want) => {
                    let got: Vec<(u64, i64)> = tracker
                        .take_ready(at(ms))
                        .into_iter()
                        .map(|r| (r.size, r.mtime_ns))
                        .collect();
                    assert_eq!(
                        got,
                        want.into_iter().collect::<Vec<_>>(),
                        "{name} at {ms}ms"
                    );
                }
            }
        }
    }
}

#[test]
fn stability_deadline_and_many_files() {
    let t0 = Instant::now();
    let mut tracker = StabilityTracker::new(Duration::from_secs(1));
    assert_eq!(tracker.next_deadline(), None);
    tracker.observe(("inbox", 1), 1, 1, t0);
    tracker.observe(("inbox", 2), 1, 1, t0 + Duration::from_millis(300));
    assert_eq!(tracker.next_deadline(), Some(t0 + Duration::from_secs(1)));
    assert_eq!(tracker.len(), 2);
    let ready = tracker.take_ready(t0 + Duration::from_secs(1));
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].key, ("inbox", 1));
    assert_eq!(
        tracker.next_deadline(),
        Some(t0 + Duration::from_millis(1300))
    );
    assert_eq!(tracker.take_ready(t0 + Duration::from_secs(2)).len(), 1);
    assert!(tracker.is_empty());
}

#[test]
fn a_closed_file_is_due_at_once() {
    let t0 = Instant::now();
    let mut tracker = StabilityTracker::new(Duration::from_secs(1));
    tracker.observe(("inbox", 1), 1, 1, t0);
    tracker.close_write(("inbox", 2), 1, 1, t0 + Duration::from_millis(300));
    // the daemon sleeps until this: the closed file must not wait the window
    assert_eq!(
        tracker.next_deadline(),
        Some(t0 + Duration::from_millis(300))
    );
    let ready = tracker.take_ready(t0 + Duration::from_millis(300));
    assert_eq!(ready.len(), 1);
    assert_eq!(ready[0].key, ("inbox", 2));
    assert_eq!(tracker.next_deadline(), Some(t0 + Duration::from_secs(1)));
}
