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

use crate::sys::{CapSets, ambient_clear, bounding_drop, bounding_has, capget, capset};
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

impl ApplyError {
    /// The error of the syscall that just failed.
    pub fn last(what: &'static str) -> ApplyError {
        ApplyError {
            what,
            errno: std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        }
    }
}

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

/// Set `PR_SET_NO_NEW_PRIVS`: from now on execve never grants privileges
/// (setuid/setgid bits and file capabilities are ignored). It cannot be
/// undone, is inherited by children, and lets an unprivileged process
/// install seccomp filters and Landlock rulesets.
pub fn set_no_new_privs() -> std::io::Result<()> {
    crate::sys::set_no_new_privs()
}

/// The capability sets to apply, resolved from a [`CapLevel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapsPlan {
    keep: u64,
}

/// Resolve `level` (names are checked here, before fork).
pub fn prepare(level: &CapLevel) -> Result<CapsPlan> {
    Ok(CapsPlan {
        keep: keep_mask(level)?,
    })
}

/// Highest capability number the kernel may know; numbers above the
/// running kernel's last one fail with EINVAL and are skipped.
const MAX_CAP: u32 = 63;

impl CapsPlan {
    /// The capabilities kept (bit N = capability N).
    pub fn keep(&self) -> u64 {
        self.keep
    }

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
pub(crate) mod tests {
    use super::*;
    use crate::sys::{self, Forked};

    /// Run `f` in a forked child and return its exit code. `f` must not
    /// allocate or take locks (the test harness has other threads).
    pub(crate) fn in_child(f: impl FnOnce() -> i32) -> i32 {
        let pid = match sys::fork() {
            Ok(Forked::Child) => sys::exit_now(f()),
            Ok(Forked::Parent(pid)) => pid,
            Err(e) => panic!("fork failed: {}", std::io::Error::from(e)),
        };
        exit_status_of(pid)
    }

    /// Wait for child `pid`; its exit code (a death by signal fails).
    fn exit_status_of(pid: i32) -> i32 {
        let (r, status) = sys::wait(pid, false)
            .map_err(std::io::Error::from)
            .expect("waitpid")
            .expect("waitpid without WNOHANG reports the child");
        assert_eq!(r, pid);
        assert!(
            libc::WIFEXITED(status),
            "child died of signal {}",
            libc::WTERMSIG(status)
        );
        libc::WEXITSTATUS(status)
    }

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
    /// any uid: root of the namespace it runs in, with CAP_SETPCAP.
    fn namespace_root() -> bool {
        rustix::process::geteuid().is_root()
            && capget()
                .map(|s| s.effective & Capability::CAP_SETPCAP.bitmask() != 0)
                .unwrap_or(false)
    }

    /// The ids the child of [`as_root`] needs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ids {
        /// uid/gid 0 with every capability.
        Root,
        /// Also uid/gid 65534 to switch to.
        RootAndNobody,
    }

    /// The unprivileged user id the tests switch to.
    const NOBODY: u32 = 65534;

    /// Run `f` as root with every capability, in a forked child, and
    /// return its exit code: root of the host's namespace when the tests
    /// run as root, otherwise root of a new user namespace (as hutch's
    /// launcher makes one: uid 0 is this user, 1-65536 the user's
    /// subordinate range through newuidmap/newgidmap). Panics saying why
    /// when no such namespace can be had: these tests check the
    /// capability code for real wherever they run, never skip.
    fn as_root(ids: Ids, f: impl FnOnce() -> i32) -> i32 {
        if namespace_root() {
            return in_child(f);
        }
        in_user_namespace(ids, f)
    }

    /// Child exit code: the new user namespace gave no CAP_SETPCAP.
    const NO_CAPS_IN_NAMESPACE: i32 = 78;
    /// Child exit code: the parent could not write the id maps.
    const NO_MAPS: i32 = 79;

