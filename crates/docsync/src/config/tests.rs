use std::os::unix::fs::PermissionsExt;

use super::state::DEFAULT_LEASE;
use super::*;
use crate::local::ignore::IgnoreSet;
use proptest::prelude::*;

fn errors(problems: Vec<Problem>) -> Vec<Problem> {
    problems
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .collect()
}

fn env() -> Env {
    Env::from_pairs([("HOME", "/home/u")])
}

fn write_creds(dir: &Path, mode: u32) -> PathBuf {
    let path = dir.join("creds.toml");
    std::fs::write(
        &path,
        "public_key = \"pk-123\"\nsecret_key = \"sk-456\"\nattachments_api_key = \"ak-789\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

const FULL: &str = r#"
state_dir = "state"
concurrency = 8
scan_interval = "2m"
quiet_window = "250ms"
poll_interval = "30s"

[api]
url = "https://api.moov.io"
attachments_url = "https://attach.example.com"
version = "v2025.04.00"
auth = "oauth"

[[folder]]
path = "kyb"
ignore = ["*.bak"]
after_decision = "move"
target = { kind = "moov-files", account_id = "00000000-0000-4000-8000-00000000acc1", file_purpose = "business_verification", metadata = { comment = "kyb docs", requirement_id = "req-1" } }

[[folder]]
path = "images"
watcher = "poll"
watcher_interval = "3s"
[folder.target]
kind = "moov-images"
account_id = "00000000-0000-4000-8000-00000000acc2"
disable_on_delete = true

[[folder]]
path = "attach"
target = { kind = "attachments", user_id = "user-1" }

[[folder]]
path = "by-account"
"#;

#[test]
fn parses_a_full_file() {
    let dir = tempfile::tempdir().unwrap();
    let creds = write_creds(dir.path(), 0o600);
    let origin = dir.path().join("docsync.toml");
    let env = Env::from_pairs([("DOCSYNC_CREDENTIALS_FILE", creds.to_str().unwrap())]);
    let config = parse(FULL, Some(&origin), &env).unwrap();
    assert_eq!(config.state_dir, dir.path().join("state"));
    assert_eq!(config.concurrency, 8);
    assert_eq!(config.scan_interval, Duration::from_secs(120));
    assert_eq!(config.quiet_window, Duration::from_millis(250));
    assert_eq!(config.poll_interval, Duration::from_secs(30));
    assert_eq!(config.api.url.as_deref(), Some("https://api.moov.io"));
    assert_eq!(config.api.version, "v2025.04.00");
    assert_eq!(config.api.auth, AuthMode::Oauth);
    assert_eq!(config.folders.len(), 4);

    let kyb = &config.folders[0];
    assert_eq!(kyb.path, dir.path().join("kyb"));
    assert_eq!(kyb.after_decision, AfterDecision::Move);
    assert_eq!(kyb.watcher, WatcherKind::Native);
    let Mapping::Fixed(Target::MoovFiles(t)) = &kyb.mapping else {
        panic!()
    };
    assert_eq!(t.file_purpose, FilePurpose::BusinessVerification);
    assert_eq!(t.metadata.comment.as_deref(), Some("kyb docs"));
    assert_eq!(t.metadata.requirement_id.as_deref(), Some("req-1"));
    assert!(IgnoreSet::for_folder(kyb)
        .unwrap()
        .is_ignored(Path::new("approved/x.pdf")));
    assert!(IgnoreSet::for_folder(kyb)
        .unwrap()
        .is_ignored(Path::new("x.bak")));

    let images = &config.folders[1];
    assert_eq!(
        images.watcher,
        WatcherKind::Poll {
            interval: Duration::from_secs(3)
        }
    );
    let Mapping::Fixed(Target::MoovImages(t)) = &images.mapping else {
        panic!()
    };
    assert!(t.replace_on_change, "default true");
    assert!(t.disable_on_delete);

    let Mapping::Fixed(Target::Attachments(t)) = &config.folders[2].mapping else {
        panic!()
    };
    assert!(t.persist, "default true");
    assert_eq!(config.folders[3].mapping, Mapping::Convention);

    assert_eq!(
        config.credentials.public_key.as_ref().unwrap().expose(),
        "pk-123"
    );
    assert_eq!(config.credentials.source, CredentialSource::File(creds));

    assert_eq!(
        config.oauth_scopes(),
        vec![
            "/accounts/00000000-0000-4000-8000-00000000acc1/files.read",
            "/accounts/00000000-0000-4000-8000-00000000acc1/files.write",
            "/accounts/00000000-0000-4000-8000-00000000acc2/images.read",
            "/accounts/00000000-0000-4000-8000-00000000acc2/images.write",
        ],
        "the convention folder adds its accounts at run time"
    );
}

#[test]
fn defaults() {
    let config = parse(
        "[[folder]]\npath = \"/srv/in\"\n[api]\nsandbox = true\n",
        None,
        &env(),
    )
    .unwrap();
    assert_eq!(config.api.url, None);
    assert_eq!(config.api.version, DEFAULT_API_VERSION);
    assert_eq!(config.api.auth, AuthMode::Basic);
    assert_eq!(config.concurrency, DEFAULT_CONCURRENCY);
    assert_eq!(config.quiet_window, DEFAULT_QUIET_WINDOW);
    assert_eq!(config.scan_interval, DEFAULT_SCAN_INTERVAL);
    assert_eq!(config.poll_interval, DEFAULT_POLL_INTERVAL);
    assert_eq!(
        config.state_dir,
        PathBuf::from("/home/u/.local/state/docsync")
    );
    assert_eq!(config.folders[0].after_decision, AfterDecision::Leave);
    assert_eq!(config.credentials, Credentials::default());
    let home = parse(
        "state_dir = \"~/st\"\n[[folder]]\npath = \"~/in\"\n[api]\nsandbox = true\n",
        None,
        &env(),
    )
    .unwrap();
    assert_eq!(home.folders[0].path, PathBuf::from("/home/u/in"));
    assert_eq!(home.state_dir, PathBuf::from("/home/u/st"));
    let xdg = Env::from_pairs([("HOME", "/home/u"), ("XDG_STATE_HOME", "/x")]);
    assert_eq!(default_state_dir(&xdg), PathBuf::from("/x/docsync"));
}

#[test]
fn env_overrides() {
    let env = Env::from_pairs([
        ("DOCSYNC_API_URL", "http://127.0.0.1:9999"),
        ("DOCSYNC_STATE_DIR", "/tmp/elsewhere"),
        ("DOCSYNC_CONCURRENCY", "2"),
        ("DOCSYNC_QUIET_WINDOW", "3s"),
        ("DOCSYNC_API_VERSION", "v2024.04.00"),
        ("DOCSYNC_PUBLIC_KEY", "pk"),
        ("DOCSYNC_SECRET_KEY", "sk"),
    ]);
    let config = parse("concurrency = 9\n[[folder]]\npath = \"/in\"\n", None, &env).unwrap();
    assert_eq!(config.api.url.as_deref(), Some("http://127.0.0.1:9999"));
    assert_eq!(config.state_dir, PathBuf::from("/tmp/elsewhere"));
    assert_eq!(config.concurrency, 2);
    assert_eq!(config.quiet_window, Duration::from_secs(3));
    assert_eq!(config.api.version, "v2024.04.00");
    assert_eq!(config.credentials.source, CredentialSource::Env);
    assert_eq!(
        config.credentials.secret_key.as_ref().unwrap().expose(),
        "sk"
    );
}

#[test]
fn bad_env_values_are_problems_naming_the_variable() {
    let env = Env::from_pairs([
        ("DOCSYNC_CONCURRENCY", "lots"),
        ("DOCSYNC_POLL_INTERVAL", "soon"),
    ]);
    let problems = errors(
        parse(
            "[[folder]]\npath = \"/in\"\n[api]\nsandbox = true\n",
            None,
            &env,
        )
        .unwrap_err(),
    );
    let keys: Vec<_> = problems
        .iter()
        .map(|p| p.location.key.clone().unwrap())
        .collect();
    assert_eq!(
        keys,
        vec!["env DOCSYNC_CONCURRENCY", "env DOCSYNC_POLL_INTERVAL"]
    );
}

#[test]
fn syntax_and_schema_errors_have_line_and_column() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        ("bogus = 1\n", (1, 1), "unknown field"),
        ("[[folder]]\npath = \"/x\"\ncolour = \"red\"\n", (3, 1), "unknown field"),
        (
            "[[folder]]\npath = \"/x\"\ntarget = { kind = \"moov-files\", account_id = \"00000000-0000-4000-8000-00000000000a\", file_purpose = \"selfie\" }\n",
            (3, 10),
            "unknown variant",
        ),
        (
            "[[folder]]\npath = \"/x\"\ntarget = { kind = \"moov-images\", account_id = \"00000000-0000-4000-8000-00000000000a\", file_purpose = \"x\" }\n",
            (3, 10),
            "unknown field",
        ),
        ("[[folder]]\npath = \n", (2, 8), ""),
        ("concurrency = \"4\"\n", (1, 15), "invalid type"),
    ];
    for (text, (line, col), needle) in cases {
        let problems = parse(text, Some(Path::new("docsync.toml")), &env()).unwrap_err();
        assert_eq!(problems.len(), 1, "{text}: {problems:?}");
        let p = &problems[0];
        assert_eq!(p.location.line_col, Some((*line, *col)), "{text}: {p}");
        assert!(p.message.contains(needle), "{text}: {p}");
        assert!(!p.fix.is_empty());
        assert!(
            p.to_string()
                .starts_with(&format!("docsync.toml:{line}:{col}")),
            "{p}"
        );
    }
}

