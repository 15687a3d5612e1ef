//! Removing a directory tree that a hostile container may have built.
//!
//! The overlay writes a container's files into `containers/<id>/upper/` as
//! the user, with the modes the container gave them, so that tree (and
//! every unpacked layer, from an image anyone may have written) can be
//! anything: thousands of levels deep with names so long that the full
//! path is far past PATH_MAX, names with newlines or invalid UTF-8,
//! directories with mode 000 or without write or search permission, FIFOs,
//! sockets, hardlinks, and symlinks pointing anywhere.
//!
//! [`remove_at`] walks such a tree iteratively, fd-relative, with a bounded
//! number of descriptors (three at most) and no recursion: it goes down
//! with `openat(O_NOFOLLOW | O_DIRECTORY)` and back up with `openat("..")`,
//! checking that `..` is the directory it came from (device and inode), so
//! a tree moved underneath it stops the walk instead of sending it
//! elsewhere. Its memory is the names of the subdirectories still to visit.
//! It never follows a symlink (a symlink is an entry to unlink), gives a
//! directory that refuses it owner rwx first (everything the overlay or
//! the unpacker wrote belongs to the user), and never descends into another
//! filesystem. What it cannot remove it skips, so it removes everything
//! else, and the first failure is reported with the entry's path.

use anyhow::{Result, bail};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// How many times, in one walk, a directory that was still not empty after
/// being emptied is listed again (something else wrote into the tree).
const MAX_RESCANS: u32 = 16;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What a removal removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Entries removed: files, directories, symlinks, FIFOs, sockets...
    pub entries: u64,
    /// Disk space freed: the allocated blocks of what was removed (a file
    /// with several links counts when its last link goes).
    pub bytes: u64,
}

/// Why an entry could not be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Os(Errno),
    /// A directory is on another filesystem: something is mounted there.
    MountPoint,
    /// `..` of a directory was no longer the directory the walk came from.
    Moved,
    /// A directory kept getting new entries while it was emptied.
    KeepsFilling,
}

/// The first entry a removal could not remove, and how many failed.
#[derive(Debug)]
pub struct RemoveError {
    /// What was being done: "open", "remove", "list", "step up from".
    pub action: &'static str,
    /// The entry, relative to the tree's top (empty for the top itself).
    pub path: Vec<u8>,
    pub cause: Cause,
    /// Entries that could not be removed, this one included.
    pub failures: u64,
    /// What was removed anyway.
    pub removed: Removed,
}

impl RemoveError {
    /// The nearest errno, for callers that speak errno.
    pub fn errno(&self) -> Errno {
        match self.cause {
            Cause::Os(e) => e,
            Cause::MountPoint => Errno::XDEV,
            Cause::Moved => Errno::STALE,
            Cause::KeepsFilling => Errno::NOTEMPTY,
        }
    }

    /// What the user can do about it.
    pub fn advice(&self) -> &'static str {
        match self.cause {
            Cause::Os(Errno::ACCESS | Errno::PERM | Errno::ROFS) => {
                "it is not yours, or is immutable or append-only, or the filesystem is \
                 read-only (`ls -ld` and `lsattr -d` on it tell); remove it yourself, \
                 with sudo if it is not yours"
            }
            Cause::MountPoint => {
                "unmount it (`fusermount3 -u` or `umount`) and run the command again"
            }
            Cause::Os(Errno::BUSY) => {
                "if a filesystem is mounted there, unmount it (`fusermount3 -u` or \
                 `umount`); then run the command again"
            }
            Cause::Moved => "the tree was moved while it was removed: run the command again",
            Cause::KeepsFilling => {
                "something keeps creating files in it (is a container still running \
                 there?): stop it and run the command again"
            }
            Cause::Os(_) => "remove it yourself (`rm -rf`) and run the command again",
        }
    }

    /// The message, with the tree's top at `top`.
    pub fn describe(&self, top: &Path) -> String {
        let more = match self.failures {
            0 | 1 => String::new(),
            n => format!(" (and {} more entries could not be removed)", n - 1),
        };
        let done = match self.removed.entries {
            0 => String::new(),
            n => format!(
                " ({n} other entries were removed, {} freed)",
                crate::human::human_size(self.removed.bytes)
            ),
        };
        format!(
            "could not {} {}: {}{more}{done}; {}",
            self.action,
            show_path(top, &self.path),
            self.cause,
            self.advice()
        )
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Os(e) => write!(f, "{}", std::io::Error::from(*e)),
            Cause::MountPoint => f.write_str("another filesystem is mounted there"),
            Cause::Moved => f.write_str("its parent is no longer the directory it was in"),
            Cause::KeepsFilling => f.write_str("new entries keep appearing in it"),
        }
    }
}

