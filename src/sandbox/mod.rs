//! The launcher of `hutch run`: from a [`spec::SandboxSpec`] to a process
//! in its own user, mount, PID, UTS, IPC, cgroup and network namespaces on
//! hutch's overlay filesystem.
//!
//! The spec is resolved by src/run (image config + profile + flags + host
//! facts); nothing here decides, everything reads the spec.
//!
//! * `spec`: the fully resolved, typed, serialisable description.
//! * `etc_files`: the container's hosts, hostname and resolv.conf.
//! * `idmap`: writing the uid/gid maps the spec names (newuidmap with a
//!   subordinate range, or one id).
//! * `launch`: namespaces, the overlay mount, signals, the terminal.
//! * `child`: the relay → init → command processes.
//! * `rootfs`: /proc, /dev, /sys, mounts, masked paths, pivot_root, with
//!   every container path resolved inside the root by `inroot`;
//!   `copy_up` fills a new named volume from the root when the spec says.
//! * `security`: the order in which the boundary is applied, using
//!   `caps`, `rlimits`, `landlock`, `seccomp`; `cgroup` for limits.
//! * `tap`, `netlink`, `network`: the container's eth0 for `--network
//!   slirp` and the userspace stack (src/net) serving it.
//! * `inherited`: descriptors from hutch's caller (`--preserve-fds`).
//! * `namespaces`: a running container's namespaces, served on its join
//!   socket; `exec` runs a command in them with the container's
//!   confinement (`hutch exec`); `fd_passing` carries descriptors.
//! * `visit`: a child process of hutch in a container's user and mount
//!   namespaces (its own when it runs; a fresh mount of its overlay with
//!   its id maps when stopped) doing hutch's work on its files (`cp`,
//!   `export`).
//! * `pty`, `stdio`: the terminal (a pty with `-t`, relayed pipes for
//!   profiles that do not share it, its settings restored on exit).
//! * `sys`: the raw syscall wrappers.

pub mod caps;
pub mod cgroup;
mod child;
pub use child::FORWARDED;
mod copy_up;
pub mod etc_files;
pub mod exec;
mod fd_passing;
mod idmap;
pub mod inherited;
mod inroot;
pub mod landlock;
pub mod launch;
pub mod namespaces;
mod netlink;
pub mod network;
pub mod pty;
pub mod rlimits;
mod rootfs;
pub mod seccomp;
mod security;
pub mod spec;
mod stdio;
pub mod visit;

pub mod tap;
