//! Typed client for the Moov Files/Images API and the signed-URL attachments API.
//!
//! The operations and types are generated from `openapi/*.yaml` by
//! `cargo xtask codegen` (progenitor, plus the xtask's own generation of what
//! progenitor cannot do: multipart bodies, open enums, error bodies) into
//! `src/generated/`, which is never edited by hand. The hand-written part is
//! small and sits beside it:
//!
//! - [`auth`]: credentials (secrets redacted in `Debug`) and OAuth2 tokens,
//!   whose `expires_in` may be seconds or a Unix time;
//! - [`hooks`]: what every request gets (auth header, `X-Moov-Version`), one
//!   resend with a new OAuth token after a 401, and the operation tag that lets
//!   [`ApiError`] decode error bodies;
//! - [`builder`]: clients with sensible timeouts (never progenitor's 15 s total);
//! - [`error`]: [`ApiError`], telling apart conflict, validation, auth, not
//!   found, rate limiting, server and transport errors, each with its request id;
//! - [`retry`]: exponential backoff with jitter that honours `Retry-After`;
//! - [`multipart`]: [`FilePart`], a file streamed from disk.

pub mod auth;
pub mod builder;
pub mod error;
pub mod hooks;
pub mod multipart;
pub mod operation;
pub mod retry;

/// The Moov Files, Images and OAuth2 API (generated from `openapi/moov.yaml`).
#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, clippy::expect_used, missing_docs)]
#[path = "generated/moov.rs"]
pub mod moov;

/// The signed-URL attachments API (generated from `openapi/attachments.yaml`).
#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, clippy::expect_used, missing_docs)]
#[path = "generated/attachments.rs"]
pub mod attachments;

pub use auth::{MoovCredentials, Secret};
pub use builder::{AttachmentsClientBuilder, MoovClientBuilder};
pub use error::{Api, ApiError, ErrorBody};
pub use multipart::FilePart;
pub use progenitor_client::{ByteStream, ResponseValue};
pub use retry::RetryPolicy;

/// The API version sent in `X-Moov-Version` unless configured otherwise.
pub const DEFAULT_MOOV_VERSION: &str = "v2024.01.00";
