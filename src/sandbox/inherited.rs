//! Descriptors hutch's caller handed it.
//!
//! hutch's own descriptors are all close-on-exec (Rust opens everything
//! with `O_CLOEXEC`), so a descriptor above 2 without that flag came from
//! the caller. None of them reaches the container unless asked for with
//! `--preserve-fds N` (Podman's flag: descriptors 3 to 3+N-1, as they
//! are); everything else is closed when the command is executed
//! (child.rs).
//!
//! A caller may also start hutch with 0, 1 or 2 closed. The first file
//! hutch opens would then take that number and be handed to the
//! container as its stdin, stdout or stderr: [`ensure_standard_fds`] puts
//! /dev/null there first.

use anyhow::{Result, bail};
use rustix::io::FdFlags;
use std::os::fd::BorrowedFd;

/// Most descriptors `--preserve-fds` hands through.
pub const MAX_PRESERVED: u32 = 1024;

/// Open /dev/null on whichever of 0, 1, 2 is closed (call first thing).
pub fn ensure_standard_fds() {
    for fd in 0..3 {
        if is_open(fd) {
            continue;
        }
        // open(2) takes the lowest free number: this one, as the lower ones
        // are open (checked in order).
        let flags = if fd == 0 {
            rustix::fs::OFlags::RDONLY
        } else {
            rustix::fs::OFlags::WRONLY
        };
        if let Ok(null) = rustix::fs::open("/dev/null", flags, rustix::fs::Mode::empty()) {
            // Keep it open for the life of the process, as fd `fd`.
            std::mem::forget(null);
        }
    }
}

fn borrow(fd: i32) -> BorrowedFd<'static> {
    // SAFETY: only used for fcntl(F_GETFD), which is harmless on any
    // number, open or not (EBADF then).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

fn is_open(fd: i32) -> bool {
    rustix::io::fcntl_getfd(borrow(fd)).is_ok()
}

/// Check that descriptors 3..3+n came from the caller (open, not
/// close-on-exec), so that `--preserve-fds n` hands through only what
/// the user meant.
pub fn check_preserved(n: u32) -> Result<()> {
    if n > MAX_PRESERVED {
        bail!("--preserve-fds {n}: at most {MAX_PRESERVED} descriptors can be passed");
    }
    for fd in 3..3 + n as i32 {
        match rustix::io::fcntl_getfd(borrow(fd)) {
            Err(_) => bail!(
                "--preserve-fds {n}: descriptor {fd} is not open; open 3 to {} in the shell \
                 that starts hutch (e.g. `3<file`), or pass fewer",
                2 + n
            ),
            Ok(flags) if flags.contains(FdFlags::CLOEXEC) => bail!(
                "--preserve-fds {n}: descriptor {fd} is hutch's own, not one its caller passed"
            ),
            Ok(_) => {}
        }
    }
    Ok(())
}
