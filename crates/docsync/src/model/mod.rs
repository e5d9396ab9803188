//! The vocabulary every other module speaks: a file's [`State`] and its allowed
//! successors, where a file goes ([`Target`], [`FilePurpose`], [`TargetKey`]), a
//! synced [`Folder`] and its layout (and its [`MaxAge`]), a configuration [`Problem`], the API the rows
//! were synced against ([`ApiIdentity`]), the decision hooks ([`HookKind`]), the clock and the host's name, and how text from outside is
//! shown on a line ([`text`]: escaped, fitted to a column).
//!
//! Invariant: this module imports nothing from the rest of the crate, so every other
//! module may use it and it can be read on its own.

mod api;
pub mod clock;
mod folder;
mod hook;
mod host;
mod max_age;
mod problem;
mod state;
mod target;
pub mod text;

pub use api::{normalise_base_url, ApiIdentity};
pub use clock::now_ms;
pub use folder::{convention_target, AfterDecision, Folder, Mapping, WatcherKind};
pub use hook::{HookKind, DECISION_STATES};
pub use host::host_name;
pub use max_age::{MaxAge, MAX_AGE_FIX};
pub use problem::{Location, Problem, Severity};
pub use state::State;
pub use target::{
    is_moov_account_id, moov_account_id_problem, AttachmentsTarget, FileMetadata, FilePurpose,
    MoovFilesTarget, MoovImagesTarget, Target, TargetKey, TargetKind, EXAMPLE_MOOV_ACCOUNT_ID,
    MOOV_FILES_PER_ACCOUNT,
};