#[test]
fn every_semantic_problem_is_reported() {
    let text = r#"
concurrency = 0
scan_interval = "often"
quiet_window = "0s"

[api]
url = "ftp://example.com"
version = "2024-01"

[[folder]]
path = "/a"
watcher_interval = "5s"
target = { kind = "moov-files", account_id = "", file_purpose = "business_verification" }

[[folder]]
path = "/a/b"
ignore = ["a[b"]
"#;
    let problems = parse(text, Some(Path::new("docsync.toml")), &env()).unwrap_err();
    let errors: Vec<&Problem> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    let keys: Vec<&str> = errors
        .iter()
        .map(|p| p.location.key.as_deref().unwrap())
        .collect();
    for want in [
        "concurrency",
        "scan_interval",
        "quiet_window",
        "api.url",
        "api.version",
        "folder[0].target.account_id",
        "folder[0].watcher_interval",
        "folder[1].ignore",
        "folder[1].path",
    ] {
        assert!(keys.contains(&want), "missing {want} in {keys:?}");
    }
    for p in &errors {
        // credentials problems are about the whole file: their location is the key
        assert!(
            p.location.line_col.is_some() || p.location.key.as_deref() == Some("credentials"),
            "{p}"
        );
        assert!(!p.fix.is_empty(), "{p}");
    }
    let concurrency = errors
        .iter()
        .find(|p| p.location.key.as_deref() == Some("concurrency"))
        .unwrap();
    assert_eq!(concurrency.location.line_col, Some((2, 15)));
    // the error type carries all of them
    let err = Error::Config {
        path: "docsync.toml".into(),
        problems: problems.clone(),
    };
    assert!(err.to_string().contains("docsync.toml:2:15"), "{err}");
}

