use super::*;
use notify::event::{DataChange, Flag, MetadataKind};
use std::time::Duration;

fn ev(kind: EventKind, paths: &[&Path]) -> notify::Event {
    paths
        .iter()
        .fold(notify::Event::new(kind), |e, p| e.add_path(p.to_path_buf()))
}

#[test]
fn events_become_hints() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("newdir/inner")).unwrap();
    std::fs::write(root.join("newdir/a.pdf"), b"x").unwrap();
    std::fs::write(root.join("newdir/inner/b.pdf"), b"x").unwrap();
    std::fs::write(root.join("newdir/.hidden"), b"x").unwrap();
    let file = root.join("a.pdf");
    std::fs::write(&file, b"x").unwrap();
    let gone = root.join("gone.pdf");
    let part = root.join("a.pdf.part");
    let outside = Path::new("/elsewhere/x.pdf");
    let ignore = IgnoreSet::defaults();

    let rescan = ev(EventKind::Any, &[]).set_flag(Flag::Rescan);
    let cases: Vec<(notify::Event, Vec<Hint>)> = vec![
        (
            ev(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &[&file],
            ),
            vec![Hint::CloseWrite(file.clone())],
        ),
        (
            ev(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                &[&file],
            ),
            vec![],
        ),
        (
            ev(
                EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                &[&file],
            ),
            vec![Hint::Changed(file.clone())],
        ),
        (
            ev(
                EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
                &[&file],
            ),
            vec![Hint::Changed(file.clone())],
        ),
        (
            ev(EventKind::Create(CreateKind::File), &[&file]),
            vec![Hint::Changed(file.clone())],
        ),
        (
            ev(EventKind::Remove(RemoveKind::File), &[&gone]),
            vec![Hint::Removed(gone.clone())],
        ),
        (
            ev(EventKind::Remove(RemoveKind::Folder), &[&gone]),
            vec![Hint::Removed(gone.clone()), Hint::Rescan],
        ),
        (
            ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::From)),
                &[&gone],
            ),
            vec![Hint::Removed(gone.clone())],
        ),
        (
            ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                &[&file],
            ),
            vec![Hint::Changed(file.clone())],
        ),
        (
            // an editor's atomic save: temp file renamed over the target
            ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &[&part, &file],
            ),
            vec![Hint::Changed(file.clone())],
        ),
        (
            ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &[&gone, &file],
            ),
            vec![Hint::Removed(gone.clone()), Hint::Changed(file.clone())],
        ),
        (
            // a new directory is walked at once, and again once it is watched
            ev(
                EventKind::Create(CreateKind::Folder),
                &[&root.join("newdir")],
            ),
            vec![
                Hint::Changed(root.join("newdir/a.pdf")),
                Hint::Changed(root.join("newdir/inner/b.pdf")),
                Hint::DirectoryAppeared(root.join("newdir")),
            ],
        ),
        (
            // a directory moved in, reported without a kind
            ev(
                EventKind::Modify(ModifyKind::Name(RenameMode::To)),
                &[&root.join("newdir/inner")],
            ),
            vec![
                Hint::Changed(root.join("newdir/inner/b.pdf")),
                Hint::DirectoryAppeared(root.join("newdir/inner")),
            ],
        ),
        (ev(EventKind::Create(CreateKind::File), &[&part]), vec![]),
        (ev(EventKind::Create(CreateKind::File), &[outside]), vec![]),
        (ev(EventKind::Create(CreateKind::File), &[root]), vec![]),
        (rescan, vec![Hint::Rescan]),
    ];
    for (i, (event, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            hints_from_event(root, &ignore, &event),
            want,
            "case {i}: {event:?}"
        );
    }
}

#[tokio::test]
async fn full_channel_books_a_rescan_even_when_no_hint_follows() {
    let (tx, mut rx) = hint_channel(2);
    let rescans = Arc::new(RescanQueue::default());
    let sender = HintSender::new(tx, 3, rescans.clone());
    let a = PathBuf::from("/r/a");
    assert!(sender.send(Hint::Changed(a.clone())));
    assert!(sender.send(Hint::Changed(a.clone())));
    assert_eq!(rescans.next_due(), None, "nothing dropped yet");
    assert!(!sender.send(Hint::Changed(a.clone())), "dropped");
    // booked at once, outside the (full) channel: owed without another hint
    let due = rescans.next_due().expect("a rescan is booked");
    assert!(due <= Instant::now());
    rescans.booked().await;
    assert_eq!(rescans.take_due(Instant::now()), [3]);
    assert_eq!(rescans.next_due(), None, "taken");
    assert_eq!(rx.recv().await.unwrap().hint, Hint::Changed(a.clone()));
    assert_eq!(rx.recv().await.unwrap().hint, Hint::Changed(a.clone()));
    drop(rx);
    assert!(!sender.send(Hint::Rescan), "receiver gone");
}

