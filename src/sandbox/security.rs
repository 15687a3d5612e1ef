//! The security boundary of the command process, prepared by the launcher
//! (allocations, parsing, compiling the seccomp filter) and applied by the
//! command process right before execve, in this order:
//!
//! 1. resource limits (setrlimit; lowering needs no privilege), with the
//!    stand-ins for cgroup limits that could not be applied;
//! 2. the capability bounding set is cut down while still root;
//! 3. supplementary groups, gid, uid of the container user;
//! 4. the remaining capabilities (none for a non-root user);
//! 5. `no_new_privs` (always: setuid binaries cannot gain anything);
//! 6. Landlock path rules (they need `no_new_privs` or CAP_SYS_ADMIN);
//! 7. seccomp, last, so that the steps above are not filtered.

use super::caps::{self, CapLevel, CapsPlan};
use super::landlock::{self, LandlockOutcome, LandlockRules};
use super::rlimits::{self, CgroupFallback, PreparedRlimits, RlimitSet};
use super::seccomp::{self, SeccompLevel, SeccompProgram};
use super::spec::{IdMaps, SandboxSpec, UserSpec};
use anyhow::{Context, Result};
use std::path::PathBuf;

pub struct Security {
    /// setgroups(2) is allowed (false when hutch wrote a single-id map and
    /// had to deny it).
    setgroups: bool,
    id_maps: IdMaps,
    rlimits: PreparedRlimits,
    caps: CapsPlan,
    seccomp: SeccompProgram,
    /// Container paths; opened after pivot_root.
    landlock: Option<LandlockRules>,
}

impl Security {
    /// `fallback`: rlimits that stand in for cgroup limits the launcher
    /// could not apply (see `rlimits::cgroup_fallback`), added to the
    /// profile's own.
    pub fn prepare(spec: &SandboxSpec, fallback: &CgroupFallback) -> Result<Security> {
        let level: SeccompLevel = spec
            .security
            .seccomp
            .parse()
            .map_err(|e| anyhow::anyhow!("seccomp {:?}: {e}", spec.security.seccomp))?;
        Ok(Security {
            setgroups: spec.id_maps.helper,
            id_maps: spec.id_maps.clone(),
            rlimits: rlimits::prepare(&fallback.apply_to(&RlimitSet {
                nofile: spec.limits.nofile,
                nproc: spec.limits.nproc,
                core: spec.limits.core,
                data: None,
            }))?,
            caps: caps::prepare(&CapLevel::List(spec.security.capabilities.clone()))
                .context("preparing the capability sets")?,
            seccomp: seccomp::prepare(level).context("compiling the seccomp filter")?,
            landlock: spec.security.landlock.as_ref().map(|l| LandlockRules {
                read: l.read.iter().map(PathBuf::from).collect(),
                write: l.write.iter().map(PathBuf::from).collect(),
            }),
        })
    }

    /// Apply everything to the calling (single-threaded, forked) process,
    /// inside the container (after pivot_root).
    pub fn apply(&self, user: &UserSpec) -> Result<(), String> {
        let landlock = match &self.landlock {
            Some(rules) => landlock::prepare(rules).map_err(|e| format!("{e:#}"))?,
            None => None,
        };
        self.rlimits.apply().map_err(|e| e.to_string())?;
        self.caps.drop_bounding().map_err(|e| e.to_string())?;
        self.switch_user(user)?;
        self.caps.apply(user.uid == 0).map_err(|e| e.to_string())?;
        caps::set_no_new_privs().map_err(|e| format!("setting no_new_privs: {e}"))?;
        if let Some(l) = landlock {
            match l.apply().map_err(|e| e.to_string())? {
                LandlockOutcome::Full => {}
                other => crate::sys::write_stderr(&format!(
                    "hutch: warning: Landlock rules are not fully enforced: {other}\n"
                )),
            }
        }
        self.seccomp.apply().map_err(|e| e.to_string())?;
        Ok(())
    }

    fn switch_user(&self, user: &UserSpec) -> Result<(), String> {
        if !self.id_maps.maps_uid(user.uid) || !self.id_maps.maps_gid(user.gid) {
            return Err(format!(
                "user {} ({}:{}) does not exist in this container's user namespace: \
                 only {} are mapped. Other ids need newuidmap/newgidmap and a subordinate \
                 id range for your user (`hutch check` says how to set them up)",
                user.name,
                user.uid,
                user.gid,
                describe(&self.id_maps)
            ));
        }
        let e = |what: &str, e: rustix::io::Errno| format!("{what}: {}", std::io::Error::from(e));
        if self.setgroups {
            let groups: Vec<rustix::process::Gid> = user
                .additional_gids
                .iter()
                .filter(|g| self.id_maps.maps_gid(**g))
                .map(|g| rustix::process::Gid::from_raw(*g))
                .collect();
            rustix::thread::set_thread_groups(&groups)
                .map_err(|x| e("setting supplementary groups", x))?;
        }
        let gid = rustix::process::Gid::from_raw(user.gid);
        rustix::thread::set_thread_res_gid(gid, gid, gid)
            .map_err(|x| e(&format!("switching to group {}", user.gid), x))?;
        let uid = rustix::process::Uid::from_raw(user.uid);
        rustix::thread::set_thread_res_uid(uid, uid, uid)
            .map_err(|x| e(&format!("switching to user {}", user.uid), x))?;
        Ok(())
    }
}

fn describe(maps: &IdMaps) -> String {
    maps.uid
        .iter()
        .map(|m| {
            if m.count == 1 {
                format!("uid {}", m.inside)
            } else {
                format!("uids {}-{}", m.inside, m.inside as u64 + m.count as u64 - 1)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
