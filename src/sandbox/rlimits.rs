//! Resource limits (setrlimit) of the container's process.
//!
//! Each requested limit becomes both the soft and the hard limit, so the
//! container cannot raise it again. An unprivileged user can lower a hard
//! limit but never raise it (that needs CAP_SYS_RESOURCE in the initial
//! user namespace, which a rootless container never has), so a request
//! above the current hard limit is capped to it, with a debug message.
//!
//! `nproc` counts every process of the *host* user (in this and the
//! ancestor user namespaces), not only the container's: a low value can
//! make fork fail at once when the user runs many processes elsewhere.
//! The cgroup `pids` limit (see `cgroup.rs`) counts the container only.
//!
//! hutch itself needs many open files: the overlay holds a host file for
//! each file open in the container (every running program's included), and
//! the network a host socket per connection. [`raise_own_nofile`] lifts
//! hutch's soft RLIMIT_NOFILE to its hard limit at launch (as Podman
//! does); the container's processes get the soft limit hutch started with
//! back unless the profile sets `nofile`, so programs that use select(2)
//! see the limit they expect.
//!
//! [`prepare`] reads the current limits and computes the values (before
//! fork); [`PreparedRlimits::apply`] is only setrlimit calls.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

use super::caps::ApplyError;

/// Requested limits; `None` keeps the inherited limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlimitSet {
    /// Open files (RLIMIT_NOFILE).
    pub nofile: Option<u64>,
    /// Processes of the user (RLIMIT_NPROC; see the module note).
    pub nproc: Option<u64>,
    /// Core dump size in bytes (RLIMIT_CORE); 0 disables core dumps.
    pub core: Option<u64>,
}

/// Linux's resource numbers have a different type under musl and glibc.
#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

/// One limit to set: resource, soft and hard values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    resource: Resource,
    name: &'static str,
    /// The step, for [`ApplyError`].
    what: &'static str,
    soft: u64,
    hard: u64,
}

/// hutch's soft RLIMIT_NOFILE before [`raise_own_nofile`] raised it.
static ORIGINAL_NOFILE: OnceLock<u64> = OnceLock::new();

/// Raise this process's soft RLIMIT_NOFILE to its hard limit, remembering
/// the old value for the container (see the module note). Best effort:
/// hutch still runs, with fewer files, if this fails.
pub fn raise_own_nofile() {
    let Ok((soft, hard)) = getrlimit(libc::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= hard || ORIGINAL_NOFILE.get().is_some() {
        return;
    }
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid pointer for the call, only read.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        let _ = ORIGINAL_NOFILE.set(soft);
    }
}

/// Limits ready to set; a fixed array, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreparedRlimits {
    entries: [Option<Entry>; 3],
}

/// Current (soft, hard) limit of `resource`.
fn getrlimit(resource: Resource) -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out pointer for the call.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// setrlimit with the given soft and hard values.
fn setrlimit(resource: Resource, soft: u64, hard: u64) -> Result<(), i32> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid pointer for the call, only read.
    let rc = unsafe { libc::setrlimit(resource, &lim) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    }
}

/// The value to set: the request, capped to the current hard limit.
fn capped(name: &str, requested: u64, current_hard: u64) -> u64 {
    if requested > current_hard {
        tracing::debug!(
            "rlimit {name}: {requested} requested, above the current hard limit \
             {current_hard}, which an unprivileged user cannot raise; using {current_hard}"
        );
        current_hard
    } else {
        requested
    }
}

/// Compute the limits to set from the calling process's current ones
/// (the child inherits them, so call this in the parent before fork).
pub fn prepare(set: &RlimitSet) -> Result<PreparedRlimits> {
    let wanted: [(Option<u64>, Resource, &'static str, &'static str); 3] = [
        (
            set.nofile,
            libc::RLIMIT_NOFILE,
            "nofile",
            "setting the open files limit (RLIMIT_NOFILE)",
        ),
        (
            set.nproc,
            libc::RLIMIT_NPROC,
            "nproc",
            "setting the processes limit (RLIMIT_NPROC)",
        ),
        (
            set.core,
            libc::RLIMIT_CORE,
            "core",
            "setting the core dump size limit (RLIMIT_CORE)",
        ),
    ];
    let mut entries = [None; 3];
    for (slot, (value, resource, name, what)) in entries.iter_mut().zip(wanted) {
        let (_, hard) =
            getrlimit(resource).with_context(|| format!("reading the current {name} limit"))?;
        let (soft, hard) = match value {
            Some(v) => {
                let v = capped(name, v, hard);
                (v, v)
            }
            // Give the container the open files limit hutch started with.
            None if resource == libc::RLIMIT_NOFILE => match ORIGINAL_NOFILE.get() {
                Some(&orig) => (orig, hard),
                None => continue,
            },
            None => continue,
        };
        *slot = Some(Entry {
            resource,
            name,
            what,
            soft,
            hard,
        });
    }
    Ok(PreparedRlimits { entries })
}

