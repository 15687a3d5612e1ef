//! Every `unsafe` line of hutch: small wrappers around the syscalls and
//! libc calls that rustix does not offer safely, each safe to call, each
//! `unsafe` block with a `// SAFETY:` comment saying why it is sound. The
//! rest of the crate is compiled with `#![deny(unsafe_code)]` and calls
//! these (see docs/ARCHITECTURE.md). This module imports nothing from the
//! rest of hutch.

mod caps;
mod fd;
mod ifaddrs;
mod landlock;
mod netif;
mod poll;
mod proc_title;
mod process;
mod rlimit;
mod seccomp;
mod signals;
#[cfg(test)]
pub(crate) mod testing;
mod users;

pub(crate) use caps::*;
pub(crate) use fd::*;
pub(crate) use ifaddrs::*;
pub(crate) use landlock::*;
pub(crate) use netif::*;
pub(crate) use poll::*;
pub(crate) use proc_title::*;
pub(crate) use process::*;
pub(crate) use rlimit::*;
pub(crate) use seccomp::*;
pub(crate) use signals::*;
pub(crate) use users::*;

/// errno of the last failed libc call on this thread (EIO if there is none).
pub(crate) fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
