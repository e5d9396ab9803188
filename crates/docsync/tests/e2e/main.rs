//! End-to-end tests, one test binary: the real `docsync` binary (cargo builds it
//! for this target, see [`harness::docsync_bin`]) and the daemon library in
//! process, against a sandbox and temp folders.
//!
//! One module per suite; run one with `cargo test -p docsync --test e2e crash::`.
//!
//! Through the binary:
//! - [`cli`]: the commands that need no running daemon;
//! - [`pipeline`]: files dropped into a watched inbox end up decided;
//! - [`admin`]: the admin listener over HTTP, completions, man pages, the systemd unit;
//! - [`api_choice`]: never a silent fake server (the API named or the sandbox asked
//!   for, said everywhere; another API refused until `--start-over`/`--keep-history`);
//! - [`status_page_browser`]: the status page in headless Chromium;
//! - [`crash`]: SIGKILL, a server killed mid-upload, SIGTERM during a burst;
//! - [`security`]: secrets never leak, server names never become local paths;
//! - [`names`]: hostile file names escaped in logs and tables, exact in JSON;
//! - [`systemd`]: `run` under systemd's `NOTIFY_SOCKET` (READY, STATUS, WATCHDOG,
//!   STOPPING), the test playing systemd;
//! - [`progress`]: `status`'s summary per folder (the oldest pending file's age).
//! - [`hooks`]: the decision hooks (a signed webhook checked by a real receiver,
//!   a command), a failing receiver, a restart, `config check`.
//! - [`dry_run`]: `--dry-run`: every file's verdict, nothing sent, nothing written.
//! - [`baseline`]: a first run over a folder with files: `docsync baseline`,
//!   `max_age` and `--only-newer-than` (files recorded `skipped`, never sent).
//! - [`http_settings`]: `[http]`: proxies (explicit, environment, `NO_PROXY`,
//!   loopback), `read_timeout`, `ca_file`, the retry budget and `status`'s next attempt.
//! - [`shared_state`]: two and three daemons on one folder with one state in
//!   PostgreSQL, and SIGKILLs of either: each file exactly once, quota respected.
//!
//! The daemon library in process:
//! - [`daemon`]: files dropped into a folder end up decided, exactly once;
//! - [`faults`]: a third of all requests failing loses and duplicates nothing;
//! - [`bad_inputs`]: every bad input ends in a clear, recorded state.
//!
//! The tests of every module run in parallel in this one process: nothing here
//! may set environment variables, change the working directory or bind a fixed
//! port.

mod harness;

mod admin;
mod api_choice;
mod bad_inputs;
mod baseline;
mod cli;
mod crash;
mod daemon;
mod dry_run;
mod faults;
mod hooks;
mod http_settings;
mod names;
mod pipeline;
mod progress;
mod security;
mod shared_state;
mod status_page_browser;
mod systemd;
