//! docsync: keeps local folders in step with a document-upload API.
//!
//! The library behind the `docsync` binary (whose `cli` module parses the
//! command line and calls in here). `ARCHITECTURE.md` at the repository root
//! has the bird's-eye view, the code map and every invariant; in short:
//!
//! - [`model`]: the vocabulary (a file's [`model::State`] and its successors,
//!   targets, folders); imports nothing else from the crate;
//! - [`local`]: a folder turned into facts (ignore rules, the walk, the
//!   watcher, the quiet window, hashing, the target's local rules); knows
//!   neither the store nor the network;
//! - [`store`]: the state behind one interface ([`store::StateStore`]):
//!   SQLite in the state directory, or PostgreSQL shared by several daemons;
//! - [`remote`]: the APIs as the engine needs them (upload, find an upload
//!   again, read decisions), through the generated client;
//! - [`engine`]: the daemon's stages (intake, upload, poll, settle, notify),
//!   each reading its work from the store and waking the next;
//! - [`hooks`], [`metrics`], [`admin`]: decision hooks, counters, the admin
//!   listener and status page; [`config`]: the configuration.
//!
//! # Invariants (the full list is in `ARCHITECTURE.md`)
//!
//! - Every state change goes through `State::can_transition_to` and is written with
//!   its event in one transaction.
//! - The upload intent (`uploading`, with the sha256 and the name to send) is
//!   committed, and synced to disk, before the request is sent; the duplicate
//!   and quota checks happen in that same transaction.
//! - A file is hashed only once it holds still, and is stat'ed again after
//!   hashing and right before its intent; a change sends it back to `discovered`.
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
