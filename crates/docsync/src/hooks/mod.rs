//! Telling others about decisions: the command hook (`on_decision`, run without
//! a shell) and the signed webhook (`webhook_url`). One event in, delivered or
//! not out: no store, no retries here (the notify stage, `engine::notify`,
//! reads the outbox, calls [`Hooks::deliver`] and records the outcome).
//!
//! - `event`: [`HookEvent`], what a hook is told: the webhook's JSON body and
//!   the command's `DOCSYNC_*` variables.
//! - `signature`: the webhook's HMAC-SHA256 signature, made and verified.
//! - `command`: one run of the command, with its timeout.
//! - `webhook`: one signed POST.
//!
//! Must not: touch the store; log or pass on a secret (the command gets none of
//! the daemon's `DOCSYNC_*` variables).

use crate::config::HooksConfig;
use crate::error::{Error, Result};
use crate::model::HookKind;

mod command;
mod event;
pub mod signature;
mod webhook;

pub use event::{HookEvent, EVENT_TYPE};
pub use webhook::{EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// The configured hooks, ready to deliver.
#[derive(Debug, Clone)]
pub struct Hooks {
    config: HooksConfig,
    client: reqwest::Client,
}

impl Hooks {
    /// The hooks of `config` (an HTTP client for the webhook: connect and total
    /// timeouts, no redirects).
    pub fn new(config: HooksConfig) -> Result<Hooks> {
        let client = webhook::client().map_err(|e| Error::Hook {
            hook: HookKind::Webhook,
            message: format!("building the HTTP client failed: {e}"),
        })?;
        Ok(Hooks { config, client })
    }

    /// The configured hooks and their retry budget.
    pub fn config(&self) -> &HooksConfig {
        &self.config
    }

    /// Deliver `event` to `hook` once. An error says what failed, in words for
    /// the log and the history (no secret in it).
    pub async fn deliver(&self, hook: HookKind, event: &HookEvent) -> Result<()> {
        let failed = |message: String| Error::Hook { hook, message };
        match hook {
            HookKind::Command => match &self.config.command {
                Some(c) => command::run(c, self.config.command_timeout, event)
                    .await
                    .map_err(failed),
                None => Err(failed("no on_decision command is configured".into())),
            },
            HookKind::Webhook => match &self.config.webhook {
                Some(w) => webhook::post(&self.client, w, event).await.map_err(failed),
                None => Err(failed("no webhook_url is configured".into())),
            },
        }
    }
}
