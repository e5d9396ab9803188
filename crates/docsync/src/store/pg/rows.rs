//! Rows read back from PostgreSQL (a [`FileRow`] and its lease), and the one
//! place a state changes: the row and its event written in the caller's
//! transaction, the change itself computed as SQLite's store computes it.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::super::{transitioned, Change, FileRow, IllegalMove, State};
use super::lease::{Lease, LeasedRow};
use super::{PgError, PgResult};
use crate::model::TargetKey;

/// The columns every file query selects, each prefixed with `prefix` (a table
/// alias and its dot, or nothing); the lease's expiry in unix milliseconds.
pub(super) fn columns(prefix: &str) -> String {
    [
        "id",
        "folder",
        "path",
        "target",
        "account",
        "purpose",
        "size",
        "mtime_ns",
        "sha256",
        "state",
        "remote_id",
        "remote_status",
        "decision_reason",
        "attempts",
        "next_attempt_at",
        "last_error",
        "last_request_id",
        "remote_name",
        "supersedes",
        "moved_to",
        "created_at",
        "updated_at",
        "lease_owner",
    ]
    .iter()
    .map(|c| format!("{prefix}{c}"))
    .chain(std::iter::once(format!(
        "(extract(epoch FROM {prefix}lease_expires_at) * 1000)::bigint"
    )))
    .collect::<Vec<_>>()
    .join(", ")
}

/// A row selected with [`columns`].
pub(super) fn read(target: &str, row: &Row) -> PgResult<LeasedRow> {
    let id: i64 = row.try_get(0).map_err(bad(target, "reading a file"))?;
    let bad_row = |message: String| PgError::BadRow {
        target: target.to_owned(),
        id,
        message,
    };
    let get = |e| PgError::Db {
        target: target.to_owned(),
        what: "reading a file",
        source: e,
    };
    let kind: String = row.try_get(3).map_err(get)?;
    let state: String = row.try_get(9).map_err(get)?;
    let size: i64 = row.try_get(6).map_err(get)?;
    let attempts: i32 = row.try_get(13).map_err(get)?;
    let owner: Option<String> = row.try_get(22).map_err(get)?;
    let expires: Option<i64> = row.try_get(23).map_err(get)?;
    let file = FileRow {
        id,
        folder: row.try_get(1).map_err(get)?,
        path: row.try_get(2).map_err(get)?,
        target: TargetKey {
            kind: kind.parse().map_err(bad_row)?,
            account: row.try_get(4).map_err(get)?,
            purpose: row.try_get(5).map_err(get)?,
        },
        size: u64::try_from(size).unwrap_or(0),
        mtime_ns: row.try_get(7).map_err(get)?,
        sha256: row.try_get(8).map_err(get)?,
        state: state.parse().map_err(bad_row)?,
        remote_id: row.try_get(10).map_err(get)?,
        remote_status: row.try_get(11).map_err(get)?,
        decision_reason: row.try_get(12).map_err(get)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: row.try_get(14).map_err(get)?,
        last_error: row.try_get(15).map_err(get)?,
        last_request_id: row.try_get(16).map_err(get)?,
        remote_name: row.try_get(17).map_err(get)?,
        supersedes: row.try_get(18).map_err(get)?,
        moved_to: row.try_get(19).map_err(get)?,
        created_at: row.try_get(20).map_err(get)?,
        updated_at: row.try_get(21).map_err(get)?,
    };
    let lease = match (owner, expires) {
        (Some(owner), Some(expires_at_ms)) => Some(Lease {
            owner,
            expires_at_ms,
        }),
        _ => None,
    };
    Ok(LeasedRow {
        row: file,
        lease,
        expired: false,
    })
}

fn bad(target: &str, what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    let target = target.to_owned();
    move |source| PgError::Db {
        target,
        what,
        source,
    }
}

