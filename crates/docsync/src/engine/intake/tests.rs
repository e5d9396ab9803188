use super::*;
use crate::config::{Config, Env};
use crate::local::ignore::IgnoreSet;
use crate::local::scanner::scan_folder;
use crate::local::watcher::Hint;
use std::path::PathBuf;
use std::time::Duration;

use crate::store::{ListFilter, Observed, Promotion, ScanRecorded, ScanVerdict, SeenIds, Store};
use futures::executor::block_on;

const QUIET: Duration = Duration::from_secs(1);

/// The intake's tests answer its store questions with a bare [`Store`]
/// (every answer ready at once, so `block_on` drives a step).
impl IntakeStore for Store {
    async fn reconcile(
        &mut self,
        folder: String,
        observed: Vec<Observed>,
        complete: bool,
        verdicts: Vec<ScanVerdict>,
    ) -> Result<ScanRecorded> {
        Store::reconcile(self, &folder, &observed, complete, &verdicts)
    }

    async fn sweep_vanished(&mut self, folder: String, seen: SeenIds) -> Result<Vec<i64>> {
        Store::sweep_vanished(self, &folder, &seen)
    }

    async fn promote_stable(&mut self, promotions: Vec<Promotion>) -> Result<Vec<FileRow>> {
        let mut promoted = Vec::new();
        for p in &promotions {
            promoted.extend(Store::promote_stable(
                self, &p.folder, &p.path, p.size, p.mtime_ns, p.reason,
            )?);
        }
        Ok(promoted)
    }

    async fn mark_gone(
        &mut self,
        folder: String,
        path: Vec<u8>,
        reason: &'static str,
    ) -> Result<bool> {
        Store::mark_gone(self, &folder, &path, reason)
    }

    async fn discovered(&mut self) -> Result<Vec<FileRow>> {
        Store::discovered(self, u32::MAX)
    }
}

struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
    intake: Intake,
    store: Store,
    t0: Instant,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    std::fs::create_dir_all(
        root.join("00000000-0000-4000-8000-00000000acc0/business_verification"),
    )
    .unwrap();
    let config = Config::zero_config(&root, &Env::default()).unwrap();
    Fx {
        _dir: dir,
        // a wall clock before every file: each window starts when its file
        // is first seen, at the instants the tests pass
        intake: Intake::new(&config.folders, QUIET)
            .unwrap()
            .with_wall_clock(|| std::time::UNIX_EPOCH),
        root,
        store: Store::open_in_memory().unwrap(),
        t0: Instant::now(),
    }
}

impl Fx {
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
    fn hint(&mut self, hint: Hint, ms: u64) -> Followup {
        let now = self.at(ms);
        block_on(
            self.intake
                .on_hint(&mut self.store, &FolderHint { folder: 0, hint }, now),
        )
        .unwrap()
    }
    fn promote(&mut self, ms: u64) -> Vec<String> {
        let now = self.at(ms);
        block_on(self.intake.promote_ready(&mut self.store, now))
            .unwrap()
            .iter()
            .map(FileRow::path_display)
            .collect()
    }
    fn state(&self, rel: &str) -> Option<State> {
        self.store
            .find_live(&self.intake.folder(0).unwrap().0.key(), rel.as_bytes())
            .unwrap()
            .map(|r| r.state)
    }
}

const A: &str = "00000000-0000-4000-8000-00000000acc0/business_verification/a.pdf";

#[test]
fn a_changed_file_becomes_stable_after_the_quiet_window() {
    let mut fx = fx();
    let path = fx.root.join(A);
    std::fs::write(&path, b"%PDF-1.4 part").unwrap();
    assert_eq!(fx.hint(Hint::Changed(path.clone()), 0), Followup::Nothing);
    assert_eq!(fx.state(A), Some(State::Discovered));
    assert_eq!(fx.intake.next_deadline(), Some(fx.at(1000)));
    assert!(fx.promote(999).is_empty());
    assert_eq!(fx.promote(1000), vec![A.to_owned()]);
    assert_eq!(fx.state(A), Some(State::Stable));
    assert_eq!(fx.intake.waiting(), 0);
}

