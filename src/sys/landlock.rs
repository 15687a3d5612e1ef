//! The running kernel's Landlock ABI version (the rules themselves go
//! through the `landlock` crate).

use super::last_errno;

/// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION): the
/// ABI version, or the errno (EOPNOTSUPP: built but not enabled; ENOSYS:
/// not built).
pub fn landlock_abi_version() -> Result<u32, i32> {
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
        Ok(u32::try_from(v).unwrap_or(u32::MAX))
    } else {
        Err(last_errno())
    }
}
