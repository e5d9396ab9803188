//! A daemon's working directory: `docsync.toml`, `inbox/`, `state/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The daemon settings a figure varies.
#[derive(Debug, Clone)]
pub struct Settings {
    pub concurrency: usize,
    pub quiet_window: &'static str,
    pub poll_interval: &'static str,
    /// The state in PostgreSQL (`[state] url`); `None`: SQLite in `state/`.
    pub state_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 8,
            quiet_window: "1s",
            poll_interval: "2s",
            state_url: None,
        }
    }
}

pub struct Workdir {
    pub dir: PathBuf,
    pub inbox: PathBuf,
    pub state: PathBuf,
    /// Where the state is when not in `state/` (PostgreSQL).
    pub state_url: Option<String>,
}

impl Workdir {
    /// `dir` with a config for the zero-config layout in `inbox/`.
    pub fn create(dir: &Path, settings: &Settings) -> Result<Workdir> {
        let inbox = dir.join("inbox");
        std::fs::create_dir_all(&inbox).with_context(|| format!("creating {}", inbox.display()))?;
        let state = match &settings.state_url {
            Some(url) => format!("[state]\nurl = \"{url}\"\n\n"),
            None => String::new(),
        };
        let config = format!(
            "state_dir = \"state\"\nconcurrency = {}\nquiet_window = \"{}\"\npoll_interval = \"{}\"\n\n\
             {state}[[folder]]\npath = \"inbox\"\n",
            settings.concurrency, settings.quiet_window, settings.poll_interval
        );
        let path = dir.join("docsync.toml");
        std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
        Ok(Workdir {
            dir: dir.to_owned(),
            inbox,
            state: dir.join("state"),
            state_url: settings.state_url.clone(),
        })
    }

    pub fn db(&self) -> PathBuf {
        self.state.join("docsync.db")
    }
}
