//! Facts about the host hutch runs on: who the user is, their subordinate
//! id ranges, the id-map helpers, what the kernel allows (user namespaces,
//! /dev/fuse, /dev/net/tun, sysctls) and where the user's cgroup is.
//!
//! Both `hutch check` (which diagnoses and reports them) and the run
//! planning (src/run, which decides the sandbox's id maps and user from
//! them) read these facts; nothing here decides or reports anything.
//!
//! * `users`: login names (NSS).
//! * `subids`: /etc/subuid and /etc/subgid.
//! * `helpers`: newuidmap/newgidmap, found and judged.
//! * `probes`: a user namespace and the devices, tried.
//! * `cgroup`: cgroup v2 and this process's cgroup.
//! * [`HostView`]: all of them at once, as `hutch check` looks at them.

pub(crate) mod cgroup;
pub(crate) mod helpers;
pub(crate) mod probes;
pub(crate) mod subids;
pub(crate) mod users;

use std::fs;
use std::path::{Path, PathBuf};

use cgroup::CgroupView;
use helpers::{Helper, helper_dirs};
use probes::{DevAccess, UsernsProbe};

/// Everything `hutch check` looks at. Build it with [`HostView::real`], or
/// by hand in tests.
#[derive(Debug, Clone)]
pub(crate) struct HostView {
    /// `uname -r`.
    pub(crate) kernel_release: String,
    /// Real uid of this process.
    pub(crate) uid: u32,
    /// Login name for `uid`, if the user database knows one.
    pub(crate) user_name: Option<String>,
    /// Path of the hutch binary (for the AppArmor profile `check` suggests).
    pub(crate) exe: PathBuf,
    /// Root of the sysctl tree, normally `/proc/sys`.
    pub(crate) proc_sys: PathBuf,
    /// Result of actually creating a user namespace.
    pub(crate) userns_probe: UsernsProbe,
    /// Opening `/dev/fuse` read-write.
    pub(crate) dev_fuse: DevAccess,
    /// Opening `/dev/net/tun` read-write.
    pub(crate) dev_net_tun: DevAccess,
    pub(crate) newuidmap: Option<Helper>,
    pub(crate) newgidmap: Option<Helper>,
    /// Normally `/etc/subuid` and `/etc/subgid`.
    pub(crate) subuid_file: PathBuf,
    pub(crate) subgid_file: PathBuf,
    pub(crate) cgroup: CgroupView,
}

impl HostView {
    /// Gathers the facts from the running system. Forks once (the user
    /// namespace probe) and opens `/dev/fuse` and `/dev/net/tun` briefly;
    /// changes nothing.
    pub(crate) fn real() -> Self {
        let uid = rustix::process::getuid().as_raw();
        let exe = std::env::current_exe()
            .ok()
            .map(|p| fs::canonicalize(&p).unwrap_or(p))
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                Path::new(&home).join(".local/bin/hutch")
            });
        let dirs = helper_dirs();
        HostView {
            kernel_release: rustix::system::uname()
                .release()
                .to_string_lossy()
                .into_owned(),
            uid,
            user_name: users::user_name(uid),
            exe,
            proc_sys: "/proc/sys".into(),
            userns_probe: probes::probe_userns(),
            dev_fuse: DevAccess::probe(Path::new("/dev/fuse")),
            dev_net_tun: DevAccess::probe(Path::new("/dev/net/tun")),
            newuidmap: Helper::find("newuidmap", &dirs),
            newgidmap: Helper::find("newgidmap", &dirs),
            subuid_file: "/etc/subuid".into(),
            subgid_file: "/etc/subgid".into(),
            cgroup: cgroup::gather(Path::new("/sys/fs/cgroup"), uid),
        }
    }

    /// The user's name for commands, or the numeric uid.
    pub(crate) fn user_label(&self) -> String {
        self.user_name
            .clone()
            .unwrap_or_else(|| self.uid.to_string())
    }

    /// Integer value of sysctl `name` (`user/max_user_namespaces`) under
    /// [`proc_sys`](Self::proc_sys); `None` if absent or unreadable.
    pub(crate) fn sysctl(&self, name: &str) -> Option<i64> {
        fs::read_to_string(self.proc_sys.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether a subid line's owner field names this user (by name or
    /// numeric uid).
    pub(crate) fn owns_subid_entry(&self, owner: &str) -> bool {
        self.user_name.as_deref() == Some(owner) || owner == self.uid.to_string()
    }
}
