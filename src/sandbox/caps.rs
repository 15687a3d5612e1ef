//! Capabilities of the container's process, and `no_new_privs`.
//!
//! Docker semantics: root in the container keeps a small set (Docker's
//! default 14, or a profile's list) in its bounding, permitted and
//! effective sets; a non-root user gets none (it could only regain some of
//! the bounding set through setuid-root or file-capability binaries, which
//! `no_new_privs` rules out). The inheritable and ambient sets are always
//! empty (as Docker since the CVE-2022-24769 fix): nothing passes across
//! execve to a non-root program.
//!
//! Everything here acts inside the container's user namespace: "root" is
//! uid 0 of that namespace, and its capabilities never reach the host.
//!
//! [`prepare`] resolves the names before fork; in the child,
//! [`CapsPlan::drop_bounding`] runs while still uid 0 (dropping from the
//! bounding set needs `CAP_SETPCAP`, which a switch to a non-root uid
//! loses), then setgroups/setgid/setuid, then [`CapsPlan::apply`]. Both
//! only make syscalls: no allocation, no locks, no logging.

pub(crate) use crate::sys::{CapSets, capget, set_no_new_privs};
use crate::sys::{ambient_clear, bounding_drop, bounding_has, capset};
use anyhow::{Result, bail};
use caps::Capability;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which capabilities root in the container keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapLevel {
    /// Docker's default set ([`DOCKER_DEFAULT`]).
    Default,
    /// No capability at all, even for root.
    None,
    /// These names (`CAP_CHOWN`, `chown`, `Cap_Chown` are all accepted;
    /// `ALL` means every capability the kernel knows).
    List(Vec<String>),
}

/// Docker's (and Podman's) default capability set for containers.
pub const DOCKER_DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// Parse one capability name: `CAP_NET_RAW`, `net_raw` or any case of
/// either. `ALL` is not a single capability: see [`CapLevel::List`].
pub fn parse_cap(name: &str) -> Result<Capability> {
    let trimmed = name.trim();
    let upper = trimmed.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    match Capability::from_str(&full) {
        Ok(c) => Ok(c),
        Err(_) => bail!(
            "unknown capability {trimmed:?}: use a name from capabilities(7) such as \
             CAP_NET_BIND_SERVICE or CAP_SYS_PTRACE (the CAP_ prefix is optional)"
        ),
    }
}

/// The bit mask (bit N = capability N) a level keeps.
pub fn keep_mask(level: &CapLevel) -> Result<u64> {
    match level {
        CapLevel::Default => Ok(DOCKER_DEFAULT.iter().fold(0, |m, c| m | c.bitmask())),
        CapLevel::None => Ok(0),
        CapLevel::List(names) => {
            let mut mask = 0u64;
            for name in names {
                if name.trim().eq_ignore_ascii_case("ALL") {
                    mask |= caps::all().iter().fold(0, |m, c| m | c.bitmask());
                } else {
                    mask |= parse_cap(name)?.bitmask();
                }
            }
            Ok(mask)
        }
    }
}

/// Names of the capabilities in `mask`, sorted by number (for messages and
/// `hutch inspect`).
pub fn mask_names(mask: u64) -> Vec<String> {
    let mut all: Vec<Capability> = caps::all().into_iter().collect();
    all.sort_by_key(|c| c.index());
    all.into_iter()
        .filter(|c| mask & c.bitmask() != 0)
        .map(|c| c.to_string())
        .collect()
}

/// A failed syscall in the child, described without allocating: which
/// step (a fixed text that also says what to do) and the errno. The
/// child can write `what` and `errno` to a pipe as they are; `Display`
/// (in the parent) renders both. Shared by every `apply` of the sandbox
/// modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyError {
    pub what: &'static str,
    pub errno: i32,
}

impl ApplyError {}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.what,
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for ApplyError {}

/// The capability sets to apply, resolved from a [`CapLevel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapsPlan {
    keep: u64,
}

impl CapsPlan {
    /// The plan that keeps exactly `mask` (bit N = capability N), as a
    /// run's spec resolved it.
    pub fn keeping(mask: u64) -> CapsPlan {
        CapsPlan { keep: mask }
    }
}

/// Highest capability number the kernel may know; numbers above the
/// running kernel's last one fail with EINVAL and are skipped.
const MAX_CAP: u32 = 63;

