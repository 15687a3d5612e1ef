//! Paths of any length below a directory fd.
//!
//! The overlay names a file by its path relative to a layer root and
//! calls `*at(layer_fd, path)`. The kernel refuses a path of `PATH_MAX`
//! (4096) bytes or more, but inside the overlay a path may be as long as
//! the directories go: the container resolves it one name at a time. For
//! a path too long to pass at once, [`at`] opens a directory part way down
//! (by steps of at most [`DIRECT_MAX`] bytes, never following a symlink)
//! and returns it with the rest of the path, which is short. Paths of
//! normal length cost one length check.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

type Res<T> = Result<T, Errno>;

/// Longest path passed to the kernel at once: below `PATH_MAX` with room
/// for a `/proc/self/fd/N/` prefix (the xattr calls go through one).
pub(crate) const DIRECT_MAX: usize = 4000;

/// A directory and a path below it that the kernel takes in one call.
pub(crate) struct At<'a> {
    base: BorrowedFd<'a>,
    /// The directory part way down, for a long path.
    opened: Option<OwnedFd>,
    /// The path left, relative to [`At::fd`].
    pub rest: &'a [u8],
}

impl At<'_> {
    /// The directory `rest` is relative to.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match &self.opened {
            Some(fd) => fd.as_fd(),
            None => self.base,
        }
    }

    /// The directory opened part way down, if the path was long.
    pub fn opened(&self) -> Option<i32> {
        self.opened.as_ref().map(|fd| fd.as_raw_fd())
    }
}

/// `path` (relative, `/`-separated, no `..`) below `dir`, split so that
/// the kernel takes it: `dir` itself and `path` when it is short, else a
/// directory opened part way down and the rest.
pub(crate) fn at<'a>(dir: BorrowedFd<'a>, path: &'a [u8]) -> Res<At<'a>> {
    let mut at = At {
        base: dir,
        opened: None,
        rest: path,
    };
    while at.rest.len() > DIRECT_MAX {
        // Cut at the last `/` that leaves a short first part; names are at
        // most 255 bytes, so there always is one in a valid path.
        let window = at.rest.get(..=DIRECT_MAX).unwrap_or(at.rest);
        let cut = window
            .iter()
            .rposition(|&b| b == b'/')
            .ok_or(Errno::NAMETOOLONG)?;
        let (head, tail) = (&at.rest[..cut], &at.rest[cut + 1..]);
        let next = open_dir_beneath(at.fd(), head)?;
        at.opened = Some(next);
        at.rest = tail;
    }
    Ok(at)
}

/// Open the directory `path` below `dir` for use as a dirfd (`O_PATH`),
/// without following symlinks on the way: a symlink where a directory is
/// expected is `ENOTDIR`, as when the overlay looks names up one by one.
fn open_dir_beneath(dir: BorrowedFd<'_>, path: &[u8]) -> Res<OwnedFd> {
    open_beneath(dir, path, OFlags::PATH | OFlags::DIRECTORY)
}

/// Open `path` (of any length, not empty) below `dir` with `flags`
/// (`O_NOFOLLOW` added) without following any symlink: one on the way is
/// `ENOTDIR`; one at the end is opened as itself with `O_PATH`, else
/// `ELOOP`. For paths whose directories were not looked up one by one:
/// the target of a redirect, a directory of the layers read by `hutch
/// diff`.
pub(crate) fn open_below(dir: BorrowedFd<'_>, path: &[u8], flags: OFlags) -> Res<OwnedFd> {
    let a = at(dir, path)?;
    open_beneath(a.fd(), a.rest, flags)
}

/// [`open_below`] for a short `path`.
fn open_beneath(dir: BorrowedFd<'_>, path: &[u8], flags: OFlags) -> Res<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve) {
        Ok(fd) => Ok(fd),
        // A symlink on the way or at the end (which name by name tells
        // apart); Linux before 5.6 (no openat2); a rename racing the walk.
        Err(Errno::LOOP | Errno::NOSYS | Errno::AGAIN) => open_by_names(dir, path, flags),
        Err(e) => Err(e),
    }
}

