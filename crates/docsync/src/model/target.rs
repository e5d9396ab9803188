//! Where a file goes: the three APIs, Moov's file purposes, and the key the store
//! records a file's target under.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most files Moov keeps per account.
pub const MOOV_FILES_PER_ACCOUNT: u64 = 50;

/// A Moov account ID as Moov's own documentation shows one: what the messages
/// about a malformed account ID give as an example.
pub const EXAMPLE_MOOV_ACCOUNT_ID: &str = "7f888113-d35a-4536-b9bc-c55076736ab6";

/// Whether `id` can be a Moov account ID. Moov identifies every account by a UUID
/// in its hyphenated form (8-4-4-4-12 hexadecimal digits, such as
/// [`EXAMPLE_MOOV_ACCOUNT_ID`]); any other text names no account, and Moov answers
/// every request for it 404.
pub fn is_moov_account_id(id: &str) -> bool {
    id.len() == 36 && uuid::Uuid::try_parse(id).is_ok()
}

/// Why `id` cannot be a Moov account ID (`None` when it can): the first half of a
/// message, to which the caller adds the fix that fits where the ID came from.
/// The ID is shown escaped (it may come from a folder name).
pub fn moov_account_id_problem(id: &str) -> Option<String> {
    (!is_moov_account_id(id)).then(|| {
        format!(
            "`{}` is not a Moov account ID (a UUID such as {EXAMPLE_MOOV_ACCOUNT_ID})",
            id.escape_debug()
        )
    })
}

/// The kind of API a folder syncs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    MoovFiles,
    MoovImages,
    Attachments,
}

impl TargetKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetKind::MoovFiles => "moov-files",
            TargetKind::MoovImages => "moov-images",
            TargetKind::Attachments => "attachments",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TargetKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [
            TargetKind::MoovFiles,
            TargetKind::MoovImages,
            TargetKind::Attachments,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("unknown target kind `{s}`"))
    }
}

/// Moov's file purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilePurpose {
    BusinessVerification,
    RepresentativeVerification,
    IndividualVerification,
    MerchantUnderwriting,
    AccountRequirement,
    IdentityVerification,
}

impl FilePurpose {
    pub const ALL: [FilePurpose; 6] = [
        FilePurpose::BusinessVerification,
        FilePurpose::RepresentativeVerification,
        FilePurpose::IndividualVerification,
        FilePurpose::MerchantUnderwriting,
        FilePurpose::AccountRequirement,
        FilePurpose::IdentityVerification,
    ];

    /// The wire value.
    pub const fn as_str(self) -> &'static str {
        match self {
            FilePurpose::BusinessVerification => "business_verification",
            FilePurpose::RepresentativeVerification => "representative_verification",
            FilePurpose::IndividualVerification => "individual_verification",
            FilePurpose::MerchantUnderwriting => "merchant_underwriting",
            FilePurpose::AccountRequirement => "account_requirement",
            FilePurpose::IdentityVerification => "identity_verification",
        }
    }

    fn all_names() -> String {
        FilePurpose::ALL.map(FilePurpose::as_str).join(", ")
    }
}

impl fmt::Display for FilePurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FilePurpose {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        FilePurpose::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a file purpose; use one of {}",
                    FilePurpose::all_names()
                )
            })
    }
}

/// Optional metadata sent with each moov-files upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representative_id: Option<String>,
    /// The uploader appends its content-hash marker to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// A moov-files target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoovFilesTarget {
    pub account_id: String,
    pub file_purpose: FilePurpose,
    #[serde(default)]
    pub metadata: FileMetadata,
}

/// A moov-images target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoovImagesTarget {
    pub account_id: String,
    /// A changed image replaces the uploaded one (updateImage).
    #[serde(default = "yes")]
    pub replace_on_change: bool,
    /// Deleting the local file disables the image (deleteImage).
    #[serde(default)]
    pub disable_on_delete: bool,
}

/// An attachments target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentsTarget {
    pub user_id: String,
    #[serde(default = "yes")]
    pub persist: bool,
}

fn yes() -> bool {
    true
}

/// Where a folder's files go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Target {
    MoovFiles(MoovFilesTarget),
    MoovImages(MoovImagesTarget),
    Attachments(AttachmentsTarget),
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::MoovFiles(_) => TargetKind::MoovFiles,
            Target::MoovImages(_) => TargetKind::MoovImages,
            Target::Attachments(_) => TargetKind::Attachments,
        }
    }

    /// The account id (moov-*) or user id (attachments).
    pub fn account(&self) -> &str {
        match self {
            Target::MoovFiles(t) => &t.account_id,
            Target::MoovImages(t) => &t.account_id,
            Target::Attachments(t) => &t.user_id,
        }
    }

    /// Why this target's account cannot be a Moov account (moov-files and
    /// moov-images only: an attachments `user_id` is the caller's own).
    pub fn account_problem(&self) -> Option<String> {
        match self {
            Target::MoovFiles(t) => moov_account_id_problem(&t.account_id),
            Target::MoovImages(t) => moov_account_id_problem(&t.account_id),
            Target::Attachments(_) => None,
        }
    }

    /// The key the store records (kind, account, purpose).
    pub fn key(&self) -> TargetKey {
        TargetKey {
            kind: self.kind(),
            account: self.account().to_owned(),
            purpose: match self {
                Target::MoovFiles(t) => t.file_purpose.as_str().to_owned(),
                _ => String::new(),
            },
        }
    }
}

/// Where a file goes: the target kind, the account (or user) and the file purpose.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKey {
    pub kind: TargetKind,
    /// Account id for moov-*, user id for attachments.
    pub account: String,
    /// File purpose for moov-files, empty otherwise.
    pub purpose: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moov_account_ids_are_uuids() {
        for (id, ok) in [
            (EXAMPLE_MOOV_ACCOUNT_ID, true),
            ("7F888113-D35A-4536-B9BC-C55076736AB6", true),
            ("00000000-0000-4000-8000-000000000001", true),
            ("acme", false),
            ("acct-1", false),
            ("", false),
            ("7f888113d35a4536b9bcc55076736ab6", false),
            ("{7f888113-d35a-4536-b9bc-c55076736ab6}", false),
            ("urn:uuid:7f888113-d35a-4536-b9bc-c55076736ab6", false),
            ("7f888113-d35a-4536-b9bc-c55076736ab", false),
            ("7f888113-d35a-4536-b9bc-c55076736abz", false),
            (" 7f888113-d35a-4536-b9bc-c55076736ab6", false),
        ] {
            assert_eq!(is_moov_account_id(id), ok, "{id:?}");
            assert_eq!(moov_account_id_problem(id).is_none(), ok, "{id:?}");
        }
        assert_eq!(
            moov_account_id_problem("acme").as_deref(),
            Some("`acme` is not a Moov account ID (a UUID such as 7f888113-d35a-4536-b9bc-c55076736ab6)")
        );
        // shown escaped: it may come from a folder name
        let shown = moov_account_id_problem("a\nb").unwrap_or_default();
        assert!(shown.starts_with("`a\\nb`"), "{shown}");
        // an attachments user_id is not a Moov account
        let attachments = Target::Attachments(AttachmentsTarget {
            user_id: "acme".into(),
            persist: true,
        });
        assert_eq!(attachments.account_problem(), None);
        let images = Target::MoovImages(MoovImagesTarget {
            account_id: "acme".into(),
            replace_on_change: true,
            disable_on_delete: false,
        });
        assert!(images.account_problem().is_some());
    }
}
