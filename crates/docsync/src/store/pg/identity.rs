//! Which API the shared rows were synced against (SQLite's `identity`): one
//! row, checked by every daemon at start under a lock, so two daemons
//! starting together with different APIs cannot both record theirs.

use super::{PgError, PgResult, PgStore};
use crate::model::ApiIdentity;
use crate::store::identity::{REMOTE, SANDBOX};

/// The advisory lock key of the API check ("docsync api" in ASCII).
const API_LOCK: i64 = 0x0064_6f63_6170_6900;

const SELECT_IDENTITY: &str =
    "SELECT kind, moov_url, attachments_url FROM api_identity WHERE id = 1";

/// What [`PgStore::check_api`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiCheck {
    /// The rows are this API's (recorded now if nothing was).
    Same,
    /// The rows were synced against `recorded`, another API; nothing changed.
    Changed { recorded: ApiIdentity },
    /// The rows were `recorded`'s; `current` is recorded now, the rows kept
    /// (`--keep-history`).
    KeptHistory { recorded: ApiIdentity },
}

impl PgStore {
    /// The API the shared rows were synced against; `None` until a daemon
    /// recorded one.
    pub async fn api_identity(&self) -> PgResult<Option<ApiIdentity>> {
        let what = "reading the API identity";
        let client = self.client(what).await?;
        let row = client
            .query_opt(SELECT_IDENTITY, &[])
            .await
            .map_err(self.db(what))?;
        row.map(|r| self.identity_of(&r)).transpose()
    }

    /// Compare the recorded API with `current` (recording it when nothing
    /// was, or the merge of both when they agree), in one transaction under
    /// a lock; with `keep_history`, another API is recorded over the old one.
    pub async fn check_api(&self, current: &ApiIdentity, keep_history: bool) -> PgResult<ApiCheck> {
        let what = "checking the API identity";
        let mut client = self.client(what).await?;
        let tx = client.transaction().await.map_err(self.db(what))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&API_LOCK])
            .await
            .map_err(self.db(what))?;
        let row = tx
            .query_opt(SELECT_IDENTITY, &[])
            .await
            .map_err(self.db(what))?;
        let recorded = row.map(|r| self.identity_of(&r)).transpose()?;
        let (write, answer) = match recorded {
            None => (Some(current.clone()), ApiCheck::Same),
            Some(recorded) => match current.merged_with(&recorded) {
                Some(merged) if merged == recorded => (None, ApiCheck::Same),
                Some(merged) => (Some(merged), ApiCheck::Same),
                None if keep_history => (Some(current.clone()), ApiCheck::KeptHistory { recorded }),
                None => (None, ApiCheck::Changed { recorded }),
            },
        };
        if let Some(identity) = write {
            let (kind, moov, attachments) = match &identity {
                ApiIdentity::Sandbox => (SANDBOX, None, None),
                ApiIdentity::Remote { moov, attachments } => {
                    (REMOTE, moov.as_deref(), attachments.as_deref())
                }
            };
            tx.execute(
                "INSERT INTO api_identity (id, kind, moov_url, attachments_url, recorded_at) \
                 VALUES (1, $1, $2, $3, docsync_now_ms()) \
                 ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, \
                 moov_url = EXCLUDED.moov_url, attachments_url = EXCLUDED.attachments_url, \
                 recorded_at = EXCLUDED.recorded_at",
                &[&kind, &moov, &attachments],
            )
            .await
            .map_err(self.db("recording the API identity"))?;
        }
        tx.commit().await.map_err(self.db(what))?;
        Ok(answer)
    }

    fn identity_of(&self, r: &tokio_postgres::Row) -> PgResult<ApiIdentity> {
        let what = "reading the API identity";
        let kind: String = r.try_get(0).map_err(self.db(what))?;
        match kind.as_str() {
            SANDBOX => Ok(ApiIdentity::Sandbox),
            REMOTE => Ok(ApiIdentity::Remote {
                moov: r.try_get(1).map_err(self.db(what))?,
                attachments: r.try_get(2).map_err(self.db(what))?,
            }),
            other => Err(PgError::BadRow {
                target: self.target.clone(),
                id: 1,
                message: format!("api_identity: unknown API kind `{other}`"),
            }),
        }
    }
}