#[test]
fn no_folder_is_an_error() {
    let problems = parse("", None, &env()).unwrap_err();
    assert_eq!(problems[0].location.key.as_deref(), Some("folder"));
}

#[test]
fn missing_folder_is_only_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (config, problems) = parse_all(
        &format!(
            "[[folder]]\npath = {:?}\n[api]\nsandbox = true\n",
            dir.path().join("nope")
        ),
        None,
        &env(),
    );
    assert!(config.is_some());
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].severity, Severity::Warning);
    assert!(problems[0].fix.contains("mkdir -p"));
}

#[test]
fn credentials_file_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    let creds = write_creds(dir.path(), 0o644);
    let text =
        "[credentials]\nfile = \"creds.toml\"\n[[folder]]\npath = \"/in\"\n[api]\nsandbox = true\n";
    let origin = dir.path().join("docsync.toml");
    let problems = errors(parse(text, Some(&origin), &env()).unwrap_err());
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    assert!(p.message.contains("0644"), "{p}");
    assert_eq!(p.fix, format!("run `chmod 600 {}`", creds.display()));
    assert_eq!(p.location.line_col, Some((2, 8)));
    let err = read_credentials_file(&creds).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
    assert!(!err.to_string().contains("sk-456"));

    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = parse(text, Some(&origin), &env()).unwrap();
    assert_eq!(
        config.credentials.attachments_api_key.unwrap().expose(),
        "ak-789"
    );
    // env vars win over the file
    let env = Env::from_pairs([("DOCSYNC_PUBLIC_KEY", "from-env")]);
    let config = parse(text, Some(&origin), &env).unwrap();
    assert_eq!(config.credentials.public_key.unwrap().expose(), "from-env");
    assert_eq!(config.credentials.secret_key.unwrap().expose(), "sk-456");
    assert_eq!(
        config.credentials.source,
        CredentialSource::EnvAndFile(creds)
    );
}

#[test]
fn bad_credentials_file_does_not_echo_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "public_key = \"pk-secret\"\nsekret_key = \"sk-secret\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let msg = read_credentials_file(&path).unwrap_err().to_string();
    assert!(
        msg.contains("sekret_key") && msg.contains("line 2"),
        "{msg}"
    );
    assert!(
        !msg.contains("sk-secret") && !msg.contains("pk-secret"),
        "{msg}"
    );
}

#[test]
fn real_api_needs_credentials() {
    let text = "[api]\nurl = \"https://api.moov.io\"\nattachments_url = \"https://a.example\"\n\
                [[folder]]\npath = \"/a\"\n\
                [[folder]]\npath = \"/b\"\ntarget = { kind = \"attachments\", user_id = \"u\" }\n";
    let problems = errors(parse(text, None, &env()).unwrap_err());
    let fixes: Vec<&str> = problems.iter().map(|p| p.fix.as_str()).collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(fixes[0].contains("DOCSYNC_PUBLIC_KEY"));
    assert!(fixes[1].contains("DOCSYNC_SECRET_KEY"));
    assert!(fixes[2].contains("DOCSYNC_ATTACHMENTS_API_KEY"));
    // the embedded sandbox needs none
    parse(
        "[[folder]]\npath = \"/a\"\n[api]\nsandbox = true\n",
        None,
        &env(),
    )
    .unwrap();
}

#[test]
fn secrets_are_redacted() {
    let env = Env::from_pairs([
        ("DOCSYNC_SECRET_KEY", "hunter2"),
        ("DOCSYNC_PUBLIC_KEY", "pk-live"),
    ]);
    let config = parse(
        "[[folder]]\npath = \"/a\"\n[api]\nsandbox = true\n",
        None,
        &env,
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("pk-live"),
        "{debug}"
    );
    assert!(debug.contains("Secret(***)"));
    assert_eq!(Secret::new("x").to_string(), "***");
}

