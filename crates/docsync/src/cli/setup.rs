//! Shared setup: the environment with the command-line overrides, loading the
//! configuration (file or zero-config), finding the state directory, and the
//! embedded sandbox when the configuration asks for it (or nothing is configured).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use docsync::config::{self, env_vars, Config, Env, Secret};
use docsync_sandbox::{Credentials, Sandbox, SandboxConfig, SandboxHandle};

use super::{ApiArgs, ConfigArgs};

/// The configuration file read when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "docsync.toml";

/// The process environment as docsync reads it, with `--state-dir`, `--api-url`
/// and `--sandbox` applied as the environment variables they override.
pub fn env(config: &ConfigArgs, api: Option<&ApiArgs>) -> anyhow::Result<Env> {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("DOCSYNC_") || k == "HOME" || k == "XDG_STATE_HOME")
        .collect();
    if let Some(dir) = &config.state_dir {
        let dir = absolute(dir)?;
        vars.push((
            env_vars::STATE_DIR.to_owned(),
            dir.to_string_lossy().into_owned(),
        ));
    }
    if let Some(url) = api.and_then(|a| a.api_url.as_deref()) {
        vars.push((env_vars::API_URL.to_owned(), url.to_owned()));
    }
    if api.is_some_and(|a| a.sandbox) {
        vars.push((env_vars::SANDBOX.to_owned(), "true".to_owned()));
    }
    Ok(Env::from_pairs(vars))
}

/// `path` made absolute against the working directory (not resolving symlinks).
pub fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// The configuration file to read: `--config`, else `./docsync.toml` if present.
pub fn config_file(args: &ConfigArgs) -> anyhow::Result<Option<PathBuf>> {
    match &args.config {
        Some(path) => Ok(Some(absolute(path)?)),
        None => {
            let default = Path::new(DEFAULT_CONFIG);
            if default.is_file() {
                Ok(Some(absolute(default)?))
            } else {
                Ok(None)
            }
        }
    }
}

/// Load the configuration for `run` and `sync`: `--config`, else `./docsync.toml`,
/// else the zero-config layout on `folder`.
pub fn load(api: &ApiArgs, folder: Option<&Path>) -> anyhow::Result<Config> {
    let env = env(&api.config, Some(api))?;
    if let Some(folder) = folder {
        // An explicit FOLDER wins over an implicit ./docsync.toml (--config and
        // FOLDER together are refused by the argument parser).
        if api.config.config.is_none() && Path::new(DEFAULT_CONFIG).is_file() {
            tracing::warn!(
                "./{DEFAULT_CONFIG} is not used because FOLDER was given; pass --config {DEFAULT_CONFIG} without FOLDER to use it"
            );
        }
        let root = absolute(folder)?;
        if root.exists() && !root.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        return Config::zero_config(&root, &env)
            .with_context(|| format!("setting up the folder {}", root.display()));
    }
    match config_file(&api.config)? {
        Some(path) => config::load(&path, &env)
            .with_context(|| format!("loading the configuration {}", path.display())),
        None => bail!(
            "no configuration: pass the folder to sync (`docsync run FOLDER`, laid out as \
             FOLDER/<accountID>/<filePurpose>/<file>), --config PATH, or create ./{DEFAULT_CONFIG}"
        ),
    }
}

/// The state directory for the read-only commands (`status`, `history`) and `retry`:
/// `--state-dir`, `DOCSYNC_STATE_DIR`, the configuration's `state_dir`, the default.
///
/// The configuration file is only read for its `state_dir` when it does not load
/// completely (e.g. credentials missing in this shell): looking at the state must not
/// need the API's secrets.
pub fn state_dir(args: &ConfigArgs) -> anyhow::Result<PathBuf> {
    let env = env(args, None)?;
    if let Some(dir) = env.get(env_vars::STATE_DIR) {
        return Ok(PathBuf::from(dir));
    }
    let Some(path) = config_file(args)? else {
        return Ok(config::default_state_dir(&env));
    };
    if let Ok(config) = config::load(&path, &env) {
        return Ok(config.state_dir);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the configuration {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| {
        format!(
            "reading state_dir from {} (run `docsync config check`)",
            path.display()
        )
    })?;
    match table.get("state_dir") {
        None => Ok(config::default_state_dir(&env)),
        Some(toml::Value::String(s)) => {
            let base = path.parent().unwrap_or(Path::new("/"));
            Ok(match (s.strip_prefix("~/"), env.get("HOME")) {
                (Some(rest), Some(home)) => Path::new(home).join(rest),
                _ => base.join(s),
            })
        }
        Some(_) => bail!(
            "state_dir in {} is not a string (run `docsync config check`)",
            path.display()
        ),
    }
}

/// If the configuration asks for the embedded sandbox (`api.sandbox`, `--sandbox`,
/// or nothing configured at all), start it (loopback, a free port, data in
/// `<state_dir>/sandbox`, fresh random credentials) and point `config` at it for
/// every API; the returned handle must live as long as the daemon. Says so in one
/// line on stderr; never prints the credentials.
pub async fn embedded_sandbox(config: &mut Config) -> anyhow::Result<Option<SandboxHandle>> {
    if !config.api.sandbox {
        return Ok(None);
    }
    let data = config.state_dir.join(docsync::store::SANDBOX_DIR);
    docsync::store::create_state_dir(&config.state_dir)
        .context("preparing the embedded sandbox")?;
    let credentials = Credentials::random();
    let handle = Sandbox::start(SandboxConfig {
        data_dir: Some(data.clone()),
        credentials: Some(credentials.clone()),
        ..SandboxConfig::default()
    })
    .await
    .with_context(|| format!("starting the embedded sandbox (data in {})", data.display()))?;
    // the sandbox stands in for every API (the configuration refuses an
    // attachments URL next to it for the folders that would use one)
    config.api.url = Some(handle.url().to_owned());
    config.api.attachments_url = None;
    config.credentials.public_key = Some(Secret::new(credentials.public_key));
    config.credentials.secret_key = Some(Secret::new(credentials.secret_key));
    config.credentials.attachments_api_key = Some(Secret::new(credentials.attachments_api_key));
    eprintln!(
        "docsync: using the embedded sandbox at {} (data in {}): a local stand-in, not the \
         real Moov API, whose approvals are not real; set api.url (or --api-url) to sync for real",
        handle.url(),
        data.display()
    );
    Ok(Some(handle))
}
