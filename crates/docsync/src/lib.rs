//! docsync: keeps local folders in step with a document-upload API.
//!
//! This crate holds the client-independent core of the daemon:
//!
//! - [`config`]: the TOML configuration, credentials and `config check`;
//! - [`ignore`]: which names are never synced;
//! - [`scanner`]: walking a folder and deciding when a file is stable;
//! - [`watcher`]: filesystem notifications turned into hints;
//! - [`intake`]: hints and scans recorded in the store, files promoted to stable;
//! - [`hasher`]: streaming sha256 and type sniffing;
//! - [`validate`]: the target's local rules;
//! - [`pipeline`]: the local steps from stable to a committed upload intent;
//! - [`ratelimit`]: the shared request-rate limit (`max_requests_per_second`);
//! - [`store`]: the state behind one interface ([`store::StateStore`]; SQLite today:
//!   files, events, the state machine, the instance lock), and the PostgreSQL state
//!   for several daemons (`store::pg`, in progress: not behind the interface yet);
//! - [`metrics`]: what the daemon counts, rendered for Prometheus;
//! - [`hooks`]: the decision hooks (a command, a signed webhook), one delivery at a time;
//! - [`admin`]: the optional admin listener (probes, `/metrics`, the status page).
//!
//! Nothing here talks to the network: the uploader and poller are built on top.
//!
//! # Flow
//!
//! ```text
//! watcher ──hints──> intake ──observe──> store (discovered)
//! scan_folder ─────> intake.apply_scan ─> store (discovered / deleted)
//! intake.promote_ready ─────────────────> store (stable)
//! pipeline::check_file (hash + validate, no store) ─> pipeline::record_check
//!                                          ─> store (uploading | duplicate | invalid)
//! uploader / poller (not here) ──────────> store (pending, approved, rejected, ...)
//! ```
//!
//! # Invariants
//!
//! - Every state change goes through `State::can_transition_to` and is written with
//!   its event in one transaction.
//! - The upload intent (`uploading`, with the sha256 and the name to send) is
//!   committed before the request is sent ([`store::Store::begin_upload`]); duplicate
//!   and quota checks happen in that same transaction.
//! - A file is hashed only when `stable`, and is re-stat'ed after hashing; a change
//!   sends it back to `discovered`.
//! - Rows are deleted only by a complete scan (every directory read) or a removal
//!   hint confirmed by a failed stat; never while `uploading`.
//! - No file content is held in memory beyond one 64 KiB chunk.
//! - Secrets are only in [`config::Secret`], which neither prints nor serialises.

pub mod admin;
pub mod config;
pub mod engine;
pub mod error;
pub mod hooks;
pub mod local;
pub mod metrics;
pub mod model;
pub mod remote;
pub mod store;

pub use error::{Error, Result};
