//! Test-only wrappers: running a closure in a forked child, and the raw
//! syscalls the seccomp tests probe the filter with. Compiled only for
//! unit tests.

use super::last_errno;

/// Run `f` in a forked child and return its exit code. `f` must not
/// allocate or take locks (the test harness has other threads).
pub(crate) fn in_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: fork has no memory-safety preconditions; the child runs only
    // `f` (syscalls, no allocation) and leaves with _exit, so no state
    // shared with the parent's other threads is touched.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = f();
        // SAFETY: _exit never returns and runs no destructors.
        unsafe { libc::_exit(code) }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid out pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status),
        "child died of signal {}",
        libc::WTERMSIG(status)
    );
    libc::WEXITSTATUS(status)
}

/// A raw syscall with integer arguments only: an argument the kernel reads
/// as a pointer must be 0 (NULL), which it refuses with EFAULT without
/// touching memory. The errno, or 0 when the call succeeded.
pub(crate) fn syscall_errno(nr: libc::c_long, args: [libc::c_long; 5]) -> i32 {
    // SAFETY: no argument is an address other than NULL (see above), so
    // the kernel reads and writes none of our memory.
    let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) };
    if rc >= 0 { 0 } else { last_errno() }
}

/// A raw syscall with integer arguments (as [`syscall_errno`]); its result.
pub(crate) fn syscall_value(nr: libc::c_long, args: [libc::c_long; 5]) -> libc::c_long {
    // SAFETY: as in `syscall_errno`.
    unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) }
}

/// ioctl `request` on `fd` with a pointer to a zeroed 64-byte buffer
/// (larger than what the terminal ioctls the tests use read or write);
/// the errno, or 0 on success.
pub(crate) fn ioctl_errno(fd: std::os::fd::BorrowedFd<'_>, request: libc::c_ulong) -> i32 {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 64];
    // SAFETY: `buf` is live and writable for 64 bytes, more than any of
    // the requests passed here (TIOCSTI, TIOCLINUX, TIOCGWINSZ) uses.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, buf.as_mut_ptr()) };
    if rc >= 0 { 0 } else { last_errno() }
}

/// clone(2) with `flags` and no new stack (fork-like); the child exits at
/// once with 0 and is reaped. Ok(()) if the clone happened, else its errno.
pub(crate) fn clone_and_reap(flags: libc::c_long) -> Result<(), i32> {
    // SAFETY: without CLONE_VM the child gets a copy of the address space,
    // as with fork, and leaves through _exit at once without touching it.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    if pid == 0 {
        // SAFETY: _exit never returns and runs no destructors.
        unsafe { libc::_exit(0) }
    }
    if pid < 0 {
        return Err(last_errno());
    }
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid out pointer.
    unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    Ok(())
}

/// personality(2); Ok(the old persona) or the errno.
pub(crate) fn personality(persona: libc::c_ulong) -> Result<i32, i32> {
    // SAFETY: personality takes an integer and touches no memory of ours.
    let rc = unsafe { libc::personality(persona) };
    if rc == -1 { Err(last_errno()) } else { Ok(rc) }
}

/// setgid then setuid (of the calling thread; glibc applies them to every
/// thread); the errno of the first that fails.
pub(crate) fn set_gid_uid(gid: u32, uid: u32) -> Result<(), i32> {
    // SAFETY: setgid and setuid take integers and touch no memory of ours.
    if unsafe { libc::setgid(gid) } != 0 || unsafe { libc::setuid(uid) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// posix_openpt(O_RDWR|O_NOCTTY|O_CLOEXEC): a new pseudo-terminal master.
pub(crate) fn open_pty_master() -> Result<std::os::fd::OwnedFd, rustix::io::Errno> {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt takes flags only and returns a new fd or -1.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(rustix::io::Errno::from_raw_os_error(last_errno()));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Run `f` in a forked child inside a new user namespace: the child makes
/// the namespace, then `map(child_pid)` runs in the parent (to write the
/// child's uid and gid maps, e.g. with newuidmap), then the child runs `f`
/// as root of its namespace. `f`'s exit code, or why the namespace or its
/// maps could not be made.
pub(crate) fn in_userns_child(
    map: impl FnOnce(i32) -> Result<(), String>,
    f: impl FnOnce() -> i32,
) -> Result<i32, String> {
    use rustix::pipe::{PipeFlags, pipe_with};
    const NO_NAMESPACE: i32 = 98;
    const NO_MAPS: i32 = 99;
    let (ready_r, ready_w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| e.to_string())?;
    let (go_r, go_w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| e.to_string())?;
    // SAFETY: as in `in_child`: the child makes only syscalls, then runs
    // `f` (which must not allocate or lock) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(ready_r);
        drop(go_w);
        let code = if super::process::unshare(rustix::thread::UnshareFlags::NEWUSER).is_err() {
            NO_NAMESPACE
        } else {
            let _ = rustix::io::write(&ready_w, b"u");
            let mut b = [0u8; 1];
            match rustix::io::read(&go_r, &mut b) {
                Ok(1) => f(),
                _ => NO_MAPS,
            }
        };
        // SAFETY: _exit never returns and runs no destructors.
        unsafe { libc::_exit(code) }
    }
    drop(ready_w);
    drop(go_r);
    let mut b = [0u8; 1];
    let unshared = matches!(rustix::io::read(&ready_r, &mut b), Ok(1));
    let mapped = if unshared {
        map(pid)
    } else {
        Err("unshare(CLONE_NEWUSER) failed".into())
    };
    if mapped.is_ok() {
        let _ = rustix::io::write(&go_w, b"g");
    }
    drop(go_w);
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid out pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    mapped?;
    if !libc::WIFEXITED(status) {
        return Err(format!(
            "the child died of signal {}",
            libc::WTERMSIG(status)
        ));
    }
    Ok(libc::WEXITSTATUS(status))
}
