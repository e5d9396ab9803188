//! Integration tests: a real sandbox on 127.0.0.1:0 in a temp dir, driven with reqwest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod attachments;
mod auth;
mod common;
mod files;
mod images;
mod infra;
mod inprocess;
