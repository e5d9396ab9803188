//! What happened after an intent, recorded in the shared state: the server's
//! answer, a failed attempt, what a poll learned, a decided file moved. The
//! same composites as SQLite's (`store::composite`), each one transaction.
//!
//! The server's answer is taken from whichever instance sent the request,
//! even one whose lease was taken over meanwhile: it is the truth, and the
//! taker, reconciling, then finds the row no longer `uploading` and sends
//! nothing. Every other outcome of an `uploading` row needs its lease
//! ([`PgStore::transition`]).

use deadpool_postgres::Transaction;

use super::super::composite::{reused_id_reason, ServerAnswer, UploadAnswer, UploadAnswered};
use super::super::{Change, FileRow};
use super::rows::{self, columns};
use super::{PgResult, PgStore};
use crate::model::State;

impl PgStore {
    /// Row `id`'s upload is on the server (`uploading` → `pending`), and
    /// decided if the answer said so: both or neither.
    pub async fn record_on_server(&self, id: i64, answer: &ServerAnswer) -> PgResult<FileRow> {
        let what = "recording an upload";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let row = self.on_server_in(&tx, id, answer).await?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(row)
    }

    /// An upload's answer: `failed` when its file ID is already recorded for
    /// other content (on any host), else [`PgStore::record_on_server`].
    pub async fn record_upload_answer(&self, a: &UploadAnswer) -> PgResult<UploadAnswered> {
        let what = "recording an upload";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let sql = format!(
            "SELECT {} FROM files WHERE target = $1 AND account = $2 AND remote_id = $3 \
             AND id <> $4 AND id IS DISTINCT FROM $5 \
             AND (sha256 IS NULL OR sha256 IS DISTINCT FROM $6) ORDER BY id LIMIT 1",
            columns("")
        );
        let holder = tx
            .query_opt(
                &sql,
                &[
                    &a.target.kind.as_str(),
                    &a.target.account,
                    &a.remote_id,
                    &a.id,
                    &a.replaces,
                    &a.sha256,
                ],
            )
            .await
            .map_err(self.db(what))?;
        let answered = match holder {
            Some(r) => {
                let other = rows::read(&self.target, &r)?.row;
                let reason = reused_id_reason(&a.remote_id, a.request_id.as_deref(), &other);
                let change = Change {
                    last_error: Some(reason.clone()),
                    request_id: a.request_id.clone(),
                    ..Change::because(reason)
                };
                let row = rows::lock_row(&tx, &self.target, a.id).await?.row;
                rows::expect_state(&row, State::Uploading)?;
                self.apply_in(&tx, &row, State::Failed, &change).await?;
                UploadAnswered::IdHeldBy(other)
            }
            None => UploadAnswered::OnServer(self.on_server_in(&tx, a.id, &a.answer).await?),
        };
        tx.commit().await.map_err(self.db(what))?;
        Ok(answered)
    }

    /// A failed attempt of row `id` (`uploading`, its lease held): `decide`
    /// gets when the current run of attempts began (unix ms; `started` when
    /// no event says) and answers the state and change to record.
    pub async fn record_failed_attempt<T>(
        &self,
        id: i64,
        started: i64,
        decide: impl FnOnce(i64) -> (State, Change, T),
    ) -> PgResult<T> {
        let what = "recording a failed attempt";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let leased = rows::lock_row(&tx, &self.target, id).await?;
        rows::expect_state(&leased.row, State::Uploading)?;
        rows::check_lease(&leased, &self.instance, true)?;
        let since: Option<i64> = tx
            .query_one(
                "SELECT MAX(at) FROM events WHERE file_id = $1 \
                 AND ((from_state = 'stable' AND to_state = 'uploading') \
                      OR (from_state = 'failed' AND to_state = 'retrying'))",
                &[&id],
            )
            .await
            .map_err(self.db(what))?
            .try_get(0)
            .map_err(self.db(what))?;
        let (to, change, back) = decide(since.unwrap_or(started));
        self.apply_in(&tx, &leased.row, to, &change).await?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(back)
    }

    /// What the server says about row `id` (in `expected`), its state kept:
    /// the remote fields `change` carries, and an event.
    pub async fn update_remote(
        &self,
        id: i64,
        expected: State,
        change: &Change,
    ) -> PgResult<FileRow> {
        let what = "updating remote fields";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let row = rows::lock_row(&tx, &self.target, id).await?.row;
        rows::expect_state(&row, expected)?;
        let now = rows::db_now_ms(&tx, &self.target).await?;
        let pick = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
        let new = FileRow {
            remote_id: pick(&change.remote_id, &row.remote_id),
            remote_status: pick(&change.remote_status, &row.remote_status),
            decision_reason: pick(&change.decision_reason, &row.decision_reason),
            last_error: pick(&change.last_error, &row.last_error),
            last_request_id: pick(&change.request_id, &row.last_request_id),
            updated_at: now,
            ..row.clone()
        };
        tx.execute(
            "UPDATE files SET remote_id = $2, remote_status = $3, decision_reason = $4, \
             last_error = $5, last_request_id = $6, updated_at = $7 WHERE id = $1",
            &[
                &id,
                &new.remote_id,
                &new.remote_status,
                &new.decision_reason,
                &new.last_error,
                &new.last_request_id,
                &now,
            ],
        )
        .await
        .map_err(self.db(what))?;
        self.same_state_event(&tx, &row, now, &change.reason, change.request_id.as_deref())
            .await?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(new)
    }

    /// Docsync moved decided row `id`'s file to `moved_to` (relative to the
    /// folder root): recorded with an event, the state kept.
    pub async fn record_move(&self, id: i64, moved_to: &[u8], reason: &str) -> PgResult<FileRow> {
        let what = "recording a move";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        let row = rows::lock_row(&tx, &self.target, id).await?.row;
        if !matches!(row.state, State::Approved | State::Rejected) {
            rows::expect_state(&row, State::Approved)?;
        }
        let now = rows::db_now_ms(&tx, &self.target).await?;
        tx.execute(
            "UPDATE files SET moved_to = $2, updated_at = $3 WHERE id = $1",
            &[&id, &moved_to, &now],
        )
        .await
        .map_err(self.db(what))?;
        self.same_state_event(&tx, &row, now, reason, None).await?;
        tx.commit().await.map_err(self.db(what))?;
        Ok(FileRow {
            moved_to: Some(moved_to.to_vec()),
            updated_at: now,
            ..row
        })
    }

    async fn on_server_in(
        &self,
        tx: &Transaction<'_>,
        id: i64,
        answer: &ServerAnswer,
    ) -> PgResult<FileRow> {
        let row = rows::lock_row(tx, &self.target, id).await?.row;
        rows::expect_state(&row, State::Uploading)?;
        let pending = self
            .apply_in(tx, &row, State::Pending, &answer.on_server)
            .await?;
        match &answer.decided {
            Some((to, change)) => self.apply_in(tx, &pending, *to, change).await,
            None => Ok(pending),
        }
    }

    async fn same_state_event(
        &self,
        tx: &Transaction<'_>,
        row: &FileRow,
        now: i64,
        reason: &str,
        request_id: Option<&str>,
    ) -> PgResult<()> {
        let event = rows::Event {
            file_id: row.id,
            at: now,
            from: Some(row.state),
            to: row.state,
            reason,
            request_id,
            instance: &self.instance,
        };
        rows::insert_event(tx, &self.target, &event).await
    }
}
