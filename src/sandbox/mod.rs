//! The launcher of `hutch run`: from a [`spec::SandboxSpec`] to a process
//! in its own user, mount, PID, UTS, IPC, cgroup and network namespaces on
//! hutch's overlay filesystem.
//!
//! * `plan`: image config + profile + flags → `SandboxSpec` (`spec`).
//! * `users`: `-u` names from the image's /etc/passwd and /etc/group.
//! * `idmap`: uid/gid maps (newuidmap with a subordinate range, or one id).
//! * `launch`: namespaces, the overlay mount, signals, the terminal.
//! * `child`: the relay → init → command processes.
//! * `rootfs`: /proc, /dev, /sys, mounts, masked paths, pivot_root, with
//!   every container path resolved inside the root by `inroot`.
//! * `security`: the order in which the boundary is applied, using
//!   `caps`, `rlimits`, `landlock`, `seccomp`; `cgroup` for limits.
//! * `tap`, `netlink`, `network`: the container's eth0 for `--network
//!   slirp` and the userspace stack (src/net) serving it.
//! * `inherited`: descriptors from hutch's caller (`--preserve-fds`).
//! * `pty`, `stdio`: the terminal (a pty with `-t`, relayed pipes for
//!   profiles that do not share it, its settings restored on exit).
//! * `sys`: the raw syscall wrappers.

pub mod caps;
pub mod cgroup;
mod child;
pub mod idmap;
pub mod inherited;
mod inroot;
pub mod landlock;
pub mod launch;
mod netlink;
pub mod network;
pub mod plan;
mod pty;
pub mod rlimits;
mod rootfs;
pub mod seccomp;
mod security;
pub mod spec;
mod stdio;

pub mod tap;
pub mod users;
