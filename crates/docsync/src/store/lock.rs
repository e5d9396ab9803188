//! The state directory and the single-instance lock on it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::LOCK_FILE;
use crate::error::{Error, Result};

/// Create the state directory (mode 0700) if it does not exist.
pub fn create_state_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("creating state directory", dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("setting permissions on state directory", dir, e))
}

/// What the lock file says after a clean stop (instead of a pid).
const STOPPED_CLEANLY: &str = "stopped cleanly";

/// The single-instance lock on a state directory, held until dropped.
///
/// While a daemon runs the lock file holds its pid; a clean stop replaces it
/// with "stopped cleanly" ([`InstanceLock::stopped_cleanly`]). Finding a pid
/// there at start means the last run ended uncleanly (killed, crashed, or the
/// machine lost power).
#[derive(Debug)]
pub struct InstanceLock {
    file: File,
    dir: PathBuf,
    last_stop_clean: bool,
}

impl InstanceLock {
    /// Take the exclusive lock on `<dir>/lock` (creating the directory 0700 and the file
    /// 0600), and write our pid into it. Fails fast with [`Error::AlreadyRunning`],
    /// naming the holder's pid, if another process holds it.
    pub fn acquire(dir: &Path) -> Result<InstanceLock> {
        let (mut file, path, before) = lock(dir)?;
        // an empty file: the first run here
        let last_stop_clean = before.trim().is_empty() || before.trim() == STOPPED_CLEANLY;
        write_line(&mut file, &std::process::id().to_string())
            .map_err(|e| Error::io("writing pid to lock file", &path, e))?;
        Ok(InstanceLock {
            file,
            dir: dir.to_owned(),
            last_stop_clean,
        })
    }

    /// Fail fast with [`Error::AlreadyRunning`] if another process holds the lock,
    /// without taking it for a run: the lock file keeps what it says (a pid left by
    /// an unclean stop stays there for the run that takes the lock next).
    pub fn ensure_free(dir: &Path) -> Result<()> {
        lock(dir).map(drop)
    }

    /// Whether the run before this one stopped cleanly (or there was none).
    pub fn last_stop_was_clean(&self) -> bool {
        self.last_stop_clean
    }

    /// Record a clean stop: the next start finds "stopped cleanly" instead of
    /// a pid. Call it last, once everything the run committed is on disk.
    pub fn stopped_cleanly(mut self) -> Result<()> {
        let path = self.dir.join(LOCK_FILE);
        write_line(&mut self.file, STOPPED_CLEANLY)
            .map_err(|e| Error::io("recording a clean stop in", &path, e))
    }

    /// The locked state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Open and lock `<dir>/lock` (the lock goes with the returned file); what it
/// said before.
fn lock(dir: &Path) -> Result<(File, PathBuf, String)> {
    use fs4::fs_std::FileExt;
    create_state_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io("opening lock file", &path, e))?;
    let locked = file
        .try_lock_exclusive()
        .map_err(|e| Error::io("locking", &path, e))?;
    if !locked {
        let mut text = String::new();
        let pid = file
            .read_to_string(&mut text)
            .ok()
            .and_then(|_| text.trim().parse().ok());
        return Err(Error::AlreadyRunning {
            dir: dir.to_owned(),
            pid,
        });
    }
    let mut before = String::new();
    file.read_to_string(&mut before)
        .map_err(|e| Error::io("reading lock file", &path, e))?;
    Ok((file, path, before))
}

/// Replace the lock file's content with `line`, synced to disk.
fn write_line(file: &mut File, line: &str) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{line}")?;
    file.sync_all()
}
