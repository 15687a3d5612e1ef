//! Test-only wrappers: running a closure in a forked child, and the raw
//! syscalls the seccomp tests probe the filter with. Compiled only for
//! unit tests.

use super::last_errno;
use super::process::{Forked, exit_now, fork, wait};

/// Run `f` in a forked child and return its exit code. `f` must not
/// allocate or take locks (the test harness has other threads).
pub(crate) fn in_child(f: impl FnOnce() -> i32) -> i32 {
    let pid = match fork() {
        Err(e) => panic!("fork failed: {}", std::io::Error::from(e)),
        Ok(Forked::Child) => exit_now(f()),
        Ok(Forked::Parent(pid)) => pid,
    };
    let status = reap(pid);
    assert!(
        libc::WIFEXITED(status),
        "child died of signal {}",
        libc::WTERMSIG(status)
    );
    libc::WEXITSTATUS(status)
}

/// Wait for child `pid`; its raw wait status.
fn reap(pid: i32) -> i32 {
    match wait(pid, false) {
        Ok(Some((_, status))) => status,
        other => panic!("waiting for child {pid}: {:?}", other.err()),
    }
}

/// The seccomp tests' probes: each makes one syscall whose arguments are
/// fixed here (numbers, or NULL where the kernel expects an address, which
/// it refuses with EFAULT after the filter has answered), and returns the
/// errno, or 0 when the call succeeded. None takes an argument that could
/// make the kernel touch memory.
pub(crate) mod probe {
    use super::last_errno;
    use libc::c_long;
    use std::os::fd::{AsRawFd, BorrowedFd};

    /// `nr` with `args`, all integers or NULL (callers below only).
    fn raw(nr: c_long, args: [c_long; 5]) -> Result<c_long, i32> {
        // SAFETY: every caller in this module passes numbers and NULLs
        // only (see each), so the kernel reads and writes none of our
        // memory; the calls change no memory of this process either.
        let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) };
        if rc >= 0 { Ok(rc) } else { Err(last_errno()) }
    }

    fn errno(r: Result<c_long, i32>) -> i32 {
        r.err().unwrap_or(0)
    }

    /// keyctl(0, 0, 0, 0, 0): KEYCTL_GET_KEYRING_ID of no keyring.
    pub(crate) fn keyctl() -> i32 {
        errno(raw(libc::SYS_keyctl, [0; 5]))
    }

    /// unshare(CLONE_NEWUSER).
    pub(crate) fn unshare_user() -> i32 {
        errno(raw(
            libc::SYS_unshare,
            [c_long::from(libc::CLONE_NEWUSER), 0, 0, 0, 0],
        ))
    }

    /// ptrace(PTRACE_TRACEME).
    pub(crate) fn ptrace_traceme() -> i32 {
        errno(raw(
            libc::SYS_ptrace,
            [c_long::from(libc::PTRACE_TRACEME), 0, 0, 0, 0],
        ))
    }

    /// clone3(NULL, 0).
    pub(crate) fn clone3_null() -> i32 {
        errno(raw(libc::SYS_clone3, [0; 5]))
    }

    /// fchmodat2(AT_FDCWD, NULL, 0755, 0) (syscall 452, newer than libc's list).
    pub(crate) fn fchmodat2_null() -> i32 {
        errno(raw(452, [c_long::from(libc::AT_FDCWD), 0, 0o755, 0, 0]))
    }

    /// io_uring_setup(1, NULL).
    pub(crate) fn io_uring_setup_null() -> i32 {
        errno(raw(libc::SYS_io_uring_setup, [1, 0, 0, 0, 0]))
    }

    /// getpid through the x32 ABI (syscall number | 0x4000_0000).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn x32_getpid() -> i32 {
        errno(raw(0x4000_0000 | libc::SYS_getpid, [0; 5]))
    }

    /// getpid as a raw syscall (the filter's allow path), or -errno.
    pub(crate) fn getpid() -> c_long {
        raw(libc::SYS_getpid, [0; 5]).unwrap_or_else(|e| -c_long::from(e))
    }

    /// A terminal ioctl on `fd` with a zeroed 64-byte buffer.
    fn tty_ioctl(fd: BorrowedFd<'_>, request: libc::c_ulong) -> i32 {
        let mut buf = [0u8; 64];
        // SAFETY: `buf` is live and writable for 64 bytes, more than the
        // three requests below read or write (TIOCSTI: 1 byte, TIOCLINUX:
        // 1 byte, TIOCGWINSZ: a struct winsize of 8 bytes).
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, buf.as_mut_ptr()) };
        if rc >= 0 { 0 } else { last_errno() }
    }

    /// TIOCSTI (push a byte into the terminal's input).
    pub(crate) fn tiocsti(fd: BorrowedFd<'_>) -> i32 {
        tty_ioctl(fd, libc::TIOCSTI)
    }

    /// TIOCLINUX (console subcommands; EINVAL on a pty).
    pub(crate) fn tioclinux(fd: BorrowedFd<'_>) -> i32 {
        tty_ioctl(fd, libc::TIOCLINUX as libc::c_ulong)
    }

    /// TIOCGWINSZ (read the window size).
    pub(crate) fn tiocgwinsz(fd: BorrowedFd<'_>) -> i32 {
        tty_ioctl(fd, libc::TIOCGWINSZ)
    }
}

/// clone(2) with `flags` and no new stack (fork-like); the child exits at
/// once with 0 and is reaped. Ok(()) if the clone happened, else its errno.
pub(crate) fn clone_and_reap(flags: libc::c_long) -> Result<(), i32> {
    // SAFETY: without CLONE_VM the child gets a copy of the address space,
    // as with fork, and leaves through _exit at once without touching it.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    if pid == 0 {
        exit_now(0)
    }
    if pid < 0 {
        return Err(last_errno());
    }
    reap(pid as i32);
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
    let pid = match fork() {
        Err(e) => return Err(format!("fork: {}", std::io::Error::from(e))),
        Ok(Forked::Parent(pid)) => pid,
        Ok(Forked::Child) => {
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
            exit_now(code)
        }
    };
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
    let status = reap(pid);
    mapped?;
    if !libc::WIFEXITED(status) {
        return Err(format!(
            "the child died of signal {}",
            libc::WTERMSIG(status)
        ));
    }
    Ok(libc::WEXITSTATUS(status))
}