/// A file first seen a while after its last change (found by the walk of a
/// directory that appeared, whose events were missed) waits only the rest of
/// its window: the window runs from its ctime, not from first sight.
#[test]
fn a_window_runs_from_the_files_last_change() {
    let mut fx = fx();
    let path = fx.root.join(A);
    std::fs::write(&path, b"%PDF-1.4 written a moment ago").unwrap();
    let ctime_ns = FileStat::of_path(&path).unwrap().ctime_ns;
    // the wall clock reads 600 ms after that change when the file is seen
    static SEEN_AT: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();
    SEEN_AT
        .set(std::time::UNIX_EPOCH + Duration::from_nanos(ctime_ns as u64 + 600_000_000))
        .unwrap();
    fx.intake = Intake::new(&[fx.intake.folder(0).unwrap().0.clone()], QUIET)
        .unwrap()
        .with_wall_clock(|| *SEEN_AT.get().unwrap());
    // instants ahead of the real one: the wall clock above is read as theirs
    fx.t0 = Instant::now() + Duration::from_secs(3600);
    assert_eq!(fx.hint(Hint::Changed(path), 0), Followup::Nothing);
    assert_eq!(fx.intake.next_deadline(), Some(fx.at(400)));
    assert!(fx.promote(399).is_empty());
    assert_eq!(fx.promote(400), vec![A.to_owned()]);
}

/// A file written before the daemon looked (mtime and ctime older than the
/// quiet window) has had its quiet window already: it is complete when first
/// seen, not a window later.
#[test]
fn a_file_already_quiet_when_seen_is_complete_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    let old = root.join(A);
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    let config = Config::zero_config(&root, &Env::default()).unwrap();
    let quiet = Duration::from_millis(300);
    let mut intake = Intake::new(&config.folders, quiet).unwrap();
    let mut store = Store::open_in_memory().unwrap();
    std::fs::write(&old, b"%PDF-1.4 written earlier").unwrap();
    // wait (with a deadline) until the file is older than the window
    let deadline = Instant::now() + Duration::from_secs(10);
    while !FileStat::of_path(&old)
        .unwrap()
        .quiet_for(quiet, std::time::SystemTime::now())
    {
        assert!(Instant::now() < deadline, "the clock does not move");
        std::thread::sleep(Duration::from_millis(10));
    }
    let fresh = old.with_file_name("b.pdf");
    std::fs::write(&fresh, b"%PDF-1.4 being written").unwrap();
    let scan = scan_folder(&root, &IgnoreSet::for_folder(&config.folders[0]).unwrap()).unwrap();
    let now = Instant::now();
    block_on(intake.apply_scan(&mut store, 0, &scan, now)).unwrap();
    let state = |path: &std::path::Path| {
        let rel = path.strip_prefix(&root).unwrap().as_os_str().as_bytes();
        store
            .find_live(&config.folders[0].key(), rel)
            .unwrap()
            .map(|row| row.state)
    };
    assert_eq!(state(&old), Some(State::Stable), "the old file, at once");
    assert_eq!(state(&fresh), Some(State::Discovered));
    assert_eq!(intake.take_new_stable(), 1, "the upload stage is woken");
    assert_eq!(intake.waiting(), 1, "the fresh one waits for its window");
    assert!(block_on(intake.promote_ready(&mut store, now))
        .unwrap()
        .is_empty());
}

/// Metadata before bytes: a file over the target's limit (here a sparse
/// 1 TiB `.pdf`) is `invalid` as soon as it is seen, with the reason, and never
/// waits for the quiet window (so it is never hashed).
#[test]
fn a_file_over_the_limit_is_invalid_when_first_seen() {
    let mut fx = fx();
    let path = fx.root.join(A);
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    fx.hint(Hint::Changed(path.clone()), 0);
    assert_eq!(fx.state(A), Some(State::Invalid));
    assert_eq!(fx.intake.waiting(), 0, "never waits to be hashed");
    let key = fx.intake.folder(0).unwrap().0.key();
    let row = fx.store.find_live(&key, A.as_bytes()).unwrap().unwrap();
    let reason = fx.store.events(row.id).unwrap().pop().unwrap().reason;
    assert!(reason.contains("more than the 20 MiB"), "{reason}");
}

