//! Metadata in SQLite (WAL). All methods are blocking: call them from
//! `spawn_blocking` (see `AppState::db`), never while holding an async lock.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use rusqlite_migration::{Migrations, M};

use crate::error::{Error, Result};

const MIGRATION_SLICE: &[M<'static>] = &[M::up(include_str!("../migrations/001_initial.sql"))];

/// The embedded, append-only migrations.
pub fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATION_SLICE)
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn opt_ts(s: Option<String>) -> rusqlite::Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

/// A Moov file.
#[derive(Clone, Debug)]
pub struct FileRow {
    pub file_id: String,
    pub account_id: String,
    pub file_name: String,
    pub file_purpose: String,
    pub file_status: String,
    pub metadata: String,
    pub decision_reason: Option<String>,
    pub size_bytes: i64,
    pub sha256: String,
    pub content_type: String,
    pub created_on: DateTime<Utc>,
    pub updated_on: DateTime<Utc>,
}

impl FileRow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(FileRow {
            file_id: r.get(0)?,
            account_id: r.get(1)?,
            file_name: r.get(2)?,
            file_purpose: r.get(3)?,
            file_status: r.get(4)?,
            metadata: r.get(5)?,
            decision_reason: r.get(6)?,
            size_bytes: r.get(7)?,
            sha256: r.get(8)?,
            content_type: r.get(9)?,
            created_on: parse_ts(&r.get::<_, String>(10)?)?,
            updated_on: parse_ts(&r.get::<_, String>(11)?)?,
        })
    }
}

const FILE_COLS: &str = "file_id, account_id, file_name, file_purpose, file_status, metadata, \
    decision_reason, size_bytes, sha256, content_type, created_on, updated_on";

/// A Moov image.
#[derive(Clone, Debug)]
pub struct ImageRow {
    pub image_id: String,
    pub account_id: String,
    pub public_id: String,
    pub alt_text: Option<String>,
    pub sha256: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub created_on: DateTime<Utc>,
    pub updated_on: DateTime<Utc>,
    pub disabled_on: Option<DateTime<Utc>>,
}

impl ImageRow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ImageRow {
            image_id: r.get(0)?,
            account_id: r.get(1)?,
            public_id: r.get(2)?,
            alt_text: r.get(3)?,
            sha256: r.get(4)?,
            content_type: r.get(5)?,
            size_bytes: r.get(6)?,
            created_on: parse_ts(&r.get::<_, String>(7)?)?,
            updated_on: parse_ts(&r.get::<_, String>(8)?)?,
            disabled_on: opt_ts(r.get(9)?)?,
        })
    }
}

const IMAGE_COLS: &str = "image_id, account_id, public_id, alt_text, sha256, content_type, \
    size_bytes, created_on, updated_on, disabled_on";

/// An OAuth token pair.
#[derive(Clone, Debug)]
pub struct TokenRow {
    pub access_token: String,
    pub refresh_token: String,
    pub scope: String,
    pub expires_at: DateTime<Utc>,
    pub refresh_expires_at: DateTime<Utc>,
    pub revoked: bool,
}

impl TokenRow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(TokenRow {
            access_token: r.get(0)?,
            refresh_token: r.get(1)?,
            scope: r.get(2)?,
            expires_at: parse_ts(&r.get::<_, String>(3)?)?,
            refresh_expires_at: parse_ts(&r.get::<_, String>(4)?)?,
            revoked: r.get(5)?,
        })
    }
}

/// An attachment (signed-URL upload).
#[derive(Clone, Debug)]
pub struct AttachmentRow {
    pub file_id: String,
    pub user_id: String,
    pub filename: String,
    pub persist: bool,
    pub token: String,
    pub token_expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub uploaded_at: Option<DateTime<Utc>>,
    pub sha256: Option<String>,
    pub size_bytes: Option<i64>,
    pub content_type: Option<String>,
    pub infected: bool,
}

