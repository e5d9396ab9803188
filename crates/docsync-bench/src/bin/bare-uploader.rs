//! Baseline (b) of the burst benchmark: the same files sent with the generated
//! client over keep-alive connections, `CONCURRENCY` at a time, and nothing else:
//! no watching, no hashing, no state. The practical limit on this machine.
//!
//! ```text
//! DOCSYNC_API_URL=http://127.0.0.1:PORT DOCSYNC_PUBLIC_KEY=.. DOCSYNC_SECRET_KEY=.. \
//!   bare-uploader CONCURRENCY MANIFEST
//! ```
//!
//! `MANIFEST` has one `accountID<TAB>path` per line. Prints the seconds taken
//! and the CPU seconds it spent (user + system); exits 1 if any upload failed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use docsync_bench::process::{cpu_ticks, ticks_per_second};
use docsync_client::moov::types::{FilePurpose, FileUploadRequestMultiPart};
use docsync_client::{moov, FilePart, MoovCredentials, RetryPolicy};
use futures::StreamExt;

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [concurrency, manifest] = args.as_slice() else {
        bail!("usage: bare-uploader CONCURRENCY MANIFEST");
    };
    let concurrency: usize = concurrency
        .parse()
        .with_context(|| format!("CONCURRENCY `{concurrency}` is not a number"))?;
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading the manifest {manifest}"))?;
    let files: Vec<(String, PathBuf)> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once('\t') {
            Some((account, path)) => Ok((account.to_owned(), PathBuf::from(path))),
            None => bail!("manifest line `{l}` is not accountID<TAB>path"),
        })
        .collect::<Result<_>>()?;
    let client = moov::Client::builder(
        env("DOCSYNC_API_URL")?,
        MoovCredentials::basic(env("DOCSYNC_PUBLIC_KEY")?, env("DOCSYNC_SECRET_KEY")?),
    )
    .retry(RetryPolicy::none())
    .build()
    .context("building the client")?;

    let started = Instant::now();
    let client = &client;
    let failures: Vec<String> = futures::stream::iter(files)
        .map(|(account, path)| async move {
            let file = FilePart::open(&path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let body = FileUploadRequestMultiPart {
                file,
                file_purpose: FilePurpose::BusinessVerification,
                metadata: None,
            };
            client
                .upload_file(&account, None, body)
                .await
                .map(|_| ())
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    for f in failures.iter().take(5) {
        eprintln!("upload failed: {f}");
    }
    if !failures.is_empty() {
        bail!("{} uploads failed", failures.len());
    }
    // everything it spent since it started (the client's setup is a few ms)
    let cpu_secs = cpu_ticks(std::process::id()).unwrap_or(0) as f64 / ticks_per_second();
    println!("{secs:.6} {cpu_secs:.3}");
    Ok(())
}
