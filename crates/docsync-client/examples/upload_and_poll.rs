//! Upload a file to a Moov account, then poll it until it is decided.
//!
//! ```text
//! DOCSYNC_API_URL=http://127.0.0.1:8080 \
//! DOCSYNC_PUBLIC_KEY=pk DOCSYNC_SECRET_KEY=sk DOCSYNC_ACCOUNT_ID=7f888113-d35a-4536-b9bc-c55076736ab6 \
//!   cargo run -p docsync-client --example upload_and_poll -- statement.pdf [purpose]
//! ```
//!
//! `purpose` is a filePurpose such as `business_verification` (the default) or
//! `identity_verification`. Every call is retried with the client's policy
//! (429, 5xx and transport errors, honouring Retry-After); the file is streamed
//! from disk. Polling backs off from 2 s to at most 60 s and gives up after
//! `DOCSYNC_POLL_TIMEOUT_SECS` (default 3600).

use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use docsync_client::moov::types::{FilePurpose, FileStatus, FileUploadRequestMultiPart};
use docsync_client::{moov, FilePart, MoovCredentials, RetryPolicy};

struct Config {
    url: String,
    public_key: String,
    secret_key: String,
    account_id: String,
    file: PathBuf,
    purpose: FilePurpose,
    poll_timeout: Duration,
}

fn env(name: &str, what: &str) -> Result<String, String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
        Ok(_) => Err(format!("{name} is empty: set it to {what}")),
        Err(std::env::VarError::NotPresent) => Err(format!("{name} is not set: set it to {what}")),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

fn config() -> Result<Config, String> {
    let mut args = std::env::args_os().skip(1);
    let file = args.next().map(PathBuf::from).ok_or(
        "usage: upload_and_poll <file> [purpose]\n(the file to upload is missing)".to_string(),
    )?;
    let purpose = match args.next() {
        None => FilePurpose::BusinessVerification,
        Some(arg) => {
            let arg = arg
                .into_string()
                .map_err(|_| "the purpose is not valid UTF-8".to_string())?;
            match arg.parse::<FilePurpose>() {
                Ok(FilePurpose::Unknown(other)) => {
                    let known: Vec<&str> = FilePurpose::KNOWN.iter().map(|p| p.as_str()).collect();
                    return Err(format!(
                        "unknown purpose `{other}`; one of: {}",
                        known.join(", ")
                    ));
                }
                Ok(purpose) => purpose,
                Err(never) => match never {},
            }
        }
    };
    let poll_timeout = match std::env::var("DOCSYNC_POLL_TIMEOUT_SECS") {
        Ok(secs) => secs
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| format!("DOCSYNC_POLL_TIMEOUT_SECS `{secs}`: {e}"))?,
        Err(_) => Duration::from_secs(3600),
    };
    Ok(Config {
        url: env(
            "DOCSYNC_API_URL",
            "the API's base URL, e.g. https://api.moov.io",
        )?,
        public_key: env("DOCSYNC_PUBLIC_KEY", "the account's public key")?,
        secret_key: env("DOCSYNC_SECRET_KEY", "the account's secret key")?,
        account_id: env("DOCSYNC_ACCOUNT_ID", "the Moov account to upload to")?,
        file,
        purpose,
        poll_timeout,
    })
}

async fn run(config: Config) -> Result<(), Box<dyn Error>> {
    let client = moov::Client::builder(
        &config.url,
        MoovCredentials::basic(config.public_key.clone(), config.secret_key.clone()),
    )
    .retry(RetryPolicy::default())
    .build()?;

    // Check the file before the first request, for a clear message.
    FilePart::open(&config.file)
        .await
        .map_err(|e| format!("cannot open {}: {e}", config.file.display()))?;

    // Each attempt reopens the file: a streamed body cannot be replayed.
    let (config, client) = (&config, &client);
    let uploaded = client
        .retry_policy()
        .run(move || async move {
            let file = FilePart::open(&config.file)
                .await
                .map_err(|e| moov::Error::Custom(format!("{}: {e}", config.file.display())))?;
            let body = FileUploadRequestMultiPart {
                file,
                file_purpose: config.purpose.clone(),
                metadata: None,
            };
            client.upload_file(&config.account_id, None, body).await
        })
        .await
        .map_err(|e| format!("upload failed: {e}"))?
        .into_inner();
    println!(
        "uploaded {} as {} ({} bytes, {}), status {}",
        config.file.display(),
        uploaded.file_id,
        uploaded.file_size_bytes,
        uploaded.file_purpose,
        uploaded.file_status
    );

    let started = Instant::now();
    let mut delay = Duration::from_secs(2);
    let mut details = uploaded;
    loop {
        match &details.file_status {
            FileStatus::Approved | FileStatus::Rejected => break,
            FileStatus::Pending => {}
            FileStatus::Unknown(other) => println!("status `{other}` (unknown to this client)"),
        }
        if started.elapsed() + delay > config.poll_timeout {
            return Err(format!(
                "file {} still {} after {:?}; giving up",
                details.file_id, details.file_status, config.poll_timeout
            )
            .into());
        }
        tokio::time::sleep(delay).await;
        delay = (delay.mul_f32(1.5)).min(Duration::from_secs(60));
        let file_id = details.file_id.clone();
        details = client
            .retry_policy()
            .run(|| client.get_file_details(&config.account_id, &file_id, None))
            .await
            .map_err(|e| format!("polling {file_id} failed: {e}"))?
            .into_inner();
    }

    println!(
        "decision: {} (file {})\nreason: {}",
        details.file_status,
        details.file_id,
        details.decision_reason.as_deref().unwrap_or("(none given)")
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = match config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
