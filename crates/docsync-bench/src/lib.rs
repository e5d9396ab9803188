//! The benchmark driver behind `cargo xtask bench`: release binaries driven as
//! processes (the sandbox, the daemon, the baselines), figures summarised over
//! repeated runs, and the results table. See `main.rs` for the figures.

pub mod fixtures;
pub mod machine;
pub mod process;
pub mod report;
pub mod stats;
pub mod workdir;
