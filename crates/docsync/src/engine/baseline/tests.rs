use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::*;
use crate::config::{Config, Env};
use crate::engine::intake::reconcile_folder;
use crate::model::State;
use crate::store::Change;

const DIR: &str = "00000000-0000-4000-8000-00000000acc0/business_verification";

struct Fx {
    _dir: tempfile::TempDir,
    root: PathBuf,
    folders: Vec<Folder>,
    store: Store,
}

fn fx() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("inbox");
    std::fs::create_dir_all(root.join(DIR)).unwrap();
    let config = Config::zero_config(&root, &Env::default()).unwrap();
    Fx {
        _dir: dir,
        root,
        folders: config.folders,
        store: Store::open_in_memory().unwrap(),
    }
}

impl Fx {
    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let rel = format!("{DIR}/{name}");
        std::fs::write(self.root.join(&rel), bytes).unwrap();
        rel
    }
    fn row(&self, rel: &str) -> Option<crate::store::FileRow> {
        self.store
            .find_live(&self.folders[0].key(), rel.as_bytes())
            .unwrap()
    }
    fn rescan(&mut self) {
        let ignore = IgnoreSet::for_folder(&self.folders[0]).unwrap();
        let scan = scan_folder(&self.folders[0].path, &ignore).unwrap();
        reconcile_folder(&mut self.store, &self.folders[0], &scan).unwrap();
    }
}

#[test]
fn files_present_are_skipped_once_and_new_ones_are_not() {
    let mut fx = fx();
    let a = fx.write("a.pdf", b"%PDF-1.4 a");
    let b = fx.write("b.pdf", b"%PDF-1.4 b");
    std::fs::write(fx.root.join("stray.pdf"), b"%PDF-1.4 stray").unwrap();
    let counts = baseline(&mut fx.store, &fx.folders).unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!((counts[0].found, counts[0].skipped), (3, 3));
    assert!(counts[0].exists);
    for rel in [&a, &b, &"stray.pdf".to_owned()] {
        let row = fx.row(rel).unwrap();
        assert_eq!(row.state, State::Skipped, "{rel}");
        assert_eq!(row.sha256, None, "never read");
        let events = fx.store.events(row.id).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].from_state, events[0].to_state),
            (None, State::Skipped)
        );
        assert_eq!(events[0].reason, BASELINE_REASON);
    }
    // idempotent: nothing more to skip
    let again = baseline(&mut fx.store, &fx.folders).unwrap();
    assert_eq!((again[0].found, again[0].skipped), (3, 0));
    // a file added after the baseline is new; the skipped ones stay skipped
    let c = fx.write("c.pdf", b"%PDF-1.4 c");
    fx.rescan();
    assert_eq!(fx.row(&c).unwrap().state, State::Discovered);
    assert_eq!(fx.row(&a).unwrap().state, State::Skipped);
    // a second baseline leaves a file docsync already knows as it is
    let again = baseline(&mut fx.store, &fx.folders).unwrap();
    assert_eq!((again[0].found, again[0].skipped), (4, 0));
    assert_eq!(fx.row(&c).unwrap().state, State::Discovered);
}

#[test]
fn a_missing_folder_is_reported_not_created() {
    let mut fx = fx();
    std::fs::remove_dir_all(&fx.root).unwrap();
    let counts = baseline(&mut fx.store, &fx.folders).unwrap();
    assert!(!counts[0].exists);
    assert_eq!(counts[0].skipped, 0);
    assert!(!fx.root.exists());
}

#[test]
fn a_skipped_file_that_changes_is_a_new_row() {
    let mut fx = fx();
    let a = fx.write("a.pdf", b"%PDF-1.4 a");
    baseline(&mut fx.store, &fx.folders).unwrap();
    let old = fx.row(&a).unwrap();
    fx.write("a.pdf", b"%PDF-1.4 a, longer now");
    fx.rescan();
    let new = fx.row(&a).unwrap();
    assert_ne!(new.id, old.id);
    assert_eq!(new.state, State::Discovered);
    assert_eq!(new.supersedes, Some(old.id));
    assert_eq!(
        fx.store.get(old.id).unwrap().unwrap().state,
        State::Superseded
    );
}

#[test]
fn retry_sends_a_skipped_file_only_when_named() {
    let mut fx = fx();
    let a = fx.write("a.pdf", b"%PDF-1.4 a");
    let b = fx.write("b.pdf", b"%PDF-1.4 b");
    baseline(&mut fx.store, &fx.folders).unwrap();
    let folder = fx.folders[0].key();
    // --all-failed leaves skipped files alone
    assert!(fx.store.retry(None, None, "all").unwrap().is_empty());
    let moved = fx
        .store
        .retry(Some(&folder), Some(a.as_bytes()), "docsync retry")
        .unwrap();
    assert_eq!(moved, vec![fx.row(&a).unwrap().id]);
    assert_eq!(fx.row(&a).unwrap().state, State::Stable);
    assert_eq!(fx.row(&b).unwrap().state, State::Skipped);
}

/// Set a file's modification time `days` days back.
pub(crate) fn age(path: &Path, days: u64) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let then = SystemTime::now() - Duration::from_secs(days * 86_400);
    file.set_modified(then).unwrap();
}

#[test]
fn max_age_skips_old_files_when_first_seen_and_never_again() {
    let mut fx = fx();
    fx.folders[0].max_age = Some(crate::model::MaxAge::parse("30d").unwrap());
    let old = fx.write("old.pdf", b"%PDF-1.4 old");
    age(&fx.root.join(&old), 40);
    let new = fx.write("new.pdf", b"%PDF-1.4 new");
    age(&fx.root.join(&new), 2);
    let scan = scan_folder(
        &fx.folders[0].path,
        &IgnoreSet::for_folder(&fx.folders[0]).unwrap(),
    )
    .unwrap();
    let summary = reconcile_folder(&mut fx.store, &fx.folders[0], &scan).unwrap();
    let row = fx.row(&old).unwrap();
    assert_eq!(row.state, State::Skipped);
    assert_eq!(summary.skipped, vec![row.id]);
    assert!(summary.stopped().contains(&row.id));
    assert_eq!(row.sha256, None);
    let reason = &fx.store.events(row.id).unwrap()[1].reason;
    assert!(
        reason.starts_with("older than max_age 30d (modified ")
            && reason.ends_with("): not sent; `docsync retry PATH` sends it"),
        "{reason}"
    );
    assert_eq!(fx.row(&new).unwrap().state, State::Discovered);
    // seen again (a restart's first scan): still skipped, no new event
    fx.rescan();
    let again = fx.row(&old).unwrap();
    assert_eq!((again.id, again.state), (row.id, State::Skipped));
    assert_eq!(fx.store.events(row.id).unwrap().len(), 2);
    // the machine: a skipped row goes nowhere but superseded, stable, deleted
    let err = fx
        .store
        .transition(
            row.id,
            State::Skipped,
            State::Uploading,
            &Change::because("x"),
        )
        .unwrap_err();
    assert!(
        matches!(err, crate::Error::IllegalTransition { .. }),
        "{err}"
    );
}