#[test]
fn convention_table() {
    type Want = std::result::Result<(&'static str, FilePurpose), &'static str>;
    let cases: &[(&str, Want)] = &[
        (
            "00000000-0000-4000-8000-00000000acc1/business_verification/a.pdf",
            Ok((
                "00000000-0000-4000-8000-00000000acc1",
                FilePurpose::BusinessVerification,
            )),
        ),
        (
            "00000000-0000-4000-8000-00000000acc1/identity_verification/sub/a.pdf",
            Ok((
                "00000000-0000-4000-8000-00000000acc1",
                FilePurpose::IdentityVerification,
            )),
        ),
        (
            "00000000-0000-4000-8000-00000000acc1/merchant_underwriting/a.pdf",
            Ok((
                "00000000-0000-4000-8000-00000000acc1",
                FilePurpose::MerchantUnderwriting,
            )),
        ),
        ("a.pdf", Err("<accountID>/<filePurpose>/")),
        (
            "00000000-0000-4000-8000-00000000acc1/a.pdf",
            Err("<accountID>/<filePurpose>/"),
        ),
        (
            "00000000-0000-4000-8000-00000000acc1/selfies/a.pdf",
            Err("`selfies` is not a file purpose"),
        ),
        // Moov's account IDs are UUIDs: a folder named otherwise is no account
        (
            "acme/business_verification/a.pdf",
            Err("`acme` is not a Moov account ID (a UUID such as 7f888113-"),
        ),
        (
            "acme/business_verification/a.pdf",
            Err("; rename the folder to the account's ID"),
        ),
        (
            "acct-1/business_verification/a.pdf",
            Err("`acct-1` is not a Moov account ID"),
        ),
        (
            "00000000000040008000000000000acc1/business_verification/a.pdf",
            Err("is not a Moov account ID"),
        ),
        ("acme/selfies/a.pdf", Err("`acme` is not a Moov account ID")),
    ];
    for (path, want) in cases {
        let got = convention_target(Path::new(path));
        match (got, want) {
            (Ok(Target::MoovFiles(t)), Ok((acct, purpose))) => {
                assert_eq!(
                    (t.account_id.as_str(), t.file_purpose),
                    (*acct, *purpose),
                    "{path}"
                )
            }
            (Err(reason), Err(needle)) => assert!(reason.contains(needle), "{path}: {reason}"),
            (got, _) => panic!("{path}: {got:?}"),
        }
    }
}

#[test]
fn moov_account_ids_that_are_not_uuids_are_errors_with_the_fix() {
    let text = r#"
[[folder]]
path = "/a"
target = { kind = "moov-files", account_id = "acme", file_purpose = "business_verification" }

[[folder]]
path = "/b"
target = { kind = "moov-images", account_id = "7f888113d35a4536b9bcc55076736ab6" }

[[folder]]
path = "/c"
target = { kind = "attachments", user_id = "acme" }

[[folder]]
path = "/d"
target = { kind = "moov-files", account_id = "7F888113-D35A-4536-B9BC-C55076736AB6", file_purpose = "business_verification" }

[api]
sandbox = true
"#;
    let problems = parse(text, Some(Path::new("docsync.toml")), &env()).unwrap_err();
    let errors = errors(problems);
    let keys: Vec<_> = errors
        .iter()
        .map(|p| p.location.key.as_deref().unwrap_or(""))
        .collect();
    // an attachments user_id is the caller's own, not a Moov account
    assert_eq!(
        keys,
        ["folder[0].target.account_id", "folder[1].target.account_id"],
        "{errors:#?}"
    );
    for (p, id, line) in [
        (&errors[0], "acme", 4),
        (&errors[1], "7f888113d35a4536b9bcc55076736ab6", 8),
    ] {
        assert!(
            p.message.contains(&format!(
                "account_id `{id}` is not valid: it is not a Moov account ID"
            )),
            "{p}"
        );
        assert!(p.message.contains("a UUID such as"), "{p}");
        assert!(p.fix.contains("UUID"), "{p}");
        assert_eq!(p.location.line_col.map(|(l, _)| l), Some(line), "{p}");
        assert!(
            p.to_string().starts_with(&format!("docsync.toml:{line}:")),
            "{p}"
        );
    }
}

#[test]
fn zero_config() {
    let config = Config::zero_config(Path::new("/srv/inbox"), &env()).unwrap();
    assert_eq!(config.folders.len(), 1);
    assert_eq!(config.folders[0].path, PathBuf::from("/srv/inbox"));
    assert_eq!(config.folders[0].mapping, Mapping::Convention);
}

#[test]
fn durations() {
    let cases: &[(&str, Option<Duration>)] = &[
        ("500ms", Some(Duration::from_millis(500))),
        ("1s", Some(Duration::from_secs(1))),
        ("1.5s", Some(Duration::from_millis(1500))),
        (" 5m ", Some(Duration::from_secs(300))),
        ("2h", Some(Duration::from_secs(7200))),
        ("0s", Some(Duration::ZERO)),
        ("5", None),
        ("s", None),
        ("5d", None),
        ("-1s", None),
        ("1e300h", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_duration(text).ok(), *want, "{text:?}");
    }
}

#[test]
fn check_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = check(&dir.path().join("nope.toml"), &env());
    assert_eq!(missing.len(), 1);
    assert!(missing[0].fix.contains("--config"));
    let path = dir.path().join("docsync.toml");
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(&path, "[[folder]]\npath = \"in\"\n[api]\nsandbox = true\n").unwrap();
    assert_eq!(check(&path, &env()), vec![]);
    let config = load(&path, &env()).unwrap();
    assert_eq!(config.source.as_deref(), Some(path.as_path()));
    std::fs::write(&path, "[[folder]]\n").unwrap();
    let err = load(&path, &env()).unwrap_err();
    assert!(err.to_string().contains("missing field `path`"), "{err}");
}

