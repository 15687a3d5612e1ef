//! Whether a device node (/dev/fuse, /dev/net/tun) opens read-write.

use std::fs;
use std::path::Path;

/// What happened when we opened a device node `O_RDWR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevAccess {
    /// Opened fine.
    Ok,
    /// No such file.
    Missing,
    /// The node exists but no driver answers (ENODEV/ENXIO): module not loaded.
    NoDriver(String),
    /// EACCES/EPERM: the node's permissions (or a device cgroup) keep us out.
    Denied(String),
    /// Anything else, with the error text.
    Error(String),
}

impl DevAccess {
    /// Opens `path` read-write and closes it again at once. Opening
    /// `/dev/fuse` or `/dev/net/tun` without further ioctls has no effect.
    pub fn probe(path: &Path) -> Self {
        match fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(_) => DevAccess::Ok,
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT) => DevAccess::Missing,
                Some(libc::ENODEV | libc::ENXIO) => DevAccess::NoDriver(e.to_string()),
                Some(libc::EACCES | libc::EPERM) => DevAccess::Denied(e.to_string()),
                _ => DevAccess::Error(e.to_string()),
            },
        }
    }
}
