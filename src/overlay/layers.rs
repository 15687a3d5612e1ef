//! The layers of one overlay (index 0 is the upper dir, then the lowers,
//! top first) and the overlayfs lookup rules over them, as plain functions
//! of paths relative to the layer roots.
//!
//! Every syscall here is relative to a directory fd opened once at mount
//! time (`*at` calls), never follows a symlink in the last component, and
//! returns a raw [`Errno`] so that the FUSE layer can reply with it as is.
//! Paths are relative (`a/b/c`); the layer root itself is `.`.

use super::format::{self, OverrideStat};
use super::relpath;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, XattrFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

pub(crate) type Res<T> = Result<T, Errno>;

/// Index of the upper layer in [`Layers::list`].
pub(crate) const UPPER: u16 = 0;

/// Largest xattr value Linux accepts (`XATTR_SIZE_MAX`).
const XATTR_SIZE_MAX: usize = 65536;
/// Largest xattr name list Linux returns (`XATTR_LIST_MAX`).
const XATTR_LIST_MAX: usize = 65536;

/// One directory we serve from: a layer root, or the work dir.
pub(crate) struct Dirfd {
    pub fd: OwnedFd,
    /// `st_dev` of the directory.
    pub dev: u64,
    /// `/proc/self/fd/<fd>/`, for the `l*xattr` calls that have no `*at` form.
    proc_prefix: Vec<u8>,
}

impl Dirfd {
    /// Open `path` (a directory) for use as a layer or work dir.
    pub fn open(path: &std::path::Path) -> std::io::Result<Dirfd> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        let proc_prefix = format!("/proc/self/fd/{}/", fd.as_raw_fd()).into_bytes();
        Ok(Dirfd {
            fd,
            dev: st.st_dev,
            proc_prefix,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What a lookup found for one name across the layers.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The layer holding the visible (topmost) entry.
    pub top: u16,
    /// Its status on disk.
    pub st: Stat,
    /// For directories: the lower layers merged below `top`, in order.
    pub dir_lowers: Vec<u16>,
    /// For directories: whether the merge stopped at an opaque directory.
    pub opaque: bool,
    /// Where it is in the lower layers when not at its own path (a
    /// renamed directory, or something below one): see [`Place`].
    pub redirects: Redirects,
}

/// Entries `(k, p)`, by growing `k`: from layer `k` down (to the next
/// entry), the lower layers hold it at `p` (see [`Place`]).
pub(crate) type Redirects = Vec<(u16, Vec<u8>)>;

/// Where a file or directory is in each layer: at `path` in the upper layer
/// and in the lower layers, unless a renamed directory (a redirect record,
/// `format`, "Renamed directories") moved it: from the layer `k` of an
/// entry `(k, p)` of `redirects` down, at `p`. Almost always there is no
/// redirect and it is at `path` everywhere.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    /// The path in the upper layer (what the container sees); `.` is the root.
    pub path: &'a [u8],
    pub redirects: &'a [(u16, Vec<u8>)],
}

impl<'a> Place<'a> {
    #[cfg(test)]
    pub const ROOT: Place<'static> = Place {
        path: b".",
        redirects: &[],
    };

    pub fn new(path: &'a [u8], redirects: &'a [(u16, Vec<u8>)]) -> Place<'a> {
        Place { path, redirects }
    }

    /// The path in `layer`.
    pub fn in_layer(&self, layer: u16) -> &'a [u8] {
        self.redirects
            .iter()
            .rev()
            .find(|(k, _)| *k <= layer)
            .map_or(self.path, |(_, p)| p.as_slice())
    }

    /// The redirects of the entry `name` in this directory.
    fn child_redirects(&self, name: &[u8]) -> Redirects {
        self.redirects
            .iter()
            .map(|(k, p)| (*k, join(p, name)))
            .collect()
    }
}

/// What a directory in one layer says about the layers below.
struct DirMarks {
    opaque: bool,
    /// The raw value of a redirect record.
    redirect: Option<Vec<u8>>,
}

impl Found {
    pub fn is_dir(&self) -> bool {
        ftype(&self.st) == FileType::Directory
    }

    /// The layer list of the node: `top` followed by the merged lowers.
    pub fn layers(&self) -> Vec<u16> {
        let mut v = Vec::with_capacity(1 + self.dir_lowers.len());
        v.push(self.top);
        v.extend_from_slice(&self.dir_lowers);
        v
    }

