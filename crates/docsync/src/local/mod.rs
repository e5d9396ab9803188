//! The local side: turn a folder into observations. Ignore rules, walking,
//! watching, the quiet window, hashing and the target's local rules.
//!
//! Nothing here knows the store, the client or the remote module: every
//! function takes paths and configuration and returns values (a [`scanner::Scan`],
//! a [`watcher::Hint`], a [`check::Checked`]) that the engine records.

pub mod check;
pub mod hasher;
pub mod ignore;
pub mod scanner;
pub mod stability;
pub mod validate;
pub mod watcher;