impl CapsPlan {
    /// Step 1, in the child while still uid 0 of the namespace (before
    /// setuid): remove every other capability from the bounding set, so
    /// that no later execve can gain it.
    pub fn drop_bounding(&self) -> Result<(), ApplyError> {
        for cap in 0..=MAX_CAP {
            if self.keep & (1u64 << cap) != 0 {
                continue;
            }
            match bounding_has(cap) {
                Ok(false) => continue,
                Ok(true) => {}
                // Not a capability of this kernel.
                Err(libc::EINVAL) => continue,
                Err(errno) => {
                    return Err(ApplyError {
                        what: "reading the capability bounding set",
                        errno,
                    });
                }
            }
            if let Err(errno) = bounding_drop(cap) {
                return Err(ApplyError {
                    what: "dropping a capability from the bounding set (needs CAP_SETPCAP: \
                           call drop_bounding before switching to a non-root user)",
                    errno,
                });
            }
        }
        Ok(())
    }

    /// Step 2, after setgroups/setgid/setuid: make sure the bounding set
    /// is right (dropping again what is left, which works only as root),
    /// then set permitted = effective = the kept set for root (as far as
    /// the process still has them) or nothing for another user, and empty
    /// the inheritable and ambient sets.
    pub fn apply(&self, target_uid_is_root: bool) -> Result<(), ApplyError> {
        self.drop_bounding()?;
        let current = capget()
            .map_err(|errno| ApplyError {
                what: "reading the process capabilities",
                errno,
            })?
            .permitted;
        let keep = if target_uid_is_root {
            self.keep & current
        } else {
            0
        };
        capset(CapSets {
            effective: keep,
            permitted: keep,
            inheritable: 0,
        })
        .map_err(|errno| ApplyError {
            what: "setting the process capabilities",
            errno,
        })?;
        match ambient_clear() {
            // EINVAL: a kernel before 4.3 has no ambient set.
            Ok(()) | Err(libc::EINVAL) => Ok(()),
            Err(errno) => Err(ApplyError {
                what: "clearing the ambient capabilities",
                errno,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::testing::{in_child, set_gid_uid};

    fn mask(caps: &[Capability]) -> u64 {
        caps.iter().fold(0, |m, c| m | c.bitmask())
    }

    #[test]
    fn names_parse_in_any_spelling() {
        assert_eq!(parse_cap("CAP_CHOWN").unwrap(), Capability::CAP_CHOWN);
        assert_eq!(parse_cap("chown").unwrap(), Capability::CAP_CHOWN);
        assert_eq!(
            parse_cap(" Cap_Net_Bind_Service ").unwrap(),
            Capability::CAP_NET_BIND_SERVICE
        );
        assert_eq!(parse_cap("sys_admin").unwrap(), Capability::CAP_SYS_ADMIN);
    }

    #[test]
    fn unknown_names_are_explained() {
        let e = parse_cap("CAP_FLY").unwrap_err().to_string();
        assert!(
            e.contains("CAP_FLY") && e.contains("capabilities(7)"),
            "{e}"
        );
        let e = keep_mask(&CapLevel::List(vec!["chown".into(), "nope".into()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"nope\""), "{e}");
        assert!(parse_cap("").is_err());
    }

    #[test]
    fn level_masks() {
        let def = keep_mask(&CapLevel::Default).unwrap();
        assert_eq!(def.count_ones(), 14);
        assert_eq!(def, mask(&DOCKER_DEFAULT));
        assert_eq!(def & Capability::CAP_SYS_ADMIN.bitmask(), 0);
        assert_eq!(def & Capability::CAP_SYS_PTRACE.bitmask(), 0);
        assert_ne!(def & Capability::CAP_NET_BIND_SERVICE.bitmask(), 0);
        assert_eq!(keep_mask(&CapLevel::None).unwrap(), 0);
        assert_eq!(
            keep_mask(&CapLevel::List(vec![
                "CAP_CHOWN".into(),
                "kill".into(),
                "chown".into()
            ]))
            .unwrap(),
            mask(&[Capability::CAP_CHOWN, Capability::CAP_KILL])
        );
        assert_eq!(keep_mask(&CapLevel::List(vec![])).unwrap(), 0);
        let all = keep_mask(&CapLevel::List(vec!["all".into()])).unwrap();
        assert_eq!(all.count_ones() as usize, caps::all().len());
        assert_eq!(
            mask_names(mask(&[Capability::CAP_KILL, Capability::CAP_CHOWN])),
            vec!["CAP_CHOWN", "CAP_KILL"]
        );
    }

    #[test]
    fn apply_error_renders_step_and_errno() {
        let e = ApplyError {
            what: "setting the process capabilities",
            errno: libc::EPERM,
        };
        let s = e.to_string();
        assert!(s.starts_with("setting the process capabilities: "), "{s}");
        assert!(s.contains("not permitted"), "{s}");
        let any: anyhow::Error = e.into();
        assert!(any.downcast_ref::<ApplyError>().is_some());
    }

    /// Whether this process can change its capability sets and switch to
    /// another uid: real root.
    fn root() -> bool {
        capget()
            .map(|s| s.effective & Capability::CAP_SETPCAP.bitmask() != 0)
            .unwrap_or(false)
            && rustix::process::geteuid().as_raw() == 0
    }

    /// The first /etc/subuid-style range of this user in `file`.
    fn own_range(file: &str, uid: u32) -> Option<(u64, u64)> {
        let name = crate::host::user_name(uid);
        crate::host::read_subids(std::path::Path::new(file))?
            .into_iter()
            .find(|r| Some(&r.owner) == name.as_ref() || r.owner == uid.to_string())
            .map(|r| (r.start, r.count.min(65536)))
    }

    /// Run `f` in a child that may change its capabilities and switch to
    /// uid/gid 65534: as root directly, otherwise as root of a new user
    /// namespace mapping 0 to this user and 1..65536 to its subordinate
    /// ids (newuidmap/newgidmap, as hutch itself does). A host where that
    /// cannot be made fails the test, saying why: these checks must run.
    fn as_root_of_some_namespace(f: impl FnOnce() -> i32) -> i32 {
        if root() {
            return in_child(f);
        }
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let map = |pid: i32| -> Result<(), String> {
            for (tool, file, id) in [
                ("newuidmap", "/etc/subuid", uid),
                ("newgidmap", "/etc/subgid", gid),
            ] {
                let (start, count) =
                    own_range(file, uid).ok_or(format!("no range for uid {uid} in {file}"))?;
                let out = std::process::Command::new(tool)
                    .args([pid.to_string(), "0".into(), id.to_string(), "1".into()])
                    .args(["1".to_string(), start.to_string(), count.to_string()])
                    .output()
                    .map_err(|e| format!("running {tool}: {e}"))?;
                if !out.status.success() {
                    return Err(format!("{tool}: {}", String::from_utf8_lossy(&out.stderr)));
                }
            }
            Ok(())
        };
        crate::sys::testing::in_userns_child(map, f).unwrap_or_else(|e| {
            panic!(
                "cannot make a user namespace with uids 0 and 65534 mapped for this test ({e}); \
                 run it as root, or give this user /etc/subuid and /etc/subgid ranges and \
                 newuidmap/newgidmap (tests/host-setup.sh does)"
            )
        })
    }

    #[test]
    fn root_keeps_the_set_and_loses_the_rest() {
        let keep = keep_mask(&CapLevel::Default).unwrap();
        let plan = CapsPlan::keeping(keep);
        let code = as_root_of_some_namespace(|| {
            let before = match capget() {
                Ok(s) => s.permitted,
                Err(_) => return 10,
            };
            if plan.drop_bounding().is_err() {
                return 11;
            }
            if plan.apply(true).is_err() {
                return 12;
            }
            let Ok(after) = capget() else { return 13 };
            if after.effective != keep & before || after.permitted != keep & before {
                return 14;
            }
            if after.inheritable != 0 {
                return 15;
            }
            if bounding_has(Capability::CAP_SYS_ADMIN.index().into()) != Ok(false) {
                return 16;
            }
            if bounding_has(Capability::CAP_CHOWN.index().into()) != Ok(true) {
                return 17;
            }
            if set_no_new_privs().is_err() {
                return 18;
            }
            0
        });
        assert_eq!(code, 0);
    }

    /// Child exit code: uid/gid 65534 cannot be switched to.
    const UNMAPPED: i32 = 77;

    fn assert_passed(code: i32) {
        assert_ne!(
            code, UNMAPPED,
            "could not switch to uid/gid 65534 in the child"
        );
        assert_eq!(code, 0, "child step {code} failed");
    }

    #[test]
    fn non_root_user_gets_nothing() {
        let plan = CapsPlan::keeping(keep_mask(&CapLevel::Default).unwrap());
        let code = as_root_of_some_namespace(|| {
            if plan.drop_bounding().is_err() {
                return 11;
            }
            if set_gid_uid(65534, 65534).is_err() {
                return UNMAPPED;
            }
            if plan.apply(false).is_err() {
                return 13;
            }
            let Ok(after) = capget() else { return 14 };
            if after.effective != 0 || after.permitted != 0 || after.inheritable != 0 {
                return 15;
            }
            0
        });
        assert_passed(code);
    }

    #[test]
    fn apply_after_setuid_without_drop_bounding_fails_clearly() {
        let plan = CapsPlan::keeping(keep_mask(&CapLevel::Default).unwrap());
        let code = as_root_of_some_namespace(|| {
            if set_gid_uid(65534, 65534).is_err() {
                return UNMAPPED;
            }
            match plan.apply(false) {
                Err(e) if e.errno == libc::EPERM && e.what.contains("drop_bounding") => 0,
                _ => 13,
            }
        });
        assert_passed(code);
    }
}
