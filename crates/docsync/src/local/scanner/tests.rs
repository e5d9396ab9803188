use super::*;
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
fn a_subtree_in_an_ignored_directory_yields_nothing() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join(".cache/new/a.pdf"), b"x");
    touch(&dir.path().join("drafts/new/a.pdf"), b"x");
    touch(&dir.path().join("kept/new/a.pdf"), b"x");
    let ignore = IgnoreSet::new(&["drafts/new"], false).unwrap();
    for sub in [".cache/new", "drafts/new"] {
        let scan = scan_subtree(dir.path(), Path::new(sub), &ignore).unwrap();
        assert!(scan.files.is_empty(), "{sub}: {:?}", names(&scan));
    }
    let scan = scan_subtree(dir.path(), Path::new("kept/new"), &ignore).unwrap();
    assert_eq!(names(&scan), vec!["kept/new/a.pdf"]);
    assert_eq!(
        names(&scan_folder(dir.path(), &ignore).unwrap()),
        vec!["kept/new/a.pdf"]
    );
}

#[test]
fn quiet_for_looks_at_mtime_and_ctime() {
    let at = |s: i64| s * 1_000_000_000;
    let stat = |mtime: i64, ctime: i64| FileStat {
        size: 1,
        mtime_ns: at(mtime),
        ctime_ns: at(ctime),
        dev: 1,
        ino: 1,
    };
    use std::time::Duration;
    let now = std::time::UNIX_EPOCH + Duration::from_secs(100);
    let quiet = Duration::from_secs(2);
    assert!(stat(90, 90).quiet_for(quiet, now));
    assert!(stat(98, 98).quiet_for(quiet, now), "exactly the window");
    assert!(!stat(99, 90).quiet_for(quiet, now), "written a second ago");
    // a backdated mtime (a copy keeping times) does not hide a fresh inode
    assert!(!stat(10, 99).quiet_for(quiet, now));
    // a clock before the file (or before 1970) never calls it quiet
    assert!(!stat(200, 200).quiet_for(quiet, now));
}

#[test]
fn unchanged_for_counts_from_the_later_of_mtime_and_ctime() {
    use std::time::Duration;
    let stat = |mtime_ms: i64, ctime_ms: i64| FileStat {
        size: 1,
        mtime_ns: mtime_ms * 1_000_000,
        ctime_ns: ctime_ms * 1_000_000,
        dev: 1,
        ino: 1,
    };
    let now = std::time::UNIX_EPOCH + Duration::from_millis(100_000);
    assert_eq!(
        stat(99_400, 99_000).unchanged_for(now),
        Duration::from_millis(600)
    );
    // a backdated mtime: the inode changed 200 ms ago
    assert_eq!(
        stat(10_000, 99_800).unchanged_for(now),
        Duration::from_millis(200)
    );
    // a file from the future (another clock) changed just now
    assert_eq!(stat(200_000, 200_000).unchanged_for(now), Duration::ZERO);
}

/// Parts start small and double up to the largest size, each ending with a
/// directory: the first files of a large walk are handed over early.
#[test]
fn parts_start_small_and_double() {
    let dir = tempfile::tempdir().unwrap();
    for d in 0..30 {
        let sub = dir.path().join(format!("d{d:02}"));
        std::fs::create_dir(&sub).unwrap();
        for f in 0..100 {
            std::fs::write(sub.join(format!("{f:03}.pdf")), b"%PDF").unwrap();
        }
    }
    let mut sizes = Vec::new();
    let scan = scan_folder_in_parts(
        dir.path(),
        &IgnoreSet::defaults(),
        256,
        1024,
        &mut |files| {
            sizes.push(files.len());
            true
        },
    )
    .unwrap();
    assert!(scan.complete);
    assert_eq!(sizes, vec![300, 600, 1100, 1000]);
}