#[test]
fn target_kind_and_purpose_round_trip() {
    for k in [
        TargetKind::MoovFiles,
        TargetKind::MoovImages,
        TargetKind::Attachments,
    ] {
        assert_eq!(k.as_str().parse::<TargetKind>().unwrap(), k);
    }
    for p in FilePurpose::ALL {
        assert_eq!(p.as_str().parse::<FilePurpose>().unwrap(), p);
    }
}

proptest! {
    #[test]
    fn parser_never_panics_on_arbitrary_text(text in ".{0,400}") {
        let _ = parse_all(&text, Some(Path::new("x.toml")), &env());
    }

    #[test]
    fn parser_never_panics_on_toml_like_text(
        lines in proptest::collection::vec(
            prop_oneof![
                Just("[[folder]]".to_owned()),
                Just("[api]".to_owned()),
                Just("[credentials]".to_owned()),
                Just("[folder.target]".to_owned()),
                "(path|url|version|concurrency|quiet_window|kind|account_id|file_purpose|watcher|watcher_interval|ignore|state_dir) = (\"[a-z0-9_./ -]{0,12}\"|[0-9-]{1,5}|\\[\\]|true|\\{\\})",
                ".{0,20}",
            ],
            0..12,
        )
    ) {
        let text = lines.join("\n");
        let (config, problems) = parse_all(&text, None, &env());
        // either a config or at least one error, never both
        let has_error = problems.iter().any(|p| p.severity == Severity::Error);
        prop_assert_eq!(config.is_some(), !has_error);
        for p in &problems {
            let _ = p.to_string();
        }
    }
}

#[test]
fn schema_errors_in_every_section_are_reported() {
    let text = r#"colour = "red"
shade = 1
[api]
verison = "v2024.01.00"

[[folder]]
path = "/a"
target = { kind = "moov-files", account_id = "00000000-0000-4000-8000-00000000000a", file_purpose = "selfie" }

[[folder]]
path = "/b"
wacher = "poll"

[[folder]]
path = "/c"
target = { kind = "moov-images", account_id = "00000000-0000-4000-8000-00000000000a" }

[[folder]]
target = { kind = "attachments", user_id = "u" }
"#;
    let problems = parse(text, Some(Path::new("docsync.toml")), &env()).unwrap_err();
    type Line = (Option<(usize, usize)>, Option<String>, String);
    let summary: Vec<Line> = problems
        .iter()
        .map(|p| {
            (
                p.location.line_col,
                p.location.key.clone(),
                p.message.clone(),
            )
        })
        .collect();
    let keys: Vec<Option<&str>> = summary.iter().map(|(_, k, _)| k.as_deref()).collect();
    // the first error is precise; the others are found section by section
    assert_eq!(problems[0].location.line_col, Some((1, 1)), "{summary:?}");
    assert!(problems[0].message.contains("colour"));
    for want in ["shade", "api", "folder[0]", "folder[1]", "folder[3]"] {
        assert!(keys.contains(&Some(want)), "missing {want}: {summary:?}");
    }
    assert!(
        !keys.contains(&Some("folder[2]")),
        "folder[2] is fine: {summary:?}"
    );
    let f1 = problems
        .iter()
        .find(|p| p.location.key.as_deref() == Some("folder[1]"))
        .unwrap();
    assert!(f1.message.contains("wacher"), "{f1}");
    assert_eq!(
        f1.location.line_col,
        Some((10, 1)),
        "at its [[folder]]: {f1}"
    );
    let f3 = problems
        .iter()
        .find(|p| p.location.key.as_deref() == Some("folder[3]"))
        .unwrap();
    assert!(f3.message.contains("missing field `path`"), "{f3}");
    let shade = problems
        .iter()
        .find(|p| p.location.key.as_deref() == Some("shade"))
        .unwrap();
    assert_eq!(shade.location.line_col, Some((2, 1)));
    assert_eq!(problems.len(), 6, "{summary:?}");
}

#[test]
fn retry_initial_and_request_rate() {
    let config = parse(
        "[[folder]]\npath = \"/in\"\n[api]\nsandbox = true\n",
        None,
        &env(),
    )
    .unwrap();
    assert_eq!(config.retry_initial, DEFAULT_RETRY_INITIAL);
    assert_eq!(config.max_requests_per_second, None);

    let text = "retry_initial = \"50ms\"\nmax_requests_per_second = 20\n[[folder]]\npath = \"/in\"\n[api]\nsandbox = true\n";
    let config = parse(text, None, &env()).unwrap();
    assert_eq!(config.retry_initial, Duration::from_millis(50));
    assert_eq!(config.max_requests_per_second, RequestRate::new(20.0));

    let env = Env::from_pairs([("DOCSYNC_RETRY_INITIAL", "2s"), ("DOCSYNC_MAX_RPS", "2.5")]);
    let config = parse(text, None, &env).unwrap();
    assert_eq!(config.retry_initial, Duration::from_secs(2));
    assert_eq!(
        config.max_requests_per_second.map(RequestRate::get),
        Some(2.5)
    );

    for (text, env, key, needle) in [
        (
            "retry_initial = \"0s\"\n",
            Env::default(),
            "retry_initial",
            "more than zero",
        ),
        (
            "retry_initial = \"soon\"\n",
            Env::default(),
            "retry_initial",
            "not a duration",
        ),
        (
            "max_requests_per_second = 0\n",
            Env::default(),
            "max_requests_per_second",
            "out of range",
        ),
        (
            "max_requests_per_second = -3.5\n",
            Env::default(),
            "max_requests_per_second",
            "out of range",
        ),
        (
            "max_requests_per_second = \"ten\"\n",
            Env::default(),
            "",
            "invalid type",
        ),
        (
            "",
            Env::from_pairs([("DOCSYNC_MAX_RPS", "lots")]),
            "env DOCSYNC_MAX_RPS",
            "not a number",
        ),
        (
            "",
            Env::from_pairs([("DOCSYNC_RETRY_INITIAL", "5")]),
            "env DOCSYNC_RETRY_INITIAL",
            "no unit",
        ),
    ] {
        let text = format!("{text}[[folder]]\npath = \"/in\"\n");
        let problems = errors(parse(&text, None, &env).unwrap_err());
        assert!(
            problems.iter().any(|p| p.message.contains(needle)
                && (key.is_empty() || p.location.key.as_deref() == Some(key))),
            "{text:?}: {problems:#?}"
        );
    }
}