    /// The identity of the visible file (`st_dev`, `st_ino`).
    pub fn key(&self) -> (u64, u64) {
        (self.st.st_dev, self.st.st_ino)
    }

    fn with(mut self, redirects: Redirects) -> Found {
        self.redirects = redirects;
        self
    }

    /// Where it is, given its path in the upper layer.
    pub fn place<'a>(&'a self, path: &'a [u8]) -> Place<'a> {
        Place::new(path, &self.redirects)
    }
}

/// One entry of a merged directory listing.
#[derive(Debug, Clone)]
pub(crate) struct ListEntry {
    pub name: Vec<u8>,
    pub ftype: FileType,
    pub layer: u16,
    pub ino: u64,
}

/// The type of a file from its status.
pub(crate) fn ftype(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// `parent/name`, where the root is `.`.
pub(crate) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent == b"." {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Split `a/b/c` into (`a/b`, `c`), and `c` into (`.`, `c`).
pub(crate) fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b".", path),
    }
}

/// Whether `name` is acceptable as one path component created by a
/// container: not empty, no `/` or NUL, not `.`/`..`.
pub(crate) fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

fn whiteout_file_name(name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(format::WHITEOUT_PREFIX.len() + name.len());
    v.extend_from_slice(format::WHITEOUT_PREFIX);
    v.extend_from_slice(name);
    v
}

enum XTarget<'a> {
    Path(&'a [u8]),
    Fd(BorrowedFd<'a>),
    None,
}

/// How a name is whited out in the upper layer, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpperWhiteout {
    /// A char device 0:0 at the name itself.
    Device,
    /// A `.wh.NAME` file beside it.
    File,
}

/// The layers of one overlay and the work dir.
pub(crate) struct Layers {
    /// `list[0]` is the upper dir, then the lowers, top first.
    pub list: Vec<Dirfd>,
    pub work: Dirfd,
    /// Whether `/proc/self/fd` works (else xattrs go through opened fds).
    use_proc: bool,
    /// The layers of the root directory: all, down to the first opaque
    /// lower root (set by [`Layers::set_root`]).
    pub root: Vec<u16>,
}

impl Layers {
    pub fn new(list: Vec<Dirfd>, work: Dirfd) -> Layers {
        let use_proc = match list.first() {
            Some(upper) => {
                let mut p = upper.proc_prefix.clone();
                p.push(b'.');
                rustix::fs::stat(p.as_slice()).is_ok()
            }
            None => false,
        };
        let root = (0..list.len() as u16).collect();
        Layers {
            list,
            work,
            use_proc,
            root,
        }
    }

    /// The layers the root directory merges (see [`Layers::root`]).
    pub fn set_root(&mut self, root: Vec<u16>) {
        self.root = root;
    }

    pub fn dir(&self, layer: u16) -> Res<&Dirfd> {
        self.list.get(layer as usize).ok_or(Errno::IO)
    }

