//! The store interface's composites on SQLite: each is several store calls
//! that must hold together, run in one [`Store::atomically`] section, so a
//! failure in its second half leaves its first half undone. Each is what one
//! method of [`super::StateStore`] runs (and what the dry run and the tests run
//! on a [`Store`] directly): the engine decides, these record.

use std::path::PathBuf;

use super::{
    BeginUpload, Change, Event, FileRow, Holder, Observation, Observed, Page, State, Store,
    UploadIntent,
};
use crate::error::{Error, Result};
use crate::model::TargetKey;

/// What a server answer means for an uploaded row: it is on the server
/// (`uploading` → `pending` with `on_server`), and decided at once when the
/// answer came with a decision (`pending` → `decided.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAnswer {
    pub on_server: Change,
    pub decided: Option<(State, Change)>,
}

/// An upload's answer, with what the check of its file ID needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadAnswer {
    pub id: i64,
    pub target: TargetKey,
    /// The file ID the server answered with.
    pub remote_id: String,
    pub request_id: Option<String>,
    pub sha256: Option<String>,
    /// The row whose ID may come back (the image a changed image replaces).
    pub replaces: Option<i64>,
    pub answer: ServerAnswer,
}

/// What [`Store::record_upload_answer`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadAnswered {
    /// On the server (`pending`, or decided): the row as it ends.
    OnServer(FileRow),
    /// The server answered with an ID already recorded for this other row's
    /// other content: not trusted, the row is `failed`.
    IdHeldBy(FileRow),
}

/// The file as a fresh stat shows it just before its intent is written,
/// against the stat taken when it was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCheck {
    Unchanged,
    Gone,
    /// Another inode, size or mtime.
    Replaced,
}

/// What [`Store::begin_upload_checked`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntentStart {
    /// The file was unchanged: the intent's outcome, and for a started upload
    /// the remote ID of what the file's earlier content was uploaded as.
    Recorded {
        outcome: Box<BeginUpload>,
        superseded_remote_id: Option<String>,
    },
    /// The file changed or vanished since it was hashed: nothing written.
    FileChanged(FileCheck),
}

/// The upload stage's next rows: due to be hashed, then due for a retry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadQueue {
    pub rows: Vec<FileRow>,
    /// A limit was reached: more rows wait.
    pub full: bool,
}

/// A decided file moved into `approved/` or `rejected/`, and its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMove {
    pub id: i64,
    pub from: PathBuf,
    pub to: PathBuf,
    /// `to` relative to the folder root (what the row records).
    pub to_rel: Vec<u8>,
    pub reason: String,
}

impl FileMove {
    /// Move the file (its directory created); `false` when it was gone.
    pub(super) fn move_file(&self) -> Result<bool> {
        if let Some(dir) = self.to.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
        }
        match std::fs::rename(&self.from, &self.to) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("moving decided file", &self.from, e)),
        }
    }

    /// Undo [`FileMove::move_file`] after its record failed, so disk and
    /// database agree.
    pub(super) fn put_back(&self) {
        let _ = std::fs::rename(&self.to, &self.from);
    }
}

/// What to do with one file of a scan besides recording it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanVerdict {
    /// A new file older than its folder's `max_age`: `skipped`, with this reason.
    pub too_old: Option<String>,
    /// Not to be sent (no target, over the size limit): `invalid`, with this
    /// reason, when the row is fresh (new, changed, or still `discovered`).
    pub problem: Option<String>,
    /// The file was complete when it was seen: its writer had closed it, or
    /// its size and times were older than the quiet window already.
    pub held_still: bool,
}

impl ScanVerdict {
    /// Whether a new row for this file is `stable` at once (no quiet window
    /// to wait, nothing against it) instead of `discovered`.
    pub fn stable_at_once(&self) -> bool {
        self.held_still && self.too_old.is_none() && self.problem.is_none()
    }
}

/// The reason recorded on a row that is `stable` from its first sighting.
pub const COMPLETE_WHEN_SEEN: &str =
    "seen on disk, complete already (its writer closed it, or it held still for the quiet window)";

/// A file the intake found still for its quiet window, to promote to `stable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub folder: String,
    pub path: Vec<u8>,
    pub size: u64,
    pub mtime_ns: i64,
    pub reason: &'static str,
}

/// What [`Store::reconcile`] recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanRecorded {
    pub reconciled: super::Reconciled,
    /// Rows made `invalid` by this call.
    pub invalid: Vec<i64>,
    /// New rows made `skipped` by this call.
    pub skipped: Vec<i64>,
}

/// A row with the reason to show for it (the decision, the last error, or
/// its last transition's reason).
pub type Explained = (FileRow, String);

/// One file as the status page shows it: the row, its reason, its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDetail {
    pub row: FileRow,
    pub reason: String,
    pub events: Vec<Event>,
    /// The daemon holding the row's lease (PostgreSQL state); `None` on
    /// SQLite.
    pub holder: Option<Holder>,
}

