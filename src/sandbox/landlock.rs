//! Landlock: which paths the container's process may read and write.
//!
//! A second line of defence beside the mount setup: even a path that is
//! mounted writable can only be changed where `write` allows. `read`
//! directories allow reading files, listing directories and executing;
//! `write` directories allow everything Landlock controls (write,
//! truncate, create and remove every kind of entry, rename/link across
//! directories, device ioctls). Everything else on the filesystem is
//! denied once the ruleset is in force.
//!
//! From Landlock ABI 5 (Linux 6.10) ioctls on a *newly opened* device
//! count as write-class: put `/dev` (or at least `/dev/tty`, `/dev/pts`
//! and `/dev/null`) under `write` if programs open a terminal
//! themselves. The program to exec must be under `read` (or `write`).
//!
//! [`prepare`] opens the paths and builds the ruleset (this allocates;
//! the paths are resolved where it runs, so run it after pivot_root or
//! pass paths that name the same directories from where it runs);
//! [`PreparedLandlock::apply`] is one `landlock_restrict_self` in the
//! child, with the best ABI the kernel supports (best effort: an older
//! kernel enforces what it knows, a kernel without Landlock nothing).

use anyhow::{Context, Result};
use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, LandlockStatus, PathBeneath, PathFd,
    PathFdError, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::caps::ApplyError;

/// The newest Landlock ABI whose filesystem rights hutch asks for
/// (Linux 6.10: truncate, cross-directory rename/link, device ioctls).
/// Raise it once a newer ABI's rights have been tested with real images.
pub const TARGET_ABI: ABI = ABI::V5;

/// Path rules. Paths that do not exist when [`prepare`] runs are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandlockRules {
    /// Read files, list directories, execute.
    pub read: Vec<PathBuf>,
    /// Everything: write, truncate, create, remove, rename, device ioctls.
    pub write: Vec<PathBuf>,
}

/// How much of the ruleset the kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandlockOutcome {
    /// Every requested restriction is in force.
    Full,
    /// The kernel's Landlock is older than [`TARGET_ABI`]: its own rights
    /// are enforced, newer ones (e.g. truncate, device ioctls) are not.
    Partial { kernel_abi: u32 },
    /// Nothing is enforced.
    NotEnforced { reason: &'static str },
}

impl fmt::Display for LandlockOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LandlockOutcome::Full => write!(f, "Landlock path rules fully enforced"),
            LandlockOutcome::Partial { kernel_abi } => write!(
                f,
                "Landlock path rules partially enforced: the kernel has Landlock ABI {kernel_abi}, \
                 hutch asks for {} (a newer kernel enforces more)",
                abi_number(TARGET_ABI)
            ),
            LandlockOutcome::NotEnforced { reason } => {
                write!(f, "Landlock path rules not enforced: {reason}")
            }
        }
    }
}

const NOT_ENABLED: &str =
    "the kernel has Landlock but it is not enabled (add landlock to the lsm= boot parameter)";
const NOT_BUILT: &str =
    "the kernel is built without Landlock (CONFIG_SECURITY_LANDLOCK, Linux 5.13+)";

/// The number of a known ABI.
fn abi_number(abi: ABI) -> u32 {
    match abi {
        ABI::Unsupported => 0,
        ABI::V1 => 1,
        ABI::V2 => 2,
        ABI::V3 => 3,
        ABI::V4 => 4,
        ABI::V5 => 5,
        ABI::V6 => 6,
        ABI::V7 => 7,
        ABI::V8 => 8,
        ABI::V9 => 9,
        _ => 10,
    }
}

/// A ruleset built and filled, waiting to be enforced. Holds only the
/// ruleset's fd (no heap memory), so `apply` frees nothing.
#[derive(Debug)]
pub struct PreparedLandlock {
    ruleset: RulesetCreated,
}

/// Rights granted under a `read` path.
fn read_access() -> BitFlags<AccessFs> {
    AccessFs::from_read(TARGET_ABI)
}

/// Rights granted under a `write` path.
fn write_access() -> BitFlags<AccessFs> {
    AccessFs::from_all(TARGET_ABI)
}

/// Open `path` for a rule; `None` (logged) when it does not exist.
fn open_rule_path(path: &Path) -> Result<Option<(PathFd, bool)>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            tracing::debug!("Landlock rule for {} skipped: no such path", path.display());
            return Ok(None);
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "looking up Landlock rule path {} (fix or remove it in the profile)",
                    path.display()
                )
            });
        }
    };
    match PathFd::new(path) {
        Ok(fd) => Ok(Some((fd, meta.is_dir()))),
        Err(PathFdError::OpenCall { source, .. }) if source.kind() == ErrorKind::NotFound => {
            tracing::debug!("Landlock rule for {} skipped: no such path", path.display());
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "opening Landlock rule path {} (fix or remove it in the profile)",
                path.display()
            )
        }),
    }
}

/// Build the ruleset for `rules`. `Ok(None)` when both lists are empty:
/// no Landlock at all (an empty ruleset would deny every path).
pub fn prepare(rules: &LandlockRules) -> Result<Option<PreparedLandlock>> {
    if rules.read.is_empty() && rules.write.is_empty() {
        return Ok(None);
    }
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(write_access())
        .context("preparing the Landlock ruleset")?
        .create()
        .context("creating the Landlock ruleset")?
        // no_new_privs is the launcher's decision (caps::set_no_new_privs).
        .no_new_privs(false);
    let file_rights = AccessFs::from_file(TARGET_ABI);
    for (paths, access) in [(&rules.read, read_access()), (&rules.write, write_access())] {
        for path in paths {
            let Some((fd, is_dir)) = open_rule_path(path)? else {
                continue;
            };
            // Directory-only rights on a file would make the whole ruleset
            // count as "partially enforced": keep the ones a file has.
            let access = if is_dir { access } else { access & file_rights };
            ruleset = ruleset
                .add_rule(PathBeneath::new(fd, access))
                .with_context(|| format!("adding the Landlock rule for {}", path.display()))?;
        }
    }
    Ok(Some(PreparedLandlock { ruleset }))
}