#[test]
fn a_new_directory_books_a_later_rescan_and_bookings_postpone_a_bounded_time() {
    let (tx, _rx) = hint_channel(8);
    let rescans = Arc::new(RescanQueue::default());
    let sender = HintSender::new(tx, 1, rescans.clone());
    let before = Instant::now();
    assert!(sender.send(Hint::DirectoryAppeared(PathBuf::from("/r/new"))));
    let due = rescans.next_due().expect("booked");
    assert!(due >= before + NEW_DIRECTORY_RESCAN_DELAY);
    assert!(rescans.take_due(before).is_empty(), "not due yet");
    // a later booking moves it later, but never past the cap
    rescans.book(1, before + Duration::from_secs(60));
    let capped = rescans.next_due().expect("still booked");
    assert!(capped > due && capped <= Instant::now() + Duration::from_secs(2));
    assert_eq!(rescans.take_due(capped), [1]);
}

/// Receive hints until one satisfies `want` (the test fails on timeout).
async fn wait_for(rx: &mut mpsc::Receiver<FolderHint>, want: impl Fn(&Hint) -> bool) {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(h) = rx.recv().await {
            if want(&h.hint) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "expected hint did not arrive");
}

#[tokio::test]
async fn native_watcher_reports_files_and_new_directories() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (tx, mut rx) = hint_channel(1024);
    let rescans = Arc::new(RescanQueue::default());
    let watcher = FolderWatcher::start(
        0,
        &root,
        WatcherKind::Native,
        IgnoreSet::defaults(),
        tx,
        rescans.clone(),
    )
    .unwrap();
    assert_eq!(watcher.root(), root);

    let file = root.join("a.pdf");
    std::fs::write(&file, b"%PDF-").unwrap();
    wait_for(
        &mut rx,
        |h| matches!(h, Hint::CloseWrite(p) | Hint::Changed(p) if *p == file),
    )
    .await;

    // a nested directory created with a file already inside
    let nested = root.join("x/y");
    let staging = tempfile::tempdir_in(&root).unwrap();
    std::fs::create_dir_all(staging.path().join("y")).unwrap();
    std::fs::write(staging.path().join("y/b.pdf"), b"%PDF-").unwrap();
    std::fs::create_dir(root.join("x")).unwrap();
    std::fs::rename(staging.path().join("y"), &nested).unwrap();
    let moved = nested.join("b.pdf");
    wait_for(&mut rx, |h| matches!(h, Hint::Changed(p) if *p == moved)).await;
    // and its folder is owed a second walk, once notify watches the new directory
    tokio::time::timeout(Duration::from_secs(20), async {
        while rescans.next_due().is_none() {
            rescans.booked().await;
        }
    })
    .await
    .expect("no rescan booked for the new directory");

    std::fs::remove_file(&file).unwrap();
    wait_for(&mut rx, |h| matches!(h, Hint::Removed(p) if *p == file)).await;
}

#[tokio::test]
async fn poll_watcher_reports_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let (tx, mut rx) = hint_channel(1024);
    let _watcher = FolderWatcher::start(
        7,
        &root,
        WatcherKind::Poll {
            interval: Duration::from_millis(50),
        },
        IgnoreSet::defaults(),
        tx,
        Arc::default(),
    )
    .unwrap();
    let file = root.join("img.png");
    std::fs::write(&file, b"\x89PNG").unwrap();
    wait_for(&mut rx, |h| matches!(h, Hint::Changed(p) if *p == file)).await;
}

#[test]
fn watching_a_missing_folder_fails_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let (tx, _rx) = hint_channel(8);
    let err = FolderWatcher::start(
        0,
        &missing,
        WatcherKind::Native,
        IgnoreSet::defaults(),
        tx,
        Arc::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}
