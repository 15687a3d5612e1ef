//! Facts about the host hutch runs on: who the user is, the id-map
//! helpers and subordinate ids, the devices, the kernel and cgroups. Read
//! only, never changed. `check` diagnoses them; `sandbox` and the run
//! planning use them to decide how to start a container. Imports only
//! `sys`.

pub mod cgroup;
pub mod devices;
pub mod helpers;
pub mod kernel;
pub mod subids;

pub use cgroup::CgroupView;
pub use devices::DevAccess;
pub use helpers::{Helper, helper_dirs};
pub use kernel::{LandlockSupport, UsernsProbe};
pub use subids::read_subids;

use std::fs;
use std::path::{Path, PathBuf};

/// Login name of `uid` through NSS, if the user database knows one.
pub fn user_name(uid: u32) -> Option<String> {
    crate::sys::user_name(uid)
}

/// Everything the checks look at. Build it with [`HostView::real`], or by hand in tests.
#[derive(Debug, Clone)]
pub struct HostView {
    /// `uname -r`.
    pub kernel_release: String,
    /// Real uid of this process.
    pub uid: u32,
    /// Login name for `uid`, if the user database knows one.
    pub user_name: Option<String>,
    /// Path of the hutch binary (for the AppArmor profile we suggest).
    pub exe: PathBuf,
    /// Root of the sysctl tree, normally `/proc/sys`.
    pub proc_sys: PathBuf,
    /// Result of actually creating a user namespace.
    pub userns_probe: UsernsProbe,
    /// Opening `/dev/fuse` read-write.
    pub dev_fuse: DevAccess,
    /// Opening `/dev/net/tun` read-write.
    pub dev_net_tun: DevAccess,
    pub newuidmap: Option<Helper>,
    pub newgidmap: Option<Helper>,
    /// Normally `/etc/subuid` and `/etc/subgid`.
    pub subuid_file: PathBuf,
    pub subgid_file: PathBuf,
    pub cgroup: CgroupView,
    /// The kernel's Landlock ABI, or why there is none.
    pub landlock: LandlockSupport,
}

impl HostView {
    /// Gathers the facts from the running system. Forks once (the user
    /// namespace probe) and opens `/dev/fuse` and `/dev/net/tun` briefly;
    /// changes nothing.
    pub fn real() -> Self {
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
            user_name: user_name(uid),
            exe,
            proc_sys: "/proc/sys".into(),
            userns_probe: kernel::probe_userns(),
            dev_fuse: DevAccess::probe(Path::new("/dev/fuse")),
            dev_net_tun: DevAccess::probe(Path::new("/dev/net/tun")),
            newuidmap: Helper::find("newuidmap", &dirs),
            newgidmap: Helper::find("newgidmap", &dirs),
            subuid_file: "/etc/subuid".into(),
            subgid_file: "/etc/subgid".into(),
            cgroup: cgroup::gather_cgroup(Path::new("/sys/fs/cgroup"), uid),
            landlock: kernel::probe_landlock(),
        }
    }

    /// The user's name for commands, or the numeric uid.
    pub fn user_label(&self) -> String {
        self.user_name
            .clone()
            .unwrap_or_else(|| self.uid.to_string())
    }
}
