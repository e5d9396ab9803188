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

/// The single-instance lock on a state directory, held until dropped.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    dir: PathBuf,
}

impl InstanceLock {
    /// Take the exclusive lock on `<dir>/lock` (creating the directory 0700 and the file
    /// 0600), and write our pid into it. Fails fast with [`Error::AlreadyRunning`],
    /// naming the holder's pid, if another process holds it.
    pub fn acquire(dir: &Path) -> Result<InstanceLock> {
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
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()
        };
        write(&mut file).map_err(|e| Error::io("writing pid to lock file", &path, e))?;
        Ok(InstanceLock {
            _file: file,
            dir: dir.to_owned(),
        })
    }

    /// The locked state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