/// What a retry of one file asked for by id did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOne {
    NoSuchFile,
    /// Not `failed` or `invalid`: nothing done.
    NotRetryable(FileRow),
    /// Sent again: the row as it was, and every row the retry moved.
    Retried {
        row: FileRow,
        ids: Vec<i64>,
    },
}

impl Store {
    /// Record one scan (or hint) of folder `folder` ([`Store::observe_batch`]),
    /// then apply each file's verdict (`verdicts[i]` for `observed[i]`): a new
    /// file too old is `skipped` (a file docsync already knows keeps its row),
    /// a fresh row with a problem is `invalid`. One atomic section.
    pub fn reconcile(
        &mut self,
        folder: &str,
        observed: &[Observed],
        complete: bool,
        verdicts: &[ScanVerdict],
    ) -> Result<ScanRecorded> {
        let stable_at_once: Vec<bool> = verdicts.iter().map(ScanVerdict::stable_at_once).collect();
        self.atomically(|s| {
            let reconciled = s.observe_batch_with(folder, observed, complete, &stable_at_once)?;
            let mut invalid = Vec::new();
            let mut skipped = Vec::new();
            for (obs, verdict) in reconciled.observations.iter().zip(verdicts) {
                if let (Observation::New { id }, Some(reason)) = (obs, &verdict.too_old) {
                    s.transition(
                        *id,
                        State::Discovered,
                        State::Skipped,
                        &Change::because(reason.as_str()),
                    )?;
                    skipped.push(*id);
                    continue;
                }
                let Some(reason) = &verdict.problem else {
                    continue;
                };
                let fresh = matches!(
                    obs,
                    Observation::New { .. }
                        | Observation::Changed { .. }
                        | Observation::Superseded { .. }
                        | Observation::Unchanged {
                            state: State::Discovered,
                            ..
                        }
                );
                if fresh {
                    s.transition(
                        obs.id(),
                        State::Discovered,
                        State::Invalid,
                        &Change::because(reason.as_str()),
                    )?;
                    invalid.push(obs.id());
                }
            }
            Ok(ScanRecorded {
                reconciled,
                invalid,
                skipped,
            })
        })
    }

    /// Confirm a file that held still: `discovered` → `stable` if the live row
    /// at `path` still has this size and mtime. Returns the stable row, or
    /// `None` if nothing changed (no live row, another state, or another size
    /// or mtime: the next observation restarts the window).
    pub fn promote_stable(
        &mut self,
        folder: &str,
        path: &[u8],
        size: u64,
        mtime_ns: i64,
        reason: &str,
    ) -> Result<Option<FileRow>> {
        self.atomically(|s| {
            let Some(row) = s.find_live(folder, path)? else {
                return Ok(None);
            };
            if row.state != State::Discovered || row.size != size || row.mtime_ns != mtime_ns {
                return Ok(None);
            }
            s.transition(
                row.id,
                State::Discovered,
                State::Stable,
                &Change::because(reason),
            )
            .map(Some)
        })
    }

    /// Mark the live row at `path` deleted ([`Store::mark_deleted`]); `true`
    /// when there was no live row at all (a directory may have gone with
    /// files inside: worth a rescan).
    pub fn mark_gone(&mut self, folder: &str, path: &[u8], reason: &str) -> Result<bool> {
        let deleted = self.mark_deleted(folder, path, reason)?;
        Ok(deleted.is_none() && self.find_live(folder, path)?.is_none())
    }

    /// Record that row `id`'s upload is on the server and, if the answer
    /// carried one, its decision: both transitions or neither.
    pub fn record_on_server(&mut self, id: i64, answer: &ServerAnswer) -> Result<FileRow> {
        self.atomically(|s| {
            let row = s.transition(id, State::Uploading, State::Pending, &answer.on_server)?;
            match &answer.decided {
                Some((to, change)) => s.transition(id, State::Pending, *to, change),
                None => Ok(row),
            }
        })
    }

    /// Record an upload's answer: first the check that its file ID is not
    /// already recorded for other content (then the row is `failed`, saying
    /// so), else [`Store::record_on_server`]; in one atomic section.
    pub fn record_upload_answer(&mut self, a: &UploadAnswer) -> Result<UploadAnswered> {
        self.atomically(|s| {
            let holder = s.remote_id_holder(
                &a.target,
                &a.remote_id,
                a.id,
                a.sha256.as_deref(),
                a.replaces,
            )?;
            match holder {
                Some(other) => {
                    let reason = reused_id_reason(&a.remote_id, a.request_id.as_deref(), &other);
                    let change = Change {
                        last_error: Some(reason.clone()),
                        request_id: a.request_id.clone(),
                        ..Change::because(reason)
                    };
                    s.transition(a.id, State::Uploading, State::Failed, &change)?;
                    Ok(UploadAnswered::IdHeldBy(other))
                }
                None => s
                    .record_on_server(a.id, &a.answer)
                    .map(UploadAnswered::OnServer),
            }
        })
    }

