//! Leaving namespaces: unshare(2).

use rustix::io::Errno;
use rustix::thread::UnshareFlags;

/// unshare(2) the namespaces in `flags` for the calling thread (a new
/// user namespace needs a single-threaded process: EINVAL otherwise).
/// `UnshareFlags::FILES` is refused with EINVAL: it would give this thread
/// a descriptor table of its own, in which descriptors that values of
/// other threads own could mean other files.
pub(crate) fn unshare(flags: UnshareFlags) -> Result<(), Errno> {
    if flags.contains(UnshareFlags::FILES) {
        return Err(Errno::INVAL);
    }
    // SAFETY: rustix's only requirement is about CLONE_FILES (threads
    // observing descriptors from an unshared table), refused above; the
    // other flags change namespaces, credentials or the fs context, not
    // the meaning of any descriptor or memory.
    unsafe { rustix::thread::unshare_unsafe(flags) }
}