/// The upload stage puts a row back to `discovered` when its file changed
/// after it held still; woken, the intake stats it afresh and starts its
/// quiet window again (nothing else hands it back).
#[test]
fn a_row_put_back_to_discovered_waits_again() {
    let mut fx = fx();
    let path = fx.root.join(A);
    std::fs::write(&path, b"%PDF-1.4 v1").unwrap();
    fx.hint(Hint::Changed(path.clone()), 0);
    assert_eq!(fx.promote(1000), vec![A.to_owned()]);
    // what the upload stage records when the hash finds the file changed
    std::fs::write(&path, b"%PDF-1.4 version two").unwrap();
    let key = fx.intake.folder(0).unwrap().0.key();
    let row = fx.store.find_live(&key, A.as_bytes()).unwrap().unwrap();
    fx.store
        .transition(
            row.id,
            State::Stable,
            State::Discovered,
            &crate::store::Change::because("changed"),
        )
        .unwrap();
    assert_eq!(fx.intake.waiting(), 0);

    let now = fx.at(2000);
    assert_eq!(
        block_on(fx.intake.track_discovered(&mut fx.store, now)).unwrap(),
        1
    );
    assert_eq!(fx.intake.waiting(), 1);
    assert_eq!(
        fx.store.get(row.id).unwrap().unwrap().size,
        20,
        "fresh stat recorded"
    );
    // once tracked, a second wake-up does not restart its window
    assert_eq!(
        block_on(fx.intake.track_discovered(&mut fx.store, now)).unwrap(),
        0
    );
    assert!(fx.promote(2999).is_empty());
    assert_eq!(fx.promote(3000), vec![A.to_owned()]);
    assert_eq!(fx.state(A), Some(State::Stable));
}

#[test]
fn a_file_still_growing_waits() {
    let mut fx = fx();
    let path = fx.root.join(A);
    std::fs::write(&path, b"%PDF-1.4 part").unwrap();
    fx.hint(Hint::Changed(path.clone()), 0);
    // written again before the window ends: no promotion, the window restarts
    std::fs::write(&path, b"%PDF-1.4 part two").unwrap();
    fx.hint(Hint::Changed(path.clone()), 800);
    assert!(fx.promote(1000).is_empty());
    assert_eq!(fx.promote(1800), vec![A.to_owned()]);
}

#[test]
fn a_change_missed_by_hints_is_caught_by_the_re_stat() {
    let mut fx = fx();
    let path = fx.root.join(A);
    std::fs::write(&path, b"%PDF-1.4 part").unwrap();
    fx.hint(Hint::Changed(path.clone()), 0);
    std::fs::write(&path, b"%PDF-1.4 part, and more").unwrap();
    assert!(fx.promote(1000).is_empty(), "re-stat saw the change");
    assert_eq!(fx.state(A), Some(State::Discovered));
    assert_eq!(fx.promote(2000), vec![A.to_owned()]);
}

#[test]
fn close_write_is_the_fast_path() {
    let mut fx = fx();
    let path = fx.root.join(A);
    std::fs::write(&path, b"%PDF-1.4 done").unwrap();
    fx.hint(Hint::CloseWrite(path), 5);
    // stable when first recorded: no window, no second look
    assert_eq!(fx.state(A), Some(State::Stable));
    assert_eq!(fx.intake.take_new_stable(), 1);
    assert_eq!(fx.intake.waiting(), 0);
    assert!(fx.promote(5).is_empty());
}

#[test]
fn removals_and_rescans() {
    let mut fx = fx();
    let path = fx.root.join(A);
    std::fs::write(&path, b"%PDF-1.4").unwrap();
    fx.hint(Hint::Changed(path.clone()), 0);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(fx.hint(Hint::Removed(path.clone()), 10), Followup::Nothing);
    assert_eq!(fx.state(A), None);
    assert!(fx.promote(5000).is_empty());
    // a removed path without a row may have been a directory
    let dir = fx.root.join("00000000-0000-4000-8000-00000000acc0");
    assert_eq!(
        fx.hint(Hint::Removed(dir.join("gone")), 20),
        Followup::Rescan(0)
    );
    assert_eq!(fx.hint(Hint::Rescan, 30), Followup::Rescan(0));
    // ignored and outside paths do nothing
    assert_eq!(
        fx.hint(Hint::Changed(fx.root.join("x.part")), 40),
        Followup::Nothing
    );
    assert_eq!(
        fx.hint(Hint::Changed(PathBuf::from("/elsewhere/x")), 40),
        Followup::Nothing
    );
    // a "removed" file that is still there (rename over it) is treated as changed
    std::fs::write(&path, b"%PDF-1.4 again").unwrap();
    fx.hint(Hint::Removed(path.clone()), 50);
    assert_eq!(fx.state(A), Some(State::Discovered));
}