impl PreparedRlimits {
    /// The (name, soft value) pairs that `apply` sets, for `--verbose`.
    pub fn values(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.entries.iter().flatten().map(|e| (e.name, e.soft))
    }

    /// Set the limits on the calling process. Only setrlimit calls;
    /// allocates nothing.
    pub fn apply(&self) -> Result<(), ApplyError> {
        for e in self.entries.iter().flatten() {
            setrlimit(e.resource, e.soft, e.hard).map_err(|errno| ApplyError {
                what: e.what,
                errno,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::caps::tests::in_child;
    use super::*;

    #[test]
    fn nothing_requested_sets_nothing_but_the_original_open_files_limit() {
        let p = prepare(&RlimitSet::default()).unwrap();
        let v: Vec<_> = p.values().collect();
        match ORIGINAL_NOFILE.get() {
            // Another test raised this process's limit already.
            Some(&orig) => assert_eq!(v, vec![("nofile", orig)]),
            None => assert!(v.is_empty(), "{v:?}"),
        }
    }

    #[test]
    fn hutch_raises_its_open_files_and_the_container_gets_the_old_limit() {
        let (soft, hard) = getrlimit(libc::RLIMIT_NOFILE).unwrap();
        raise_own_nofile();
        let (now, _) = getrlimit(libc::RLIMIT_NOFILE).unwrap();
        assert_eq!(now, hard, "soft limit raised to the hard limit");
        let orig = ORIGINAL_NOFILE.get().copied().unwrap_or(soft);
        let p = prepare(&RlimitSet::default()).unwrap();
        let code = in_child(|| {
            if p.apply().is_err() {
                return 10;
            }
            match getrlimit(libc::RLIMIT_NOFILE) {
                Ok((s, h)) if s == orig && h == hard => 0,
                _ => 11,
            }
        });
        assert_eq!(code, 0, "child step {code} failed");
    }

    #[test]
    fn requests_above_the_hard_limit_are_capped() {
        assert_eq!(capped("nofile", 10, 100), 10);
        assert_eq!(capped("nofile", 100, 100), 100);
        assert_eq!(capped("nofile", u64::MAX, 4096), 4096);
        let (_, hard) = getrlimit(libc::RLIMIT_NOFILE).unwrap();
        let p = prepare(&RlimitSet {
            nofile: Some(u64::MAX),
            nproc: None,
            core: Some(0),
        })
        .unwrap();
        let v: Vec<_> = p.values().collect();
        assert_eq!(v, vec![("nofile", hard), ("core", 0)]);
    }

    #[test]
    fn apply_sets_soft_and_hard() {
        let (soft, _) = getrlimit(libc::RLIMIT_NOFILE).unwrap();
        let want = soft.clamp(16, 64);
        let p = prepare(&RlimitSet {
            nofile: Some(want),
            nproc: None,
            core: Some(0),
        })
        .unwrap();
        let code = in_child(|| {
            if p.apply().is_err() {
                return 10;
            }
            match getrlimit(libc::RLIMIT_NOFILE) {
                Ok((s, h)) if s == want && h == want => {}
                _ => return 11,
            }
            match getrlimit(libc::RLIMIT_CORE) {
                Ok((0, 0)) => {}
                _ => return 12,
            }
            // Raising the hard limit again is refused (without
            // CAP_SYS_RESOURCE; as root it would work, so only check the
            // error kind when it fails).
            match setrlimit(libc::RLIMIT_CORE, 1, 1) {
                Ok(()) | Err(libc::EPERM) => 0,
                Err(_) => 13,
            }
        });
        assert_eq!(code, 0, "child step {code} failed");
    }
}