#[test]
fn admin_section() {
    let folder = "[[folder]]\npath = \"/srv/in\"\n[api]\nsandbox = true\n";
    assert_eq!(parse(folder, None, &env()).unwrap().admin, None);
    let on = parse(
        &format!("[admin]\naddress = \"127.0.0.1:8384\"\n{folder}"),
        None,
        &env(),
    )
    .unwrap();
    assert_eq!(
        on.admin,
        Some(AdminConfig {
            address: "127.0.0.1:8384".parse().unwrap(),
            allow_remote: false
        })
    );
    let remote = parse(
        &format!("[admin]\naddress = \"0.0.0.0:8384\"\nallow_remote = true\n{folder}"),
        None,
        &env(),
    )
    .unwrap();
    assert_eq!(remote.admin.map(|a| a.allow_remote), Some(true));

    // each mistake names the key, its line and a fix
    for (text, says, fix) in [
        (
            "[admin]\naddress = \"localhost\"\n",
            "`localhost` is not an IP address with a port",
            "127.0.0.1:8384",
        ),
        (
            "[admin]\naddress = \"0.0.0.0:8384\"\n",
            "0.0.0.0:8384 can be reached from other machines",
            "allow_remote = true",
        ),
    ] {
        let problems = errors(
            parse(
                &format!("{text}{folder}"),
                Some(Path::new("d.toml")),
                &env(),
            )
            .unwrap_err(),
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert_eq!(p.location.key.as_deref(), Some("admin.address"), "{p}");
        assert_eq!(p.location.line_col.map(|(line, _)| line), Some(2), "{p}");
        assert!(p.message.contains(says), "{p}");
        assert!(p.fix.contains(fix), "{p}");
    }
    let unknown = parse(
        &format!("[admin]\naddress = \"127.0.0.1:1\"\nport = 2\n{folder}"),
        None,
        &env(),
    )
    .unwrap_err();
    assert!(
        unknown
            .iter()
            .any(|p| p.message.contains("unknown field `port`")),
        "{unknown:?}"
    );
}

/// `[admin]` is a known top-level table: beside another mistake it is not
/// reported as unknown.
#[test]
fn admin_is_a_known_top_level_key() {
    let text =
        "colour = \"red\"\n[admin]\naddress = \"127.0.0.1:9090\"\n[[folder]]\npath = \"/a\"\n";
    let problems = parse(text, Some(Path::new("docsync.toml")), &env()).unwrap_err();
    assert!(
        problems.iter().any(|p| p.message.contains("colour")),
        "{problems:?}"
    );
    assert!(
        !problems
            .iter()
            .any(|p| p.message.contains("unknown field `admin`")),
        "{problems:?}"
    );
}

/// URLs are parsed, not checked by prefix: a space in the host or a port out
/// of range is an error at the key, with the fix.
#[test]
fn api_urls_are_parsed_as_urls() {
    for (url, why) in [
        ("http://exa mple.com", "invalid"),
        ("http://host:99999", "port"),
        ("ftp://example.com", "scheme"),
        ("https://", "host"),
        ("api.moov.io", "relative url"),
    ] {
        let text = format!("[api]\nurl = {url:?}\n[[folder]]\npath = \"/a\"\n");
        let problems = errors(parse(&text, None, &env()).unwrap_err());
        let p = problems
            .iter()
            .find(|p| p.location.key.as_deref() == Some("api.url"))
            .unwrap_or_else(|| panic!("{url}: no problem at api.url: {problems:?}"));
        assert!(p.message.contains("is not an http(s) URL"), "{url}: {p}");
        assert!(p.message.to_lowercase().contains(why), "{url}: {p}");
        assert!(p.fix.contains("https://api.moov.io"), "{url}: {p}");
    }
    for url in ["https://api.moov.io", "http://127.0.0.1:8080/base/"] {
        let text = format!("[api]\nurl = {url:?}\n[[folder]]\npath = \"/a\"\n");
        let problems = parse(&text, None, &env()).err().unwrap_or_default();
        assert!(
            !problems
                .iter()
                .any(|p| p.location.key.as_deref() == Some("api.url")),
            "{url}: {problems:?}"
        );
    }
}

/// The embedded sandbox is never a silent default: a file whose folders need an
/// API names one (`api.url`) or asks for the sandbox (`api.sandbox = true`, or
/// `DOCSYNC_SANDBOX`, which `--sandbox` sets), never both.
#[test]
fn a_file_names_an_api_or_asks_for_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("docsync.toml");
    let folder = "[[folder]]\npath = \"/in\"\n";
    let attachments =
        "[[folder]]\npath = \"/att\"\ntarget = { kind = \"attachments\", user_id = \"u\" }\n";
    let keys = [
        ("DOCSYNC_PUBLIC_KEY", "pk"),
        ("DOCSYNC_SECRET_KEY", "sk"),
        ("DOCSYNC_ATTACHMENTS_API_KEY", "ak"),
    ];
    let with = |more: &[(&'static str, &'static str)]| {
        Env::from_pairs(keys.iter().chain(more).copied().collect::<Vec<_>>())
    };
    // (case, text, env, the error's key and a needle of its message or fix)
    let errors_cases: Vec<(&str, String, Env, &str, &str)> = vec![
        (
            "no url and no sandbox",
            folder.to_owned(),
            with(&[]),
            "api.url",
            "no API is configured",
        ),
        (
            "an [api] table without url or sandbox",
            format!("[api]\nversion = \"v2024.01.00\"\n{folder}"),
            with(&[]),
            "api.url",
            "api.sandbox = true",
        ),
        (
            "sandbox = false is no API either",
            format!("[api]\nsandbox = false\n{folder}"),
            with(&[]),
            "api.url",
            "no API is configured",
        ),
        (
            "an attachments folder without any URL",
            attachments.to_owned(),
            with(&[]),
            "api.url",
            "no API is configured",
        ),
        (
            "sandbox and url",
            format!("[api]\nurl = \"https://api.moov.io\"\nsandbox = true\n{folder}"),
            with(&[]),
            "api.sandbox",
            "names the API https://api.moov.io",
        ),
        (
            "--sandbox and url",
            format!("[api]\nurl = \"https://api.moov.io\"\n{folder}"),
            with(&[("DOCSYNC_SANDBOX", "true")]),
            "env DOCSYNC_SANDBOX",
            "--sandbox (DOCSYNC_SANDBOX) asks for the embedded sandbox",
        ),
        (
            "sandbox and --api-url",
            format!("[api]\nsandbox = true\n{folder}"),
            with(&[("DOCSYNC_API_URL", "https://api.moov.io")]),
            "api.sandbox",
            "--api-url (DOCSYNC_API_URL)",
        ),
        (
            "sandbox and an attachments URL for an attachments folder",
            format!(
                "[api]\nsandbox = true\nattachments_url = \"https://a.example\"\n{attachments}"
            ),
            with(&[]),
            "api.attachments_url",
            "stands in for every API",
        ),
        (
            "DOCSYNC_SANDBOX that is not a boolean",
            folder.to_owned(),
            with(&[("DOCSYNC_SANDBOX", "maybe")]),
            "env DOCSYNC_SANDBOX",
            "is not true or false",
        ),
    ];
    for (what, text, env, key, needle) in errors_cases {
        for origin in [Some(origin.as_path()), None] {
            let problems = errors(parse(&text, origin, &env).unwrap_err());
            let p = problems
                .iter()
                .find(|p| p.location.key.as_deref() == Some(key))
                .unwrap_or_else(|| panic!("{what}: no problem at {key}: {problems:#?}"));
            assert!(
                p.message.contains(needle) || p.fix.contains(needle),
                "{what}: {p}"
            );
            assert!(!p.fix.is_empty(), "{what}");
            if let (Some(origin), false) = (origin, key.starts_with("env ")) {
                assert_eq!(p.location.file.as_deref(), Some(origin), "{what}");
            }
        }
    }

    // fine: the sandbox asked for, a URL, or an attachments folder with its own URL
    let fine: Vec<(&str, String, Env, bool)> = vec![
        (
            "sandbox = true",
            format!("[api]\nsandbox = true\n{folder}"),
            Env::default(),
            true,
        ),
        (
            "DOCSYNC_SANDBOX",
            folder.to_owned(),
            with(&[("DOCSYNC_SANDBOX", "1")]),
            true,
        ),
        (
            "a URL",
            format!("[api]\nurl = \"https://api.moov.io\"\n{folder}"),
            with(&[]),
            false,
        ),
        (
            "--api-url",
            folder.to_owned(),
            with(&[("DOCSYNC_API_URL", "https://api.moov.io")]),
            false,
        ),
        (
            "attachments only, with their URL",
            format!("[api]\nattachments_url = \"https://a.example\"\n{attachments}"),
            with(&[]),
            false,
        ),
        (
            "sandbox = true beside an unused attachments URL",
            format!("[api]\nsandbox = true\nattachments_url = \"https://a.example\"\n{folder}"),
            Env::default(),
            true,
        ),
    ];
    for (what, text, env, sandbox) in fine {
        let config = parse(&text, Some(&origin), &env).unwrap_or_else(|p| panic!("{what}: {p:#?}"));
        assert_eq!(config.api.sandbox, sandbox, "{what}");
        assert_eq!(config.api_identity().is_sandbox(), sandbox, "{what}");
        if sandbox {
            assert_eq!(config.api.url, None, "{what}");
        }
    }
}

