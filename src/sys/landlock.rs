//! The running kernel's Landlock ABI version (rulesets themselves are
//! built and enforced with the `landlock` crate).

use rustix::io::Errno;

/// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): the
/// ABI version, or the errno (EOPNOTSUPP: built but not enabled; ENOSYS:
/// not built).
pub(crate) fn landlock_abi() -> Result<u32, Errno> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with this flag the kernel reads no attribute (NULL, size 0)
    // and only returns the ABI version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v > 0 {
        return Ok(u32::try_from(v).unwrap_or(u32::MAX));
    }
    Err(Errno::from_raw_os_error(super::last_errno()))
}