/// [`open_beneath`] one name at a time, each opened with `O_NOFOLLOW`.
fn open_by_names(dir: BorrowedFd<'_>, path: &[u8], flags: OFlags) -> Res<OwnedFd> {
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let (parents, last) = match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&b""[..], path),
    };
    let not_dir = |e| match e {
        Errno::LOOP => Errno::NOTDIR,
        e => e,
    };
    let mut cur: Option<OwnedFd> = None;
    for name in parents.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
        let base = cur.as_ref().map_or(dir, |fd| fd.as_fd());
        cur = Some(rustix::fs::openat(base, name, dir_flags, Mode::empty()).map_err(not_dir)?);
    }
    let base = cur.as_ref().map_or(dir, |fd| fd.as_fd());
    let r = rustix::fs::openat(base, last, flags, Mode::empty());
    if flags.contains(OFlags::DIRECTORY) {
        r.map_err(not_dir)
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::AtFlags;

    /// A chain of directories `n` names deep, each name 200 bytes: the
    /// path is about 201 * n bytes.
    fn deep(root: BorrowedFd<'_>, n: usize, c: u8) -> Vec<u8> {
        let name = vec![c; 200];
        let mut path = Vec::new();
        for _ in 0..n {
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            let a = at(root, &path).unwrap();
            rustix::fs::mkdirat(a.fd(), a.rest, Mode::from_raw_mode(0o755)).unwrap();
        }
        path
    }

    #[test]
    fn short_paths_are_passed_as_they_are() {
        let t = tempfile::tempdir().unwrap();
        let d = rustix::fs::open(t.path(), OFlags::RDONLY, Mode::empty()).unwrap();
        let a = at(d.as_fd(), b"a/b/c").unwrap();
        assert_eq!(a.rest, b"a/b/c");
        assert!(a.opened().is_none());
        assert_eq!(a.fd().as_raw_fd(), d.as_raw_fd());
    }

    #[test]
    fn long_paths_work_where_the_kernel_refuses_them() {
        let t = tempfile::tempdir().unwrap();
        let d = rustix::fs::open(t.path(), OFlags::RDONLY, Mode::empty()).unwrap();
        // About 12,000 bytes: three times PATH_MAX.
        let dir = deep(d.as_fd(), 60, b'd');
        let mut file = dir.clone();
        file.extend_from_slice(b"/file");
        // Control: the kernel refuses the whole path at once.
        assert_eq!(
            rustix::fs::statat(&d, file.as_slice(), AtFlags::SYMLINK_NOFOLLOW).err(),
            Some(Errno::NAMETOOLONG)
        );
        let a = at(d.as_fd(), &file).unwrap();
        assert!(a.rest.len() <= DIRECT_MAX);
        assert!(a.opened().is_some());
        rustix::fs::openat(
            a.fd(),
            a.rest,
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        let a = at(d.as_fd(), &file).unwrap();
        let st = rustix::fs::statat(a.fd(), a.rest, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        assert_eq!(st.st_mode & 0o170000, 0o100000);
    }

    #[test]
    fn a_symlink_on_the_way_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let d = rustix::fs::open(t.path(), OFlags::RDONLY, Mode::empty()).unwrap();
        let real = deep(d.as_fd(), 40, b'r');
        // `l` points 15 levels down the real chain (a symlink's target is
        // shorter than PATH_MAX): a long path through it must not reach
        // the 25 levels below.
        let (target, below) = real.split_at(15 * 201 - 1);
        rustix::fs::symlinkat(target, &d, "l").unwrap();
        let mut through = b"l".to_vec();
        through.extend_from_slice(below);
        assert!(through.len() > DIRECT_MAX);
        assert_eq!(at(d.as_fd(), &through).err(), Some(Errno::NOTDIR));
        // Control: the real chain, as long, resolves.
        assert!(real.len() > DIRECT_MAX);
        assert!(at(d.as_fd(), &real).unwrap().opened().is_some());
    }
}