/// Nothing configured at all (the zero-config folder, no API URL): the
/// sandbox. An API URL from the environment (or `--api-url`) wins.
#[test]
fn zero_config_uses_the_sandbox_only_without_an_api_url() {
    let config = Config::zero_config(Path::new("/srv/inbox"), &env()).unwrap();
    assert!(config.api.sandbox);
    assert_eq!(config.api_identity(), ApiIdentity::Sandbox);
    let env = Env::from_pairs([
        ("DOCSYNC_API_URL", "HTTPS://API.Moov.io:443/"),
        ("DOCSYNC_PUBLIC_KEY", "pk"),
        ("DOCSYNC_SECRET_KEY", "sk"),
    ]);
    let config = Config::zero_config(Path::new("/srv/inbox"), &env).unwrap();
    assert!(!config.api.sandbox);
    assert_eq!(
        config.api_identity(),
        ApiIdentity::Remote {
            moov: Some("https://api.moov.io".into()),
            attachments: None,
        }
    );
}

/// The identity names each API a folder uses, by normalised URL, never the
/// credentials in it.
#[test]
fn the_api_identity_names_the_apis_the_folders_use() {
    let env = Env::from_pairs([
        ("DOCSYNC_PUBLIC_KEY", "pk"),
        ("DOCSYNC_SECRET_KEY", "sk"),
        ("DOCSYNC_ATTACHMENTS_API_KEY", "ak"),
    ]);
    let text = "[api]\nurl = \"https://user:pw@API.moov.io/\"\nattachments_url = \"https://a.example/x/\"\n\
                [[folder]]\npath = \"/a\"\n\
                [[folder]]\npath = \"/b\"\ntarget = { kind = \"attachments\", user_id = \"u\" }\n";
    let config = parse(text, None, &env).unwrap();
    assert_eq!(
        config.api_identity(),
        ApiIdentity::Remote {
            moov: Some("https://api.moov.io".into()),
            attachments: Some("https://a.example/x".into()),
        }
    );
    // no attachments folder: its URL is not part of the identity
    let text = "[api]\nurl = \"https://api.moov.io\"\nattachments_url = \"https://a.example\"\n\
                [[folder]]\npath = \"/a\"\n";
    let config = parse(text, None, &env).unwrap();
    assert_eq!(
        config.api_identity(),
        ApiIdentity::Remote {
            moov: Some("https://api.moov.io".into()),
            attachments: None,
        }
    );
}

