//! File descriptors: raw writes, closing and flagging the descriptors
//! a forked child holds, the standard descriptors, poll.

use super::last_errno;
use rustix::io::{Errno, FdFlags};
use std::os::fd::{BorrowedFd, RawFd};

/// Write all of `msg` to fd 2 with raw writes (no std stdio lock).
pub(crate) fn write_stderr(msg: &str) {
    write_fd(2, msg.as_bytes());
}

/// Close an fd this forked child inherited as part of a value it only
/// borrows (only for forked children). Sound because such children leave with [`exit_now`], so the
/// owner's destructor never runs here and the fd is not closed twice.
pub(crate) fn close_inherited(fd: i32) {
    // SAFETY: see above; close on a bad fd only fails.
    unsafe {
        libc::close(fd);
    }
}

/// Write all of `buf` to `fd`, ignoring errors.
pub(crate) fn write_fd(fd: i32, mut buf: &[u8]) {
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
pub(crate) fn close_fds_from(first: u32, cloexec: bool) -> Result<(), Errno> {
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

/// Clear close-on-exec on `fd` (a descriptor handed through to the
/// command on purpose).
pub(crate) fn keep_on_exec(fd: i32) -> Result<(), Errno> {
    // SAFETY: F_SETFD on an fd number only changes its flags or fails.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    Ok(())
}

/// The descriptor flags (FD_CLOEXEC) of descriptor number `fd`, which
/// need not be open (then EBADF): for checking what hutch's caller
/// passed.
pub(crate) fn descriptor_flags(fd: RawFd) -> Result<FdFlags, Errno> {
    // SAFETY: fcntl(F_GETFD) reads the flags of whatever `fd` names and
    // changes nothing; on a number that is not open it fails with EBADF.
    let rc = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if rc < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    Ok(FdFlags::from_bits_retain(rc as _))
}

/// Standard descriptor 0, 1 or 2 (anything else is taken as 2). hutch
/// keeps them open for its whole life (`inherited::ensure_standard_fds`
/// puts /dev/null on closed ones).
pub(crate) fn standard_fd(fd: RawFd) -> BorrowedFd<'static> {
    match fd {
        0 => rustix::stdio::stdin(),
        1 => rustix::stdio::stdout(),
        _ => rustix::stdio::stderr(),
    }
}

/// dup2 `fd` onto standard descriptor `target` (0, 1 or 2; EBADF for any
/// other, which could close a descriptor some value owns).
pub(crate) fn dup_onto_standard(fd: BorrowedFd<'_>, target: RawFd) -> Result<(), Errno> {
    match target {
        0 => rustix::stdio::dup2_stdin(fd),
        1 => rustix::stdio::dup2_stdout(fd),
        2 => rustix::stdio::dup2_stderr(fd),
        _ => Err(Errno::BADF),
    }
}

/// poll(2) on `fds` for up to `timeout_ms` (-1: no limit); the number of
/// entries with events. EINTR is returned as an error for the caller to
/// retry.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> std::io::Result<usize> {
    // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfd
    // entries for the duration of the call; the kernel writes only their
    // `revents`.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}
