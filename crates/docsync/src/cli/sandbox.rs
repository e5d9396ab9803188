//! `docsync sandbox`: the local reference API in the foreground. This command
//! exists to print its URL and credentials (on stdout), for curl or a second
//! `docsync run --api-url`.

use anyhow::Context;
use docsync_sandbox::{Sandbox, SandboxConfig};
use tokio::signal::unix::{signal, SignalKind};

use super::{SandboxArgs, EXIT_OK};

pub async fn sandbox(args: SandboxArgs) -> anyhow::Result<u8> {
    let handle = Sandbox::start(SandboxConfig {
        addr: args.addr,
        data_dir: args.data,
        ..SandboxConfig::default()
    })
    .await
    .with_context(|| format!("starting the sandbox on {}", args.addr))?;
    let c = handle.credentials();
    outln!("sandbox listening on {}", handle.url());
    outln!("data dir: {}", handle.data_dir().display());
    outln!("DOCSYNC_API_URL={}", handle.url());
    outln!("DOCSYNC_PUBLIC_KEY={}", c.public_key);
    outln!("DOCSYNC_SECRET_KEY={}", c.secret_key);
    outln!("DOCSYNC_ATTACHMENTS_API_KEY={}", c.attachments_api_key);
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!("docsync: stopping the sandbox");
    handle.shutdown().await.context("stopping the sandbox")?;
    Ok(EXIT_OK)
}