    /// A failed attempt of row `id` (`uploading`): `decide` is given when the
    /// current run of attempts began (unix ms, `started` when no event says),
    /// read in this section, and answers the state (`retrying` or `failed`)
    /// and change to record, and what to hand back.
    pub fn record_failed_attempt<T>(
        &mut self,
        id: i64,
        started: i64,
        decide: impl FnOnce(i64) -> (State, Change, T),
    ) -> Result<T> {
        self.atomically(|s| {
            let since = s.attempts_since(id)?.unwrap_or(started);
            let (to, change, back) = decide(since);
            s.transition(id, State::Uploading, to, &change)?;
            Ok(back)
        })
    }

    /// The upload intent of row `id` (in `from`) when `file` says the file is
    /// unchanged since it was hashed ([`Store::begin_upload`]), with the remote
    /// ID of the row it supersedes; nothing written otherwise.
    pub fn begin_upload_checked(
        &mut self,
        id: i64,
        from: State,
        intent: &UploadIntent,
        file: FileCheck,
    ) -> Result<IntentStart> {
        if file != FileCheck::Unchanged {
            return Ok(IntentStart::FileChanged(file));
        }
        self.atomically(|s| {
            let outcome = s.begin_upload(id, from, intent)?;
            let superseded_remote_id = match &outcome {
                BeginUpload::Started(row) => match row.supersedes {
                    Some(old) => s.get(old)?.and_then(|o| o.remote_id),
                    None => None,
                },
                _ => None,
            };
            Ok(IntentStart::Recorded {
                outcome: Box::new(outcome),
                superseded_remote_id,
            })
        })
    }

    /// The rows due to be hashed, then those due for a retry at `now`, up to
    /// `limit` of each.
    pub fn upload_queue(&self, now: i64, limit: u32) -> Result<UploadQueue> {
        let mut rows = self.due_for_hashing(limit)?;
        let mut full = rows.len() >= limit as usize;
        let retries = self.due_for_retry(now, limit)?;
        full = full || retries.len() >= limit as usize;
        rows.extend(retries);
        Ok(UploadQueue { rows, full })
    }

    /// Move a decided file on disk and record the move ([`Store::record_move`])
    /// under the writer, so no scan is recorded between the two; the file is
    /// put back if the record fails. `false` when the file was gone already.
    pub fn move_and_record(&mut self, m: &FileMove) -> Result<bool> {
        if !m.move_file()? {
            return Ok(false);
        }
        if let Err(e) = self.record_move(m.id, &m.to_rel, &m.reason) {
            m.put_back();
            return Err(e);
        }
        Ok(true)
    }

    /// The reason to show for a row: the decision, the last error, or the
    /// reason of its last transition.
    pub fn reason_shown(&self, row: &FileRow) -> Result<String> {
        if let Some(r) = recorded_reason(row) {
            return Ok(r);
        }
        Ok(self
            .events(row.id)?
            .last()
            .map(|e| e.reason.clone())
            .unwrap_or_default())
    }

    /// A page of rows in `states` ([`Store::page_in_states`]), each with its
    /// reason, and the next page's `after`.
    pub fn explained_page(
        &self,
        states: &[State],
        folder: Option<&str>,
        after: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<Explained>, Option<i64>)> {
        let page: Page = self.page_in_states(states, folder, after, limit)?;
        let mut rows = Vec::with_capacity(page.rows.len());
        for row in page.rows {
            let why = self.reason_shown(&row)?;
            rows.push((row, why));
        }
        Ok((rows, page.next_after))
    }

    /// Row `id`, its reason and its events; `None` without such a row.
    pub fn file_detail(&self, id: i64) -> Result<Option<FileDetail>> {
        let Some(row) = self.get(id)? else {
            return Ok(None);
        };
        let events = self.events(id)?;
        let reason = self.reason_shown(&row)?;
        Ok(Some(FileDetail {
            row,
            reason,
            events,
            holder: None,
        }))
    }

    /// `docsync retry` of the one row `id`, only if it is `failed` or `invalid`.
    pub fn retry_one(&mut self, id: i64, reason: &str) -> Result<RetryOne> {
        self.atomically(|s| {
            let Some(row) = s.get(id)? else {
                return Ok(RetryOne::NoSuchFile);
            };
            if !matches!(row.state, State::Failed | State::Invalid) {
                return Ok(RetryOne::NotRetryable(row));
            }
            let ids = s.retry(Some(&row.folder), Some(&row.path), reason)?;
            Ok(RetryOne::Retried { row, ids })
        })
    }
}

/// The decision or the last error, when the row has one: the reason shown
/// first, before its last transition's (either backend).
pub(super) fn recorded_reason(row: &FileRow) -> Option<String> {
    [&row.decision_reason, &row.last_error]
        .into_iter()
        .flatten()
        .find(|r| !r.is_empty())
        .cloned()
}

/// The reason recorded when the server answers an upload with an ID it gave
/// before for `other`'s content.
pub(super) fn reused_id_reason(
    remote_id: &str,
    request_id: Option<&str>,
    other: &FileRow,
) -> String {
    format!(
        "the server answered with file ID {} (request {}), which is already recorded \
         for {} with other content; not marked pending: check the server, then \
         `docsync retry`",
        remote_id,
        request_id.unwrap_or("without an ID"),
        other.path_display()
    )
}