    pub fn fd(&self, layer: u16) -> Res<BorrowedFd<'_>> {
        Ok(self.dir(layer)?.fd())
    }

    pub fn upper(&self) -> BorrowedFd<'_> {
        // `Layers` is only ever built with an upper layer; fall back to the
        // work dir rather than panic.
        match self.list.first() {
            Some(d) => d.fd(),
            None => self.work.fd(),
        }
    }

    pub fn stat(&self, layer: u16, path: &[u8]) -> Res<Stat> {
        let a = relpath::at(self.fd(layer)?, path)?;
        rustix::fs::statat(a.fd(), a.rest, AtFlags::SYMLINK_NOFOLLOW)
    }

    // -- extended attributes ------------------------------------------------

    /// Run an xattr operation on `path` in `dir`: through
    /// `/proc/self/fd/N/path` (no `*at` xattr calls before Linux 6.13), or
    /// without /proc through an opened fd; `XTarget::None` for files that
    /// cannot be opened (symlinks, sockets), which have no user xattrs.
    /// A long path goes through a directory part way down (`relpath`).
    fn with_xpath<T>(
        &self,
        dir: &Dirfd,
        path: &[u8],
        op: impl FnOnce(XTarget<'_>) -> Res<T>,
    ) -> Res<T> {
        let a = relpath::at(dir.fd(), path)?;
        if self.use_proc {
            let mut p = match a.opened() {
                Some(fd) => format!("/proc/self/fd/{fd}/").into_bytes(),
                None => dir.proc_prefix.clone(),
            };
            p.extend_from_slice(a.rest);
            return op(XTarget::Path(&p));
        }
        match rustix::fs::openat(
            a.fd(),
            a.rest,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => op(XTarget::Fd(fd.as_fd())),
            Err(Errno::LOOP | Errno::NXIO | Errno::OPNOTSUPP) => op(XTarget::None),
            Err(e) => Err(e),
        }
    }

    /// Read xattr `name` of `path` in `dir` into a new vector.
    pub fn dir_getxattr(&self, dir: &Dirfd, path: &[u8], name: &[u8]) -> Res<Vec<u8>> {
        let mut cap = 256;
        loop {
            let mut buf = vec![0u8; cap];
            let r = self.with_xpath(dir, path, |t| match t {
                XTarget::Path(p) => rustix::fs::lgetxattr(p, name, &mut buf[..]),
                XTarget::Fd(fd) => rustix::fs::fgetxattr(fd, name, &mut buf[..]),
                XTarget::None => Err(Errno::NODATA),
            });
            match r {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(Errno::RANGE) if cap < XATTR_SIZE_MAX => cap = XATTR_SIZE_MAX,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn getxattr(&self, layer: u16, path: &[u8], name: &[u8]) -> Res<Vec<u8>> {
        self.dir_getxattr(self.dir(layer)?, path, name)
    }

    /// The NUL-separated list of xattr names of `path` in `dir`.
    pub fn dir_listxattr(&self, dir: &Dirfd, path: &[u8]) -> Res<Vec<u8>> {
        let mut cap = 1024;
        loop {
            let mut buf = vec![0u8; cap];
            let r = self.with_xpath(dir, path, |t| match t {
                XTarget::Path(p) => rustix::fs::llistxattr(p, &mut buf[..]),
                XTarget::Fd(fd) => rustix::fs::flistxattr(fd, &mut buf[..]),
                XTarget::None => Ok(0),
            });
            match r {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(Errno::RANGE) if cap < XATTR_LIST_MAX => cap = XATTR_LIST_MAX,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn listxattr(&self, layer: u16, path: &[u8]) -> Res<Vec<u8>> {
        self.dir_listxattr(self.dir(layer)?, path)
    }

    pub fn setxattr(
        &self,
        layer: u16,
        path: &[u8],
        name: &[u8],
        value: &[u8],
        flags: XattrFlags,
    ) -> Res<()> {
        self.with_xpath(self.dir(layer)?, path, |t| match t {
            XTarget::Path(p) => rustix::fs::lsetxattr(p, name, value, flags),
            XTarget::Fd(fd) => rustix::fs::fsetxattr(fd, name, value, flags),
            XTarget::None => Err(Errno::PERM),
        })
    }

    pub fn removexattr(&self, layer: u16, path: &[u8], name: &[u8]) -> Res<()> {
        self.with_xpath(self.dir(layer)?, path, |t| match t {
            XTarget::Path(p) => rustix::fs::lremovexattr(p, name),
            XTarget::Fd(fd) => rustix::fs::fremovexattr(fd, name),
            XTarget::None => Err(Errno::PERM),
        })
    }

    /// The ownership record of `path` (a regular file or directory).
    /// Malformed records are ignored (logged).
    pub fn read_override(&self, layer: u16, path: &[u8]) -> Res<Option<OverrideStat>> {
        match self.getxattr(layer, path, format::OVERRIDE_STAT_XATTR.as_bytes()) {
            Ok(v) => match OverrideStat::decode(&v) {
                Ok(o) => Ok(Some(o)),
                Err(e) => {
                    tracing::debug!("ignoring {e} on {}", String::from_utf8_lossy(path));
                    Ok(None)
                }
            },
            Err(Errno::NODATA | Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS) => Ok(None),
            Err(e) => Err(e),
        }
    }

    // -- lookup rules --------------------------------------------------------

    /// Whether the directory `path` in `layer` is opaque (any representation).
    pub fn dir_opaque(&self, layer: u16, path: &[u8]) -> Res<bool> {
        Ok(self.dir_marks(layer, path, false)?.opaque)
    }

    /// Whether the directory `path` in `layer` is opaque (any
    /// representation), and its redirect record when `redirect` asks for
    /// it (one xattr listing for both).
    fn dir_marks(&self, layer: u16, path: &[u8], redirect: bool) -> Res<DirMarks> {
        let names = match self.listxattr(layer, path) {
            Ok(n) => n,
            Err(Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut marks = DirMarks {
            opaque: false,
            redirect: None,
        };
        for name in names.split(|&b| b == 0) {
            let wanted = format::OPAQUE_XATTRS_READ
                .iter()
                .any(|o| o.as_bytes() == name)
                || (redirect && name == format::REDIRECT_XATTR.as_bytes());
            if !wanted {
                continue;
            }
            match self.getxattr(layer, path, name) {
                Ok(v) if name == format::REDIRECT_XATTR.as_bytes() => marks.redirect = Some(v),
                Ok(v) if v == b"y" => {
                    marks.opaque = true;
                    return Ok(marks);
                }
                Ok(_) | Err(Errno::NODATA | Errno::PERM | Errno::ACCESS) => {}
                Err(e) => return Err(e),
            }
        }
        marks.opaque = match self.stat(layer, &join(path, format::OPAQUE_MARKER)) {
            Ok(st) => ftype(&st) == FileType::RegularFile,
            Err(Errno::NOENT | Errno::NOTDIR) => false,
            Err(e) => return Err(e),
        };
        Ok(marks)
    }

    /// Status of `path` in `layer` where its directories were not looked up
    /// one by one (the target of a redirect): no symlink is followed on
    /// the way (one there is `ENOTDIR`).
    fn stat_beneath(&self, layer: u16, path: &[u8]) -> Res<Stat> {
        let fd = relpath::open_below(self.fd(layer)?, path, OFlags::PATH)?;
        rustix::fs::fstat(&fd)
    }

    /// Whether `.wh.NAME` exists as a regular file beside `path` (its
    /// directory and NAME) in `layer`.
    fn has_whiteout_file(&self, layer: u16, path: &[u8]) -> Res<bool> {
        let (dir, name) = split_parent(path);
        match self.stat(layer, &join(dir, &whiteout_file_name(name))) {
            Ok(st) => Ok(ftype(&st) == FileType::RegularFile),
            Err(Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// How `dir/name` is whited out in the upper layer, if it is.
    pub fn upper_whiteout(&self, dir: &[u8], name: &[u8]) -> Res<Option<UpperWhiteout>> {
        match self.stat(UPPER, &join(dir, name)) {
            Ok(st) if format::is_whiteout_stat(&st) => return Ok(Some(UpperWhiteout::Device)),
            Ok(_) => return Ok(None),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
        if self.has_whiteout_file(UPPER, &join(dir, name))? {
            Ok(Some(UpperWhiteout::File))
        } else {
            Ok(None)
        }
    }

    /// Look `name` up in the directory `dir`, which exists in
    /// `dir_layers` (top first, already cut after an opaque layer).
    /// `None` when nothing is visible (absent or whited out).
    ///
    /// A directory with a redirect record sends the search of the layers
    /// below it to the record's path, in every layer of the root below
    /// (as the kernel overlay does): those paths were not looked up name
    /// by name, so they are opened without following symlinks.
    pub fn resolve(&self, dir_layers: &[u16], dir: Place<'_>, name: &[u8]) -> Res<Option<Found>> {
        let path = join(dir.path, name);
        let mut redirects = dir.child_redirects(name);
        let mut found: Option<Found> = None;
        // Layers above the current one where the name was absent: a
        // `.wh.NAME` file there hides what we find below. Checked lazily,
        // since such files are rare (we and the unpacker write devices).
        let mut missing: Vec<u16> = Vec::new();
        let mut todo: std::borrow::Cow<'_, [u16]> = dir_layers.into();
        let mut redirected = false;
        let mut i = 0;
        while let Some(&l) = todo.get(i) {
            i += 1;
            let here = Place::new(&path, &redirects).in_layer(l);
            let st = match if redirected {
                self.stat_beneath(l, here)
            } else {
                self.stat(l, here)
            } {
                Ok(st) => st,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG) => {
                    missing.push(l);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for m in missing.drain(..) {
                if self.has_whiteout_file(m, Place::new(&path, &redirects).in_layer(m))? {
                    return Ok(found.map(|f| f.with(redirects)));
                }
            }
            if format::is_whiteout_stat(&st) {
                break;
            }
            let is_dir = ftype(&st) == FileType::Directory;
            if !is_dir {
                if found.is_none() {
                    found = Some(Found {
                        top: l,
                        st,
                        dir_lowers: Vec::new(),
                        opaque: false,
                        redirects: Vec::new(),
                    });
                }
                break;
            }
            let last = i >= todo.len() && !self.root.iter().any(|&k| k > l);
            let marks = self.dir_marks(l, here, !last)?;
            match found.as_mut() {
                None => {
                    found = Some(Found {
                        top: l,
                        st,
                        dir_lowers: Vec::new(),
                        opaque: marks.opaque,
                        redirects: Vec::new(),
                    })
                }
                Some(f) => f.dir_lowers.push(l),
            }
            if marks.opaque {
                break;
            }
            if let Some(value) = marks.redirect {
                let (parent, _) = split_parent(here);
                match format::redirect_target(&value, parent) {
                    Some(target) => {
                        redirects.retain(|(k, _)| *k <= l);
                        redirects.push((l + 1, target));
                        todo = self.root.iter().copied().filter(|&k| k > l).collect();
                        i = 0;
                        redirected = true;
                    }
                    None => tracing::debug!(
                        "ignoring the redirect record {:?} on {}",
                        String::from_utf8_lossy(&value),
                        String::from_utf8_lossy(here)
                    ),
                }
            }
        }
        Ok(found.map(|f| f.with(redirects)))
    }

    /// The merged listing of the directory at `place` present in `layers`
    /// (top first), without `.`/`..`, whiteouts, markers or `.wh.*` names.
    pub fn list(&self, layers: &[u16], place: Place<'_>) -> Res<Vec<ListEntry>> {
        use std::collections::HashSet;
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut out = Vec::new();
        for &l in layers {
            let dir = self.dir(l)?;
            let path = place.in_layer(l);
            let fd = match relpath::at(dir.fd(), path).and_then(|a| {
                rustix::fs::openat(
                    a.fd(),
                    a.rest,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
            }) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR) => continue,
                Err(e) => return Err(e),
            };
            let mut d = rustix::fs::Dir::new(fd)?;
            // Names hidden by this layer apply to the layers below only.
            let mut hidden_here: Vec<Vec<u8>> = Vec::new();
            while let Some(ent) = d.read() {
                let ent = ent?;
                let name = ent.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let mut t = ent.file_type();
                if t == FileType::Unknown || t == FileType::CharacterDevice {
                    let st = match self.stat(l, &join(path, name)) {
                        Ok(st) => st,
                        Err(Errno::NOENT) => continue,
                        Err(e) => return Err(e),
                    };
                    if format::is_whiteout_stat(&st) {
                        hidden_here.push(name.to_vec());
                        continue;
                    }
                    t = ftype(&st);
                }
                if format::is_reserved_name(name) {
                    if t == FileType::RegularFile
                        && let Some(target) = format::whiteout_target(name)
                    {
                        hidden_here.push(target.to_vec());
                    }
                    continue;
                }
                if seen.contains(name) {
                    continue;
                }
                hidden_here.push(name.to_vec());
                out.push(ListEntry {
                    name: name.to_vec(),
                    ftype: t,
                    layer: l,
                    ino: ent.ino(),
                });
            }
            seen.extend(hidden_here);
        }
        Ok(out)
    }
}

/// Remove `name` in `dirfd` and everything below it (for leftovers in the
/// work dir). Missing entries are not an error.
pub(crate) fn remove_all(dirfd: BorrowedFd<'_>, name: &[u8]) -> Res<()> {
    match rustix::fs::unlinkat(dirfd, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR | Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    match rustix::fs::unlinkat(dirfd, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::NOTEMPTY | Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    let fd = rustix::fs::openat(
        dirfd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let sub = fd.try_clone().map_err(|_| Errno::NOMEM)?;
    let mut d = rustix::fs::Dir::new(fd)?;
    while let Some(ent) = d.read() {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        remove_all(sub.as_fd(), n)?;
    }
    match rustix::fs::unlinkat(dirfd, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    fn layers(root: &Path, n_lowers: usize) -> Layers {
        let mut list = vec![Dirfd::open(&root.join("U")).unwrap()];
        for i in 1..=n_lowers {
            list.push(Dirfd::open(&root.join(format!("L{i}"))).unwrap());
        }
        Layers::new(list, Dirfd::open(&root.join("W")).unwrap())
    }

    fn setup(n_lowers: usize) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("U")).unwrap();
        fs::create_dir(t.path().join("W")).unwrap();
        for i in 1..=n_lowers {
            fs::create_dir(t.path().join(format!("L{i}"))).unwrap();
        }
        t
    }

    fn wh(dir: &Path, name: &str) {
        let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        format::make_whiteout(&fd, name.as_bytes()).unwrap();
    }

    #[test]
    fn paths() {
        assert_eq!(join(b".", b"a"), b"a");
        assert_eq!(join(b"a/b", b"c"), b"a/b/c");
        assert_eq!(split_parent(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_parent(b"c"), (&b"."[..], &b"c"[..]));
        assert!(valid_name(b"x"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(!valid_name(bad));
        }
    }

    #[test]
    fn resolve_whiteouts_and_opaque() {
        let t = setup(2);
        let r = t.path();
        // L2 (bottom): d/{a,b,c}, f ; L1: d/b (file), whiteout of c,
        // .wh.f ; U: d/a whiteout.
        fs::create_dir_all(r.join("L2/d")).unwrap();
        for n in ["a", "b", "c"] {
            fs::write(r.join("L2/d").join(n), n).unwrap();
        }
        fs::write(r.join("L2/f"), "f").unwrap();
        fs::create_dir_all(r.join("L1/d")).unwrap();
        fs::write(r.join("L1/d/b"), "B").unwrap();
        wh(&r.join("L1/d"), "c");
        fs::write(r.join("L1/.wh.f"), "").unwrap();
        fs::create_dir_all(r.join("U/d")).unwrap();
        wh(&r.join("U/d"), "a");
        let ls = layers(r, 2);
        let root = [0u16, 1, 2];
        let d = ls.resolve(&root, Place::ROOT, b"d").unwrap().unwrap();
        assert_eq!(d.layers(), vec![0, 1, 2]);
        assert!(ls.resolve(&root, Place::ROOT, b"f").unwrap().is_none());
        let dl = d.layers();
        assert!(
            ls.resolve(&dl, Place::new(b"d", &[]), b"a")
                .unwrap()
                .is_none()
        );
        assert_eq!(
            ls.resolve(&dl, Place::new(b"d", &[]), b"b")
                .unwrap()
                .unwrap()
                .top,
            1
        );
        assert!(
            ls.resolve(&dl, Place::new(b"d", &[]), b"c")
                .unwrap()
                .is_none()
        );
        let names: Vec<_> = ls
            .list(&dl, Place::new(b"d", &[]))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec![b"b".to_vec()]);
        let names: Vec<_> = ls
            .list(&root, Place::ROOT)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec![b"d".to_vec()]);

        // Opaque upper dir hides the lowers.
        let fd = rustix::fs::open(r.join("U/d"), OFlags::RDONLY, Mode::empty()).unwrap();
        format::set_opaque(&fd).unwrap();
        let d = ls.resolve(&root, Place::ROOT, b"d").unwrap().unwrap();
        assert!(d.opaque);
        assert_eq!(d.layers(), vec![0]);
        // Opaque marker file in L1 stops the merge below it.
        fs::create_dir_all(r.join("L1/e")).unwrap();
        fs::write(r.join("L1/e/.wh..wh..opq"), "").unwrap();
        fs::create_dir_all(r.join("L2/e")).unwrap();
        fs::write(r.join("L2/e/x"), "").unwrap();
        let e = ls.resolve(&root, Place::ROOT, b"e").unwrap().unwrap();
        assert_eq!(e.layers(), vec![1]);
        assert!(
            ls.list(&e.layers(), Place::new(b"e", &[]))
                .unwrap()
                .is_empty()
        );
        // A file over a dir stops the merge.
        fs::write(r.join("L1/g"), "").unwrap();
        fs::create_dir_all(r.join("L2/g")).unwrap();
        let g = ls.resolve(&root, Place::ROOT, b"g").unwrap().unwrap();
        assert!(!g.is_dir());
        assert_eq!(
            ls.upper_whiteout(b"d", b"a").unwrap(),
            Some(UpperWhiteout::Device)
        );
        assert_eq!(ls.upper_whiteout(b"d", b"b").unwrap(), None);
    }

    fn redirect(dir: &Path, value: &[u8]) {
        let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        rustix::fs::fsetxattr(&fd, format::REDIRECT_XATTR, value, XattrFlags::empty()).unwrap();
    }

    fn names(ls: &Layers, f: &Found, path: &[u8]) -> Vec<String> {
        let mut v: Vec<String> = ls
            .list(&f.layers(), f.place(path))
            .unwrap()
            .into_iter()
            .map(|e| String::from_utf8(e.name).unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn resolve_follows_redirects_of_renamed_directories() {
        let t = setup(2);
        let r = t.path();
        // L2: old/x/{c, sub/d}; L1: old/x/{a, b}, lnk -> old; U: new
        // (redirected to /old/x, with its own file u), old/x whited out.
        fs::create_dir_all(r.join("L2/old/x/sub")).unwrap();
        fs::write(r.join("L2/old/x/c"), "c").unwrap();
        fs::write(r.join("L2/old/x/sub/d"), "d").unwrap();
        fs::create_dir_all(r.join("L1/old/x")).unwrap();
        fs::write(r.join("L1/old/x/a"), "a").unwrap();
        fs::write(r.join("L1/old/x/b"), "b").unwrap();
        std::os::unix::fs::symlink("old", r.join("L1/lnk")).unwrap();
        fs::create_dir_all(r.join("U/new")).unwrap();
        fs::write(r.join("U/new/u"), "u").unwrap();
        fs::create_dir_all(r.join("U/old")).unwrap();
        wh(&r.join("U/old"), "x");
        let ls = layers(r, 2);
        let root = [0u16, 1, 2];
        // Control: without a record, `new` is the upper's alone.
        let plain = ls.resolve(&root, Place::ROOT, b"new").unwrap().unwrap();
        assert_eq!(plain.layers(), vec![0]);
        assert_eq!(names(&ls, &plain, b"new"), ["u"]);

        redirect(&r.join("U/new"), b"/old/x");
        let new = ls.resolve(&root, Place::ROOT, b"new").unwrap().unwrap();
        assert_eq!(new.layers(), vec![0, 1, 2]);
        assert_eq!(new.redirects, vec![(1, b"old/x".to_vec())]);
        assert_eq!(names(&ls, &new, b"new"), ["a", "b", "c", "sub", "u"]);
        // Below it, the lowers are read at old/x/...
        let nl = new.layers();
        let sub = ls.resolve(&nl, new.place(b"new"), b"sub").unwrap().unwrap();
        assert_eq!(sub.top, 2);
        assert_eq!(sub.place(b"new/sub").in_layer(2), b"old/x/sub");
        assert_eq!(names(&ls, &sub, b"new/sub"), ["d"]);
        let a = ls.resolve(&nl, new.place(b"new"), b"a").unwrap().unwrap();
        assert_eq!((a.top, a.place(b"new/a").in_layer(1)), (1, &b"old/x/a"[..]));
        // The old name stays whited out.
        let old = ls.resolve(&root, Place::ROOT, b"old").unwrap().unwrap();
        assert!(
            ls.resolve(&old.layers(), old.place(b"old"), b"x")
                .unwrap()
                .is_none()
        );

        // A name alone is a sibling in the same parent: U/old/y -> "x".
        fs::create_dir_all(r.join("U/old/y")).unwrap();
        redirect(&r.join("U/old/y"), b"x");
        let y = ls
            .resolve(&old.layers(), old.place(b"old"), b"y")
            .unwrap()
            .unwrap();
        assert_eq!(y.redirects, vec![(1, b"old/x".to_vec())]);
        assert_eq!(names(&ls, &y, b"old/y"), ["a", "b", "c", "sub"]);

        // A record that leaves the layer root, or goes through a symlink,
        // is not followed (the directory is the upper's alone).
        for bad in [&b"/../old/x"[..], b"/lnk/x", b"/old/x/../x", b"/missing"] {
            redirect(&r.join("U/new"), bad);
            let f = ls.resolve(&root, Place::ROOT, b"new").unwrap().unwrap();
            assert_eq!(f.layers(), vec![0], "{}", String::from_utf8_lossy(bad));
            assert_eq!(names(&ls, &f, b"new"), ["u"]);
        }
    }

    #[test]
    fn remove_all_works() {
        let t = setup(0);
        let w = t.path().join("W");
        fs::create_dir_all(w.join("x/y/z")).unwrap();
        fs::write(w.join("x/y/f"), "").unwrap();
        let d = Dirfd::open(&w).unwrap();
        remove_all(d.fd(), b"x").unwrap();
        assert!(!w.join("x").exists());
        remove_all(d.fd(), b"x").unwrap();
    }
}
