//! Descriptors hutch's caller handed it.
//!
//! hutch's own descriptors are all close-on-exec (Rust opens everything
//! with `O_CLOEXEC`), so a descriptor above 2 without that flag came from
//! the caller. None of them reaches the container unless asked for with
//! `--preserve-fds N` (Podman's flag: descriptors 3 to 3+N-1, as they
//! are); everything else is closed when the command is executed
//! (child.rs).
//!
//! A caller may also start hutch with 0, 1 or 2 closed, so that the first
//! file hutch opens would take that number and become the container's
//! stdin, stdout or stderr. Rust's runtime opens /dev/null on a closed 0,
//! 1 or 2 before `main` (tests/hostile_caller.rs checks that this holds).

use anyhow::{Result, bail};
use rustix::io::FdFlags;

/// Most descriptors `--preserve-fds` hands through.
pub const MAX_PRESERVED: u32 = 1024;

/// Check that descriptors 3..3+n came from the caller (open, not
/// close-on-exec), so that `--preserve-fds n` hands through only what
/// the user meant.
pub fn check_preserved(n: u32) -> Result<()> {
    if n > MAX_PRESERVED {
        bail!("--preserve-fds {n}: at most {MAX_PRESERVED} descriptors can be passed");
    }
    for fd in 3..3 + n as i32 {
        match crate::sys::fd_flags(fd) {
            Err(_) => bail!(
                "--preserve-fds {n}: descriptor {fd} is not open; open 3 to {} in the shell \
                 that starts hutch (e.g. `3<file`), or pass fewer",
                2 + n
            ),
            Ok(flags) if flags.contains(FdFlags::CLOEXEC) => bail!(
                "--preserve-fds {n}: descriptor {fd} is hutch's own, not one its caller passed"
            ),
            Ok(_) => {}
        }
    }
    Ok(())
}