#[test]
fn state_section() {
    let folder = "[[folder]]\npath = \"/srv/in\"\n[api]\nsandbox = true\n";
    // nothing said: SQLite in state_dir, the default lease
    let plain = parse(folder, None, &env()).unwrap().state;
    assert_eq!((plain.url, plain.lease), (None, DEFAULT_LEASE));

    let text = format!(
        "[state]\nurl = \"postgres://docsync:hunter2@db.example/docsync\"\n\
         instance = \"scanner-1\"\nlease = \"10s\"\n{folder}"
    );
    let config = parse(&text, None, &env()).unwrap();
    let state = &config.state;
    assert_eq!(
        state.url.as_ref().map(StateUrl::expose),
        Some("postgres://docsync:hunter2@db.example/docsync")
    );
    assert_eq!(state.instance.as_deref(), Some("scanner-1"));
    assert_eq!(state.lease, Duration::from_secs(10));
    assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");

    // the environment's URL wins over the file's
    let env_url = Env::from_pairs([
        ("HOME", "/home/u"),
        ("DOCSYNC_STATE_URL", "postgresql://other@db2.example/d"),
    ]);
    let state = parse(&text, None, &env_url).unwrap().state;
    assert_eq!(
        state.url.as_ref().map(StateUrl::expose),
        Some("postgresql://other@db2.example/d")
    );

    for (section, key, needle) in [
        (
            "url = \"mysql://u:secretpw@h/d\"",
            "state.url",
            "not a PostgreSQL URL",
        ),
        ("lease = \"1s\"", "state.lease", "outside 2s..1h"),
        ("lease = \"2h\"", "state.lease", "outside 2s..1h"),
        ("lease = \"soon\"", "state.lease", "not a duration"),
        ("instance = \"  \"", "state.instance", "empty"),
    ] {
        let text = format!("[state]\n{section}\n{folder}");
        let problems = errors(parse(&text, None, &env()).unwrap_err());
        assert!(
            problems
                .iter()
                .any(|p| p.message.contains(needle) && p.location.key.as_deref() == Some(key)),
            "{text:?}: {problems:#?}"
        );
        // a bad URL is never echoed: it may hold a password
        assert!(
            problems
                .iter()
                .all(|p| !format!("{p:?}").contains("secretpw")),
            "{problems:#?}"
        );
    }

    // hooks are: their outbox is in the shared state too
    let text = format!(
        "[state]\nurl = \"postgres://docsync@db.example/docsync\"\n\
         [hooks]\non_decision = [\"/bin/sh\"]\n{folder}"
    );
    assert!(parse(&text, None, &env()).is_ok(), "{text}");
    // the status page is: it reads the shared state
    let text = format!(
        "[state]\nurl = \"postgres://docsync@db.example/docsync\"\n\
         [admin]\naddress = \"127.0.0.1:8384\"\n{folder}"
    );
    assert!(parse(&text, None, &env()).is_ok(), "{text}");
}
