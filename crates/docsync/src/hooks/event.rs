//! What a hook is told about one decision: the webhook's JSON body and the
//! command's environment variables, from the same fields.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::Serialize;

/// The `type` of every event (a receiver can ignore other types later).
pub const EVENT_TYPE: &str = "file.decision";

/// One decision, as hooks see it. Serialised, it is the webhook's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookEvent {
    /// The event's id: the same for every hook and every attempt (deduplicate on it).
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When the state changed (RFC 3339, UTC).
    pub at: String,
    /// approved, rejected, invalid or failed.
    pub state: String,
    pub previous_state: Option<String>,
    /// The configured folder root.
    pub folder: String,
    /// The file's path relative to the folder (a byte that is not UTF-8 as `\xNN`).
    pub path: String,
    /// The path's exact bytes in hex, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_bytes_hex: Option<String>,
    /// moov-files, moov-images or attachments.
    pub target: String,
    /// The account (moov-*) or user (attachments).
    pub account: String,
    /// The file purpose (moov-files), else empty.
    pub purpose: String,
    pub remote_id: Option<String>,
    /// Why, in words (docsync's reason for the state).
    pub reason: String,
    /// The server's own reason (a rejection's), if it gave one.
    pub decision_reason: Option<String>,
    /// The server's request id of the request that brought the decision.
    pub request_id: Option<String>,
    /// This delivery's attempt, from 1.
    pub attempt: u32,
    /// The path's bytes (the command's `DOCSYNC_PATH` is exact).
    #[serde(skip)]
    pub path_bytes: Vec<u8>,
}

impl HookEvent {
    /// The webhook's body: compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // a struct of strings and numbers always serialises
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The command's variables (documented in the README's "Hooks").
    pub fn env_vars(&self) -> Vec<(&'static str, OsString)> {
        let text = |s: &str| OsString::from(s);
        let opt = |s: &Option<String>| OsString::from(s.as_deref().unwrap_or(""));
        let rel = OsStr::from_bytes(&self.path_bytes);
        vec![
            ("DOCSYNC_EVENT_ID", text(&self.id)),
            ("DOCSYNC_EVENT_AT", text(&self.at)),
            ("DOCSYNC_STATE", text(&self.state)),
            ("DOCSYNC_PREVIOUS_STATE", opt(&self.previous_state)),
            ("DOCSYNC_FOLDER", text(&self.folder)),
            ("DOCSYNC_PATH", rel.to_owned()),
            (
                "DOCSYNC_FULL_PATH",
                Path::new(&self.folder).join(rel).into_os_string(),
            ),
            ("DOCSYNC_TARGET", text(&self.target)),
            ("DOCSYNC_ACCOUNT", text(&self.account)),
            ("DOCSYNC_PURPOSE", text(&self.purpose)),
            ("DOCSYNC_REMOTE_ID", opt(&self.remote_id)),
            ("DOCSYNC_REASON", text(&self.reason)),
            ("DOCSYNC_DECISION_REASON", opt(&self.decision_reason)),
            ("DOCSYNC_REQUEST_ID", opt(&self.request_id)),
            ("DOCSYNC_ATTEMPT", text(&self.attempt.to_string())),
        ]
    }
}
