//! The decision hooks (`[hooks]`): which kinds there are, and which states are
//! decisions a hook hears about.

use std::fmt;
use std::str::FromStr;

use super::State;

/// A way of hearing about decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookKind {
    /// `on_decision`: a command run without a shell.
    Command,
    /// `webhook_url`: a signed JSON POST.
    Webhook,
}

impl HookKind {
    /// Every kind.
    pub const ALL: [HookKind; 2] = [HookKind::Command, HookKind::Webhook];

    /// The name stored in the database and shown in logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            HookKind::Command => "command",
            HookKind::Webhook => "webhook",
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HookKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        HookKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown hook `{s}`"))
    }
}

/// The states a hook hears about: the file was decided (approved, rejected) or
/// will not be sent as it is (invalid, failed). Entering one of them is an event;
/// staying in it (a recorded move) is not.
pub const DECISION_STATES: [State; 4] = [
    State::Approved,
    State::Rejected,
    State::Invalid,
    State::Failed,
];
