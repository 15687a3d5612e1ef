//! poll(2) over a slice of `libc::pollfd`.

/// Wait until one of `fds` is ready or `timeout_ms` passes (-1: no
/// timeout); the number of ready entries, their `revents` filled in.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> std::io::Result<usize> {
    // SAFETY: `fds` is a valid, writable array of pollfd of the given
    // length for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
