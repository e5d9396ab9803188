//! The content-hash marker: every upload carries `docsync-sha256:<hex>` in a
//! place the server gives back (a Moov file's metadata `comment`, an image's alt
//! text), so an upload whose answer was lost (a crash, a timeout) can be found
//! again by its content before anything is sent a second time.

use crate::model::FileMetadata;

/// The content-hash marker put into an upload's metadata (the moov-files `comment`
/// key), so a row found in `uploading` after a crash can be matched with the
/// server's list before anything is sent again.
pub const MARKER_PREFIX: &str = "docsync-sha256:";

/// The `comment` to send: the configured comment (if any) followed by the marker.
pub fn comment_with_marker(comment: Option<&str>, sha256: &str) -> String {
    match comment.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => format!("{c} [{MARKER_PREFIX}{sha256}]"),
        None => format!("[{MARKER_PREFIX}{sha256}]"),
    }
}

/// The sha256 in a comment written by [`comment_with_marker`], if any.
pub fn marker_in(comment: &str) -> Option<&str> {
    let start = comment.rfind(MARKER_PREFIX)? + MARKER_PREFIX.len();
    let hex = comment.get(start..start + 64)?;
    hex.bytes().all(|b| b.is_ascii_hexdigit()).then_some(hex)
}

/// The `metadata` JSON of a Moov file upload: the configured keys, with the
/// content-hash marker appended to `comment`.
pub(super) fn files_metadata(metadata: &FileMetadata, sha256: &str) -> String {
    let mut map = serde_json::Map::new();
    for (key, value) in [
        ("representative_id", &metadata.representative_id),
        ("requirement_id", &metadata.requirement_id),
        ("error_code", &metadata.error_code),
    ] {
        if let Some(value) = value {
            map.insert(key.into(), serde_json::Value::String(value.clone()));
        }
    }
    let comment = comment_with_marker(metadata.comment.as_deref(), sha256);
    map.insert("comment".into(), serde_json::Value::String(comment));
    serde_json::Value::Object(map).to_string()
}

/// The sha256 marked in a Moov file's `metadata` (its `comment`), if any.
pub(super) fn files_marker(metadata: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(metadata).ok()?;
    marker_in(json.get("comment")?.as_str()?).map(str::to_string)
}

/// The alt text of a synced image: its name, then the marker (≤ 125 chars).
pub(super) fn image_alt_text(remote_name: &str, sha256: &str) -> String {
    let marker = format!("[{MARKER_PREFIX}{sha256}]");
    let room = 125usize.saturating_sub(marker.len() + 1);
    let name: String = remote_name.chars().take(room).collect();
    format!("{name} {marker}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileMetadata;

    #[test]
    fn files_metadata_carries_the_marker_and_the_configured_keys() {
        let sha = "a".repeat(64);
        let mut keys = FileMetadata {
            requirement_id: Some("doc.kyc".into()),
            ..FileMetadata::default()
        };
        let sent = files_metadata(&keys, &sha);
        let json: serde_json::Value = serde_json::from_str(&sent).unwrap();
        assert_eq!(json["requirement_id"], "doc.kyc");
        assert_eq!(files_marker(&sent).as_deref(), Some(sha.as_str()));

        keys.comment = Some("from the scanner".into());
        let sent = files_metadata(&keys, &sha);
        let json: serde_json::Value = serde_json::from_str(&sent).unwrap();
        assert!(json["comment"]
            .as_str()
            .unwrap()
            .starts_with("from the scanner ["));
        assert_eq!(files_marker(&sent).as_deref(), Some(sha.as_str()));
        assert_eq!(files_marker("{}"), None);
        assert_eq!(files_marker("not json"), None);
    }

    #[test]
    fn image_alt_text_fits_the_limit_and_keeps_the_marker() {
        let sha = "f".repeat(64);
        let alt = image_alt_text(&"n".repeat(300), &sha);
        assert!(alt.chars().count() <= 125, "{}", alt.len());
        assert_eq!(marker_in(&alt), Some(sha.as_str()));
    }

    #[test]
    fn content_hash_marker_round_trips() {
        let sha = "ab".repeat(32);
        let cases: &[(Option<&str>, String)] = &[
            (None, format!("[docsync-sha256:{sha}]")),
            (Some("  "), format!("[docsync-sha256:{sha}]")),
            (Some("kyb pack"), format!("kyb pack [docsync-sha256:{sha}]")),
        ];
        for (comment, want) in cases {
            let got = comment_with_marker(*comment, &sha);
            assert_eq!(&got, want);
            assert_eq!(marker_in(&got), Some(sha.as_str()));
        }
        assert_eq!(marker_in("no marker"), None);
        assert_eq!(marker_in("[docsync-sha256:abc]"), None, "too short");
        assert_eq!(
            marker_in(&format!("[docsync-sha256:{}]", "zz".repeat(32))),
            None
        );
    }
}