/// Row `id`, locked for the rest of `tx` (`FOR UPDATE`), with whether its lease
/// expired by the database's clock.
pub(super) async fn lock_row(tx: &Transaction<'_>, target: &str, id: i64) -> PgResult<LeasedRow> {
    let what = "reading a file";
    let sql = format!(
        "SELECT {}, lease_expires_at <= now() FROM files WHERE id = $1 FOR UPDATE",
        columns("")
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(bad(target, what))?;
    let row = tx
        .query_opt(&stmt, &[&id])
        .await
        .map_err(bad(target, what))?
        .ok_or(PgError::NoSuchFile { id })?;
    let mut leased = read(target, &row)?;
    leased.expired = row
        .try_get::<_, Option<bool>>(24)
        .map_err(bad(target, what))?
        .unwrap_or(false);
    Ok(leased)
}

/// [`PgError::StaleState`] unless `row` is in `expected`.
pub(super) fn expect_state(row: &FileRow, expected: State) -> PgResult<()> {
    if row.state == expected {
        Ok(())
    } else {
        Err(PgError::StaleState {
            id: row.id,
            expected,
            actual: row.state,
        })
    }
}

/// [`PgError::LeaseLost`] when `instance` may not change the row: another
/// instance holds an unexpired lease on it, or (`must_hold`) this instance does
/// not hold its lease.
pub(super) fn check_lease(leased: &LeasedRow, instance: &str, must_hold: bool) -> PgResult<()> {
    let mine = leased.lease.as_ref().is_some_and(|l| l.owner == instance);
    let held_by_other = leased.lease.is_some() && !mine && !leased.expired;
    if held_by_other || (must_hold && !mine) {
        return Err(lease_lost(leased, instance));
    }
    Ok(())
}

/// The error for a row whose lease `instance` does not hold.
pub(super) fn lease_lost(leased: &LeasedRow, instance: &str) -> PgError {
    let holder = match &leased.lease {
        None => "not leased".to_owned(),
        Some(l) if leased.expired => format!(
            "{}'s lease expired at {} (unix ms)",
            l.owner, l.expires_at_ms
        ),
        Some(l) => format!("held by {} until {} (unix ms)", l.owner, l.expires_at_ms),
    };
    PgError::LeaseLost {
        id: leased.row.id,
        instance: instance.to_owned(),
        holder,
    }
}

/// Move `row` to `to` with `change`: the row (its lease released unless it
/// becomes `uploading`, which keeps this instance's) and its event, in `tx`.
pub(super) async fn apply(
    tx: &Transaction<'_>,
    target: &str,
    instance: &str,
    row: &FileRow,
    to: State,
    change: &Change,
) -> PgResult<FileRow> {
    let what = "recording a transition";
    let now = db_now_ms(tx, target).await?;
    let new = transitioned(row, to, change, now).map_err(|IllegalMove { from, to }| {
        PgError::IllegalTransition {
            id: row.id,
            path: crate::model::text::escape(&row.path).into_owned(),
            from,
            to,
        }
    })?;
    // the row and its event in one statement: one round trip (a transition
    // under an account's lock holds it for each)
    let stmt = tx
        .prepare_cached(
            "WITH u AS (UPDATE files SET size = $2, mtime_ns = $3, sha256 = $4, state = $5, \
             remote_id = $6, remote_status = $7, decision_reason = $8, attempts = $9, \
             next_attempt_at = $10, last_error = $11, last_request_id = $12, \
             remote_name = $13, updated_at = $14, \
             lease_owner = CASE WHEN $5 = 'uploading' THEN lease_owner END, \
             lease_expires_at = CASE WHEN $5 = 'uploading' THEN lease_expires_at END \
             WHERE id = $1 RETURNING id) \
             INSERT INTO events (file_id, at, from_state, to_state, reason, request_id, instance) \
             SELECT id, $14, $15, $5, $16, $17, $18 FROM u",
        )
        .await
        .map_err(bad(target, what))?;
    let size = i64::try_from(new.size).unwrap_or(i64::MAX);
    let attempts = i32::try_from(new.attempts).unwrap_or(i32::MAX);
    tx.execute(
        &stmt,
        &[
            &new.id,
            &size,
            &new.mtime_ns,
            &new.sha256,
            &new.state.as_str(),
            &new.remote_id,
            &new.remote_status,
            &new.decision_reason,
            &attempts,
            &new.next_attempt_at,
            &new.last_error,
            &new.last_request_id,
            &new.remote_name,
            &now,
            &row.state.as_str(),
            &change.reason,
            &change.request_id,
            &instance,
        ],
    )
    .await
    .map_err(bad(target, what))?;
    Ok(new)
}

/// An `events` row to write.
pub(super) struct Event<'a> {
    pub file_id: i64,
    pub at: i64,
    pub from: Option<State>,
    pub to: State,
    pub reason: &'a str,
    pub request_id: Option<&'a str>,
    pub instance: &'a str,
}

pub(super) async fn insert_event(
    tx: &Transaction<'_>,
    target: &str,
    event: &Event<'_>,
) -> PgResult<()> {
    let what = "recording an event";
    let stmt = tx
        .prepare_cached(
            "INSERT INTO events (file_id, at, from_state, to_state, reason, request_id, instance) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await
        .map_err(bad(target, what))?;
    tx.execute(
        &stmt,
        &[
            &event.file_id,
            &event.at,
            &event.from.map(State::as_str),
            &event.to.as_str(),
            &event.reason,
            &event.request_id,
            &event.instance,
        ],
    )
    .await
    .map_err(bad(target, what))?;
    Ok(())
}

/// The database's clock (the transaction's start) in unix milliseconds: every
/// time the PostgreSQL store writes comes from it, so hosts agree.
pub(super) async fn db_now_ms(tx: &Transaction<'_>, target: &str) -> PgResult<i64> {
    let what = "reading the database's clock";
    let row = tx
        .query_one("SELECT docsync_now_ms()", &[])
        .await
        .map_err(bad(target, what))?;
    row.try_get(0).map_err(bad(target, what))
}
