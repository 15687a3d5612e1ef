//! Processes: fork, wait, exit statuses, `_exit`, execve, kill, the
//! dumpable flag.

use super::last_errno;
use rustix::io::Errno;
use std::ffi::CString;

/// Result of [`fork`].
pub enum Forked {
    Parent(i32),
    Child,
}

/// fork(2) through glibc (so its atfork handlers make malloc usable in
/// the child even when other threads exist).
pub fn fork() -> Result<Forked, Errno> {
    // SAFETY: fork has no memory-safety preconditions; in the child only
    // this thread exists, and the launcher's children use only syscalls,
    // glibc malloc (made fork-safe by glibc) and raw writes to fds, never
    // locks another thread could have held (no std stdio, no tracing).
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Errno::from_raw_os_error(last_errno())),
        0 => Ok(Forked::Child),
        p => Ok(Forked::Parent(p)),
    }
}

/// unshare(2) for namespaces. `CLONE_FILES` is refused: unsharing the
/// descriptor table is what makes rustix's `unshare` unsafe (descriptors
/// other code holds could change meaning), and hutch never needs it.
pub fn unshare(flags: rustix::thread::UnshareFlags) -> Result<(), Errno> {
    if flags.contains(rustix::thread::UnshareFlags::FILES) {
        return Err(Errno::INVAL);
    }
    // SAFETY: without CLONE_FILES the descriptor table stays shared with
    // nothing new, so no descriptor held anywhere changes meaning; the
    // namespace flags have no memory-safety effect.
    unsafe { rustix::thread::unshare_unsafe(flags) }
}

/// PR_SET_NO_NEW_PRIVS: no execve of this process or its children gains
/// privileges (setuid bits, file capabilities) from now on.
pub fn set_no_new_privs() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Send `sig` to `pid` (errors ignored: the target may be gone).
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Wait for `pid` (or any child for -1); returns (pid, raw status).
pub fn wait(pid: i32, nohang: bool) -> Result<Option<(i32, i32)>, Errno> {
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
pub fn exit_code(status: i32) -> i32 {
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
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// execve(2). Returns only on failure, with the errno.
pub fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> Errno {
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

/// Make the calling process not dumpable: its /proc/PID files (fd, environ,
/// mem, maps, root, cwd) belong to the host's root, and ptrace or
/// process_vm_readv are refused, for any process of the container
/// whatever capabilities it holds there (the check is made in the user
/// namespace hutch was started in).
pub fn set_not_dumpable() -> Result<(), Errno> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes() {
        assert_eq!(super::exit_code(3 << 8), 3);
        assert_eq!(super::exit_code(9), 137);
    }
}
