//! Which API and operation a response answers: the tag the hooks put on every
//! response and the error mapping reads back. It sits below both, so neither
//! imports the other.

/// Which API a response came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Moov,
    Attachments,
}

/// Which operation a response answers; set by the hooks' `exec`, read by `ApiError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationTag {
    pub api: Api,
    /// The method name (progenitor's `OperationInfo::operation_id`).
    pub operation: &'static str,
}

/// The operation id of the PUT to a signed upload URL.
pub(crate) const SIGNED_UPLOAD: &str = "upload_to_signed_url";