#[test]
fn files_outside_the_layout_are_invalid_at_once() {
    let mut fx = fx();
    let loose = fx.root.join("loose.pdf");
    std::fs::write(&loose, b"%PDF-1.4").unwrap();
    fx.hint(Hint::CloseWrite(loose), 0);
    assert_eq!(fx.state("loose.pdf"), Some(State::Invalid));
    assert!(fx.promote(5000).is_empty());
}

/// Moov's account IDs are UUIDs: the files of an account folder named otherwise
/// (`acme`) are `invalid` with the fix at once, nothing of them goes on to the
/// upload stage, and the reason is reported once for the folder, not once per
/// file and scan. A UUID folder beside it is synced as ever.
#[test]
fn an_account_folder_that_is_no_moov_account_is_invalid_and_reported_once() {
    let mut fx = fx();
    let acme = fx.root.join("acme/business_verification");
    std::fs::create_dir_all(&acme).unwrap();
    std::fs::write(acme.join("x.pdf"), b"%PDF-1.4 x").unwrap();
    std::fs::write(acme.join("y.pdf"), b"%PDF-1.4 y").unwrap();
    std::fs::write(fx.root.join(A), b"%PDF-1.4 a").unwrap();
    for ms in [0, 10] {
        let (folder, ignore) = fx.intake.folder(0).unwrap();
        let scan = scan_folder(&folder.path, ignore).unwrap();
        let now = fx.at(ms);
        let summary = block_on(fx.intake.apply_scan(&mut fx.store, 0, &scan, now)).unwrap();
        assert_eq!(summary.unmapped.len(), 2, "{summary:#?}");
    }
    // a file written into it later: a hint, the same folder, the same reason
    std::fs::write(acme.join("z.pdf"), b"%PDF-1.4 z").unwrap();
    fx.hint(Hint::CloseWrite(acme.join("z.pdf")), 20);
    for name in ["x.pdf", "y.pdf", "z.pdf"] {
        let rel = format!("acme/business_verification/{name}");
        assert_eq!(fx.state(&rel), Some(State::Invalid), "{rel}");
        let row = fx
            .store
            .find_live(&fx.intake.folder(0).unwrap().0.key(), rel.as_bytes())
            .unwrap()
            .unwrap();
        let reason = fx
            .store
            .events(row.id)
            .unwrap()
            .last()
            .unwrap()
            .reason
            .clone();
        assert!(
            reason.contains("`acme` is not a Moov account ID (a UUID such as ")
                && reason.contains("rename the folder to the account's ID"),
            "{reason}"
        );
    }
    assert_eq!(
        fx.intake.folders[0].reported.len(),
        1,
        "{:?}",
        fx.intake.folders[0].reported
    );
    // only the UUID folder's file waits for its quiet window and goes on
    assert_eq!(fx.intake.waiting(), 1);
    assert_eq!(fx.promote(5000), vec![A.to_owned()]);
}

#[test]
fn a_scan_starts_windows_and_deletes_vanished_files() {
    let mut fx = fx();
    std::fs::write(fx.root.join(A), b"%PDF-1.4").unwrap();
    std::fs::write(
        fx.root
            .join("00000000-0000-4000-8000-00000000acc0/business_verification/b.pdf"),
        b"%PDF-1.4 b",
    )
    .unwrap();
    let (folder, ignore) = fx.intake.folder(0).unwrap();
    let scan = scan_folder(&folder.path, ignore).unwrap();
    let now = fx.at(0);
    let summary = block_on(fx.intake.apply_scan(&mut fx.store, 0, &scan, now)).unwrap();
    assert_eq!(summary.reconciled.observations.len(), 2);
    assert_eq!(fx.intake.waiting(), 2);
    assert_eq!(fx.promote(1000).len(), 2);

    std::fs::remove_file(fx.root.join(A)).unwrap();
    let (folder, ignore) = fx.intake.folder(0).unwrap();
    let scan = scan_folder(&folder.path, ignore).unwrap();
    let now = fx.at(2000);
    let summary = block_on(fx.intake.apply_scan(&mut fx.store, 0, &scan, now)).unwrap();
    assert_eq!(summary.reconciled.deleted.len(), 1);
    assert_eq!(fx.intake.waiting(), 0, "stable files are not tracked again");
    assert_eq!(
        block_on(fx.intake.apply_scan(&mut fx.store, 9, &scan, now)).unwrap(),
        ReconcileSummary::default()
    );
}

