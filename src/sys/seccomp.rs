//! Installing a seccomp BPF filter on the calling thread.

use rustix::io::Errno;

/// seccomp(SECCOMP_SET_MODE_FILTER, 0, prog) for the calling thread with
/// the program `filter` (at most u16::MAX instructions, else EINVAL).
/// Only a syscall (no allocation).
pub(crate) fn install_filter(filter: &[libc::sock_filter]) -> Result<(), Errno> {
    let Ok(len) = libc::c_ushort::try_from(filter.len()) else {
        return Err(Errno::INVAL);
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
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(super::last_errno()))
    }
}