impl fmt::Display for RemoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(Path::new(".")))
    }
}

impl std::error::Error for RemoveError {}

/// Remove `path` and, if it is a directory, everything below it, without
/// following symlinks (a symlink `path` is itself removed). A missing path
/// is not an error. The error names the entry that could not be removed
/// and what to do about it.
pub fn remove_tree(path: &Path) -> Result<Removed> {
    let Some(name) = path.file_name() else {
        bail!("removing {}: not a path to an entry", path.display());
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(name) = CString::new(name.as_bytes()) else {
        bail!("removing {}: the path contains a NUL byte", path.display());
    };
    let dir = match rustix::fs::open(
        parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        Err(Errno::NOENT) => return Ok(Removed::default()),
        Err(e) => bail!(
            "removing {}: opening its directory: {}",
            path.display(),
            std::io::Error::from(e)
        ),
    };
    remove_at(dir.as_fd(), &name)
        .map_err(|e| anyhow::anyhow!("removing {}: {}", path.display(), e.describe(path)))
}

/// Remove the entry `name` in the directory `parent` as [`remove_tree`]
/// does. `parent` may be an `O_PATH` descriptor.
pub fn remove_at(parent: BorrowedFd<'_>, name: &CStr) -> Result<Removed, RemoveError> {
    let mut walk = Walk::default();
    walk.run(parent, name);
    walk.finish()
}

/// One directory on the way down: the bottom one is being emptied, the
/// others wait for it. `stack[0]` is the caller's directory, which is never
/// removed; `stack[1]` is the tree's top.
struct Level {
    /// Its name in the directory above (empty for `stack[0]`).
    name: CString,
    dev: u64,
    ino: u64,
    /// Its own allocated bytes, freed when it goes.
    bytes: u64,
    /// Subdirectories still to empty and remove.
    subdirs: Vec<CString>,
    /// Something below could not be removed, so it cannot be either.
    failed: bool,
}

impl Level {
    fn new(name: CString, st: &Stat) -> Level {
        Level {
            name,
            dev: st.st_dev,
            ino: st.st_ino,
            bytes: blocks(st),
            subdirs: Vec::new(),
            failed: false,
        }
    }
}

#[derive(Default)]
struct Walk {
    removed: Removed,
    /// The first failure: action, path relative to the top, cause.
    first: Option<(&'static str, Vec<u8>, Cause)>,
    failures: u64,
    rescans: u32,
    /// The filesystem of the tree's top.
    dev: Option<u64>,
}

enum Leaf {
    Removed(u64),
    IsDir,
}

impl Walk {
    fn finish(self) -> Result<Removed, RemoveError> {
        match self.first {
            None => Ok(self.removed),
            Some((action, path, cause)) => Err(RemoveError {
                action,
                path,
                cause,
                failures: self.failures,
                removed: self.removed,
            }),
        }
    }

    fn fail(&mut self, action: &'static str, cause: Cause, path: impl FnOnce() -> Vec<u8>) {
        self.failures += 1;
        if self.first.is_none() {
            self.first = Some((action, path(), cause));
        }
    }

    fn count(&mut self, bytes: u64) {
        self.removed.entries += 1;
        self.removed.bytes += bytes;
    }

    fn run(&mut self, parent: BorrowedFd<'_>, name: &CStr) {
        let start = rustix::fs::fstat(parent).and_then(|st| {
            let fd = rustix::fs::openat(
                parent,
                c".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Ok((fd, st))
        });
        let (mut cur, st) = match start {
            Ok(x) => x,
            Err(e) => return self.fail("open the directory of", Cause::Os(e), Vec::new),
        };
        let mut base = Level::new(CString::default(), &st);
        base.subdirs.push(name.to_owned());
        let mut stack = vec![base];
        loop {
            let Some(top) = stack.last_mut() else {
                return;
            };
            if let Some(child) = top.subdirs.pop() {
                if let Some(next) = self.enter(cur.as_fd(), &mut stack, child) {
                    cur = next;
                }
                continue;
            }
            if stack.len() == 1 {
                return;
            }
            let Some(done) = stack.pop() else {
                return;
            };
            let Some(up) = stack.last_mut() else {
                return;
            };
            cur = match step_up(cur.as_fd(), up) {
                Ok(fd) => fd,
                Err(cause) => {
                    let path = rel_path(&stack, Some(&done.name));
                    return self.fail("step back up from", cause, || path);
                }
            };
            if done.failed {
                up.failed = true;
                continue;
            }
            match rustix::fs::unlinkat(&cur, done.name.as_c_str(), AtFlags::REMOVEDIR) {
                Ok(()) => self.count(done.bytes),
                Err(Errno::NOENT) => {}
                Err(Errno::NOTEMPTY | Errno::EXIST) if self.rescans < MAX_RESCANS => {
                    // New entries (or ones a listing missed): go through it again.
                    self.rescans += 1;
                    up.subdirs.push(done.name);
                }
                Err(e) => {
                    up.failed = true;
                    let cause = match e {
                        Errno::NOTEMPTY | Errno::EXIST => Cause::KeepsFilling,
                        e => Cause::Os(e),
                    };
                    self.fail("remove", cause, || rel_path(&stack, Some(&done.name)));
                }
            }
        }
    }

    /// Handle `child` of the bottom directory (open as `cur`): a directory
    /// is opened, emptied of everything but its subdirectories and pushed
    /// (its descriptor returned); anything else is removed.
    fn enter(
        &mut self,
        cur: BorrowedFd<'_>,
        stack: &mut Vec<Level>,
        child: CString,
    ) -> Option<OwnedFd> {
        let (fd, st) = match open_dir(cur, &child) {
            Ok(x) => x,
            Err(Errno::NOENT) => return None,
            Err(Errno::NOTDIR | Errno::LOOP) => {
                // Not a directory (the top itself, or replaced since listed).
                match remove_leaf(cur, &child) {
                    Ok(Leaf::Removed(bytes)) => self.count(bytes),
                    Ok(Leaf::IsDir) => {
                        self.fail("open", Cause::Os(Errno::NOTDIR), || {
                            rel_path(stack, Some(&child))
                        });
                        mark_failed(stack);
                    }
                    Err(Errno::NOENT) => {}
                    Err(e) => {
                        self.fail("remove", Cause::Os(e), || rel_path(stack, Some(&child)));
                        mark_failed(stack);
                    }
                }
                return None;
            }
            Err(e) => {
                self.fail("open", Cause::Os(e), || rel_path(stack, Some(&child)));
                mark_failed(stack);
                return None;
            }
        };
        match self.dev {
            None => self.dev = Some(st.st_dev),
            Some(dev) if dev != st.st_dev => {
                self.fail("enter", Cause::MountPoint, || rel_path(stack, Some(&child)));
                mark_failed(stack);
                return None;
            }
            Some(_) => {}
        }
        stack.push(Level::new(child, &st));
        self.scan(fd.as_fd(), stack);
        Some(fd)
    }

    /// Remove every entry of the bottom directory (open as `dir`) but its
    /// subdirectories, which are noted to visit.
    fn scan(&mut self, dir: BorrowedFd<'_>, stack: &mut [Level]) {
        let mut subdirs = Vec::new();
        let mut first: Option<(&'static str, Option<CString>, Errno)> = None;
        let mut failures = 0;
        match Dir::read_from(dir) {
            Err(e) => {
                first = Some(("list", None, e));
                failures += 1;
            }
            Ok(mut entries) => {
                while let Some(entry) = entries.read() {
                    let entry = match entry {
                        Ok(e) => e,
                        Err(e) => {
                            failures += 1;
                            first.get_or_insert(("list", None, e));
                            break;
                        }
                    };
                    let name = entry.file_name();
                    if name == c"." || name == c".." {
                        continue;
                    }
                    if entry.file_type() == FileType::Directory {
                        subdirs.push(name.to_owned());
                        continue;
                    }
                    match remove_leaf(dir, name) {
                        Ok(Leaf::Removed(bytes)) => self.count(bytes),
                        Ok(Leaf::IsDir) => subdirs.push(name.to_owned()),
                        Err(Errno::NOENT) => {}
                        Err(e) => {
                            failures += 1;
                            first.get_or_insert(("remove", Some(name.to_owned()), e));
                        }
                    }
                }
            }
        }
        if let Some((action, leaf, e)) = first {
            self.failures += failures - 1;
            self.fail(action, Cause::Os(e), || rel_path(stack, leaf.as_deref()));
            mark_failed(stack);
        }
        if let Some(level) = stack.last_mut() {
            level.subdirs = subdirs;
        }
    }
}

fn mark_failed(stack: &mut [Level]) {
    if let Some(level) = stack.last_mut() {
        level.failed = true;
    }
}

fn blocks(st: &Stat) -> u64 {
    u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512)
}

/// Unlink `name` in `dir` unless it is a directory; the bytes it frees.
fn remove_leaf(dir: BorrowedFd<'_>, name: &CStr) -> Result<Leaf, Errno> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        return Ok(Leaf::IsDir);
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => Ok(Leaf::Removed(if st.st_nlink <= 1 {
            blocks(&st)
        } else {
            0
        })),
        Err(Errno::ISDIR) => Ok(Leaf::IsDir),
        Err(e) => Err(e),
    }
}

/// Open the directory `name` in `parent` (never through a symlink), giving
/// it owner rwx first if its mode refuses to let us list it, and after if
/// it refuses to let us remove its entries.
fn open_dir(parent: BorrowedFd<'_>, name: &CStr) -> Result<(OwnedFd, Stat), Errno> {
    let fd = match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Err(Errno::ACCESS) => {
            make_accessible(parent, name)?;
            rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?
        }
        other => other?,
    };
    let st = rustix::fs::fstat(&fd)?;
    if st.st_mode & 0o700 != 0o700 {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
    }
    Ok((fd, st))
}

/// chmod 0700 the directory `name` in `parent`, which we may not open for
/// reading. `fchmod` refuses an `O_PATH` descriptor, but the descriptor's
/// /proc/self/fd link leads to the directory itself: no symlink is
/// followed on the way, whatever the tree holds.
fn make_accessible(parent: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(parent, name, flags, Mode::empty())?;
    if FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != FileType::Directory {
        return Err(Errno::NOTDIR);
    }
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::chmod(link.as_str(), Mode::from_raw_mode(0o700)).map_err(|e| match e {
        // No /proc: say why the directory could not be opened.
        Errno::NOENT => Errno::ACCESS,
        e => e,
    })
}

/// Open `..` of `cur` and check that it is `up`, the directory the walk
/// came down from.
fn step_up(cur: BorrowedFd<'_>, up: &Level) -> Result<OwnedFd, Cause> {
    // O_PATH: the directory is only used to reach and remove entries, and
    // the caller's own directory may not be readable.
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(cur, c"..", flags, Mode::empty()).map_err(Cause::Os)?;
    let st = rustix::fs::fstat(&fd).map_err(Cause::Os)?;
    if (st.st_dev, st.st_ino) != (up.dev, up.ino) {
        return Err(Cause::Moved);
    }
    Ok(fd)
}

/// The path of `leaf` (or of the bottom directory) relative to the tree's
/// top, `stack[1]`.
fn rel_path(stack: &[Level], leaf: Option<&CStr>) -> Vec<u8> {
    let names = stack
        .iter()
        .skip(1)
        .map(|l| l.name.as_bytes())
        .chain(leaf.map(CStr::to_bytes));
    let mut out = Vec::new();
    for (i, name) in names.enumerate() {
        if i == 0 {
            continue; // the top's own name is in the caller's path
        }
        if i > 1 {
            out.push(b'/');
        }
        out.extend_from_slice(name);
    }
    out
}

/// `top/rel` for a message: control characters escaped, invalid UTF-8
/// replaced, and a path of many levels shortened to its ends.
pub fn show_path(top: &Path, rel: &[u8]) -> String {
    let mut out = escape(top.as_os_str().as_bytes());
    if rel.is_empty() {
        return out;
    }
    let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    if rel.len() > 160 && parts.len() > 4 {
        let n = parts.len();
        out.push('/');
        out.push_str(&escape(parts[0]));
        out.push_str(&format!("/...({} more levels).../", n - 3));
        out.push_str(&escape(parts[n - 2]));
        out.push('/');
        out.push_str(&escape(parts[n - 1]));
    } else {
        for p in parts {
            out.push('/');
            out.push_str(&escape(p));
        }
    }
    out
}

fn escape(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    const CHILD_ENV: &str = "HUTCH_TEST_REMOVE_CHILD";

    fn mode(m: u32) -> Mode {
        Mode::from_raw_mode(m)
    }

    fn open(parent: BorrowedFd<'_>, name: &CStr) -> OwnedFd {
        rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()).unwrap()
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// Build a chain of `depth` directories named `name` below `top`,
    /// holding one descriptor at a time; every `every`-th directory gets a
    /// file and then `chmod` `dir_mode` (so the walk meets directories that
    /// refuse to be listed, searched or written). The number of entries.
    fn chain(top: &Path, name: &CStr, depth: usize, every: usize, dir_mode: u32) -> u64 {
        std::fs::create_dir(top).unwrap();
        let mut cur = rustix::fs::open(top, DIR_FLAGS, Mode::empty()).unwrap();
        let mut entries = 1;
        for level in 1..=depth {
            rustix::fs::mkdirat(&cur, name, mode(0o755)).unwrap();
            let next = open(cur.as_fd(), name);
            entries += 1;
            if level % every == 0 {
                let f =
                    rustix::fs::openat(&cur, c"f", OFlags::CREATE | OFlags::WRONLY, mode(0o000))
                        .unwrap();
                rustix::io::write(&f, b"data").unwrap();
                entries += 1;
                rustix::fs::fchmod(&cur, mode(dir_mode)).unwrap();
            }
            cur = next;
        }
        entries
    }

    /// Run `f` on a thread with a small stack: a walk that recursed once
    /// per level would overflow it (and abort) thousands of levels down.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    /// Runs [`deep_chain_child`] in a process of its own, whose descriptor
    /// limit (32) would otherwise bind the whole test binary.
    #[test]
    fn deep_long_named_chain_goes_with_few_descriptors_and_a_small_stack() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::remove::tests::deep_chain_child"])
            .args(["--ignored", "--test-threads=1", "--nocapture"])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("deep chain removed"),
            "{}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    #[ignore = "run in a process of its own by deep_long_named_chain_goes_with_few_descriptors_and_a_small_stack"]
    fn deep_chain_child() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(32),
                maximum: limit.maximum,
            },
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        // 5000 levels of 200-byte names: a million bytes of path, with a
        // mode-000 directory (holding a mode-000 file) every 7 levels.
        let long = CString::new(vec![b'n'; 200]).unwrap();
        let deep = dir.path().join("deep");
        let entries = chain(&deep, &long, 5000, 7, 0o000);
        // Controls: the bottom cannot be reached by path, and a walk that
        // holds a descriptor per level (the standard library's) runs out
        // of descriptors under this limit on a far shallower tree.
        let mut bottom = deep.clone();
        (0..5000).for_each(|_| bottom.push("n".repeat(200)));
        assert!(bottom.as_os_str().len() > 1_000_000);
        let e = std::fs::symlink_metadata(&bottom).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG), "{e}");
        let shallow = dir.path().join("shallow");
        let shallow_entries = chain(&shallow, c"d", 200, 1000, 0o755);
        let e = std::fs::remove_dir_all(&shallow).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
        if !is_root() {
            // The modes bite (root passes them anyway): the directory 6
            // levels down is the first with mode 000.
            let sixth: PathBuf = std::iter::repeat_n("n".repeat(200), 6).collect();
            assert!(std::fs::read_dir(deep.join(&sixth).parent().unwrap()).is_ok());
            let e = std::fs::read_dir(deep.join(sixth)).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        }
        let (d, s) = (deep.clone(), shallow.clone());
        let (removed, removed_shallow) =
            on_small_stack(move || (remove_tree(&d).unwrap(), remove_tree(&s).unwrap()));
        assert_eq!(removed.entries, entries);
        // The shallow tree lost some files to the control first.
        assert!(removed_shallow.entries <= shallow_entries && removed_shallow.entries > 0);
        assert!(removed.bytes > 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        println!("deep chain removed: {} entries", removed.entries);
    }

    #[test]
    fn odd_entries_go_and_nothing_outside_the_tree_is_touched() {
        use std::os::unix::ffi::OsStrExt as _;
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "kept").unwrap();
        std::fs::write(outside.join("linked"), "linked").unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir(&tree).unwrap();
        let t = |n: &str| tree.join(n);
        let odd = std::ffi::OsStr::from_bytes(b"odd\nname\xff\xfe");
        std::fs::create_dir(tree.join(odd)).unwrap();
        std::fs::write(tree.join(odd).join(odd), "x").unwrap();
        std::fs::write(t(&"L".repeat(255)), "long").unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, t("fifo"), FileType::Fifo, mode(0o000), 0).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(t("sock")).unwrap();
        std::fs::write(t("file"), "f").unwrap();
        std::fs::hard_link(t("file"), t("file2")).unwrap();
        std::fs::hard_link(outside.join("linked"), t("linked")).unwrap();
        std::os::unix::fs::symlink(&outside, t("abs")).unwrap();
        std::os::unix::fs::symlink("../outside", t("rel")).unwrap();
        std::os::unix::fs::symlink("/", t("root")).unwrap();
        std::os::unix::fs::symlink("missing", t("dangling")).unwrap();
        std::os::unix::fs::symlink("loop", t("loop")).unwrap();
        // Directories that refuse: no access at all, read-only (its entries
        // cannot be unlinked), search-only, no read.
        for (name, m) in [("none", 0o000), ("ro", 0o500), ("x", 0o100), ("wx", 0o300)] {
            std::fs::create_dir_all(t(name).join("sub")).unwrap();
            std::fs::write(t(name).join("sub/f"), "f").unwrap();
            std::fs::write(t(name).join("f"), "f").unwrap();
            std::fs::set_permissions(t(name).join("f"), std::fs::Permissions::from_mode(0o000))
                .unwrap();
            std::os::unix::fs::symlink(&outside, t(name).join("sub/out")).unwrap();
            std::fs::set_permissions(t(name), std::fs::Permissions::from_mode(m)).unwrap();
        }
        // Controls: the links do lead out of the tree, and the modes bite.
        for link in ["abs", "rel"] {
            let names: Vec<_> = std::fs::read_dir(t(link))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(names.iter().any(|n| n == "keep"), "{link}: {names:?}");
        }
        if !is_root() {
            let e = std::fs::read_dir(t("none")).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
            let e = std::fs::remove_file(t("ro").join("f")).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        }
        let removed = remove_tree(&tree).unwrap();
        assert!(!tree.exists() && std::fs::symlink_metadata(&tree).is_err());
        // tree, odd dir + file, long, fifo, sock, file, file2, linked, 5
        // symlinks, and 4 x (dir, sub, sub/f, f, sub/out).
        assert_eq!(removed.entries, 1 + 2 + 6 + 5 + 4 * 5);
        assert_eq!(
            std::fs::read_to_string(outside.join("keep")).unwrap(),
            "kept"
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("linked")).unwrap(),
            "linked"
        );
        assert_eq!(
            std::fs::metadata(outside.join("linked")).unwrap().nlink(),
            1
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 2);
    }

    #[test]
    fn a_symlink_or_file_at_the_top_is_removed_itself() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), "kept").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(
            link.join("keep").exists(),
            "control: the link leads to the directory"
        );
        assert_eq!(remove_tree(&link).unwrap().entries, 1);
        assert!(std::fs::symlink_metadata(&link).is_err());
        assert_eq!(
            std::fs::read_to_string(target.join("keep")).unwrap(),
            "kept"
        );
        let file = dir.path().join("file");
        std::fs::write(&file, vec![7u8; 10_000]).unwrap();
        let removed = remove_tree(&file).unwrap();
        assert_eq!(removed.entries, 1);
        assert!(removed.bytes >= 10_000);
        assert!(!file.exists());
        assert_eq!(
            remove_tree(&file).unwrap(),
            Removed::default(),
            "missing is fine"
        );
        assert!(remove_tree(Path::new("/")).is_err(), "no name to remove");
    }

    #[test]
    fn messages_name_the_entry_readably() {
        let rel = b"a/odd\nname\xff/b";
        assert_eq!(
            show_path(Path::new("/s/tmp/x"), rel),
            "/s/tmp/x/a/odd\\nname\u{fffd}/b"
        );
        let deep: Vec<u8> = [&b"top"[..]]
            .into_iter()
            .chain(std::iter::repeat_n(&b"nnnnnnnnnn"[..], 3000))
            .collect::<Vec<_>>()
            .join(&b'/');
        let shown = show_path(Path::new("/s"), &deep);
        assert_eq!(
            shown,
            "/s/top/...(2998 more levels).../nnnnnnnnnn/nnnnnnnnnn"
        );
        let e = RemoveError {
            action: "enter",
            path: b"a/b".to_vec(),
            cause: Cause::MountPoint,
            failures: 3,
            removed: Removed::default(),
        };
        let msg = e.describe(Path::new("/s/tmp/x"));
        assert!(
            msg.starts_with(
                "could not enter /s/tmp/x/a/b: another filesystem is mounted there (and 2 more"
            ),
            "{msg}"
        );
        assert!(msg.contains("unmount it"), "{msg}");
        assert!(!msg.contains("were removed"), "nothing was removed: {msg}");
        let e = RemoveError {
            removed: Removed {
                entries: 41,
                bytes: 3_000_000,
            },
            ..e
        };
        let msg = e.describe(Path::new("/s/tmp/x"));
        assert!(
            msg.contains("(41 other entries were removed, 3 MB freed)"),
            "{msg}"
        );
    }
}
