//! File descriptors: raw writes, closing what a forked child inherited,
//! close-on-exec.

use super::last_errno;
use rustix::io::{Errno, FdFlags};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Standard descriptor `n` (0, 1 or 2; anything else is taken as 2).
pub fn std_fd(n: i32) -> BorrowedFd<'static> {
    let n = if (0..=2).contains(&n) { n } else { 2 };
    // SAFETY: 0, 1 and 2 stay open for the life of hutch (Rust's runtime
    // puts /dev/null on closed ones before main, and hutch never closes
    // them), so the borrow cannot outlive the descriptor.
    unsafe { BorrowedFd::borrow_raw(n) }
}

/// The descriptor flags (FD_CLOEXEC) of descriptor number `fd`, which may
/// or may not be open (EBADF then).
pub fn fd_flags(fd: i32) -> Result<FdFlags, Errno> {
    // SAFETY: the borrow lives only for fcntl(F_GETFD), which is harmless
    // on any number, open or not.
    rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// dup2(2): make `target` (0, 1 or 2 in a forked child) a copy of `fd`.
pub fn dup_onto(fd: BorrowedFd<'_>, target: i32) -> Result<(), Errno> {
    // SAFETY: dup2 only changes the descriptor table; `fd` is open for the
    // call (borrowed), and whatever `target` was is replaced as intended
    // by the forked child that owns its descriptors.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    Ok(())
}

/// Write all of `msg` to fd 2 with raw writes (no std stdio lock).
pub fn write_stderr(msg: &str) {
    write_fd(2, msg.as_bytes());
}

/// Close an fd this forked child inherited as part of a value it only
/// borrows. Sound because such children leave with [`exit_now`], so the
/// owner's destructor never runs here and the fd is not closed twice.
pub fn close_inherited(fd: i32) {
    // SAFETY: see above; close on a bad fd only fails.
    unsafe {
        libc::close(fd);
    }
}

/// Write all of `buf` to `fd`, ignoring errors.
pub fn write_fd(fd: i32, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n <= 0 {
            if n < 0 && last_errno() == libc::EINTR {
                continue;
            }
            return;
        }
        buf = &buf[n as usize..];
    }
}

/// Close every descriptor from `first` on (`cloexec`: only mark them
/// close-on-exec, so that they stay usable until execve). Uses
/// close_range(2), or on kernels older than 5.11 the list in
/// /proc/self/fd.
pub fn close_fds_from(first: u32, cloexec: bool) -> Result<(), Errno> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    let flags = if cloexec { CLOSE_RANGE_CLOEXEC } else { 0 };
    // SAFETY: close_range only closes or flags descriptors; the callers
    // are forked children that own every descriptor they hold (values that
    // borrow one are never used after this, see `close_inherited`).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            flags,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = last_errno();
    if e != libc::ENOSYS && e != libc::EINVAL {
        return Err(Errno::from_raw_os_error(e));
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &i32| fd >= first as i32)
        .collect();
    for fd in fds {
        if cloexec {
            // SAFETY: setting FD_CLOEXEC on a descriptor we own.
            unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        } else {
            close_inherited(fd);
        }
    }
    Ok(())
}

/// Take descriptor number `fd`, which hutch's parent left open for it on
/// purpose (a keeper's running lock): None if it is not open. The caller
/// checks what it is.
pub fn take_inherited(fd: i32) -> Option<std::os::fd::OwnedFd> {
    if fd < 3 || fd_flags(fd).is_err() {
        return None;
    }
    // SAFETY: the descriptor is open (F_GETFD succeeded) and nothing else
    // in this process owns it: it was inherited across execve, before any
    // code of ours opened anything under that number, and is taken once
    // at start-up.
    Some(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Clear close-on-exec on `fd` (a descriptor handed through to the
/// command on purpose).
pub fn keep_on_exec(fd: i32) -> Result<(), Errno> {
    // SAFETY: F_SETFD on an fd number only changes its flags or fails.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    Ok(())
}
