//! Signal masks, waiting for signals and signal dispositions.

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

/// Like [`wait_signal`], for at most `timeout`: None when it passed
/// with none of the signals.
pub fn wait_signal_timeout(set: &SigSet, timeout: std::time::Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ts = libc::timespec {
            tv_sec: left.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `set` is initialised, the siginfo out pointer may be
        // null and `ts` is valid for the call.
        let rc = unsafe { libc::sigtimedwait(&set.0, std::ptr::null_mut(), &ts) };
        if rc > 0 {
            return Some(rc);
        }
        if super::last_errno() != libc::EINTR || left.is_zero() {
            return None;
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

/// Ignore signal `sig` (SIG_IGN) in this process.
pub fn ignore_signal(sig: i32) {
    // SAFETY: installing SIG_IGN for a signal has no memory-safety
    // requirements; the previous handler is not needed.
    unsafe {
        libc::signal(sig, libc::SIG_IGN);
    }
}
