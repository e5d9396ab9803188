//! Which API the rows were synced against ([`ApiIdentity`], one row of its own),
//! and starting over on another API: a backup of the whole database, then the
//! rows forgotten.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::{params, OptionalExtension};

use super::{text_err, Store};
use crate::error::{Error, Result};
use crate::model::{now_ms, ApiIdentity};

/// `api_identity.kind` of each [`ApiIdentity`] (both backends).
pub(super) const SANDBOX: &str = "sandbox";
pub(super) const REMOTE: &str = "remote";

impl Store {
    /// The API the rows were synced against; `None` until a daemon recorded one
    /// (a new database, or one an older docsync wrote).
    pub fn api_identity(&self) -> Result<Option<ApiIdentity>> {
        self.conn
            .query_row(
                "SELECT kind, moov_url, attachments_url FROM api_identity WHERE id = 1",
                [],
                |r| {
                    let kind: String = r.get(0)?;
                    match kind.as_str() {
                        SANDBOX => Ok(ApiIdentity::Sandbox),
                        REMOTE => Ok(ApiIdentity::Remote {
                            moov: r.get(1)?,
                            attachments: r.get(2)?,
                        }),
                        other => Err(text_err(0, format!("unknown API kind `{other}`"))),
                    }
                },
            )
            .optional()
            .map_err(self.db("reading the API identity"))
    }

    /// Record `identity` as the API the rows are synced against (replacing
    /// what was recorded).
    pub fn set_api_identity(&mut self, identity: &ApiIdentity) -> Result<()> {
        write_identity(&self.conn, identity).map_err(self.db("recording the API identity"))?;
        Ok(())
    }

    /// Every file row, of any state (history included).
    pub fn file_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM files", [], |r| r.get(0))
            .map_err(self.db("counting files"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Write a consistent copy of the whole database to `path`, a new file
    /// (mode 0600; an existing file is never replaced).
    pub fn backup_to(&self, path: &Path) -> Result<()> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("creating the database backup", path, e))?;
        let Some(target) = path.to_str() else {
            let _ = std::fs::remove_file(path);
            return Err(Error::io(
                "creating the database backup",
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path is not UTF-8"),
            ));
        };
        // VACUUM INTO fills an empty file with a snapshot of the database
        let copied = self
            .conn
            .execute("VACUUM INTO ?1", [target])
            .map_err(self.db("backing up the database"));
        if copied.is_err() {
            let _ = std::fs::remove_file(path);
        }
        copied.map(drop)
    }

    /// Forget every file row and its events, and record `identity`, in one
    /// transaction: the files on disk are found again by the next scan and
    /// uploaded as new. Returns how many rows were forgotten. Take a
    /// [`Store::backup_to`] first: this is the only place rows are deleted
    /// rather than moved to a state.
    pub fn start_over(&mut self, identity: &ApiIdentity) -> Result<u64> {
        let path = self.path.clone();
        let db = |what| super::sql(&path, what);
        let tx = self.tx()?;
        tx.execute("DELETE FROM events", [])
            .map_err(db("forgetting the events"))?;
        let forgotten = tx
            .execute("DELETE FROM files", [])
            .map_err(db("forgetting the files"))?;
        write_identity(&tx, identity).map_err(db("recording the API identity"))?;
        tx.commit().map_err(db("committing the start over"))?;
        Ok(u64::try_from(forgotten).unwrap_or(u64::MAX))
    }
}

fn write_identity(conn: &rusqlite::Connection, identity: &ApiIdentity) -> rusqlite::Result<()> {
    let (kind, moov, attachments) = match identity {
        ApiIdentity::Sandbox => (SANDBOX, None, None),
        ApiIdentity::Remote { moov, attachments } => {
            (REMOTE, moov.as_deref(), attachments.as_deref())
        }
    };
    conn.execute(
        "INSERT INTO api_identity (id, kind, moov_url, attachments_url, recorded_at) \
         VALUES (1, ?1, ?2, ?3, ?4) \
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, moov_url = excluded.moov_url, \
         attachments_url = excluded.attachments_url, recorded_at = excluded.recorded_at",
        params![kind, moov, attachments, now_ms()],
    )?;
    Ok(())
}
