//! `docsync-sandbox`: runs the local reference server until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use docsync_sandbox::{Credentials, DecisionRule, FaultConfig, Sandbox, SandboxConfig};

/// Local reference server for the Moov Files/Images and signed-URL attachments APIs.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0", env = "SANDBOX_ADDR")]
    addr: SocketAddr,
    /// Data directory (database + bytes). Default: a temp dir removed on exit.
    #[arg(long, env = "SANDBOX_DATA")]
    data: Option<PathBuf>,
    /// Base URL used in links (default: http://{bound address}).
    #[arg(long)]
    public_url: Option<String>,
    /// Moov public key (default: random).
    #[arg(long, env = "SANDBOX_PUBLIC_KEY")]
    public_key: Option<String>,
    /// Moov secret key (default: random).
    #[arg(long, env = "SANDBOX_SECRET_KEY")]
    secret_key: Option<String>,
    /// Attachments api-key (default: random).
    #[arg(long, env = "SANDBOX_API_KEY")]
    api_key: Option<String>,
    /// Seconds a new file stays pending.
    #[arg(long, default_value_t = 2.0)]
    decision_delay: f64,
    /// Files whose name matches this regex are rejected ("" disables).
    #[arg(long, default_value = "(?i)reject")]
    reject_pattern: String,
    /// Fraction of other files rejected (seeded by --seed).
    #[arg(long, default_value_t = 0.0)]
    rejection_rate: f64,
    /// Seconds an attachment stays processing.
    #[arg(long, default_value_t = 1.0)]
    processing_delay: f64,
    /// Seed for faults and the rejection rate.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fraction of requests answered 500/502/503/504.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Fraction of requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    rate_limit_rate: f64,
    /// Retry-After seconds on injected 429s.
    #[arg(long, default_value_t = 1)]
    retry_after: u64,
    /// Milliseconds added to every request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fraction of connections dropped without an answer.
    #[arg(long, default_value_t = 0.0)]
    reset_rate: f64,
    /// Fraction of requests stalled for --stall-ms.
    #[arg(long, default_value_t = 0.0)]
    stall_rate: f64,
    /// How long stalled requests sleep.
    #[arg(long, default_value_t = 30_000)]
    stall_ms: u64,
    /// Statuses injected by --fault-rate (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "500,502,503,504")]
    error_statuses: Vec<u16>,
}

fn secs(v: f64, name: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("invalid --{name} {v}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let random = Credentials::random();
    let credentials = Credentials {
        public_key: args.public_key.unwrap_or(random.public_key),
        secret_key: args.secret_key.unwrap_or(random.secret_key),
        attachments_api_key: args.api_key.unwrap_or(random.attachments_api_key),
    };
    let reject = if args.reject_pattern.is_empty() {
        None
    } else {
        Some(regex::Regex::new(&args.reject_pattern).context("invalid --reject-pattern")?)
    };
    let config = SandboxConfig {
        addr: args.addr,
        data_dir: args.data,
        public_url: args.public_url,
        credentials: Some(credentials),
        decision: DecisionRule {
            delay: secs(args.decision_delay, "decision-delay")?,
            reject_name_pattern: reject,
            rejection_rate: args.rejection_rate,
            seed: args.seed,
            ..DecisionRule::default()
        },
        attachment_processing_delay: secs(args.processing_delay, "processing-delay")?,
        faults: FaultConfig {
            seed: args.seed,
            error_rate: args.fault_rate,
            rate_limit_rate: args.rate_limit_rate,
            retry_after_secs: Some(args.retry_after),
            latency_ms: args.latency_ms,
            reset_rate: args.reset_rate,
            stall_rate: args.stall_rate,
            stall_ms: args.stall_ms,
            error_statuses: args.error_statuses,
        },
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config)
        .await
        .context("starting the sandbox")?;
    let c = sandbox.credentials();
    println!("docsync-sandbox listening on {}", sandbox.url());
    println!("data dir:          {}", sandbox.data_dir().display());
    println!("moov public key:   {}", c.public_key);
    println!("moov secret key:   {}", c.secret_key);
    println!("attachments key:   {}", c.attachments_api_key);
    println!(
        "try: curl -u '{}:{}' {}/accounts/7f888113-d35a-4536-b9bc-c55076736ab6/files",
        c.public_key,
        c.secret_key,
        sandbox.url()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    eprintln!("stopping");
    sandbox.shutdown().await.context("stopping the sandbox")?;
    Ok(())
}
