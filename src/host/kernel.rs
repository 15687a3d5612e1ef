//! The kernel: its version, sysctl values, and whether an unprivileged
//! user namespace can be made (probed in a child).

use crate::sys;
use std::fs;
use std::io;
use std::path::Path;

/// Result of actually trying to create a user namespace in a child process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernsProbe {
    /// `unshare(CLONE_NEWUSER)` and then `unshare(CLONE_NEWNS)` inside it worked.
    Works,
    /// The step that failed (`fork`, `unshare(CLONE_NEWUSER)`, ...) and why.
    Failed { step: &'static str, error: String },
}

/// `(major, minor)` from a release like `6.8.0-45-generic` or `5.15.167.4-microsoft`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// Integer value of a sysctl file under `root`, `None` if absent or unreadable.
pub fn read_sysctl(root: &Path, name: &str) -> Option<i64> {
    fs::read_to_string(root.join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Exit code of the probe child: 0 = works; `e` (1..=127) = `unshare(CLONE_NEWUSER)`
/// failed with errno `e`; `128 + e` = `unshare(CLONE_NEWNS)` inside the new
/// user namespace failed with errno `e` (what Ubuntu's AppArmor restriction does:
/// the namespace is created, but without capabilities in it).
pub fn probe_userns() -> UsernsProbe {
    let pid = match sys::fork() {
        Err(e) => {
            return UsernsProbe::Failed {
                step: "fork",
                error: io::Error::from(e).to_string(),
            };
        }
        Ok(sys::Forked::Child) => {
            // Only raw syscalls here, then _exit: the parent may have
            // other threads (the test harness).
            use rustix::thread::UnshareFlags;
            let code = match sys::unshare(UnshareFlags::NEWUSER) {
                Err(e) => (e.raw_os_error() & 0x7f).max(1),
                Ok(()) => match sys::unshare(UnshareFlags::NEWNS) {
                    Err(e) => 128 | (e.raw_os_error() & 0x7f),
                    Ok(()) => 0,
                },
            };
            sys::exit_now(code)
        }
        Ok(sys::Forked::Parent(pid)) => pid,
    };
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

/// Landlock in the running kernel: what the `landlock = true` profiles
/// (untrusted, install) rely on for their path rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandlockSupport {
    /// Enabled, with this ABI version.
    Abi(u32),
    /// Built in, but not in the kernel's list of active security modules
    /// (EOPNOTSUPP).
    NotEnabled,
    /// Not built in (ENOSYS), or refused with this errno.
    Missing(i32),
}

/// Ask the kernel for its Landlock ABI version (changes nothing).
pub fn probe_landlock() -> LandlockSupport {
    match sys::landlock_abi_version() {
        Ok(v) => LandlockSupport::Abi(v),
        Err(libc::EOPNOTSUPP) => LandlockSupport::NotEnabled,
        Err(e) => LandlockSupport::Missing(e),
    }
}
