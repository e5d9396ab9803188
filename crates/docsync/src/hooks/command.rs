//! One run of the `on_decision` command: argv without a shell, the event in
//! `DOCSYNC_*` variables, killed (with its process group) after the timeout.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::HookEvent;
use crate::config::CommandHook;

/// The most of the command's stderr kept for the log (its end).
const STDERR_KEPT: usize = 2048;

/// Run `hook` for `event`; `Err` says why it counts as failed (not found,
/// non-zero exit with the end of its stderr, timeout).
pub(super) async fn run(
    hook: &CommandHook,
    timeout: Duration,
    event: &HookEvent,
) -> Result<(), String> {
    let program = hook.program.display().to_string();
    let mut cmd = tokio::process::Command::new(&hook.program);
    cmd.args(&hook.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // its own process group: a timeout kills whatever it started too
        .process_group(0);
    // the daemon's own DOCSYNC_* variables (API keys, the webhook secret) stay here
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"DOCSYNC_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(event.env_vars());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    let pid = child.id();
    let mut stderr = child.stderr.take();
    let finished = tokio::time::timeout(timeout, async {
        let mut kept = Vec::new();
        if let Some(err) = stderr.as_mut() {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(buf.get(..n).unwrap_or_default());
                if kept.len() > STDERR_KEPT {
                    kept.drain(..kept.len() - STDERR_KEPT);
                }
            }
        }
        (child.wait().await, kept)
    })
    .await;
    match finished {
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), stderr)) => {
            let stderr = String::from_utf8_lossy(&stderr);
            let stderr = stderr.trim();
            if stderr.is_empty() {
                Err(format!("{program} failed ({status})"))
            } else {
                Err(format!("{program} failed ({status}): {stderr}"))
            }
        }
        Ok((Err(e), _)) => Err(format!("waiting for {program} failed: {e}")),
        Err(_) => {
            if let Some(pgid) = pid
                .and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            }
            Err(format!(
                "{program} did not finish within {}; killed",
                humanise(timeout)
            ))
        }
    }
}

fn humanise(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests;
