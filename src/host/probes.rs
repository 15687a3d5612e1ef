//! Kernel features, probed: whether a user namespace can be created, and
//! whether the devices hutch needs (`/dev/fuse`, `/dev/net/tun`) open.
//! The probes change nothing on the host.

use std::fs;
use std::io;
use std::path::Path;

/// What happened when we opened a device node `O_RDWR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DevAccess {
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
    pub(crate) fn probe(path: &Path) -> Self {
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

/// Result of actually trying to create a user namespace in a child process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UsernsProbe {
    /// `unshare(CLONE_NEWUSER)` and then `unshare(CLONE_NEWNS)` inside it worked.
    Works,
    /// The step that failed (`fork`, `unshare(CLONE_NEWUSER)`, ...) and why.
    Failed { step: &'static str, error: String },
}

/// Exit code of the probe child: 0 = works; `e` (1..=127) = `unshare(CLONE_NEWUSER)`
/// failed with errno `e`; `128 + e` = `unshare(CLONE_NEWNS)` inside the new
/// user namespace failed with errno `e` (what Ubuntu's AppArmor restriction does:
/// the namespace is created, but without capabilities in it).
pub(crate) fn probe_userns() -> UsernsProbe {
    // SAFETY: fork is sound even if other threads exist (e.g. under the test
    // harness): the child only makes raw syscalls (unshare, reading errno,
    // _exit), which are async-signal-safe, takes no locks, does not allocate,
    // and leaves through _exit without running destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return UsernsProbe::Failed {
            step: "fork",
            error: io::Error::last_os_error().to_string(),
        };
    }
    if pid == 0 {
        let errno = || io::Error::last_os_error().raw_os_error().unwrap_or(1) & 0x7f;
        // SAFETY: plain syscalls in the freshly forked, single-threaded child.
        unsafe {
            let code = if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                errno().max(1)
            } else if libc::unshare(libc::CLONE_NEWNS) != 0 {
                128 | errno()
            } else {
                0
            };
            libc::_exit(code)
        }
    }
    let child = rustix::process::Pid::from_raw(pid);
    let status = loop {
        match rustix::process::waitpid(child, rustix::process::WaitOptions::empty()) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(Some((_, status))) => break status,
            Ok(None) => unreachable!("waitpid without WNOHANG always reports"),
            Err(e) => {
                return UsernsProbe::Failed {
                    step: "waitpid",
                    error: io::Error::from(e).to_string(),
                };
            }
        }
    };
    match status.exit_status() {
        Some(0) => UsernsProbe::Works,
        Some(code) if code < 128 => UsernsProbe::Failed {
            step: "unshare(CLONE_NEWUSER)",
            error: io::Error::from_raw_os_error(code).to_string(),
        },
        Some(code) => UsernsProbe::Failed {
            step: "unshare(CLONE_NEWNS) inside a new user namespace",
            error: io::Error::from_raw_os_error(code - 128).to_string(),
        },
        None => UsernsProbe::Failed {
            step: "probe child",
            error: format!("ended abnormally ({status:?})"),
        },
    }
}
