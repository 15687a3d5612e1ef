//! cgroup v2 as this process sees it: the unified hierarchy, our own
//! cgroup, its controllers, systemd's delegation.

use rustix::fs::Access;
use std::fs;
use std::path::Path;

/// Facts about cgroup v2 and the cgroup this process sits in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CgroupView {
    /// `/sys/fs/cgroup/cgroup.controllers` exists: the unified (v2) hierarchy is mounted there.
    pub unified: bool,
    /// Our cgroup, from the `0::` line of `/proc/self/cgroup`.
    pub own_path: Option<String>,
    /// We may write to our cgroup's directory (so we can create sub-cgroups).
    pub own_writable: bool,
    /// Controllers available in our cgroup (its `cgroup.controllers`).
    pub controllers: Vec<String>,
    /// systemd's delegated `user@UID.service` cgroup exists and is writable by us.
    pub user_service_writable: bool,
}

/// Our cgroup v2 path from the text of `/proc/self/cgroup` (the `0::` line).
pub fn parse_self_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

pub fn gather_cgroup(root: &Path, uid: u32) -> CgroupView {
    let unified = root.join("cgroup.controllers").is_file();
    if !unified {
        return CgroupView::default();
    }
    let writable = |p: &Path| rustix::fs::access(p, Access::WRITE_OK).is_ok();
    let own_path = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| parse_self_cgroup(&t));
    let own_dir = own_path
        .as_deref()
        .map(|p| root.join(p.trim_start_matches('/')));
    let own_writable = own_dir.as_deref().is_some_and(writable);
    let controllers = own_dir
        .and_then(|d| fs::read_to_string(d.join("cgroup.controllers")).ok())
        .map(|t| t.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let service = root.join(format!("user.slice/user-{uid}.slice/user@{uid}.service"));
    CgroupView {
        unified,
        own_path,
        own_writable,
        controllers,
        user_service_writable: writable(&service),
    }
}
