//! Processes: fork, wait, exit, execve, kill.

use super::last_errno;
use rustix::io::Errno;
use std::ffi::CString;

/// Result of [`fork`].
pub(crate) enum Forked {
    Parent(i32),
    Child,
}

/// fork(2) through glibc (so its atfork handlers make malloc usable in
/// the child even when other threads exist).
///
/// In the child only the calling thread exists: when the parent has other
/// threads, the child must use only syscalls, glibc malloc and raw writes
/// ([`write_fd`](super::write_fd)), never a lock another thread could
/// have held (std stdio, tracing), and leave with [`exit_now`].
pub(crate) fn fork() -> Result<Forked, Errno> {
    // SAFETY: fork has no memory-safety preconditions: the child gets a
    // copy of the address space in which no other thread runs, so nothing
    // it holds can change under it; what the child may call afterwards
    // (see above) is a matter of not deadlocking, which callers follow.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Errno::from_raw_os_error(last_errno())),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p)),
    }
}

/// Send `sig` to `pid` (errors ignored: the target may be gone).
pub(crate) fn kill(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Wait for `pid` (or any child for -1); returns (pid, raw status).
pub(crate) fn wait(pid: i32, nohang: bool) -> Result<Option<(i32, i32)>, Errno> {
    let mut status = 0;
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: `status` is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        match r {
            -1 if last_errno() == libc::EINTR => continue,
            -1 => return Err(Errno::from_raw_os_error(last_errno())),
            0 => return Ok(None),
            p => return Ok(Some((p, status))),
        }
    }
}

/// Shell-style exit code of a raw wait status: the code, or 128+signal.
pub(crate) fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// `_exit(2)`: leave a forked child without running atexit handlers or
/// destructors that belong to the parent.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// execve(2). Returns only on failure, with the errno.
pub(crate) fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> Errno {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: `path`, every argv/envp string and both NULL-terminated
    // pointer arrays live until execve returns (it only returns on error).
    unsafe {
        libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr());
    }
    Errno::from_raw_os_error(last_errno())
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes() {
        assert_eq!(super::exit_code(3 << 8), 3);
        assert_eq!(super::exit_code(9), 137);
    }
}
