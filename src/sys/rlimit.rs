//! Resource limits of the calling process: getrlimit and setrlimit.

/// The resource argument of getrlimit/setrlimit (`libc::RLIMIT_*`).
#[cfg(target_env = "gnu")]
pub(crate) type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub(crate) type Resource = libc::c_int;

/// Current (soft, hard) limit of `resource`.
pub(crate) fn getrlimit(resource: Resource) -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out pointer for the call.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// setrlimit with the given soft and hard values; Err is the errno. Only
/// a syscall (no allocation).
pub(crate) fn setrlimit(resource: Resource, soft: u64, hard: u64) -> Result<(), i32> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid pointer for the call, only read.
    let rc = unsafe { libc::setrlimit(resource, &lim) };
    if rc == 0 {
        Ok(())
    } else {
        Err(super::last_errno())
    }
}
