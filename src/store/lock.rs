//! Advisory file locks on the store (`flock` through std's `File::lock`).
//!
//! Every command that reads or writes images holds `store.lock` shared;
//! garbage collection holds it exclusive, so it never deletes a blob that a
//! concurrent import has written but not yet referenced. Finer locks (one per
//! layer being unpacked, one for refs.json) serialise the rest.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening the lock file {}", path.display()))
}

impl StoreLock {
    pub fn shared(path: &Path) -> Result<StoreLock> {
        let file = open_lock_file(path)?;
        file.lock_shared()
            .with_context(|| format!("taking a shared lock on {}", path.display()))?;
        Ok(StoreLock { _file: file })
    }

    pub fn exclusive(path: &Path) -> Result<StoreLock> {
        let file = open_lock_file(path)?;
        file.lock()
            .with_context(|| format!("taking an exclusive lock on {}", path.display()))?;
        Ok(StoreLock { _file: file })
    }

    /// The exclusive lock if nobody holds the file (None: somebody does).
    pub fn try_exclusive(path: &Path) -> Result<Option<StoreLock>> {
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(StoreLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("trying a lock on {}", path.display()))
            }
        }
    }
}
