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
//! Where cgroup v2 limits cannot be applied (no delegated cgroup, see
//! `cgroup.rs`), [`cgroup_fallback`] gives the rlimits that stand in for
//! them: `memory` becomes RLIMIT_DATA and `pids` RLIMIT_NPROC (when the
//! profile sets no `nproc`); `cpus` has no rlimit counterpart (RLIMIT_CPU
//! is a total of CPU seconds, not a share). RLIMIT_DATA rather than
//! RLIMIT_AS: since Linux 4.7 it counts a process's private writable
//! memory (heap, anonymous mappings, stacks), which is what a memory limit
//! means, while RLIMIT_AS also counts address space that is only reserved,
//! which runtimes like V8 (node), Go and the JVM reserve by the gigabyte
//! and would fail to start under. Both are per process: N processes may
//! use N times the limit, which RLIMIT_NPROC bounds.
//!
//! [`prepare`] reads the current limits and computes the values (before
//! fork); [`PreparedRlimits::apply`] is only setrlimit calls.

use crate::sys::{Resource, getrlimit, setrlimit};
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
    /// Private writable memory of each process in bytes (RLIMIT_DATA; the
    /// stand-in for a cgroup memory limit, see the module note).
    #[serde(default)]
    pub data: Option<u64>,
}

/// The rlimits that stand in for cgroup limits that could not be applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupFallback {
    /// RLIMIT_DATA for `memory`.
    pub data: Option<u64>,
    /// RLIMIT_NPROC for `pids`, when the profile sets no `nproc`.
    pub nproc: Option<u64>,
    /// `cpus` was asked for: it has no fallback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_not_limited: Option<f64>,
}

/// What stands in for the cgroup limits `memory`, `pids` and `cpus` when
/// no cgroup can be made; `nproc` is the profile's own RLIMIT_NPROC, which
/// is kept when set.
pub fn cgroup_fallback(
    memory: Option<u64>,
    pids: Option<u64>,
    cpus: Option<f64>,
    nproc: Option<u64>,
) -> CgroupFallback {
    CgroupFallback {
        data: memory,
        nproc: if nproc.is_none() { pids } else { None },
        cpus_not_limited: cpus,
    }
}

impl CgroupFallback {
    /// `set` with the fallbacks added (never replacing what `set` has).
    pub fn apply_to(&self, set: &RlimitSet) -> RlimitSet {
        RlimitSet {
            data: set.data.or(self.data),
            nproc: set.nproc.or(self.nproc),
            ..*set
        }
    }

    /// One clause for the warning: "instead: ...".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = self.data {
            parts.push(format!(
                "memory is approximated by RLIMIT_DATA = {} per process",
                crate::profile::values::format_size(d)
            ));
        }
        if let Some(n) = self.nproc {
            parts.push(format!("pids by RLIMIT_NPROC = {n}"));
        }
        if let Some(c) = self.cpus_not_limited {
            parts.push(format!("cpus = {c} has no fallback and is not limited"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("; instead {}", parts.join(", "))
        }
    }
}

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
    if setrlimit(libc::RLIMIT_NOFILE, hard, hard).is_ok() {
        let _ = ORIGINAL_NOFILE.set(soft);
    }
}

/// Limits ready to set; a fixed array, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreparedRlimits {
    entries: [Option<Entry>; 4],
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
    let wanted: [(Option<u64>, Resource, &'static str, &'static str); 4] = [
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
        (
            set.data,
            libc::RLIMIT_DATA,
            "data",
            "setting the data size limit (RLIMIT_DATA)",
        ),
    ];
    let mut entries = [None; 4];
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
    /// The (name, soft value) pairs that `apply` sets.
    #[cfg(test)]
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
    use super::*;
    use crate::sys::testing::in_child;

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
    fn cgroup_fallback_stands_in_for_memory_and_pids() {
        let f = cgroup_fallback(Some(2 << 30), Some(512), None, None);
        assert_eq!(
            (f.data, f.nproc, f.cpus_not_limited),
            (Some(2 << 30), Some(512), None)
        );
        assert_eq!(
            f.describe(),
            "; instead memory is approximated by RLIMIT_DATA = 2G per process, pids by \
             RLIMIT_NPROC = 512"
        );
        // The profile's own nproc is kept; cpus are said to be unlimited.
        let f = cgroup_fallback(None, Some(512), Some(1.5), Some(100));
        assert_eq!((f.data, f.nproc), (None, None));
        assert_eq!(
            f.describe(),
            "; instead cpus = 1.5 has no fallback and is not limited"
        );
        assert_eq!(cgroup_fallback(None, None, None, None).describe(), "");
        // Added to the profile's rlimits without replacing any.
        let set = RlimitSet {
            nofile: Some(10),
            nproc: Some(100),
            core: Some(0),
            data: None,
        };
        let with = cgroup_fallback(Some(1 << 20), Some(512), None, set.nproc).apply_to(&set);
        assert_eq!(
            with,
            RlimitSet {
                data: Some(1 << 20),
                ..set
            }
        );
        let with =
            cgroup_fallback(Some(1 << 20), Some(512), None, None).apply_to(&RlimitSet::default());
        assert_eq!((with.data, with.nproc), (Some(1 << 20), Some(512)));
    }

    #[test]
    fn data_limit_is_set() {
        let (_, hard) = getrlimit(libc::RLIMIT_DATA).unwrap();
        let want = (1u64 << 40).min(hard);
        let p = prepare(&RlimitSet {
            data: Some(want),
            ..RlimitSet::default()
        })
        .unwrap();
        assert!(p.values().any(|v| v == ("data", want)));
        let code = in_child(|| {
            if p.apply().is_err() {
                return 10;
            }
            match getrlimit(libc::RLIMIT_DATA) {
                Ok((s, h)) if s == want && h == want => 0,
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
            data: None,
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
            data: None,
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
