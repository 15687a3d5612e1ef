//! Installing a seccomp filter.

use super::last_errno;

/// seccomp(SECCOMP_SET_MODE_FILTER, 0, prog) for the calling thread;
/// the errno on failure (EINVAL for a program longer than the kernel's
/// length field can say).
pub fn install_seccomp_filter(filter: &[libc::sock_filter]) -> Result<(), i32> {
    let Ok(len) = libc::c_ushort::try_from(filter.len()) else {
        return Err(libc::EINVAL);
    };
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points to `len` valid instructions that outlive the
    // call; the kernel copies the program and never writes to it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc == 0 { Ok(()) } else { Err(last_errno()) }
}
