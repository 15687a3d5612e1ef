//! Path safety: normalising entry names, refusing `..` and absolute
//! escapes, opening parents below the layer root with openat2
//! (RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS).

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathProblem {
    DotDot,
    Nul,
}

/// Normalise a tar path into `out`: components joined by `/`, without
/// leading `/`, `.` or empty components. `..` is refused. An empty result is
/// the layer root.
pub(super) fn normalize(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathProblem> {
    out.clear();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return Err(PathProblem::DotDot),
            _ => {}
        }
        if comp.contains(&0) {
            return Err(PathProblem::Nul);
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(comp);
    }
    Ok(())
}

/// Split a normalised, non-empty path into its parent (maybe empty) and its
/// last component.
pub(super) fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (
            path.get(..i).unwrap_or(&[]),
            path.get(i + 1..).unwrap_or(&[]),
        ),
        None => (&[], path),
    }
}

/// Open the parent directory `parent` (normalised, non-empty) of an entry,
/// creating missing directories (mode 0755, owned by the user, recorded as
/// root:root by the absence of a record).
pub(super) fn open_parent(
    root: BorrowedFd<'_>,
    parent: &[u8],
    umask: u32,
) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match rustix::fs::openat2(root, parent, flags, Mode::empty(), RESOLVE) {
        Ok(fd) => Ok(fd),
        // Missing components; or openat2 unavailable (Linux < 5.6); or a
        // concurrent rename (EAGAIN): walk one component at a time, which
        // is just as safe.
        Err(Errno::NOENT | Errno::NOSYS | Errno::AGAIN) => walk_create(root, parent, umask),
        Err(e) => Err(e),
    }
}

pub(super) fn walk_create(
    root: BorrowedFd<'_>,
    parent: &[u8],
    umask: u32,
) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur: Option<OwnedFd> = None;
    for comp in parent.split(|&b| b == b'/') {
        if comp.is_empty() || comp == b"." || comp == b".." {
            return Err(Errno::INVAL);
        }
        let dir = match &cur {
            Some(fd) => fd.as_fd(),
            None => root,
        };
        let next = match rustix::fs::openat(dir, comp, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(dir, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e),
                }
                let fd = rustix::fs::openat(dir, comp, flags, Mode::empty())?;
                if 0o755 & umask != 0 {
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o755))?;
                }
                fd
            }
            Err(e) => return Err(e),
        };
        cur = Some(next);
    }
    cur.ok_or(Errno::INVAL)
}

/// Remove the directory `name` in `parent` and everything below it, without
/// following symlinks, with a bounded number of descriptors.
pub(super) fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let name = std::ffi::CString::new(name).map_err(|_| Errno::INVAL)?;
    crate::store::remove::remove_at(parent, &name)
        .map(drop)
        .map_err(|e| e.errno())
}