impl AttachmentRow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(AttachmentRow {
            file_id: r.get(0)?,
            user_id: r.get(1)?,
            filename: r.get(2)?,
            persist: r.get(3)?,
            token: r.get(4)?,
            token_expires_at: parse_ts(&r.get::<_, String>(5)?)?,
            created_at: parse_ts(&r.get::<_, String>(6)?)?,
            uploaded_at: opt_ts(r.get(7)?)?,
            sha256: r.get(8)?,
            size_bytes: r.get(9)?,
            content_type: r.get(10)?,
            infected: r.get(11)?,
        })
    }
}

const ATT_COLS: &str = "file_id, user_id, filename, persist, token, token_expires_at, created_at, \
    uploaded_at, sha256, size_bytes, content_type, infected";

/// Outcome of an insert guarded by a limit or a uniqueness rule.
#[derive(Debug, PartialEq, Eq)]
pub enum Guarded {
    Done,
    LimitReached,
    Duplicate,
    NotFound,
}

/// The sandbox database: one connection behind a mutex (short critical sections).
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        // it holds tokens: readable by its owner only (SQLite gives the -wal
        // and -shm files the database's mode)
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(Error::io(path))?;
        }
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations().to_latest(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` with the connection (blocking; call from `spawn_blocking`).
    pub fn with<R>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>) -> Result<R> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| Error::Config("database mutex poisoned".into()))?;
        Ok(f(&mut guard)?)
    }
}

// ---- files ---------------------------------------------------------------

pub fn insert_file(
    conn: &mut Connection,
    f: &FileRow,
    max_per_account: i64,
) -> rusqlite::Result<Guarded> {
    let tx = conn.transaction()?;
    let n: i64 = tx.query_row(
        "SELECT COUNT(*) FROM files WHERE account_id = ?1",
        [&f.account_id],
        |r| r.get(0),
    )?;
    if n >= max_per_account {
        return Ok(Guarded::LimitReached);
    }
    tx.execute(
        &format!("INSERT INTO files ({FILE_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)"),
        params![
            f.file_id,
            f.account_id,
            f.file_name,
            f.file_purpose,
            f.file_status,
            f.metadata,
            f.decision_reason,
            f.size_bytes,
            f.sha256,
            f.content_type,
            ts(f.created_on),
            ts(f.updated_on)
        ],
    )?;
    tx.commit()?;
    Ok(Guarded::Done)
}

pub fn list_files(conn: &Connection, account_id: &str) -> rusqlite::Result<Vec<FileRow>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {FILE_COLS} FROM files WHERE account_id = ?1 ORDER BY created_on, rowid"
    ))?;
    let rows = st.query_map([account_id], FileRow::from_row)?;
    rows.collect()
}

pub fn get_file(
    conn: &Connection,
    account_id: &str,
    file_id: &str,
) -> rusqlite::Result<Option<FileRow>> {
    conn.query_row(
        &format!("SELECT {FILE_COLS} FROM files WHERE account_id = ?1 AND file_id = ?2"),
        [account_id, file_id],
        FileRow::from_row,
    )
    .optional()
}

pub fn set_file_decision(conn: &Connection, f: &FileRow) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE files SET file_status = ?2, decision_reason = ?3, updated_on = ?4 \
         WHERE file_id = ?1 AND file_status = 'pending'",
        params![
            f.file_id,
            f.file_status,
            f.decision_reason,
            ts(f.updated_on)
        ],
    )?;
    Ok(())
}

// ---- images --------------------------------------------------------------

fn image_duplicate(
    conn: &Connection,
    account_id: &str,
    sha256: &str,
    except: &str,
) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM images WHERE account_id = ?1 AND sha256 = ?2 \
         AND disabled_on IS NULL AND image_id != ?3)",
        [account_id, sha256, except],
        |r| r.get(0),
    )
}

pub fn insert_image(
    conn: &mut Connection,
    i: &ImageRow,
    max_per_account: i64,
) -> rusqlite::Result<Guarded> {
    let tx = conn.transaction()?;
    if image_duplicate(&tx, &i.account_id, &i.sha256, "")? {
        return Ok(Guarded::Duplicate);
    }
    let n: i64 = tx.query_row(
        "SELECT COUNT(*) FROM images WHERE account_id = ?1 AND disabled_on IS NULL",
        [&i.account_id],
        |r| r.get(0),
    )?;
    if n >= max_per_account {
        return Ok(Guarded::LimitReached);
    }
    tx.execute(
        &format!("INSERT INTO images ({IMAGE_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"),
        params![
            i.image_id,
            i.account_id,
            i.public_id,
            i.alt_text,
            i.sha256,
            i.content_type,
            i.size_bytes,
            ts(i.created_on),
            ts(i.updated_on),
            i.disabled_on.map(ts)
        ],
    )?;
    tx.commit()?;
    Ok(Guarded::Done)
}

/// New bytes (and maybe metadata) for an image.
#[derive(Debug)]
pub struct Replacement {
    pub sha256: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// `None` keeps the metadata.
    pub alt_text: Option<Option<String>>,
    pub now: DateTime<Utc>,
}

/// Replaces an image's bytes (and its metadata when given).
pub fn replace_image(
    conn: &mut Connection,
    account_id: &str,
    image_id: &str,
    r: Replacement,
) -> rusqlite::Result<Guarded> {
    let tx = conn.transaction()?;
    if get_image(&tx, account_id, image_id)?.is_none() {
        return Ok(Guarded::NotFound);
    }
    if image_duplicate(&tx, account_id, &r.sha256, image_id)? {
        return Ok(Guarded::Duplicate);
    }
    tx.execute(
        "UPDATE images SET sha256 = ?2, content_type = ?3, size_bytes = ?4, updated_on = ?5 \
         WHERE image_id = ?1",
        params![image_id, r.sha256, r.content_type, r.size_bytes, ts(r.now)],
    )?;
    if let Some(alt) = r.alt_text {
        tx.execute(
            "UPDATE images SET alt_text = ?2 WHERE image_id = ?1",
            params![image_id, alt],
        )?;
    }
    tx.commit()?;
    Ok(Guarded::Done)
}

pub fn list_images(
    conn: &Connection,
    account_id: &str,
    skip: i64,
    count: i64,
) -> rusqlite::Result<Vec<ImageRow>> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {IMAGE_COLS} FROM images WHERE account_id = ?1 ORDER BY created_on, rowid \
         LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = st.query_map(params![account_id, count, skip], ImageRow::from_row)?;
    rows.collect()
}

pub fn get_image(
    conn: &Connection,
    account_id: &str,
    image_id: &str,
) -> rusqlite::Result<Option<ImageRow>> {
    conn.query_row(
        &format!("SELECT {IMAGE_COLS} FROM images WHERE account_id = ?1 AND image_id = ?2"),
        [account_id, image_id],
        ImageRow::from_row,
    )
    .optional()
}

pub fn get_image_by_public_id(
    conn: &Connection,
    public_id: &str,
) -> rusqlite::Result<Option<ImageRow>> {
    conn.query_row(
        &format!("SELECT {IMAGE_COLS} FROM images WHERE public_id = ?1"),
        [public_id],
        ImageRow::from_row,
    )
    .optional()
}

pub fn disable_image(
    conn: &Connection,
    account_id: &str,
    image_id: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE images SET disabled_on = COALESCE(disabled_on, ?3), updated_on = ?3 \
         WHERE account_id = ?1 AND image_id = ?2",
        params![account_id, image_id, ts(now)],
    )?;
    Ok(n > 0)
}

pub fn set_alt_text(
    conn: &Connection,
    account_id: &str,
    image_id: &str,
    alt_text: Option<&str>,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE images SET alt_text = ?3, updated_on = ?4 WHERE account_id = ?1 AND image_id = ?2",
        params![account_id, image_id, alt_text, ts(now)],
    )?;
    Ok(n > 0)
}

// ---- tokens --------------------------------------------------------------

pub fn insert_token(conn: &Connection, t: &TokenRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO tokens (access_token, refresh_token, scope, expires_at, refresh_expires_at, revoked) \
         VALUES (?1,?2,?3,?4,?5,?6)",
        params![
            t.access_token,
            t.refresh_token,
            t.scope,
            ts(t.expires_at),
            ts(t.refresh_expires_at),
            t.revoked
        ],
    )?;
    Ok(())
}

const TOKEN_COLS: &str =
    "access_token, refresh_token, scope, expires_at, refresh_expires_at, revoked";

pub fn token_by_access(conn: &Connection, access: &str) -> rusqlite::Result<Option<TokenRow>> {
    conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLS} FROM tokens WHERE access_token = ?1"
    ))?
    .query_row([access], TokenRow::from_row)
    .optional()
}

pub fn token_by_refresh(conn: &Connection, refresh: &str) -> rusqlite::Result<Option<TokenRow>> {
    conn.query_row(
        &format!("SELECT {TOKEN_COLS} FROM tokens WHERE refresh_token = ?1"),
        [refresh],
        TokenRow::from_row,
    )
    .optional()
}

pub fn revoke_token(conn: &Connection, access: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE tokens SET revoked = 1 WHERE access_token = ?1",
        [access],
    )?;
    Ok(())
}

// ---- attachments ---------------------------------------------------------

pub fn insert_attachment(conn: &Connection, a: &AttachmentRow) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO attachments ({ATT_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)"
        ),
        params![
            a.file_id,
            a.user_id,
            a.filename,
            a.persist,
            a.token,
            ts(a.token_expires_at),
            ts(a.created_at),
            a.uploaded_at.map(ts),
            a.sha256,
            a.size_bytes,
            a.content_type,
            a.infected
        ],
    )?;
    Ok(())
}

pub fn attachment(conn: &Connection, file_id: &str) -> rusqlite::Result<Option<AttachmentRow>> {
    conn.query_row(
        &format!("SELECT {ATT_COLS} FROM attachments WHERE file_id = ?1"),
        [file_id],
        AttachmentRow::from_row,
    )
    .optional()
}

pub fn attachment_by_token(
    conn: &Connection,
    token: &str,
) -> rusqlite::Result<Option<AttachmentRow>> {
    conn.query_row(
        &format!("SELECT {ATT_COLS} FROM attachments WHERE token = ?1"),
        [token],
        AttachmentRow::from_row,
    )
    .optional()
}

/// Records the upload unless one already happened; returns whether it was recorded.
pub fn mark_uploaded(
    conn: &Connection,
    file_id: &str,
    sha256: &str,
    size: i64,
    content_type: &str,
    infected: bool,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "UPDATE attachments SET uploaded_at = ?2, sha256 = ?3, size_bytes = ?4, content_type = ?5, \
         infected = ?6 WHERE file_id = ?1 AND uploaded_at IS NULL",
        params![file_id, ts(now), sha256, size, content_type, infected],
    )?;
    Ok(n > 0)
}

/// Deletes `persist=false` attachments created before `cutoff`; returns the hashes
/// of blobs nothing refers to any more.
pub fn delete_ephemeral(
    conn: &mut Connection,
    cutoff: DateTime<Utc>,
) -> rusqlite::Result<Vec<String>> {
    let tx = conn.transaction()?;
    let hashes: Vec<String> = {
        let mut st = tx.prepare(
            "SELECT DISTINCT sha256 FROM attachments WHERE persist = 0 AND created_at <= ?1 \
             AND sha256 IS NOT NULL",
        )?;
        let rows = st.query_map([ts(cutoff)], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    tx.execute(
        "DELETE FROM attachments WHERE persist = 0 AND created_at <= ?1",
        [ts(cutoff)],
    )?;
    let mut orphans = Vec::new();
    for h in hashes {
        let used: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM attachments WHERE sha256 = ?1) \
             OR EXISTS(SELECT 1 FROM files WHERE sha256 = ?1) \
             OR EXISTS(SELECT 1 FROM images WHERE sha256 = ?1)",
            [&h],
            |r| r.get(0),
        )?;
        if !used {
            orphans.push(h);
        }
    }
    tx.commit()?;
    Ok(orphans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }
}
