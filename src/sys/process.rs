//! Small wrappers around the syscalls the launcher needs that rustix does
//! not offer safely: fork, signal masks and waiting for signals, execve,
//! `_exit`, closing descriptors, the process's own title, environment
//! block and dumpable flag, and bringing a network interface up. Each `unsafe` block says
//! why it is sound.

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

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A set of signals.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    pub fn empty() -> SigSet {
        // SAFETY: sigemptyset initialises the zeroed set it is given.
        unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut s);
            SigSet(s)
        }
    }

    pub fn full() -> SigSet {
        // SAFETY: sigfillset initialises the zeroed set it is given.
        unsafe {
            let mut s: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut s);
            SigSet(s)
        }
    }

    pub fn of(signals: &[i32]) -> SigSet {
        let mut s = SigSet::empty();
        for &sig in signals {
            // SAFETY: the set is initialised; a bad number only fails.
            unsafe {
                libc::sigaddset(&mut s.0, sig);
            }
        }
        s
    }
}

/// Block `set` in the calling thread (new threads inherit the mask).
pub fn block(set: &SigSet) {
    // SAFETY: both pointers are valid for the call (old mask not wanted).
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut());
    }
}

/// Replace the calling thread's mask with `set`.
pub fn set_mask(set: &SigSet) {
    // SAFETY: as in `block`.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &set.0, std::ptr::null_mut());
    }
}

/// Wait for one of the (blocked) signals in `set`; returns its number.
pub fn wait_signal(set: &SigSet) -> i32 {
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is initialised and `sig` is a valid out pointer.
        let rc = unsafe { libc::sigwait(&set.0, &mut sig) };
        if rc == 0 {
            return sig;
        }
    }
}

/// Restore every signal's default disposition (before exec, so that
/// ignored signals of hutch do not leak into the container).
pub fn reset_signal_dispositions() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL has no memory-safety requirements.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
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

/// Two fields of /proc/self/stat (numbered as proc(5) numbers them,
/// from 1), as addresses.
fn stat_fields(a: usize, b: usize) -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_comm.split(' ').collect();
    // after_comm starts at field 3.
    let get = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<usize>().ok());
    Some((get(a)?, get(b)?))
}

/// Rename the calling process as `ps` shows it: the thread name and the
/// command line (which for the container's init would otherwise be hutch's
/// own, with host paths). The argument area is overwritten in place, as
/// setproctitle does; the process must not read its argv afterwards.
pub fn set_process_title(title: &str) {
    if let Ok(name) = CString::new(title) {
        let _ = rustix::thread::set_name(&name);
    }
    // Fields 48 and 49: start and end of the argv area.
    let Some((start, end)) = stat_fields(48, 49) else {
        return;
    };
    if end <= start + 1 {
        return;
    }
    let len = end - start;
    let t = title.as_bytes();
    let n = t.len().min(len - 1);
    // SAFETY: [start, end) is this process's own argv area, mapped and
    // writable (it is on the initial stack); nothing holds references into
    // it (hutch never keeps argv pointers), and we write only within it.
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, len);
        std::ptr::copy_nonoverlapping(t.as_ptr(), p, n);
    }
}

/// Overwrite the initial environment block (what /proc/PID/environ shows)
/// with zeros, so a forked child that never executes anything keeps none
/// of its caller's variables in it. The process must not read its
/// environment afterwards (the launcher's children never do).
pub fn scrub_environment() {
    // Fields 50 and 51: start and end of the environment area.
    let Some((start, end)) = stat_fields(50, 51) else {
        return;
    };
    if end <= start {
        return;
    }
    // SAFETY: [start, end) is this process's own environment area on its
    // initial stack, mapped and writable; the only references into it are
    // libc's `environ` entries, which are never read after this (see
    // above), and zeros leave them valid empty strings.
    unsafe {
        std::ptr::write_bytes(start as *mut u8, 0, end - start);
    }
}

/// Make the calling process not dumpable: its /proc/PID files (fd, environ,
/// mem, maps, root, cwd) belong to the host's root, and ptrace or
/// process_vm_readv are refused, for any process of the container
/// whatever capabilities it holds there (the check is made in the user
/// namespace hutch was started in).
pub fn set_not_dumpable() -> Result<(), Errno> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
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

/// Clear close-on-exec on `fd` (a descriptor handed through to the
/// command on purpose).
pub fn keep_on_exec(fd: i32) -> Result<(), Errno> {
    // SAFETY: F_SETFD on an fd number only changes its flags or fails.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    Ok(())
}

/// Set IFF_UP on interface `name` (e.g. "lo").
pub fn interface_up(name: &str) -> Result<(), Errno> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    use std::os::fd::AsRawFd;
    // SAFETY: `ifreq` is plain data, zero-initialised; the name is copied
    // in bounded by IFNAMSIZ-1, so it stays NUL-terminated; both ioctls
    // read and write only that struct.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in name.bytes().take(libc::IFNAMSIZ - 1).enumerate() {
            req.ifr_name[i] = b as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(Errno::from_raw_os_error(last_errno()));
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(Errno::from_raw_os_error(last_errno()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes() {
        assert_eq!(super::exit_code(3 << 8), 3);
        assert_eq!(super::exit_code(9), 137);
    }
}
