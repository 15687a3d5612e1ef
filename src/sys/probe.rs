//! Raw syscalls for the seccomp tests: each makes one call the way a
//! program in the container could (straight to the kernel, bypassing
//! libc's fallbacks) and returns its errno, 0 when the call succeeded,
//! so that a test can see what an installed filter answers. The calls
//! are chosen to be harmless when a filter lets them through.

use libc::c_long;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};

/// errno of a raw syscall's result: 0 when it succeeded.
fn errno_of(rc: c_long) -> i32 {
    if rc >= 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

/// keyctl(0, 0, 0, 0, 0) (KEYCTL_GET_KEYRING_ID of keyring 0: EINVAL
/// without a filter).
pub(crate) fn keyctl() -> i32 {
    // SAFETY: integer arguments only.
    errno_of(unsafe { libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) })
}

/// unshare(CLONE_NEWUSER), raw.
pub(crate) fn unshare_user() -> i32 {
    // SAFETY: integer argument; a new user namespace does not change what
    // any descriptor or memory of this process means.
    errno_of(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) })
}

/// ptrace(PTRACE_TRACEME).
pub(crate) fn ptrace_traceme() -> i32 {
    // SAFETY: integer arguments only; being traced changes no memory.
    errno_of(unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) })
}

/// clone3(NULL, 0): without a filter the kernel refuses the empty
/// argument (EINVAL) before creating anything.
pub(crate) fn clone3_empty() -> i32 {
    // SAFETY: a null argument of size 0 is never read; no process is
    // created.
    errno_of(unsafe { libc::syscall(libc::SYS_clone3, 0, 0) })
}

/// fchmodat2(AT_FDCWD, path, 0o755, 0) (syscall 452 on every
/// architecture).
pub(crate) fn fchmodat2(path: &CStr) -> i32 {
    // SAFETY: `path` is NUL-terminated and lives for the call.
    errno_of(unsafe { libc::syscall(452, libc::AT_FDCWD, path.as_ptr(), 0o755, 0) })
}

/// getpid, raw: the pid, or the negated errno.
pub(crate) fn getpid() -> c_long {
    // SAFETY: no arguments.
    let pid = unsafe { libc::syscall(libc::SYS_getpid) };
    if pid < 0 {
        -c_long::from(errno_of(pid))
    } else {
        pid
    }
}

/// getpid with the syscall number's x32 bit (0x4000_0000) set.
#[cfg(target_arch = "x86_64")]
pub(crate) fn getpid_x32() -> i32 {
    // SAFETY: no arguments.
    errno_of(unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) })
}

/// io_uring_setup(1, params) with zeroed params (without a filter this
/// creates a ring, whose fd stays open until the process exits).
pub(crate) fn io_uring_setup() -> i32 {
    let mut params = [0u8; 120];
    // SAFETY: `params` is a writable buffer of the size of
    // io_uring_params, which the kernel may fill in.
    errno_of(unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) })
}

/// clone(SIGCHLD | `flags`) with no new stack, as fork: the child exits at
/// once with _exit(0) and is reaped here.
pub(crate) fn clone_and_reap(flags: c_long) -> i32 {
    // SAFETY: without CLONE_VM the child runs in a copy of this address
    // space and only calls _exit; the parent waits for it with a valid
    // status pointer.
    unsafe {
        let pid = libc::syscall(
            libc::SYS_clone,
            c_long::from(libc::SIGCHLD) | flags,
            0,
            0,
            0,
            0,
        );
        if pid == 0 {
            libc::_exit(0);
        }
        if pid < 0 {
            return errno_of(pid);
        }
        let mut status = 0;
        libc::waitpid(pid as libc::pid_t, &mut status, 0);
    }
    0
}

/// personality(`persona`).
pub(crate) fn personality(persona: libc::c_ulong) -> i32 {
    // SAFETY: integer argument only.
    if unsafe { libc::personality(persona) } == -1 {
        errno_of(-1)
    } else {
        0
    }
}

/// ioctl(TIOCSTI) typing `c` into terminal `fd`.
pub(crate) fn tiocsti(fd: BorrowedFd<'_>, c: u8) -> i32 {
    let c = c as libc::c_char;
    // SAFETY: TIOCSTI reads one char through a valid pointer.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSTI, &c as *const libc::c_char) };
    errno_of(rc.into())
}

/// ioctl(TIOCLINUX) with subcode 0 on `fd`.
pub(crate) fn tioclinux(fd: BorrowedFd<'_>) -> i32 {
    let mut sub: libc::c_char = 0;
    // SAFETY: TIOCLINUX reads (and for some subcodes writes) the byte
    // behind a valid pointer.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCLINUX,
            &mut sub as *mut libc::c_char,
        )
    };
    errno_of(rc.into())
}

/// ioctl(TIOCGWINSZ) on `fd`.
pub(crate) fn tiocgwinsz(fd: BorrowedFd<'_>) -> i32 {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize through a valid pointer.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut ws as *mut libc::winsize,
        )
    };
    errno_of(rc.into())
}