impl PreparedLandlock {
    /// Enforce the ruleset on the calling thread (inherited by children,
    /// kept across execve). Needs `no_new_privs` (see
    /// `caps::set_no_new_privs`) or CAP_SYS_ADMIN in the user namespace.
    /// One syscall; allocates nothing.
    pub fn apply(self) -> Result<LandlockOutcome, ApplyError> {
        match self.ruleset.restrict_self() {
            Ok(status) => Ok(outcome(status.ruleset, status.landlock)),
            Err(e) => Err(ApplyError {
                what: "enforcing the Landlock ruleset (EPERM: set no_new_privs first, or \
                       enforce it before dropping capabilities)",
                errno: errno_in(&e),
            }),
        }
    }
}

fn outcome(ruleset: RulesetStatus, landlock: LandlockStatus) -> LandlockOutcome {
    match (ruleset, landlock) {
        (RulesetStatus::FullyEnforced, _) => LandlockOutcome::Full,
        (RulesetStatus::PartiallyEnforced, LandlockStatus::Available { effective_abi, .. }) => {
            LandlockOutcome::Partial {
                kernel_abi: abi_number(effective_abi),
            }
        }
        (RulesetStatus::PartiallyEnforced, _) => LandlockOutcome::Partial { kernel_abi: 0 },
        (_, LandlockStatus::NotEnabled) => LandlockOutcome::NotEnforced {
            reason: NOT_ENABLED,
        },
        (_, LandlockStatus::NotImplemented) => LandlockOutcome::NotEnforced { reason: NOT_BUILT },
        _ => LandlockOutcome::NotEnforced {
            reason: "the kernel supports none of the requested Landlock rights",
        },
    }
}

/// The errno buried in a Landlock error (EIO when there is none).
fn errno_in(e: &(dyn std::error::Error + 'static)) -> i32 {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(n) = io.raw_os_error()
        {
            return n;
        }
        cur = err.source();
    }
    libc::EIO
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::testing::in_child;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    fn cpath(p: &Path) -> CString {
        CString::new(p.as_os_str().as_bytes()).unwrap()
    }

    /// open(O_CREAT|O_WRONLY) and close: 0, or the errno.
    fn create_file(path: &CString) -> i32 {
        use rustix::fs::{Mode, OFlags};
        match rustix::fs::open(
            path.as_c_str(),
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        ) {
            Ok(_) => 0,
            Err(e) => e.raw_os_error(),
        }
    }

    #[test]
    fn no_rules_means_no_landlock() {
        assert!(prepare(&LandlockRules::default()).unwrap().is_none());
    }

    #[test]
    fn outcome_messages_say_what_is_missing() {
        let s = LandlockOutcome::Partial { kernel_abi: 3 }.to_string();
        assert!(s.contains("ABI 3") && s.contains("asks for 5"), "{s}");
        let s = LandlockOutcome::NotEnforced {
            reason: NOT_ENABLED,
        }
        .to_string();
        assert!(s.contains("lsm="), "{s}");
    }

    #[test]
    fn writes_only_where_allowed() {
        use crate::host::kernel::{LandlockSupport, probe_landlock};
        // Without Landlock the rules must say they were not enforced (and
        // the write anywhere succeeds); with it, the write outside fails.
        let abi = match probe_landlock() {
            LandlockSupport::Abi(v) => Some(v),
            _ => None,
        };
        let allowed = tempfile::tempdir().unwrap();
        let denied = tempfile::tempdir().unwrap();
        let a_file = allowed.path().join("file");
        std::fs::write(&a_file, "x").unwrap();
        let rules = LandlockRules {
            read: vec!["/".into(), "/nonexistent/hutch-landlock".into()],
            // A file rule too: it must not make the ruleset "partial".
            write: vec![allowed.path().to_path_buf(), a_file.clone()],
        };
        let prepared = prepare(&rules).unwrap().unwrap();
        let ok_path = cpath(&allowed.path().join("new"));
        let bad_path = cpath(&denied.path().join("new"));
        let expect_full = abi.is_some_and(|v| v >= abi_number(TARGET_ABI));
        let code = in_child(|| {
            if super::super::caps::set_no_new_privs().is_err() {
                return 10;
            }
            let outcome = match prepared.apply() {
                Ok(o) => o,
                Err(_) => return 11,
            };
            match (abi, outcome) {
                (Some(_), LandlockOutcome::Full) => {}
                (Some(_), LandlockOutcome::Partial { .. }) if !expect_full => {}
                (None, LandlockOutcome::NotEnforced { .. }) => {}
                _ => return 12,
            }
            if create_file(&ok_path) != 0 {
                return 13;
            }
            let outside = create_file(&bad_path);
            match abi {
                Some(_) if outside != libc::EACCES => 14,
                None if outside != 0 => 15,
                _ => 0,
            }
        });
        assert_eq!(
            code, 0,
            "child step {code} failed (kernel Landlock: {abi:?})"
        );
        assert!(allowed.path().join("new").exists());
        assert_eq!(denied.path().join("new").exists(), abi.is_none());
    }
}