    fn in_user_namespace(ids: Ids, f: impl FnOnce() -> i32) -> i32 {
        use rustix::pipe::{PipeFlags, pipe_with};
        let maps = super::super::idmap::plan(false);
        let user = sys::user_name(rustix::process::getuid().as_raw())
            .unwrap_or_else(|| rustix::process::getuid().as_raw().to_string());
        if ids == Ids::RootAndNobody && !(maps.maps_uid(NOBODY) && maps.maps_gid(NOBODY)) {
            panic!(
                "this test switches to uid/gid {NOBODY} inside a user namespace, which needs \
                 newuidmap/newgidmap (package uidmap, setuid root) and a range for {user} in \
                 /etc/subuid and /etc/subgid (e.g. `usermod --add-subuids 100000-165535 \
                 --add-subgids 100000-165535 {user}`); `hutch check` says what is missing, \
                 or run the tests as root{}",
                if std::env::var("HUTCH_IDMAP").is_ok_and(|v| v == "single") {
                    " (HUTCH_IDMAP=single is set: it forces a one-id map)"
                } else {
                    ""
                }
            );
        }
        let (ready_r, ready_w) = pipe_with(PipeFlags::CLOEXEC).expect("creating a pipe");
        let (go_r, go_w) = pipe_with(PipeFlags::CLOEXEC).expect("creating a pipe");
        let pid = match sys::fork() {
            Ok(Forked::Child) => {
                // Only syscalls from here on (other test threads exist).
                drop(ready_r);
                drop(go_w);
                let errno = match sys::unshare(rustix::thread::UnshareFlags::NEWUSER) {
                    Ok(()) => 0,
                    Err(e) => e.raw_os_error().clamp(1, 255) as u8,
                };
                let _ = rustix::io::write(&ready_w, &[errno]);
                if errno != 0 {
                    sys::exit_now(1);
                }
                let mut go = [0u8; 1];
                if !matches!(rustix::io::read(&go_r, &mut go), Ok(1)) {
                    sys::exit_now(NO_MAPS);
                }
                if !namespace_root() {
                    sys::exit_now(NO_CAPS_IN_NAMESPACE);
                }
                sys::exit_now(f())
            }
            Ok(Forked::Parent(pid)) => pid,
            Err(e) => panic!("fork failed: {}", std::io::Error::from(e)),
        };
        drop(ready_w);
        drop(go_r);
        let mut ready = [0u8; 1];
        let n = rustix::io::read(&ready_r, &mut ready).unwrap_or(0);
        if n != 1 || ready[0] != 0 {
            let code = exit_status_of(pid);
            panic!(
                "cannot create a user namespace as {user} ({}; child exit {code}): unprivileged \
                 user namespaces are disabled (sysctl kernel.unprivileged_userns_clone, \
                 user.max_user_namespaces) or restricted by AppArmor; `hutch check` tells \
                 what to change, or run the tests as root",
                if n == 1 {
                    std::io::Error::from_raw_os_error(i32::from(ready[0])).to_string()
                } else {
                    "the child died".to_string()
                }
            );
        }
        if let Err(e) = super::super::idmap::write_maps(pid, &maps) {
            drop(go_w);
            let _ = exit_status_of(pid);
            panic!("writing the id maps of the test's user namespace: {e:#}");
        }
        rustix::io::write(&go_w, b"x").expect("starting the child");
        let code = exit_status_of(pid);
        assert_ne!(
            code, NO_CAPS_IN_NAMESPACE,
            "the new user namespace gave its root no CAP_SETPCAP (AppArmor's restriction of \
             unprivileged user namespaces?); `hutch check` tells what to change, or run the \
             tests as root"
        );
        code
    }

    /// Switch the calling (single-threaded) process to uid/gid [`NOBODY`].
    fn become_nobody() -> bool {
        rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(NOBODY)).is_ok()
            && rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(NOBODY)).is_ok()
    }

    #[test]
    fn root_keeps_the_set_and_loses_the_rest() {
        let plan = prepare(&CapLevel::Default).unwrap();
        let keep = plan.keep();
        let code = as_root(Ids::Root, || {
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
        assert_eq!(code, 0, "child step {code} failed");
    }

    #[test]
    fn non_root_user_gets_nothing() {
        let plan = prepare(&CapLevel::Default).unwrap();
        let code = as_root(Ids::RootAndNobody, || {
            if plan.drop_bounding().is_err() {
                return 11;
            }
            if !become_nobody() {
                return 12;
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
        assert_eq!(
            code, 0,
            "child step {code} failed (12: switching to uid 65534)"
        );
    }

    #[test]
    fn apply_after_setuid_without_drop_bounding_fails_clearly() {
        let plan = prepare(&CapLevel::Default).unwrap();
        let code = as_root(Ids::RootAndNobody, || {
            if !become_nobody() {
                return 12;
            }
            match plan.apply(false) {
                Err(e) if e.errno == libc::EPERM && e.what.contains("drop_bounding") => 0,
                _ => 13,
            }
        });
        assert_eq!(
            code, 0,
            "child step {code} failed (12: switching to uid 65534)"
        );
    }
}