/// Walk folder 0 in parts of `part` files and record each part as the daemon
/// does, at `ms`; `stop_after` parts handed over, the walk is stopped. The
/// rows deleted.
fn scan_in_parts(fx: &mut Fx, part: usize, stop_after: usize, ms: u64) -> Vec<i64> {
    let now = fx.at(ms);
    let (folder, ignore) = fx.intake.folder(0).unwrap();
    let (root, ignore) = (folder.path.clone(), ignore.clone());
    let mut parts = Vec::new();
    let walked =
        crate::local::scanner::scan_folder_in_parts(&root, &ignore, part, part, &mut |files| {
            parts.push(files);
            parts.len() < stop_after
        })
        .unwrap();
    assert!(walked.files.is_empty(), "the files were handed over");
    let mut seen = SeenIds::new();
    for files in &parts {
        block_on(
            fx.intake
                .apply_scan_part(&mut fx.store, 0, files, &mut seen, now),
        )
        .unwrap();
    }
    block_on(
        fx.intake
            .finish_scan(&mut fx.store, 0, &walked.skipped, walked.complete, seen),
    )
    .unwrap()
}

/// A walk recorded in parts (as the daemon records a large folder) records
/// each file exactly once, and still finds the files that vanished anywhere
/// in the folder, not only in the last part; a walk cut short deletes nothing.
#[test]
fn a_scan_recorded_in_parts_records_each_file_once_and_finds_vanished_ones() {
    let mut fx = fx();
    let mut rels = Vec::new();
    for account in 0..4 {
        let dir = format!("00000000-0000-4000-8000-00000000acc{account}/business_verification");
        std::fs::create_dir_all(fx.root.join(&dir)).unwrap();
        for i in 0..5 {
            let rel = format!("{dir}/f{i}.pdf");
            std::fs::write(fx.root.join(&rel), format!("%PDF-1.4 {rel}")).unwrap();
            rels.push(rel);
        }
    }
    assert!(scan_in_parts(&mut fx, 3, usize::MAX, 0).is_empty());
    let key = fx.intake.folder(0).unwrap().0.key();
    let all_rows = ListFilter {
        include_history: true,
        limit: 1000,
        ..ListFilter::default()
    };
    let rows = fx.store.list(&all_rows).unwrap();
    assert_eq!(rows.len(), rels.len(), "one row per file");
    for rel in &rels {
        assert!(
            fx.store.find_live(&key, rel.as_bytes()).unwrap().is_some(),
            "{rel}"
        );
    }
    assert_eq!(fx.promote(1000).len(), rels.len());

    // one file gone from the first account folder, one from the last
    let gone = [&rels[0], &rels[rels.len() - 1]];
    for rel in gone {
        std::fs::remove_file(fx.root.join(rel)).unwrap();
    }
    // a walk stopped after its first part is not complete: nothing deleted
    assert!(scan_in_parts(&mut fx, 3, 1, 2000).is_empty());
    for rel in gone {
        assert_eq!(fx.state(rel), Some(State::Stable), "{rel}");
    }
    let deleted = scan_in_parts(&mut fx, 3, usize::MAX, 3000);
    assert_eq!(deleted.len(), 2);
    for rel in &rels {
        let state = fx.state(rel);
        if gone.contains(&rel) {
            assert_eq!(state, None, "{rel} is deleted");
        } else {
            assert_eq!(state, Some(State::Stable), "{rel} is untouched");
        }
    }
    assert_eq!(
        fx.store.list(&all_rows).unwrap().len(),
        rels.len(),
        "no row was added by the rescans"
    );
}

