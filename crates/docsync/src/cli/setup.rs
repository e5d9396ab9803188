//! Shared setup: the environment with the command-line overrides, loading the
//! configuration (file or zero-config), finding the state directory, and the
//! embedded sandbox when the configuration asks for it (or nothing is configured).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use docsync::config::{self, env_vars, Config, Env, PROXY_VARS};
#[cfg(feature = "sandbox")]
use docsync_sandbox::{Credentials, Sandbox, SandboxConfig};

/// The running embedded sandbox, held as long as the daemon runs.
#[cfg(feature = "sandbox")]
pub type EmbeddedSandbox = docsync_sandbox::SandboxHandle;

/// A build without the `sandbox` feature never has one.
#[cfg(not(feature = "sandbox"))]
pub enum EmbeddedSandbox {}

use super::{ApiArgs, ConfigArgs};

/// The configuration file read when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "docsync.toml";

/// The process environment as docsync reads it, with `--state-dir`, `--api-url`
/// and `--sandbox` applied as the environment variables they override.
pub fn env(config: &ConfigArgs, api: Option<&ApiArgs>) -> anyhow::Result<Env> {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            k.starts_with("DOCSYNC_")
                || k == "HOME"
                || k == "XDG_STATE_HOME"
                || PROXY_VARS.contains(&k.as_str())
        })
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

/// The system-wide configuration, the last place looked.
pub const SYSTEM_CONFIG: &str = "/etc/docsync/config.toml";

/// Where a configuration is looked for without `--config`, in order:
/// `./docsync.toml`, `$XDG_CONFIG_HOME/docsync/config.toml` (`~/.config/…` when
/// the variable is not set), `/etc/docsync/config.toml`.
pub fn config_candidates(xdg_config_home: Option<&str>, home: Option<&str>) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from(DEFAULT_CONFIG)];
    let user = match (xdg_config_home.filter(|x| !x.is_empty()), home) {
        (Some(xdg), _) => Some(Path::new(xdg).to_path_buf()),
        (None, Some(home)) => Some(Path::new(home).join(".config")),
        (None, None) => None,
    };
    if let Some(dir) = user {
        out.push(dir.join("docsync").join("config.toml"));
    }
    out.push(PathBuf::from(SYSTEM_CONFIG));
    out
}

/// The configuration file to read: `--config`, else the first of
/// [`config_candidates`] that exists.
pub fn config_file(args: &ConfigArgs) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = &args.config {
        return Ok(Some(absolute(path)?));
    }
    let xdg = std::env::var("XDG_CONFIG_HOME").ok();
    let home = std::env::var("HOME").ok();
    for candidate in config_candidates(xdg.as_deref(), home.as_deref()) {
        if candidate.is_file() {
            return Ok(Some(absolute(&candidate)?));
        }
    }
    Ok(None)
}

/// Say which configuration file a command uses (on stderr, so that stdout
/// stays what scripts parse).
pub fn say_config(path: Option<&Path>) {
    match path {
        Some(path) => eprintln!("docsync: configuration {}", path.display()),
        None => eprintln!(
            "docsync: no configuration file (looked for {})",
            config_candidates(
                std::env::var("XDG_CONFIG_HOME").ok().as_deref(),
                std::env::var("HOME").ok().as_deref()
            )
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
        ),
    }
}

/// Load the configuration for `run` and `sync`: the zero-config layout on
/// `folder` when one is given, else `--config`, else the first file found (see
/// [`config_candidates`]).
pub fn load(api: &ApiArgs, folder: Option<&Path>) -> anyhow::Result<Config> {
    let env = env(&api.config, Some(api))?;
    if let Some(folder) = folder {
        // An explicit FOLDER wins over an implicit ./docsync.toml (--config and
        // FOLDER together are refused by the argument parser).
        if api.config.config.is_none() {
            if let Some(found) = config_file(&api.config)? {
                tracing::warn!(
                    config = %found.display(),
                    "the configuration file is not used because FOLDER was given; pass --config without FOLDER to use it"
                );
            }
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
             FOLDER/<accountID>/<filePurpose>/<file>), --config PATH, or create ./{DEFAULT_CONFIG} \
             (also looked for $XDG_CONFIG_HOME/docsync/config.toml and {SYSTEM_CONFIG})"
        ),
    }
}

/// `--only-newer-than`: the `max_age` of every folder, whatever the
/// configuration says.
pub fn only_newer_than(config: &mut Config, max_age: Option<&docsync::model::MaxAge>) {
    if let Some(max_age) = max_age {
        for folder in &mut config.folders {
            folder.max_age = Some(max_age.clone());
        }
    }
}

/// The PostgreSQL state URL for `status`, `history` and `retry`:
/// `DOCSYNC_STATE_URL`, or the configuration's `state.url`; `None`: the state
/// is the SQLite database in the state directory.
///
/// As for [`state_dir`], a configuration that does not load completely
/// (credentials missing in this shell) is read for its `[state] url` only.
pub fn state_url(args: &ConfigArgs) -> anyhow::Result<Option<String>> {
    let env = env(args, None)?;
    if let Some(url) = env.get(env_vars::STATE_URL) {
        return Ok(Some(url.to_owned()));
    }
    let Some(path) = config_file(args)? else {
        return Ok(None);
    };
    if let Ok(config) = config::load(&path, &env) {
        return Ok(config.state.url.map(|u| u.expose().to_owned()));
    }
    let table = raw_table(&path, "[state] url")?;
    match table.get("state").and_then(|s| s.get("url")) {
        None => Ok(None),
        Some(toml::Value::String(url)) => Ok(Some(url.clone())),
        Some(_) => bail!(
            "[state] url in {} is not a string (run `docsync config check`)",
            path.display()
        ),
    }
}

/// The configuration file as a plain TOML table, to read `what` from when
/// it does not load completely.
fn raw_table(path: &Path, what: &str) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration {}", path.display()))?;
    toml::from_str(&text).with_context(|| {
        format!(
            "reading {what} from {} (run `docsync config check`)",
            path.display()
        )
    })
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
    let table = raw_table(&path, "state_dir")?;
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
#[cfg(not(feature = "sandbox"))]
pub async fn embedded_sandbox(config: &mut Config) -> anyhow::Result<Option<EmbeddedSandbox>> {
    if config.api.sandbox {
        bail!(
            "this docsync was built without the embedded sandbox (the `sandbox` cargo \
             feature): set api.url and the credentials to sync with the real API"
        );
    }
    Ok(None)
}

#[cfg(feature = "sandbox")]
pub async fn embedded_sandbox(config: &mut Config) -> anyhow::Result<Option<EmbeddedSandbox>> {
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
    config.credentials.public_key = Some(config::Secret::new(credentials.public_key));
    config.credentials.secret_key = Some(config::Secret::new(credentials.secret_key));
    config.credentials.attachments_api_key =
        Some(config::Secret::new(credentials.attachments_api_key));
    eprintln!(
        "docsync: using the embedded sandbox at {} (data in {}): a local stand-in, not the \
         real Moov API, whose approvals are not real; set api.url (or --api-url) to sync for real",
        handle.url(),
        data.display()
    );
    Ok(Some(handle))
}
