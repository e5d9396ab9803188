//! The sandbox's own record of what it holds, read straight from its database
//! (`{data}/sandbox.sqlite3`, read-only): the truth a test compares the folder
//! with, independent of the daemon's state and of the API's answers.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// One Moov file as the sandbox stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFile {
    pub file_id: String,
    pub account_id: String,
    pub file_name: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// The sha256 of the bytes the sandbox received (computed while it streamed them).
    pub sha256: String,
    /// The upload's `metadata` JSON (docsync's content marker is in its `comment`).
    pub metadata: String,
}

impl ServerFile {
    /// The content hash docsync marked the upload with (`None`: no marker).
    pub fn marker(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_str(&self.metadata).ok()?;
        docsync::remote::marker::marker_in(json.get("comment")?.as_str()?).map(str::to_owned)
    }
}

/// Every Moov file the sandbox with this data dir holds, oldest first.
///
/// Decisions are made lazily (on the next read through the API), so `status`
/// may still say `pending` for a file whose decision delay has passed.
pub fn server_files(data_dir: &Path) -> Vec<ServerFile> {
    let path = data_dir.join("sandbox.sqlite3");
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("opening the sandbox database {}: {e}", path.display()));
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("setting busy_timeout");
    let mut stmt = conn
        .prepare(
            "SELECT file_id, account_id, file_name, file_status, sha256, metadata \
             FROM files ORDER BY created_on, file_id",
        )
        .expect("preparing the file query");
    let rows = stmt
        .query_map([], |r| {
            Ok(ServerFile {
                file_id: r.get(0)?,
                account_id: r.get(1)?,
                file_name: r.get(2)?,
                status: r.get(3)?,
                sha256: r.get(4)?,
                metadata: r.get(5)?,
            })
        })
        .expect("reading the sandbox's files");
    rows.collect::<Result<_, _>>()
        .expect("reading the sandbox's files")
}
