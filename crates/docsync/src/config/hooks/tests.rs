#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::config::parse;

const FOLDER: &str = "[api]\nsandbox = true\n[[folder]]\npath = \"inbox\"\n";

/// The problems about `[hooks]` (the folder does not exist: a warning of its own).
fn of_hooks(problems: Vec<crate::model::Problem>) -> Vec<crate::model::Problem> {
    problems
        .into_iter()
        .filter(|p| {
            p.location
                .key
                .as_deref()
                .is_some_and(|k| k.starts_with("hooks"))
        })
        .collect()
}

#[test]
fn a_bare_command_is_found_in_path_and_the_secret_in_the_credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let tool = bin.join("notify-chat");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let creds = dir.path().join("creds.toml");
    std::fs::write(&creds, "webhook_secret = \"whsec_from_file\"\n").unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "{FOLDER}[credentials]\nfile = {:?}\n[hooks]\non_decision = [\"notify-chat\", \"--quiet\"]\n\
         webhook_url = \"https://hooks.example.com/docsync\"\ncommand_timeout = \"2s\"\n\
         max_attempts = 3\nretry_initial = \"1s\"\n",
        creds.display().to_string()
    );
    let path_var = format!("/nonexistent:{}", bin.display());
    let config = parse(&text, None, &Env::from_pairs([("PATH", path_var.as_str())])).unwrap();
    let hooks = &config.hooks;
    assert_eq!(hooks.kinds(), [HookKind::Command, HookKind::Webhook]);
    let command = hooks.command.as_ref().unwrap();
    assert_eq!(command.program, tool);
    assert_eq!(command.args, [OsString::from("--quiet")]);
    let webhook = hooks.webhook.as_ref().unwrap();
    assert_eq!(webhook.url.as_str(), "https://hooks.example.com/docsync");
    assert_eq!(webhook.secret.expose(), "whsec_from_file");
    assert!(!format!("{config:?}").contains("whsec_from_file"));
    assert_eq!(hooks.command_timeout, Duration::from_secs(2));
    assert_eq!(hooks.max_attempts, 3);

    // the variable wins over the file
    let config = parse(
        &text,
        None,
        &Env::from_pairs([
            ("PATH", path_var.as_str()),
            ("DOCSYNC_WEBHOOK_SECRET", "whsec_from_env"),
        ]),
    )
    .unwrap();
    let webhook = config.hooks.webhook.unwrap();
    assert_eq!(webhook.secret.expose(), "whsec_from_env");
}

#[test]
fn no_hooks_section_means_no_hooks() {
    let config = parse(FOLDER, None, &Env::default()).unwrap();
    assert!(config.hooks.kinds().is_empty());
    assert_eq!(config.hooks, HooksConfig::default());
}

#[test]
fn an_empty_hooks_section_is_a_warning() {
    let (config, problems) = crate::config::parse_all(
        &format!("{FOLDER}[hooks]\nmax_attempts = 3\n"),
        None,
        &Env::default(),
    );
    assert!(config.unwrap().hooks.kinds().is_empty());
    let problems = of_hooks(problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].severity, crate::model::Severity::Warning);
    assert!(problems[0]
        .message
        .contains("neither on_decision nor webhook_url"));
}

#[test]
fn bad_values_are_problems_at_their_keys() {
    let problems = parse(
        &format!(
            "{FOLDER}[hooks]\nwebhook_url = \"ftp://example.com/x\"\nmax_attempts = 0\n\
             command_timeout = \"0s\"\nretry_initial = \"soon\"\n"
        ),
        None,
        &Env::from_pairs([("DOCSYNC_WEBHOOK_SECRET", "s")]),
    )
    .unwrap_err();
    let problems = of_hooks(problems);
    let keys: Vec<_> = problems
        .iter()
        .map(|p| p.location.key.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        [
            "hooks.webhook_url",
            "hooks.command_timeout",
            "hooks.retry_initial",
            "hooks.max_attempts"
        ],
        "{problems:?}"
    );
    assert!(problems[0]
        .message
        .contains("not an http(s) URL (scheme `ftp`)"));
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    let hooks = HooksConfig {
        retry_initial: Duration::from_secs(5),
        ..HooksConfig::default()
    };
    let waits: Vec<u64> = (1..=10).map(|n| hooks.backoff(n).as_secs()).collect();
    assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
    let slow = HooksConfig {
        retry_initial: Duration::from_secs(3600),
        ..HooksConfig::default()
    };
    assert_eq!(slow.backoff(3), Duration::from_secs(3600));
}
