//! Every syscall wrapper of hutch that needs `unsafe`, in one place.
//!
//! Each function here is small and safe to call: its `unsafe` block says
//! in a `// SAFETY:` comment why the call is sound whatever the caller
//! passes. The rest of the crate is compiled with `#![deny(unsafe_code)]`
//! and reaches the kernel only through these functions and rustix.
//!
//! The files are by area; callers name the items through this module
//! (`crate::sys::fork`), not through the files:
//!
//! * `process`: fork, wait, exit, execve, kill.
//! * `signal`: signal sets and masks, waiting for a signal, dispositions.
//! * `namespace`: unshare.
//! * `fd`: raw writes, closing and flagging descriptors, the standard
//!   descriptors, poll.
//! * `procself`: the process's own title, environment block, dumpable flag.
//! * `caps`: capability sets, the bounding and ambient sets, no_new_privs.
//! * `rlimit`: getrlimit and setrlimit.
//! * `seccomp`: installing a BPF filter.
//! * `landlock`: the kernel's Landlock ABI version.
//! * `netif`: network interfaces (ifreq and route ioctls, TAP devices,
//!   getifaddrs).
//! * `nss`: user names through NSS.
//! * `probe` (tests only): raw syscalls that check what a seccomp filter
//!   answers.

mod caps;
mod fd;
mod landlock;
mod namespace;
mod netif;
mod nss;
#[cfg(test)]
pub(crate) mod probe;
mod process;
mod procself;
mod rlimit;
mod seccomp;
mod signal;

pub(crate) use caps::{
    CapSets, ambient_clear, bounding_drop, bounding_has, capget, capset, set_no_new_privs,
};
pub(crate) use fd::{
    close_fds_from, close_inherited, descriptor_flags, dup_onto_standard, keep_on_exec, poll,
    standard_fd, write_fd, write_stderr,
};
pub(crate) use landlock::landlock_abi;
pub(crate) use namespace::unshare;
pub(crate) use netif::{
    add_ipv4_default_route, create_tap, interface_addresses, interface_index, interface_up,
    set_interface_ipv4, set_interface_mtu, set_interface_netmask, set_tap_persistent,
};
// TODO(issue 14): used by check/host.rs once check is split.
#[allow(unused_imports)]
pub(crate) use nss::user_name;
pub(crate) use process::{Forked, execve, exit_code, exit_now, fork, kill, wait};
pub(crate) use procself::{scrub_environment, set_not_dumpable, set_process_title};
pub(crate) use rlimit::{Resource, getrlimit, setrlimit};
pub(crate) use seccomp::install_filter;
pub(crate) use signal::{
    SigSet, block, ignore_signal, reset_signal_dispositions, set_mask, wait_signal,
};

/// errno of the libc call that just failed (EIO if there is none).
fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