#[tokio::test(start_paused = true)]
async fn driven_by_tokio_paused_time() {
    let mut fx = fx();
    let path = fx.root.join(A);
    std::fs::write(&path, b"%PDF-1.4").unwrap();
    let start = tokio::time::Instant::now();
    fx.intake
        .on_hint(
            &mut fx.store,
            &FolderHint {
                folder: 0,
                hint: Hint::Changed(path),
            },
            start.into_std(),
        )
        .await
        .unwrap();
    let deadline = fx.intake.next_deadline().unwrap();
    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
    let promoted = fx
        .intake
        .promote_ready(&mut fx.store, tokio::time::Instant::now().into_std())
        .await
        .unwrap();
    assert_eq!(promoted.len(), 1);
    assert_eq!(start.elapsed(), QUIET);
}

#[test]
fn a_run_of_hints_is_looked_at_once_per_path_as_its_last_hint_says() {
    let mut fx = fx();
    let a = fx.root.join(A);
    let b = fx
        .root
        .join("00000000-0000-4000-8000-00000000acc0/business_verification/b.pdf");
    std::fs::write(&a, b"%PDF-1.4 a").unwrap();
    std::fs::write(&b, b"%PDF-1.4 b").unwrap();
    let hints = [
        Hint::Changed(a.clone()),
        Hint::CloseWrite(a.clone()),
        // b was closed, then written again: not complete yet
        Hint::CloseWrite(b.clone()),
        Hint::Changed(b.clone()),
        Hint::Rescan,
        Hint::Rescan,
    ]
    .map(|hint| FolderHint { folder: 0, hint });
    let now = fx.at(0);
    let (rescans, looked) = block_on(fx.intake.on_hints(&mut fx.store, &hints, now));
    looked.unwrap();
    assert_eq!(rescans, vec![0]);
    // a's last hint is its close: complete, stable at once
    assert_eq!(fx.state(A), Some(State::Stable));
    assert_eq!(fx.intake.waiting(), 1);
    assert!(fx.promote(0).is_empty());
    assert_eq!(
        fx.promote(1000),
        vec!["00000000-0000-4000-8000-00000000acc0/business_verification/b.pdf".to_owned()]
    );
}

#[test]
fn promote_stable_needs_the_same_stat() {
    let mut fx = crate::engine::testkit::fixture();
    std::fs::write(fx.root.join("a.pdf"), b"%PDF-1.4").unwrap();
    let scan = scan_folder(
        &fx.root,
        &crate::local::ignore::IgnoreSet::for_folder(&fx.folder).unwrap(),
    )
    .unwrap();
    reconcile_folder(&mut fx.store, &fx.folder, &scan).unwrap();
    let f = &scan.files[0];
    let key = fx.folder.key();
    let stale =
        fx.store
            .promote_stable(&key, &f.rel_bytes(), f.stat.size + 1, f.stat.mtime_ns, "x");
    assert_eq!(stale.unwrap(), None);
    let ok = fx
        .store
        .promote_stable(&key, &f.rel_bytes(), f.stat.size, f.stat.mtime_ns, "x")
        .unwrap();
    assert_eq!(ok.unwrap().state, State::Stable);
    // already stable: nothing to do
    let again = fx
        .store
        .promote_stable(&key, &f.rel_bytes(), f.stat.size, f.stat.mtime_ns, "x");
    assert_eq!(again.unwrap(), None);
    assert_eq!(
        fx.store.promote_stable(&key, b"nope", 1, 1, "x").unwrap(),
        None
    );
}

mod recorded_scans {
    use super::*;
    use crate::config::Mapping;
    use crate::local::ignore::IgnoreSet;

    fn touch(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn reconcile_records_scans_and_convention_problems() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(
            &root.join("00000000-0000-4000-8000-00000000acc1/business_verification/a.pdf"),
            b"%PDF-",
        );
        touch(&root.join("loose.pdf"), b"%PDF-");
        touch(
            &root.join("00000000-0000-4000-8000-00000000acc1/selfies/b.pdf"),
            b"%PDF-",
        );
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
            .find_live(
                &folder.key(),
                b"00000000-0000-4000-8000-00000000acc1/business_verification/a.pdf",
            )
            .unwrap()
            .unwrap();
        assert_eq!(good.target.account, "00000000-0000-4000-8000-00000000acc1");
        assert_eq!(good.target.purpose, "business_verification");
        let bad = store
            .find_live(
                &folder.key(),
                b"00000000-0000-4000-8000-00000000acc1/selfies/b.pdf",
            )
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
}
