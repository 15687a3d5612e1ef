//! The layer unpacker: one decompressed OCI layer tar -> one directory in the
//! hutch on-disk format (see [`crate::overlay::format`]).
//!
//! Security model: the tar is hostile. It runs as an ordinary user (not root,
//! not in a user namespace) and must never create, modify or delete anything
//! outside `dest`:
//!
//! * Entry names are normalised: leading `/` and `./` are stripped (absolute
//!   names land inside `dest`), `.` and empty components are dropped, and any
//!   `..` component is refused.
//! * The parent directory of every entry is opened with `openat2` relative to
//!   an fd of `dest` with `RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS |
//!   RESOLVE_NO_MAGICLINKS`: a parent path through a symlink is refused.
//!   Missing parents are created one component at a time with `mkdirat` +
//!   `openat(O_NOFOLLOW)`.
//! * The entry itself is created with `*at` calls on that parent fd, with
//!   `O_CREAT | O_EXCL | O_NOFOLLOW`, `mkdirat`, `symlinkat`, `linkat` without
//!   `AT_SYMLINK_FOLLOW`, `mknodat`. Symlink targets are stored verbatim and
//!   never followed.
//! * Hard link targets are normalised like names, must resolve inside `dest`
//!   without symlinks, and must be an existing non-directory of this layer.
//! * Replacing a directory removes its tree with fds only (`openat` with
//!   `O_NOFOLLOW`, `unlinkat`), never following a symlink.
//!
//! Duplicate entries follow tar semantics: the later one wins.
//!
//! Whiteouts and opaque markers of a layer affect only the layers below it
//! (OCI image spec). When a whiteout names something this layer itself
//! created, the entry stays; if it is a directory it becomes opaque (the
//! lower layers' contents are deleted, this layer's are not). A directory
//! created where this layer put a whiteout becomes opaque for the same
//! reason.
//!
//! Xattrs reserved by the on-disk format (`user.containers.*`,
//! `user.overlay.*`, `user.fuseoverlayfs.*`, `user.hutch.*`) are **dropped with
//! a warning** when a layer carries them in `SCHILY.xattr.*` PAX records:
//! they would let a layer forge ownership, whiteouts or opaque directories.
//! Refusing the whole layer would make images that leaked such attributes
//! from a rootless build unusable for no gain.

use crate::error::printable;
use crate::overlay::format::{self, OverrideStat, RecordedType, XattrDisposition};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Size of the copy buffer for file contents.
const COPY_BUF_SIZE: usize = 256 * 1024;
/// Chunks of zeros at least this long are written as holes.
const HOLE_MIN: usize = 4096;
/// How parents are resolved: inside `dest`, no symlinks at all.
const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// What an unpack did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries processed (including skipped ones and whiteouts).
    pub entries: u64,
    /// Bytes of regular file contents written.
    pub file_bytes: u64,
}

/// Why a layer could not be unpacked. Every message names the tar entry.
/// The underlying I/O error is part of the message (`cause`, not a
/// `source`, so error chains do not print it twice).
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot use {} as the layer destination: {cause}", dest.display())]
    Destination { dest: PathBuf, cause: io::Error },
    /// The stream does not start with a tar header: not a tar at all.
    #[error("not a tar archive: its first 512 bytes are not a tar header ({})", printable(&cause.to_string(), 120))]
    NotTar { cause: io::Error },
    /// The tar stream itself is malformed or ends early. `position` says
    /// after which entry (e.g. `after entry "etc/passwd"`). The tar
    /// reader's messages quote header bytes: they are escaped.
    #[error("layer tar is malformed or truncated {position}: {}", printable(&cause.to_string(), 200))]
    Tar { position: String, cause: io::Error },
    #[error("layer entry {path:?}: path leaves the layer root")]
    Escape { path: String },
    #[error("layer entry {path:?}: its parent path goes through a symlink; refusing to follow it")]
    ThroughSymlink { path: String },
    #[error("layer entry {path:?}: a component of its parent path is not a directory")]
    NotADirectory { path: String },
    #[error("layer entry {path:?}: hard link to {target:?} refused: {reason}")]
    BadHardlink {
        path: String,
        target: String,
        reason: &'static str,
    },
    #[error("layer entry {path:?}: {}", printable(reason, 300))]
    Invalid { path: String, reason: String },
    #[error("layer entry {path:?}: file data is truncated ({got} of {expected} bytes)")]
    Truncated {
        path: String,
        expected: u64,
        got: u64,
    },
    #[error("layer entry {path:?}: {op}: {cause}")]
    Io {
        path: String,
        op: &'static str,
        cause: io::Error,
    },
}

/// Unpack the layer tar `tar_stream` (already decompressed) into `dest`, an
/// existing empty directory owned by the current user. Reads up to the tar's
/// end-of-archive marker; the caller drains the rest and verifies the
/// DiffID. Does not fsync, like the store's blobs (see `blobs.rs`): a
/// killed process loses nothing that reached the page cache; after a power
/// loss, files of a layer unpacked just before may be torn (`hutch check
/// --store` re-hashes blobs, not unpacked files).
pub fn unpack_layer<R: Read>(tar_stream: R, dest: &Path) -> Result<UnpackStats, UnpackError> {
    unpack_with(tar_stream, dest, false)
}

/// `whiteout_files`: store whiteouts as `.wh.NAME` files from the start (the
/// fallback used when whiteout devices are refused; for tests).
fn unpack_with<R: Read>(
    tar_stream: R,
    dest: &Path,
    whiteout_files: bool,
) -> Result<UnpackStats, UnpackError> {
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Destination {
        dest: dest.to_path_buf(),
        cause: e.into(),
    })?;
    let mut u = Unpacker::new(root, dest)?;
    u.w.whiteout_files = whiteout_files;
    let mut archive = tar::Archive::new(tar_stream);
    let entries = archive.entries().map_err(|e| UnpackError::Tar {
        position: "at its start".into(),
        cause: e,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|e| match u.w.have_entry {
            true => UnpackError::Tar {
                position: u.w.position(),
                cause: e,
            },
            false => UnpackError::NotTar { cause: e },
        })?;
        u.entry(&mut entry)?;
    }
    u.finish()
}

/// The kind of filesystem object an entry creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

/// The attributes of an entry from its header and PAX records.
#[derive(Debug, Clone, Copy)]
struct Meta {
    uid: u32,
    gid: u32,
    /// `& 0o7777`
    mode: u32,
    mtime: Timespec,
    major: u32,
    minor: u32,
}

impl Meta {
    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

struct Unpacker {
    root: OwnedFd,
    /// Normalised path of the current entry.
    path: Vec<u8>,
    /// The last parent directory opened, and its normalised path.
    cache_key: Vec<u8>,
    cache_fd: Option<OwnedFd>,
    w: Work,
}

/// Everything but the fds and the current path, so that methods can borrow
/// them independently.
struct Work {
    umask: u32,
    xattrs_ok: bool,
    /// Whiteouts are stored as `.wh.NAME` files (mknod was refused).
    whiteout_files: bool,
    have_entry: bool,
    /// Raw path of the current entry, as in the tar (for messages).
    raw: Vec<u8>,
    link: Vec<u8>,
    link_norm: Vec<u8>,
    tmp: Vec<u8>,
    /// Xattrs of the current entry: names (already mapped) and values.
    xattr_data: Vec<u8>,
    xattrs: Vec<(usize, usize, usize)>,
    text: String,
    buf: Vec<u8>,
    /// Directory mtimes to set at the end.
    dir_paths: Vec<u8>,
    dirs: Vec<(usize, usize, Timespec)>,
    stats: UnpackStats,
    /// A directory was removed: the parent cache may be stale.
    cache_dirty: bool,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn xattrs_unsupported(e: Errno) -> bool {
    e == Errno::OPNOTSUPP || e == Errno::NOTSUP
}

impl Unpacker {
    fn new(root: OwnedFd, dest: &Path) -> Result<Unpacker, UnpackError> {
        let mut w = Work {
            umask: current_umask(),
            xattrs_ok: true,
            whiteout_files: false,
            have_entry: false,
            raw: Vec::with_capacity(256),
            link: Vec::with_capacity(256),
            link_norm: Vec::with_capacity(256),
            tmp: Vec::with_capacity(256),
            xattr_data: Vec::new(),
            xattrs: Vec::new(),
            text: String::with_capacity(64),
            buf: vec![0u8; COPY_BUF_SIZE],
            dir_paths: Vec::new(),
            dirs: Vec::new(),
            stats: UnpackStats::default(),
            cache_dirty: false,
        };
        // The layer root always carries a record (fuse-overlayfs looks for
        // it there to enable ownership overrides for the layer). A `./` entry
        // in the tar replaces this default.
        let default_root = OverrideStat {
            uid: 0,
            gid: 0,
            mode: 0o755,
            kind: Some(RecordedType::Dir),
        };
        w.text.clear();
        default_root.encode_into(&mut w.text);
        match rustix::fs::fsetxattr(
            &root,
            format::OVERRIDE_STAT_XATTR,
            w.text.as_bytes(),
            XattrFlags::empty(),
        ) {
            Ok(()) => {}
            Err(e) if xattrs_unsupported(e) => w.xattrs_unsupported(),
            Err(e) => {
                return Err(UnpackError::Destination {
                    dest: dest.to_path_buf(),
                    cause: e.into(),
                });
            }
        }
        Ok(Unpacker {
            root,
            path: Vec::with_capacity(256),
            cache_key: Vec::with_capacity(256),
            cache_fd: None,
            w,
        })
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let w = &mut self.w;
        w.stats.entries += 1;
        w.have_entry = true;
        w.raw.clear();
        w.raw.extend_from_slice(&entry.path_bytes());

        let Some(kind) = w.classify(entry.header().entry_type()) else {
            return Ok(());
        };
        if let Err(problem) = normalize(&w.raw, &mut self.path) {
            return Err(w.path_problem(problem));
        }
        let meta = w.read_meta(entry, kind)?;
        if matches!(kind, Kind::Symlink | Kind::Hardlink) {
            w.link.clear();
            match entry.link_name_bytes() {
                Some(l) => w.link.extend_from_slice(&l),
                None => return Err(w.invalid("link entry without a link target".into())),
            }
        }

        if self.path.is_empty() {
            return w.root_entry(self.root.as_fd(), kind, &meta);
        }
        let (parent, name) = split_last(&self.path);
        if parent.split(|&b| b == b'/').any(format::is_reserved_name) {
            return Err(w.invalid("a directory in the path has a whiteout name (.wh.*)".into()));
        }

        // The parent directory: the layer root, the cached fd, or a fresh one.
        let pfd = if parent.is_empty() {
            self.root.as_fd()
        } else {
            if self.cache_fd.is_none() || self.cache_key != parent {
                self.cache_fd = None;
                let fd = open_parent(self.root.as_fd(), parent, w.umask)
                    .map_err(|e| w.parent_error(e))?;
                self.cache_key.clear();
                self.cache_key.extend_from_slice(parent);
                self.cache_fd = Some(fd);
            }
            match &self.cache_fd {
                Some(fd) => fd.as_fd(),
                None => return Err(w.invalid("internal error: no parent directory".into())),
            }
        };

        let mut new_dir = None;
        if name.starts_with(format::WHITEOUT_PREFIX) {
            if format::is_opaque_marker(name) {
                w.opaque(pfd)?;
            } else if name.starts_with(b".wh..wh.") {
                tracing::debug!(entry = %lossy(&w.raw), "skipping aufs metadata entry");
            } else {
                match format::whiteout_target(name) {
                    Some(b"..") => return Err(w.escape()),
                    Some(b".") | None => {
                        return Err(w.invalid("whiteout without a name to hide".into()));
                    }
                    Some(target) => w.whiteout(pfd, target)?,
                }
            }
        } else {
            match kind {
                Kind::File | Kind::Char | Kind::Block => w.file(pfd, name, kind, &meta, entry)?,
                Kind::Dir => new_dir = Some(w.dir(pfd, name, &self.path, &meta)?),
                Kind::Symlink => w.symlink(pfd, name, &meta)?,
                Kind::Hardlink => w.hardlink(self.root.as_fd(), pfd, name)?,
                Kind::Fifo => w.fifo(pfd, name, &meta)?,
            }
        }

        if w.cache_dirty {
            w.cache_dirty = false;
            self.cache_fd = None;
            self.cache_key.clear();
        }
        if let Some(fd) = new_dir {
            // Entries come grouped by directory: the next entries are most
            // likely inside the directory just created.
            self.cache_key.clear();
            self.cache_key.extend_from_slice(&self.path);
            self.cache_fd = Some(fd);
        }
        Ok(())
    }

    /// Set directory mtimes, now that nothing will be created in them.
    fn finish(mut self) -> Result<UnpackStats, UnpackError> {
        self.cache_fd = None;
        let w = &self.w;
        for &(start, end, mtime) in &w.dirs {
            let path = w.dir_paths.get(start..end).unwrap_or(&[]);
            let times = Timestamps {
                last_access: mtime,
                last_modification: mtime,
            };
            let result = if path.is_empty() {
                rustix::fs::futimens(&self.root, &times)
            } else {
                match rustix::fs::openat2(
                    &self.root,
                    path,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    RESOLVE,
                ) {
                    Ok(fd) => rustix::fs::futimens(&fd, &times),
                    // Replaced or removed by a later entry.
                    Err(_) => continue,
                }
            };
            result.map_err(|e| UnpackError::Io {
                path: lossy(path),
                op: "setting the directory modification time",
                cause: e.into(),
            })?;
        }
        Ok(self.w.stats)
    }
}

impl Work {
    fn position(&self) -> String {
        if self.have_entry {
            format!("after entry {:?}", lossy(&self.raw))
        } else {
            "at its start".into()
        }
    }

    fn path_str(&self) -> String {
        lossy(&self.raw)
    }

    fn escape(&self) -> UnpackError {
        UnpackError::Escape {
            path: self.path_str(),
        }
    }

    fn invalid(&self, reason: String) -> UnpackError {
        UnpackError::Invalid {
            path: self.path_str(),
            reason,
        }
    }

    fn io(&self, op: &'static str, e: impl Into<io::Error>) -> UnpackError {
        UnpackError::Io {
            path: self.path_str(),
            op,
            cause: e.into(),
        }
    }

    fn path_problem(&self, p: PathProblem) -> UnpackError {
        match p {
            PathProblem::DotDot => self.escape(),
            PathProblem::Nul => self.invalid("the path contains a NUL byte".into()),
        }
    }

    fn parent_error(&self, e: Errno) -> UnpackError {
        match e {
            Errno::LOOP => UnpackError::ThroughSymlink {
                path: self.path_str(),
            },
            Errno::NOTDIR => UnpackError::NotADirectory {
                path: self.path_str(),
            },
            Errno::XDEV => self.escape(),
            e => self.io("opening its parent directory", e),
        }
    }

    fn bad_link(&self, reason: &'static str) -> UnpackError {
        UnpackError::BadHardlink {
            path: self.path_str(),
            target: lossy(&self.link),
            reason,
        }
    }

    fn xattrs_unsupported(&mut self) {
        if self.xattrs_ok {
            self.xattrs_ok = false;
            tracing::warn!(
                "the filesystem of the layer store does not support user xattrs: \
                 owners, modes, device nodes and xattrs from the image cannot be recorded"
            );
        }
    }

    /// The kind of an entry, or `None` to skip it.
    fn classify(&self, t: tar::EntryType) -> Option<Kind> {
        use tar::EntryType as E;
        let kind = match t {
            // Old tars mark directories with a trailing slash only.
            E::Regular if self.raw.last() == Some(&b'/') => Kind::Dir,
            E::Regular | E::Continuous | E::GNUSparse => Kind::File,
            E::Directory => Kind::Dir,
            E::Symlink => Kind::Symlink,
            E::Link => Kind::Hardlink,
            E::Char => Kind::Char,
            E::Block => Kind::Block,
            E::Fifo => Kind::Fifo,
            // GNU dumpdir: a directory whose data lists its contents.
            t if t.as_byte() == b'D' => Kind::Dir,
            E::XGlobalHeader => {
                tracing::debug!("skipping a PAX global header");
                return None;
            }
            t => {
                tracing::warn!(
                    entry = %lossy(&self.raw),
                    r#type = %char::from(t.as_byte()).escape_default(),
                    "skipping a layer entry of unsupported type"
                );
                return None;
            }
        };
        Some(kind)
    }

    fn read_meta<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: Kind,
    ) -> Result<Meta, UnpackError> {
        let h = entry.header();
        let raw = h.as_old();
        let bytes = h.as_bytes();
        let mode = numeric(h.mode(), &raw.mode)
            .map_err(|e| self.invalid(format!("bad mode field: {e}")))?
            & 0o7777;
        let uid =
            numeric(h.uid(), &raw.uid).map_err(|e| self.invalid(format!("bad uid field: {e}")))?;
        let uid =
            u32::try_from(uid).map_err(|_| self.invalid(format!("uid {uid} out of range")))?;
        let gid =
            numeric(h.gid(), &raw.gid).map_err(|e| self.invalid(format!("bad gid field: {e}")))?;
        let gid =
            u32::try_from(gid).map_err(|_| self.invalid(format!("gid {gid} out of range")))?;
        let secs = numeric(h.mtime(), &raw.mtime)
            .map_err(|e| self.invalid(format!("bad mtime field: {e}")))?;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let (mut major, mut minor) = (0, 0);
        if matches!(kind, Kind::Char | Kind::Block) {
            major = numeric(h.device_major(), bytes.get(329..337).unwrap_or(&[]))
                .map_err(|e| self.invalid(format!("bad device major field: {e}")))?
                .unwrap_or(0);
            minor = numeric(h.device_minor(), bytes.get(337..345).unwrap_or(&[]))
                .map_err(|e| self.invalid(format!("bad device minor field: {e}")))?
                .unwrap_or(0);
        }

        self.xattrs.clear();
        self.xattr_data.clear();
        let exts = entry
            .pax_extensions()
            .map_err(|e| self.invalid(format!("unreadable PAX extended header: {e}")))?;
        if let Some(exts) = exts {
            for ext in exts {
                let ext =
                    ext.map_err(|e| self.invalid(format!("malformed PAX extended header: {e}")))?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    match parse_pax_time(ext.value_bytes()) {
                        Some(t) => mtime = t,
                        None => tracing::debug!(
                            entry = %lossy(&self.raw),
                            "ignoring a malformed PAX mtime"
                        ),
                    }
                } else if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    self.push_xattr(name, ext.value_bytes());
                }
            }
        }
        Ok(Meta {
            uid,
            gid,
            mode,
            mtime,
            major,
            minor,
        })
    }

    fn push_xattr(&mut self, name: &[u8], value: &[u8]) {
        let prefix: &[u8] = match format::classify_image_xattr(name) {
            XattrDisposition::Reserved => {
                tracing::warn!(
                    entry = %lossy(&self.raw),
                    xattr = %lossy(name),
                    "dropping an xattr reserved by hutch's layer format from the layer"
                );
                return;
            }
            XattrDisposition::Direct => b"",
            XattrDisposition::Foreign => format::FOREIGN_XATTR_PREFIX.as_bytes(),
        };
        let start = self.xattr_data.len();
        self.xattr_data.extend_from_slice(prefix);
        self.xattr_data.extend_from_slice(name);
        let mid = self.xattr_data.len();
        self.xattr_data.extend_from_slice(value);
        self.xattrs.push((start, mid, self.xattr_data.len()));
    }

    /// Set the entry's xattrs on `fd` (a regular file or directory).
    fn apply_xattrs(&mut self, fd: BorrowedFd<'_>) -> Result<(), UnpackError> {
        for i in 0..self.xattrs.len() {
            if !self.xattrs_ok {
                return Ok(());
            }
            let (start, mid, end) = self.xattrs[i];
            let name = self.xattr_data.get(start..mid).unwrap_or(&[]);
            let value = self.xattr_data.get(mid..end).unwrap_or(&[]);
            match rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(e) if xattrs_unsupported(e) => self.xattrs_unsupported(),
                Err(
                    e @ (Errno::TOOBIG | Errno::RANGE | Errno::NOSPC | Errno::INVAL | Errno::PERM),
                ) => {
                    tracing::warn!(
                        entry = %lossy(&self.raw),
                        xattr = %lossy(name),
                        error = %e,
                        "cannot store an xattr from the layer; dropped"
                    );
                }
                Err(e) => return Err(self.io("setting an xattr", e)),
            }
        }
        Ok(())
    }

    /// Write an ownership record on `fd` (a regular file or directory).
    fn record(&mut self, fd: BorrowedFd<'_>, st: &OverrideStat) -> Result<(), UnpackError> {
        if !self.xattrs_ok {
            return Ok(());
        }
        self.text.clear();
        st.encode_into(&mut self.text);
        match rustix::fs::fsetxattr(
            fd,
            format::OVERRIDE_STAT_XATTR,
            self.text.as_bytes(),
            XattrFlags::empty(),
        ) {
            Ok(()) => Ok(()),
            Err(e) if xattrs_unsupported(e) => {
                self.xattrs_unsupported();
                Ok(())
            }
            Err(e) => Err(self.io("recording the owner and mode", e)),
        }
    }

    fn push_dir(&mut self, path: &[u8], mtime: Timespec) {
        let start = self.dir_paths.len();
        self.dir_paths.extend_from_slice(path);
        self.dirs.push((start, self.dir_paths.len(), mtime));
    }

    fn opaque(&mut self, dirfd: BorrowedFd<'_>) -> Result<(), UnpackError> {
        format::set_opaque(dirfd)
            .map(|_| ())
            .map_err(|e| self.io("marking the directory opaque", e))
    }

    /// `./` (or `/`): the attributes of the layer root.
    fn root_entry(
        &mut self,
        root: BorrowedFd<'_>,
        kind: Kind,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        if kind != Kind::Dir {
            return Err(self.invalid("names the layer root but is not a directory".into()));
        }
        let dmode = format::stored_dir_mode(meta.mode);
        rustix::fs::fchmod(root, Mode::from_raw_mode(dmode))
            .map_err(|e| self.io("setting the mode of the layer root", e))?;
        self.apply_xattrs(root)?;
        self.record(
            root,
            &OverrideStat {
                uid: meta.uid,
                gid: meta.gid,
                mode: meta.mode,
                kind: Some(RecordedType::Dir),
            },
        )?;
        self.push_dir(b"", meta.mtime);
        Ok(())
    }

    /// With `.wh.NAME` whiteouts, creating `NAME` in this layer supersedes a
    /// whiteout for it made earlier by this layer. Returns whether there was
    /// one.
    fn clear_file_whiteout(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<bool, UnpackError> {
        if !self.whiteout_files {
            return Ok(false);
        }
        self.tmp.clear();
        self.tmp.extend_from_slice(format::WHITEOUT_PREFIX);
        self.tmp.extend_from_slice(name);
        match rustix::fs::unlinkat(pfd, &self.tmp[..], AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(self.io("removing an earlier whiteout", e)),
        }
    }

    /// Remove whatever is at `name` (a tree, safely, if a directory).
    /// Returns whether it was a whiteout.
    fn remove_existing(&mut self, pfd: BorrowedFd<'_>, name: &[u8]) -> Result<bool, UnpackError> {
        let st = match rustix::fs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(self.io("inspecting the existing entry", e)),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            self.cache_dirty = true;
            remove_tree(pfd, name).map_err(|e| self.io("removing the existing directory", e))?;
            Ok(false)
        } else {
            rustix::fs::unlinkat(pfd, name, AtFlags::empty())
                .map_err(|e| self.io("removing the existing entry", e))?;
            Ok(format::is_whiteout_stat(&st))
        }
    }

    /// Run `create`; if the name exists, remove what is there and run it
    /// again (the later entry wins). Returns the result and whether a
    /// whiteout was replaced.
    fn create<T>(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        op: &'static str,
        mut create: impl FnMut() -> Result<T, Errno>,
    ) -> Result<(T, bool), UnpackError> {
        match create() {
            Ok(v) => return Ok((v, false)),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(self.io(op, e)),
        }
        let was_whiteout = self.remove_existing(pfd, name)?;
        create()
            .map(|v| (v, was_whiteout))
            .map_err(|e| self.io(op, e))
    }

    /// Regular files, and device nodes (stored as empty regular files).
    fn file<R: Read>(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        kind: Kind,
        meta: &Meta,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let dmode = format::stored_file_mode(meta.mode);
        self.clear_file_whiteout(pfd, name)?;
        let (fd, _) = self.create(pfd, name, "creating the file", || {
            rustix::fs::openat(
                pfd,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(dmode),
            )
        })?;
        if dmode & self.umask != 0 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(dmode))
                .map_err(|e| self.io("setting the file mode", e))?;
        }
        let mut file = std::fs::File::from(fd);
        let record = match kind {
            Kind::Char => Some(RecordedType::Char {
                major: meta.major,
                minor: meta.minor,
            }),
            Kind::Block => Some(RecordedType::Block {
                major: meta.major,
                minor: meta.minor,
            }),
            _ => {
                let expected = entry.size();
                let written = self.copy_data(entry, &mut file)?;
                if written != expected {
                    return Err(UnpackError::Truncated {
                        path: self.path_str(),
                        expected,
                        got: written,
                    });
                }
                self.stats.file_bytes += written;
                (meta.uid != 0 || meta.gid != 0 || meta.mode != dmode).then_some(RecordedType::File)
            }
        };
        let fd = file.as_fd();
        self.apply_xattrs(fd)?;
        if let Some(kind) = record {
            self.record(
                fd,
                &OverrideStat {
                    uid: meta.uid,
                    gid: meta.gid,
                    mode: meta.mode,
                    kind: Some(kind),
                },
            )?;
        }
        rustix::fs::futimens(fd, &meta.times())
            .map_err(|e| self.io("setting the modification time", e))
    }

    /// Copy the entry's data into `file`, leaving holes for long runs of
    /// zeros. Returns the number of bytes of file content.
    fn copy_data<R: Read>(
        &mut self,
        src: &mut R,
        file: &mut std::fs::File,
    ) -> Result<u64, UnpackError> {
        let mut total: u64 = 0;
        let mut hole_at_end = false;
        loop {
            let n = fill(src, &mut self.buf)
                .map_err(|e| self.io("reading the file data from the layer", e))?;
            let Some(chunk) = self.buf.get(..n) else {
                break;
            };
            if n == 0 {
                break;
            }
            if n >= HOLE_MIN && is_zero(chunk) {
                let skip = i64::try_from(n).unwrap_or(i64::MAX);
                if let Err(e) = file.seek(SeekFrom::Current(skip)) {
                    return Err(self.io("writing the file", e));
                }
                hole_at_end = true;
            } else {
                if let Err(e) = file.write_all(chunk) {
                    return Err(self.io("writing the file", e));
                }
                hole_at_end = false;
            }
            total += n as u64;
        }
        if hole_at_end {
            file.set_len(total)
                .map_err(|e| self.io("writing the file", e))?;
        }
        Ok(total)
    }

    fn dir(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        full: &[u8],
        meta: &Meta,
    ) -> Result<OwnedFd, UnpackError> {
        let dmode = format::stored_dir_mode(meta.mode);
        let mut opaque = self.clear_file_whiteout(pfd, name)?;
        let mut existed = false;
        match rustix::fs::mkdirat(pfd, name, Mode::from_raw_mode(dmode)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rustix::fs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.io("inspecting the existing entry", e))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    existed = true;
                } else {
                    rustix::fs::unlinkat(pfd, name, AtFlags::empty())
                        .map_err(|e| self.io("removing the existing entry", e))?;
                    opaque |= format::is_whiteout_stat(&st);
                    rustix::fs::mkdirat(pfd, name, Mode::from_raw_mode(dmode))
                        .map_err(|e| self.io("creating the directory", e))?;
                }
            }
            Err(e) => return Err(self.io("creating the directory", e)),
        }
        let fd = rustix::fs::openat(
            pfd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.io("opening the directory", e))?;
        if existed || dmode & self.umask != 0 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(dmode))
                .map_err(|e| self.io("setting the directory mode", e))?;
        }
        if opaque {
            self.opaque(fd.as_fd())?;
        }
        self.apply_xattrs(fd.as_fd())?;
        if meta.uid != 0 || meta.gid != 0 || meta.mode != dmode {
            self.record(
                fd.as_fd(),
                &OverrideStat {
                    uid: meta.uid,
                    gid: meta.gid,
                    mode: meta.mode,
                    kind: Some(RecordedType::Dir),
                },
            )?;
        } else if existed && self.xattrs_ok {
            // An earlier entry for this directory may have left a record.
            format::remove_override_stat(&fd)
                .map_err(|e| self.io("updating the owner and mode record", e))?;
        }
        self.push_dir(full, meta.mtime);
        Ok(fd)
    }

    fn symlink(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        if self.link.is_empty() {
            return Err(self.invalid("symlink with an empty target".into()));
        }
        if self.link.contains(&0) {
            return Err(self.invalid("symlink target contains a NUL byte".into()));
        }
        self.clear_file_whiteout(pfd, name)?;
        let target = std::mem::take(&mut self.link);
        let created = self.create(pfd, name, "creating the symlink", || {
            rustix::fs::symlinkat(&target[..], pfd, name)
        });
        self.link = target;
        created?;
        if meta.uid != 0 || meta.gid != 0 {
            tracing::debug!(
                entry = %lossy(&self.raw),
                uid = meta.uid,
                gid = meta.gid,
                "owner of a symlink cannot be recorded (no user xattrs on symlinks)"
            );
        }
        rustix::fs::utimensat(pfd, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io("setting the modification time", e))
    }

    fn fifo(&mut self, pfd: BorrowedFd<'_>, name: &[u8], meta: &Meta) -> Result<(), UnpackError> {
        let fmode = format::stored_fifo_mode(meta.mode);
        self.clear_file_whiteout(pfd, name)?;
        self.create(pfd, name, "creating the fifo", || {
            rustix::fs::mknodat(pfd, name, FileType::Fifo, Mode::from_raw_mode(fmode), 0)
        })?;
        if fmode & self.umask != 0 {
            // `name` is the fifo just created in a directory only we write.
            rustix::fs::chmodat(pfd, name, Mode::from_raw_mode(fmode), AtFlags::empty())
                .map_err(|e| self.io("setting the fifo mode", e))?;
        }
        if meta.uid != 0 || meta.gid != 0 || meta.mode != fmode {
            tracing::debug!(
                entry = %lossy(&self.raw),
                uid = meta.uid,
                gid = meta.gid,
                mode = meta.mode,
                "owner and special mode bits of a fifo cannot be recorded (no user xattrs on fifos)"
            );
        }
        rustix::fs::utimensat(pfd, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.io("setting the modification time", e))
    }

    fn hardlink(
        &mut self,
        root: BorrowedFd<'_>,
        pfd: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<(), UnpackError> {
        let mut target = std::mem::take(&mut self.link_norm);
        let result = self.hardlink_to(root, pfd, name, &mut target);
        self.link_norm = target;
        result
    }

    fn hardlink_to(
        &mut self,
        root: BorrowedFd<'_>,
        pfd: BorrowedFd<'_>,
        name: &[u8],
        target: &mut Vec<u8>,
    ) -> Result<(), UnpackError> {
        match normalize(&self.link, target) {
            Ok(()) => {}
            Err(PathProblem::DotDot) => {
                return Err(self.bad_link("the target leaves the layer root"));
            }
            Err(PathProblem::Nul) => return Err(self.bad_link("the target contains a NUL byte")),
        }
        if target.is_empty() {
            return Err(self.bad_link("the target is the layer root"));
        }
        let (tparent, tname) = split_last(target);
        if format::is_reserved_name(tname)
            || tparent.split(|&b| b == b'/').any(format::is_reserved_name)
        {
            return Err(self.bad_link("the target is a whiteout"));
        }
        let tparent_fd;
        let tpfd = if tparent.is_empty() {
            root
        } else {
            match rustix::fs::openat2(
                root,
                tparent,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            ) {
                Ok(fd) => {
                    tparent_fd = fd;
                    tparent_fd.as_fd()
                }
                Err(Errno::LOOP) => {
                    return Err(self.bad_link("the target path goes through a symlink"));
                }
                Err(Errno::NOENT | Errno::NOTDIR) => {
                    return Err(self.bad_link("the target does not exist in this layer"));
                }
                Err(Errno::XDEV) => return Err(self.bad_link("the target leaves the layer root")),
                Err(e) => return Err(self.io("opening the directory of the hard link target", e)),
            }
        };
        let tst = match rustix::fs::statat(tpfd, tname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT | Errno::NOTDIR) => {
                return Err(self.bad_link("the target does not exist in this layer"));
            }
            Err(e) => return Err(self.io("inspecting the hard link target", e)),
        };
        if FileType::from_raw_mode(tst.st_mode) == FileType::Directory {
            return Err(self.bad_link("the target is a directory"));
        }
        if format::is_whiteout_stat(&tst) {
            return Err(self.bad_link("the target is a whiteout"));
        }
        self.clear_file_whiteout(pfd, name)?;
        match rustix::fs::linkat(tpfd, tname, pfd, name, AtFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(self.io("creating the hard link", e)),
        }
        // Something is already there: a link to the same file is a no-op,
        // anything else is replaced.
        if let Ok(est) = rustix::fs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW)
            && est.st_dev == tst.st_dev
            && est.st_ino == tst.st_ino
        {
            return Ok(());
        }
        self.remove_existing(pfd, name)?;
        rustix::fs::linkat(tpfd, tname, pfd, name, AtFlags::empty())
            .map_err(|e| self.io("creating the hard link", e))
    }

    fn whiteout(&mut self, pfd: BorrowedFd<'_>, target: &[u8]) -> Result<(), UnpackError> {
        match rustix::fs::statat(pfd, target, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                // A directory of this layer: it stays, but hides the lower
                // layers' contents.
                let fd = rustix::fs::openat(
                    pfd,
                    target,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.io("opening the whited-out directory", e))?;
                self.opaque(fd.as_fd())
            }
            // A file of this layer (it already hides the lower ones), or
            // already a whiteout.
            Ok(_) => Ok(()),
            Err(Errno::NOENT) => {
                if self.whiteout_files {
                    format::make_whiteout_file(pfd, target)
                        .map_err(|e| self.io("creating the whiteout", e))
                } else {
                    match format::make_whiteout(pfd, target) {
                        Ok(format::WhiteoutKind::CharDevice) => Ok(()),
                        Ok(format::WhiteoutKind::File) => {
                            tracing::debug!(
                                "whiteout devices refused; storing whiteouts as .wh. files"
                            );
                            self.whiteout_files = true;
                            Ok(())
                        }
                        Err(e) => Err(self.io("creating the whiteout", e)),
                    }
                }
            }
            Err(e) => Err(self.io("inspecting the whited-out name", e)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathProblem {
    DotDot,
    Nul,
}

/// Normalise a tar path into `out`: components joined by `/`, without
/// leading `/`, `.` or empty components. `..` is refused. An empty result is
/// the layer root.
fn normalize(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathProblem> {
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
fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
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
fn open_parent(root: BorrowedFd<'_>, parent: &[u8], umask: u32) -> Result<OwnedFd, Errno> {
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

fn walk_create(root: BorrowedFd<'_>, parent: &[u8], umask: u32) -> Result<OwnedFd, Errno> {
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
fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let name = std::ffi::CString::new(name).map_err(|_| Errno::INVAL)?;
    super::remove::remove_at(parent, &name)
        .map(drop)
        .map_err(|e| e.errno())
}

/// A numeric header field. Blank fields (all NUL or space) count as 0, as
/// in Go's archive/tar, which writes most layers; the tar crate refuses them.
fn numeric<T: Default>(parsed: io::Result<T>, raw: &[u8]) -> io::Result<T> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(T::default()),
        Err(e) => Err(e),
    }
}

/// Read until `buf` is full or the end of `r`.
fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while let Some(rest) = buf.get_mut(n..) {
        if rest.is_empty() {
            break;
        }
        match r.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn is_zero(buf: &[u8]) -> bool {
    let mut chunks = buf.chunks_exact(64);
    for c in &mut chunks {
        if c.iter().fold(0u8, |a, &b| a | b) != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

/// A PAX time: `[-]seconds[.fraction]`.
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let mut nanos: i64 = 0;
    let mut digits = 0;
    for b in frac.bytes().take(9) {
        nanos = nanos * 10 + i64::from(b - b'0');
        digits += 1;
    }
    for _ in digits..9 {
        nanos *= 10;
    }
    let (tv_sec, nanos) = if neg {
        if nanos > 0 {
            (-secs - 1, 1_000_000_000 - nanos)
        } else {
            (-secs, 0)
        }
    } else {
        (secs, nanos)
    };
    Some(Timespec {
        tv_sec,
        tv_nsec: nanos as _,
    })
}

/// The process umask, from /proc/self/status (reading it with umask(2)
/// would change it, racing with other threads). If unknown, assume every
/// bit may be masked, so modes are always set explicitly.
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use tar::{EntryType, Header};

    // ---- crafted tarballs -------------------------------------------------

    /// A tar written header by header, with raw name bytes (so that `..`
    /// and other things `tar::Builder` refuses can be written).
    struct Tar {
        data: Vec<u8>,
    }

    impl Tar {
        fn new() -> Tar {
            Tar { data: Vec::new() }
        }

        fn entry(
            &mut self,
            name: &[u8],
            t: EntryType,
            body: &[u8],
            f: impl FnOnce(&mut Header),
        ) -> &mut Tar {
            let mut h = Header::new_gnu();
            {
                let g = h.as_gnu_mut().unwrap();
                g.name = [0; 100];
                g.name[..name.len()].copy_from_slice(name);
            }
            h.set_entry_type(t);
            h.set_size(body.len() as u64);
            h.set_mode(if t == EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_600_000_000);
            f(&mut h);
            h.set_cksum();
            self.data.extend_from_slice(h.as_bytes());
            self.data.extend_from_slice(body);
            let pad = (512 - body.len() % 512) % 512;
            self.data.extend(std::iter::repeat_n(0u8, pad));
            self
        }

        fn file(&mut self, name: &str, body: &[u8]) -> &mut Tar {
            self.entry(name.as_bytes(), EntryType::Regular, body, |_| {})
        }

        fn dir(&mut self, name: &str) -> &mut Tar {
            self.entry(name.as_bytes(), EntryType::Directory, b"", |_| {})
        }

        fn link(&mut self, name: &str, t: EntryType, target: &str) -> &mut Tar {
            self.entry(name.as_bytes(), t, b"", |h| {
                let g = h.as_gnu_mut().unwrap();
                g.linkname = [0; 100];
                g.linkname[..target.len()].copy_from_slice(target.as_bytes());
            })
        }

        fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
            self.link(name, EntryType::Symlink, target)
        }

        fn hardlink(&mut self, name: &str, target: &str) -> &mut Tar {
            self.link(name, EntryType::Link, target)
        }

        fn bytes(&self) -> Vec<u8> {
            let mut d = self.data.clone();
            d.extend_from_slice(&[0u8; 1024]);
            d
        }
    }

    /// A tempdir with `dest/` to unpack into and `outside/` (with a
    /// sentinel file) that must never change.
    struct Sandbox {
        _tmp: tempfile::TempDir,
        base: PathBuf,
        dest: PathBuf,
        outside: PathBuf,
        before: Vec<(PathBuf, u64, u64)>,
    }

    fn sandbox() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let dest = base.join("dest");
        let outside = base.join("outside");
        std::fs::create_dir(&dest).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("sentinel"), b"keep").unwrap();
        std::fs::create_dir(outside.join("etc")).unwrap();
        std::fs::write(outside.join("etc/passwd"), b"root:x:0:0").unwrap();
        let mut sb = Sandbox {
            _tmp: tmp,
            base,
            dest,
            outside,
            before: Vec::new(),
        };
        sb.before = sb.snapshot();
        sb
    }

    impl Sandbox {
        /// Everything under base except dest: path, size, mtime.
        fn snapshot(&self) -> Vec<(PathBuf, u64, u64)> {
            fn walk(p: &Path, skip: &Path, out: &mut Vec<(PathBuf, u64, u64)>) {
                for e in std::fs::read_dir(p).unwrap() {
                    let e = e.unwrap();
                    let path = e.path();
                    if path == skip {
                        continue;
                    }
                    let m = std::fs::symlink_metadata(&path).unwrap();
                    out.push((path.clone(), m.len(), m.mtime() as u64));
                    if m.is_dir() {
                        walk(&path, skip, out);
                    }
                }
            }
            let mut out = Vec::new();
            walk(&self.base, &self.dest, &mut out);
            out.sort();
            out
        }

        fn assert_outside_untouched(&self) {
            assert_eq!(
                self.snapshot(),
                self.before,
                "something changed outside dest"
            );
        }

        fn unpack(&self, tar: &[u8]) -> Result<UnpackStats, UnpackError> {
            unpack_layer(tar, &self.dest)
        }

        fn p(&self, rel: &str) -> PathBuf {
            self.dest.join(rel)
        }
    }

    fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .unwrap();
        let mut buf = vec![0u8; 4096];
        match rustix::fs::fgetxattr(&fd, name, &mut buf[..]) {
            Ok(n) => Some(buf[..n].to_vec()),
            Err(Errno::NODATA) => None,
            Err(e) => panic!("getxattr {name} on {}: {e}", path.display()),
        }
    }

    fn record(path: &Path) -> Option<String> {
        xattr(path, format::OVERRIDE_STAT_XATTR).map(|v| String::from_utf8(v).unwrap())
    }

    fn assert_refused(res: Result<UnpackStats, UnpackError>, needles: &[&str]) -> String {
        let err = res.expect_err("the layer must be refused");
        let msg = err.to_string();
        for n in needles {
            assert!(msg.contains(n), "error {msg:?} should mention {n:?}");
        }
        msg
    }

    // ---- path attacks -----------------------------------------------------

    #[test]
    fn unpack_refuses_dotdot_entry() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.file("ok", b"1").file("../x", b"evil");
        let msg = assert_refused(
            sb.unpack(&t.bytes()),
            &["\"../x\"", "leaves the layer root"],
        );
        assert_eq!(msg, "layer entry \"../x\": path leaves the layer root");
        assert!(!sb.base.join("x").exists());
        sb.assert_outside_untouched();

        let sb = sandbox();
        let mut t = Tar::new();
        t.file("../outside/sentinel", b"evil");
        assert_refused(sb.unpack(&t.bytes()), &["../outside/sentinel"]);
        sb.assert_outside_untouched();
    }

    #[test]
    fn unpack_refuses_nested_dotdot() {
        for name in ["a/../../x", "a/b/../../../x", "./a/..", "a/.."] {
            let sb = sandbox();
            let mut t = Tar::new();
            t.dir("a/").file(name, b"evil");
            assert_refused(sb.unpack(&t.bytes()), &[name, "leaves the layer root"]);
            assert!(!sb.base.join("x").exists());
            sb.assert_outside_untouched();
        }
        // A whiteout of `..`
        let sb = sandbox();
        let mut t = Tar::new();
        t.file("a/.wh...", b"");
        assert_refused(
            sb.unpack(&t.bytes()),
            &["a/.wh...", "leaves the layer root"],
        );
        sb.assert_outside_untouched();
    }

    #[test]
    fn unpack_neutralises_absolute_paths() {
        let sb = sandbox();
        let abs_outside = format!("{}/abs", sb.outside.display());
        let mut t = Tar::new();
        t.file("/etc/hostname", b"h")
            .file(&abs_outside, b"inside")
            .file("./rel", b"r")
            .file("//double//slash/./x", b"d")
            .dir("/");
        let stats = sb.unpack(&t.bytes()).unwrap();
        assert_eq!(stats.entries, 5);
        assert_eq!(std::fs::read(sb.p("etc/hostname")).unwrap(), b"h");
        assert_eq!(std::fs::read(sb.p("rel")).unwrap(), b"r");
        assert_eq!(std::fs::read(sb.p("double/slash/x")).unwrap(), b"d");
        let landed = sb.dest.join(abs_outside.trim_start_matches('/'));
        assert_eq!(std::fs::read(landed).unwrap(), b"inside");
        assert!(!sb.outside.join("abs").exists());
        sb.assert_outside_untouched();
    }

    #[test]
    fn unpack_refuses_write_through_absolute_symlink() {
        let sb = sandbox();
        let target = sb.outside.display().to_string();
        let mut t = Tar::new();
        t.symlink("evil", &target).file("evil/x", b"evil");
        assert_refused(sb.unpack(&t.bytes()), &["\"evil/x\"", "symlink"]);
        assert!(!sb.outside.join("x").exists());
        // The symlink itself is stored verbatim.
        assert_eq!(std::fs::read_link(sb.p("evil")).unwrap(), sb.outside);
        sb.assert_outside_untouched();

        // Also /tmp-style absolute targets, deeper paths and directories.
        for second in ["evil/sub/x", "evil/sub/"] {
            let sb = sandbox();
            let mut t = Tar::new();
            t.symlink("evil", &target);
            if second.ends_with('/') {
                t.dir(second);
            } else {
                t.file(second, b"evil");
            }
            assert_refused(sb.unpack(&t.bytes()), &[second, "symlink"]);
            assert!(!sb.outside.join("sub").exists());
            sb.assert_outside_untouched();
        }
    }

    #[test]
    fn unpack_refuses_write_through_dotdot_symlink() {
        for (link, target) in [("up", ".."), ("d/up", "../.."), ("d/up", "../../outside")] {
            let sb = sandbox();
            let through = format!("{link}/x");
            let mut t = Tar::new();
            t.dir("d/").symlink(link, target).file(&through, b"evil");
            assert_refused(sb.unpack(&t.bytes()), &[&through, "symlink"]);
            assert!(!sb.base.join("x").exists());
            assert!(!sb.outside.join("x").exists());
            sb.assert_outside_untouched();
        }
    }

    #[test]
    fn unpack_refuses_hardlink_escape() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.hardlink("h", "../../etc/passwd");
        let msg = assert_refused(
            sb.unpack(&t.bytes()),
            &["\"h\"", "../../etc/passwd", "leaves"],
        );
        assert!(msg.contains("hard link"), "{msg}");
        assert!(!sb.p("h").exists());
        sb.assert_outside_untouched();

        // An absolute target names a path inside the layer, which does not exist.
        let sb = sandbox();
        let abs = format!("{}/etc/passwd", sb.outside.display());
        let mut t = Tar::new();
        t.hardlink("h", &abs);
        assert_refused(sb.unpack(&t.bytes()), &["\"h\"", &abs, "does not exist"]);
        assert!(!sb.p("h").exists());
        assert_eq!(
            std::fs::metadata(sb.outside.join("etc/passwd"))
                .unwrap()
                .nlink(),
            1
        );
        sb.assert_outside_untouched();

        let sb = sandbox();
        let mut t = Tar::new();
        t.hardlink("h", "/etc/passwd");
        assert_refused(
            sb.unpack(&t.bytes()),
            &["\"h\"", "/etc/passwd", "does not exist"],
        );
        sb.assert_outside_untouched();

        // Links to directories, the root and whiteouts are refused too.
        let sb = sandbox();
        let mut t = Tar::new();
        t.dir("d/").hardlink("h", "d");
        assert_refused(sb.unpack(&t.bytes()), &["\"h\"", "\"d\"", "directory"]);
        let sb = sandbox();
        let mut t = Tar::new();
        t.hardlink("h", "./");
        assert_refused(sb.unpack(&t.bytes()), &["\"h\"", "root"]);
        let sb = sandbox();
        let mut t = Tar::new();
        t.file(".wh.gone", b"").hardlink("h", "gone");
        assert_refused(sb.unpack(&t.bytes()), &["\"h\"", "whiteout"]);
    }

    #[test]
    fn unpack_refuses_hardlink_through_symlink() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.symlink("lnk", &sb.outside.display().to_string())
            .hardlink("h", "lnk/sentinel");
        assert_refused(sb.unpack(&t.bytes()), &["\"h\"", "lnk/sentinel", "symlink"]);
        assert!(!sb.p("h").exists());
        assert_eq!(
            std::fs::metadata(sb.outside.join("sentinel"))
                .unwrap()
                .nlink(),
            1
        );
        sb.assert_outside_untouched();

        // Through a relative symlink inside the layer as well.
        let sb = sandbox();
        let mut t = Tar::new();
        t.dir("real/")
            .file("real/f", b"x")
            .symlink("alias", "real")
            .hardlink("h", "alias/f");
        assert_refused(sb.unpack(&t.bytes()), &["\"h\"", "alias/f", "symlink"]);
        sb.assert_outside_untouched();

        // A hard link to a symlink links the symlink itself, never its target.
        let sb = sandbox();
        let mut t = Tar::new();
        t.symlink("s", &sb.outside.join("sentinel").display().to_string())
            .hardlink("h", "s");
        sb.unpack(&t.bytes()).unwrap();
        assert!(
            std::fs::symlink_metadata(sb.p("h"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::metadata(sb.outside.join("sentinel"))
                .unwrap()
                .nlink(),
            1
        );
        sb.assert_outside_untouched();
    }

    #[test]
    fn unpack_refuses_parent_that_is_a_file_or_whiteout_name() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.file("f", b"x").file("f/x", b"y");
        assert_refused(sb.unpack(&t.bytes()), &["\"f/x\"", "not a directory"]);

        let sb = sandbox();
        let mut t = Tar::new();
        t.file("a/.wh.b/c", b"y");
        assert_refused(sb.unpack(&t.bytes()), &["a/.wh.b/c", "whiteout"]);

        let sb = sandbox();
        let mut t = Tar::new();
        t.file("a/.wh.", b"");
        assert_refused(sb.unpack(&t.bytes()), &["a/.wh.", "whiteout"]);
    }

    // ---- duplicates -------------------------------------------------------

    #[test]
    fn unpack_duplicate_entries_later_wins() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.file("a", b"one")
            .file("a", b"two")
            .symlink("s", "nowhere")
            .file("s", b"file now")
            .file("l", b"file")
            .symlink("l", "target")
            .file("orig", b"orig")
            .hardlink("hl", "orig")
            .file("orig", b"new orig")
            .hardlink("hl", "orig")
            .hardlink("hl", "orig")
            .entry(b"m", EntryType::Regular, b"m", |h| h.set_uid(5))
            .file("m", b"m2")
            .dir("d/")
            .entry(b"d/", EntryType::Directory, b"", |h| h.set_mode(0o700))
            .entry(b"d2/", EntryType::Directory, b"", |h| h.set_mode(0o500))
            .dir("d2/")
            .entry(b"e/", EntryType::Directory, b"", |h| h.set_uid(9))
            .dir("e/");
        sb.unpack(&t.bytes()).unwrap();
        assert_eq!(std::fs::read(sb.p("a")).unwrap(), b"two");
        assert_eq!(std::fs::read(sb.p("s")).unwrap(), b"file now");
        assert_eq!(std::fs::read_link(sb.p("l")).unwrap(), Path::new("target"));
        assert_eq!(std::fs::read(sb.p("orig")).unwrap(), b"new orig");
        assert_eq!(std::fs::read(sb.p("hl")).unwrap(), b"new orig");
        assert_eq!(
            std::fs::metadata(sb.p("hl")).unwrap().ino(),
            std::fs::metadata(sb.p("orig")).unwrap().ino()
        );
        // The later entry's attributes win, including dropping a record.
        assert_eq!(record(&sb.p("m")), None);
        assert_eq!(
            std::fs::metadata(sb.p("d")).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        assert_eq!(record(&sb.p("d")), None);
        assert_eq!(record(&sb.p("e")), None);
        assert_eq!(record(&sb.p("d2")), None);
        assert_eq!(
            std::fs::metadata(sb.p("d2")).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        sb.assert_outside_untouched();
    }

    #[test]
    fn unpack_file_replaces_dir_and_dir_replaces_file() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.dir("d/")
            .file("d/x", b"x")
            .dir("d/sub/")
            .file("d/sub/y", b"y")
            // A symlink inside the doomed tree must not be followed.
            .symlink("d/sub/escape", &sb.outside.display().to_string())
            .file("d", b"now a file")
            .file("f", b"a file")
            .dir("f/")
            .file("f/y", b"in dir");
        sb.unpack(&t.bytes()).unwrap();
        assert_eq!(std::fs::read(sb.p("d")).unwrap(), b"now a file");
        assert!(std::fs::metadata(sb.p("f")).unwrap().is_dir());
        assert_eq!(std::fs::read(sb.p("f/y")).unwrap(), b"in dir");
        assert!(sb.outside.join("sentinel").exists());
        sb.assert_outside_untouched();

        // The parent fd cache must not keep writing into a removed directory.
        let sb = sandbox();
        let mut t = Tar::new();
        t.dir("a/")
            .dir("a/b/")
            .file("a/b/1", b"1")
            .file("a", b"file")
            .dir("a/")
            .dir("a/b/")
            .file("a/b/2", b"2");
        sb.unpack(&t.bytes()).unwrap();
        assert!(!sb.p("a/b/1").exists());
        assert_eq!(std::fs::read(sb.p("a/b/2")).unwrap(), b"2");
    }

    #[test]
    fn unpack_replaces_deep_tree_and_refuses_overlong_paths() {
        let sb = sandbox();
        let deep = "d/".repeat(600);
        let mut t = Tar::new();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, format!("{deep}leaf"), &b"x"[..])
            .unwrap();
        t.data = b.into_inner().unwrap();
        t.data.truncate(t.data.len() - 1024);
        t.file("d", b"flat");
        sb.unpack(&t.bytes()).unwrap();
        assert_eq!(std::fs::read(sb.p("d")).unwrap(), b"flat");

        // A parent path longer than PATH_MAX is refused with an error.
        let sb = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, format!("{}leaf", "d/".repeat(3000)), &b"x"[..])
            .unwrap();
        let err = sb.unpack(&b.into_inner().unwrap()[..]).unwrap_err();
        assert!(err.to_string().contains("leaf"), "{err}");
        sb.assert_outside_untouched();
    }

    #[test]
    fn unpack_blank_numeric_fields_are_zero() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.entry(b"f", EntryType::Regular, b"x", |h| {
            let o = h.as_old_mut();
            o.uid = [0; 8];
            o.gid = [b' '; 8];
            o.mtime = [0; 12];
        });
        sb.unpack(&t.bytes()).unwrap();
        assert_eq!(record(&sb.p("f")), None);
        assert_eq!(std::fs::metadata(sb.p("f")).unwrap().mtime(), 0);

        let sb = sandbox();
        let mut t = Tar::new();
        t.entry(b"f", EntryType::Regular, b"x", |h| {
            h.as_old_mut().uid = *b"12x4567\0";
        });
        assert_refused(sb.unpack(&t.bytes()), &["\"f\"", "uid"]);
    }

    // ---- whiteouts --------------------------------------------------------

    fn open_dir(p: &Path) -> OwnedFd {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    fn is_whiteout_dev(p: &Path) -> bool {
        let m = std::fs::symlink_metadata(p).unwrap();
        m.file_type().is_char_device() && m.rdev() == 0
    }

    #[test]
    fn unpack_whiteouts_and_opaque_dirs() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.file(".wh.gone", b"")
            .dir("opq/")
            .file("opq/.wh..wh..opq", b"")
            .file("opq/kept", b"k")
            .file("sub/.wh.x", b"")
            .file("implicit/.wh..wh..opq", b"")
            .file(".wh..wh..opq", b"")
            .file("aufs/.wh..wh.plnk", b"")
            // Whiteout of a directory this layer made: it stays, opaque.
            .dir("mine/")
            .file("mine/f", b"f")
            .file(".wh.mine", b"")
            // Whiteout of a file of this layer: the file stays.
            .file("file", b"f")
            .file(".wh.file", b"")
            // A directory where this layer put a whiteout: opaque.
            .file(".wh.again", b"")
            .dir("again/")
            // A file where this layer put a whiteout: replaces it.
            .file(".wh.refile", b"")
            .file("refile", b"r");
        sb.unpack(&t.bytes()).unwrap();
        assert!(is_whiteout_dev(&sb.p("gone")));
        assert!(is_whiteout_dev(&sb.p("sub/x")));
        assert!(!sb.p(".wh.gone").exists());
        assert!(!sb.p("opq/.wh..wh..opq").exists());
        assert_eq!(
            xattr(&sb.p("opq"), "user.overlay.opaque"),
            Some(b"y".to_vec())
        );
        assert!(format::is_opaque(open_dir(&sb.p("opq"))).unwrap());
        assert!(format::is_opaque(open_dir(&sb.p("implicit"))).unwrap());
        assert!(format::is_opaque(open_dir(&sb.dest)).unwrap());
        assert!(!format::is_opaque(open_dir(&sb.p("sub"))).unwrap());
        assert!(!sb.p("aufs/.wh..wh.plnk").exists());
        assert_eq!(std::fs::read(sb.p("mine/f")).unwrap(), b"f");
        assert!(format::is_opaque(open_dir(&sb.p("mine"))).unwrap());
        assert_eq!(std::fs::read(sb.p("file")).unwrap(), b"f");
        assert!(std::fs::metadata(sb.p("again")).unwrap().is_dir());
        assert!(format::is_opaque(open_dir(&sb.p("again"))).unwrap());
        assert_eq!(std::fs::read(sb.p("refile")).unwrap(), b"r");
        sb.assert_outside_untouched();
    }

    #[test]
    fn unpack_whiteout_file_fallback() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.file(".wh.gone", b"")
            .file("sub/.wh.x", b"")
            .dir("mine/")
            .file(".wh.mine", b"")
            .file(".wh.again", b"")
            .dir("again/")
            .file(".wh.refile", b"")
            .file("refile", b"r")
            .file(".wh.twice", b"")
            .file(".wh.twice", b"");
        unpack_with(&t.bytes()[..], &sb.dest, true).unwrap();
        for wh in [".wh.gone", "sub/.wh.x", ".wh.twice"] {
            let m = std::fs::symlink_metadata(sb.p(wh)).unwrap();
            assert!(m.file_type().is_file() && m.len() == 0, "{wh}");
        }
        assert!(!sb.p("gone").exists());
        assert!(format::is_opaque(open_dir(&sb.p("mine"))).unwrap());
        assert!(!sb.p(".wh.mine").exists());
        assert!(format::is_opaque(open_dir(&sb.p("again"))).unwrap());
        assert!(!sb.p(".wh.again").exists());
        assert_eq!(std::fs::read(sb.p("refile")).unwrap(), b"r");
        assert!(!sb.p(".wh.refile").exists());
        sb.assert_outside_untouched();
    }

    // ---- ownership, modes, special files ----------------------------------

    #[test]
    fn unpack_records_override_stat_for_owner() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.entry(b"owned", EntryType::Regular, b"x", |h| {
            h.set_uid(42);
            h.set_gid(43);
        })
        .file("plain", b"p")
        .entry(b"private", EntryType::Regular, b"p", |h| h.set_mode(0o400))
        .entry(b"ro-dir/", EntryType::Directory, b"", |h| h.set_mode(0o555))
        .entry(b"odir/", EntryType::Directory, b"", |h| {
            h.set_uid(1000);
            h.set_gid(1000);
            h.set_mode(0o750);
        })
        .dir("./");
        sb.unpack(&t.bytes()).unwrap();
        assert_eq!(record(&sb.p("owned")), Some("42:43:0644:file".into()));
        assert_eq!(
            std::fs::metadata(sb.p("owned")).unwrap().uid(),
            rustix::process::getuid().as_raw()
        );
        assert_eq!(record(&sb.p("plain")), None);
        assert_eq!(record(&sb.p("private")), Some("0:0:0400:file".into()));
        assert_eq!(
            std::fs::metadata(sb.p("private"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o600
        );
        assert_eq!(record(&sb.p("ro-dir")), Some("0:0:0555:dir".into()));
        assert_eq!(
            std::fs::metadata(sb.p("ro-dir"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o755
        );
        assert_eq!(record(&sb.p("odir")), Some("1000:1000:0750:dir".into()));
        // The root always carries a record.
        assert_eq!(record(&sb.dest), Some("0:0:0755:dir".into()));
        sb.assert_outside_untouched();

        // Without a `./` entry too.
        let sb = sandbox();
        sb.unpack(&Tar::new().file("f", b"").bytes()).unwrap();
        assert_eq!(record(&sb.dest), Some("0:0:0755:dir".into()));
    }

    #[test]
    fn unpack_setuid_recorded_not_set_on_disk() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.entry(b"bin/su", EntryType::Regular, b"\x7fELF", |h| {
            h.set_mode(0o4755)
        })
        .entry(b"bin/wall", EntryType::Regular, b"\x7fELF", |h| {
            h.set_mode(0o2755);
            h.set_gid(5);
        })
        .entry(b"tmp/", EntryType::Directory, b"", |h| h.set_mode(0o1777));
        sb.unpack(&t.bytes()).unwrap();
        let m = std::fs::metadata(sb.p("bin/su"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o7777, 0o755);
        assert_eq!(record(&sb.p("bin/su")), Some("0:0:4755:file".into()));
        assert_eq!(
            std::fs::metadata(sb.p("bin/wall"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7000,
            0
        );
        assert_eq!(record(&sb.p("bin/wall")), Some("0:5:2755:file".into()));
        assert_eq!(
            std::fs::metadata(sb.p("tmp")).unwrap().permissions().mode() & 0o7777,
            0o777
        );
        assert_eq!(record(&sb.p("tmp")), Some("0:0:1777:dir".into()));
    }

    #[test]
    fn unpack_device_nodes_recorded() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.entry(b"dev/null", EntryType::Char, b"", |h| {
            h.set_mode(0o666);
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        })
        .entry(b"dev/sda", EntryType::Block, b"", |h| {
            h.set_mode(0o660);
            h.set_gid(6);
            h.set_device_major(8).unwrap();
            h.set_device_minor(0).unwrap();
        })
        .entry(b"dev/zero-dev", EntryType::Char, b"", |h| {
            // A char device 0:0 in an image is a device, not a whiteout.
            h.set_mode(0o600);
            h.set_device_major(0).unwrap();
            h.set_device_minor(0).unwrap();
        });
        sb.unpack(&t.bytes()).unwrap();
        let m = std::fs::symlink_metadata(sb.p("dev/null")).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(m.len(), 0);
        assert_eq!(record(&sb.p("dev/null")), Some("0:0:0666:char-1-3".into()));
        assert_eq!(record(&sb.p("dev/sda")), Some("0:6:0660:block-8-0".into()));
        assert!(
            std::fs::symlink_metadata(sb.p("dev/zero-dev"))
                .unwrap()
                .file_type()
                .is_file()
        );
        assert_eq!(
            record(&sb.p("dev/zero-dev")),
            Some("0:0:0600:char-0-0".into())
        );
        let rec =
            format::OverrideStat::decode(record(&sb.p("dev/null")).unwrap().as_bytes()).unwrap();
        assert_eq!(rec.device(), Some((1, 3)));
    }

    #[test]
    fn unpack_fifo_created() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.entry(b"run/fifo", EntryType::Fifo, b"", |h| h.set_mode(0o620));
        sb.unpack(&t.bytes()).unwrap();
        let m = std::fs::symlink_metadata(sb.p("run/fifo")).unwrap();
        assert!(m.file_type().is_fifo());
        assert_eq!(m.permissions().mode() & 0o7777, 0o620);
        assert_eq!(m.mtime(), 1_600_000_000);
    }

    #[test]
    fn unpack_hardlinks_share_inode() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.entry(b"usr/bin/a", EntryType::Regular, b"same", |h| h.set_uid(7))
            .hardlink("usr/bin/b", "usr/bin/a")
            .hardlink("c", "./usr//bin/a")
            .hardlink("/d", "/usr/bin/a");
        let stats = sb.unpack(&t.bytes()).unwrap();
        assert_eq!(stats.file_bytes, 4);
        let ino = std::fs::metadata(sb.p("usr/bin/a")).unwrap().ino();
        for n in ["usr/bin/b", "c", "d"] {
            let m = std::fs::metadata(sb.p(n)).unwrap();
            assert_eq!(m.ino(), ino, "{n}");
            assert_eq!(m.nlink(), 4);
        }
        assert_eq!(record(&sb.p("d")), Some("7:0:0644:file".into()));
    }

    #[test]
    fn unpack_symlinks_stored_verbatim() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.symlink("abs", "/etc/passwd")
            .symlink("rel", "../../../../etc/shadow")
            .symlink("dir/link", "target with spaces");
        sb.unpack(&t.bytes()).unwrap();
        assert_eq!(
            std::fs::read_link(sb.p("abs")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            std::fs::read_link(sb.p("rel")).unwrap(),
            Path::new("../../../../etc/shadow")
        );
        assert_eq!(
            std::fs::read_link(sb.p("dir/link")).unwrap(),
            Path::new("target with spaces")
        );
        let m = std::fs::symlink_metadata(sb.p("abs")).unwrap();
        assert_eq!(m.mtime(), 1_600_000_000);
        sb.assert_outside_untouched();
    }

    #[test]
    fn unpack_mtimes_preserved() {
        let sb = sandbox();
        let mut t = Tar::new();
        t.entry(b"d/", EntryType::Directory, b"", |h| {
            h.set_mtime(1_000_000_000)
        })
        .entry(b"d/f", EntryType::Regular, b"data", |h| {
            h.set_mtime(1_100_000_000)
        })
        .entry(b"d/e/", EntryType::Directory, b"", |h| {
            h.set_mtime(1_200_000_000)
        })
        .file("d/e/g", b"g")
        .entry(b"./", EntryType::Directory, b"", |h| {
            h.set_mtime(900_000_000)
        });
        sb.unpack(&t.bytes()).unwrap();
        assert_eq!(std::fs::metadata(sb.p("d")).unwrap().mtime(), 1_000_000_000);
        assert_eq!(
            std::fs::metadata(sb.p("d/f")).unwrap().mtime(),
            1_100_000_000
        );
        assert_eq!(
            std::fs::metadata(sb.p("d/e")).unwrap().mtime(),
            1_200_000_000
        );
        assert_eq!(std::fs::metadata(&sb.dest).unwrap().mtime(), 900_000_000);
    }

    // ---- formats: long names, PAX, sparse ----------------------------------

    #[test]
    fn unpack_long_names() {
        let sb = sandbox();
        let long_name = "n".repeat(150);
        let deep: String = (0..30).map(|i| format!("dir{i:02}-xxxx/")).collect();
        let deep_file = format!("{deep}{}", "f".repeat(120));
        assert!(deep_file.len() > 255);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, &long_name, &b"long"[..]).unwrap();
        let mut h = Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        b.append_data(&mut h, &deep_file, &b"deep"[..]).unwrap();
        // A long hard link target.
        let mut h = Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(EntryType::Link);
        b.append_link(&mut h, "short", &deep_file).unwrap();
        // PAX path.
        let pax_path = format!("{deep}pax-{}", "p".repeat(100));
        b.append_pax_extensions([("path", pax_path.as_bytes())])
            .unwrap();
        let mut h = Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(EntryType::Regular);
        h.as_ustar_mut().unwrap().name[..5].copy_from_slice(b"dummy");
        h.set_cksum();
        b.append(&h, &b"pax"[..]).unwrap();
        let data = b.into_inner().unwrap();
        sb.unpack(&data).unwrap();
        assert_eq!(std::fs::read(sb.p(&long_name)).unwrap(), b"long");
        assert_eq!(std::fs::read(sb.p(&deep_file)).unwrap(), b"deep");
        assert_eq!(std::fs::read(sb.p("short")).unwrap(), b"deep");
        assert_eq!(std::fs::read(sb.p(&pax_path)).unwrap(), b"pax");
        assert!(!sb.p("dummy").exists());
    }

    fn pax_file(b: &mut tar::Builder<Vec<u8>>, path: &str, t: EntryType, pax: &[(&str, &[u8])]) {
        b.append_pax_extensions(pax.iter().copied()).unwrap();
        let mut h = Header::new_ustar();
        h.set_size(0);
        h.set_mode(if t == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_entry_type(t);
        b.append_data(&mut h, path, &b""[..]).unwrap();
    }

    #[test]
    fn unpack_user_xattrs_preserved() {
        let sb = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        pax_file(
            &mut b,
            "bin/ping",
            EntryType::Regular,
            &[
                ("SCHILY.xattr.user.mime_type", b"text/plain"),
                (
                    "SCHILY.xattr.security.capability",
                    b"\x01\x00\x00\x02\x00\x20\x00\x00",
                ),
                ("SCHILY.xattr.trusted.thing", b"t"),
                ("mtime", b"1234567890.5"),
            ],
        );
        pax_file(
            &mut b,
            "d",
            EntryType::Directory,
            &[("SCHILY.xattr.user.dir", b"yes")],
        );
        sb.unpack(&b.into_inner().unwrap()).unwrap();
        let f = sb.p("bin/ping");
        assert_eq!(xattr(&f, "user.mime_type"), Some(b"text/plain".to_vec()));
        assert_eq!(
            xattr(&f, "user.hutch.xattr.security.capability"),
            Some(b"\x01\x00\x00\x02\x00\x20\x00\x00".to_vec())
        );
        assert_eq!(
            xattr(&f, "user.hutch.xattr.trusted.thing"),
            Some(b"t".to_vec())
        );
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_234_567_890, 500_000_000));
        assert_eq!(xattr(&sb.p("d"), "user.dir"), Some(b"yes".to_vec()));
    }

    #[test]
    fn unpack_forged_override_stat_not_applied() {
        let sb = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        pax_file(
            &mut b,
            "f",
            EntryType::Regular,
            &[
                (
                    "SCHILY.xattr.user.containers.override_stat",
                    b"0:0:4755:file",
                ),
                ("SCHILY.xattr.user.hutch.xattr.security.capability", b"caps"),
                ("SCHILY.xattr.user.fuseoverlayfs.override_stat", b"0:0:4755"),
                ("SCHILY.xattr.user.ok", b"ok"),
            ],
        );
        pax_file(
            &mut b,
            "d",
            EntryType::Directory,
            &[("SCHILY.xattr.user.overlay.opaque", b"y")],
        );
        pax_file(
            &mut b,
            "owned",
            EntryType::Regular,
            &[(
                "SCHILY.xattr.user.containers.override_stat",
                b"0:0:4755:file",
            )],
        );
        let mut data = b.into_inner().unwrap();
        // Also a forged record on an entry that gets a real one: the real
        // one must win. (uid 42 via a raw header appended before the end.)
        data.truncate(data.len() - 1024);
        let mut t = Tar { data };
        t.entry(b"real", EntryType::Regular, b"", |h| h.set_uid(42));
        sb.unpack(&t.bytes()).unwrap();
        assert_eq!(record(&sb.p("f")), None);
        assert_eq!(
            xattr(&sb.p("f"), "user.hutch.xattr.security.capability"),
            None
        );
        assert_eq!(xattr(&sb.p("f"), "user.fuseoverlayfs.override_stat"), None);
        assert_eq!(xattr(&sb.p("f"), "user.ok"), Some(b"ok".to_vec()));
        assert!(!format::is_opaque(open_dir(&sb.p("d"))).unwrap());
        assert_eq!(record(&sb.p("owned")), None);
        assert_eq!(record(&sb.p("real")), Some("42:0:0644:file".into()));
    }

    #[test]
    fn unpack_gnu_sparse_file() {
        let sb = sandbox();
        let real = 3 * 1024 * 1024 + 100;
        let mut h = Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            g.name[..6].copy_from_slice(b"sparse");
            g.sparse[0].set_offset(1024 * 1024);
            g.sparse[0].set_length(512);
            g.sparse[1].set_offset(real - 100);
            g.sparse[1].set_length(100);
            g.set_real_size(real);
        }
        h.set_entry_type(EntryType::GNUSparse);
        h.set_size(612);
        h.set_mode(0o644);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend(std::iter::repeat_n(b'a', 512));
        data.extend(std::iter::repeat_n(b'b', 100));
        data.extend(std::iter::repeat_n(0u8, 512 - 100));
        data.extend_from_slice(&[0u8; 1024]);
        let stats = sb.unpack(&data).unwrap();
        assert_eq!(stats.file_bytes, real);
        let content = std::fs::read(sb.p("sparse")).unwrap();
        assert_eq!(content.len() as u64, real);
        assert!(content[..1024 * 1024].iter().all(|&b| b == 0));
        assert!(
            content[1024 * 1024..1024 * 1024 + 512]
                .iter()
                .all(|&b| b == b'a')
        );
        assert!(content[(real - 100) as usize..].iter().all(|&b| b == b'b'));
        let m = std::fs::metadata(sb.p("sparse")).unwrap();
        assert!(
            m.blocks() * 512 < real / 2,
            "holes were written: {} blocks",
            m.blocks()
        );
    }

    #[test]
    fn unpack_zero_runs_become_holes() {
        let sb = sandbox();
        let mut body = vec![0u8; 2 * 1024 * 1024];
        body.extend_from_slice(b"end");
        body.extend(vec![0u8; 1024 * 1024]);
        let mut t = Tar::new();
        t.file("z", &body).file("small-zero", &[0u8; 10]);
        sb.unpack(&t.bytes()).unwrap();
        let got = std::fs::read(sb.p("z")).unwrap();
        assert_eq!(got, body);
        let m = std::fs::metadata(sb.p("z")).unwrap();
        assert!(m.blocks() * 512 < 1024 * 1024, "{} blocks", m.blocks());
        assert_eq!(std::fs::read(sb.p("small-zero")).unwrap(), [0u8; 10]);
    }

    // ---- broken input -------------------------------------------------------

    #[test]
    fn unpack_truncated_tar_errors() {
        let mut t = Tar::new();
        t.dir("d/")
            .file("d/a", &vec![b'x'; 10_000])
            .file("d/b", b"b");
        let full = t.bytes();
        // Cut in the middle of the file data.
        let sb = sandbox();
        let err = sb.unpack(&full[..512 * 2 + 5000]).unwrap_err();
        assert!(matches!(err, UnpackError::Truncated { .. }), "{err}");
        assert!(err.to_string().contains("\"d/a\""), "{err}");
        // Cut in the middle of a header.
        let sb = sandbox();
        let second_header = 512 + 512 + 10_240;
        let err = sb.unpack(&full[..second_header + 100]).unwrap_err();
        assert!(matches!(err, UnpackError::Tar { .. }), "{err}");
        assert!(err.to_string().contains("after entry \"d/a\""), "{err}");
        // Every cut point: an error or a consistent prefix, never a panic.
        for cut in (0..full.len()).step_by(97) {
            let sb = sandbox();
            let _ = sb.unpack(&full[..cut]);
            sb.assert_outside_untouched();
        }
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn unpack_garbage_errors() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let garbage: Vec<u8> = (0..8192).map(|_| rng.next() as u8).collect();
        let sb = sandbox();
        let err = sb.unpack(&garbage[..]).unwrap_err();
        assert!(matches!(err, UnpackError::NotTar { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("not a tar archive"), "{msg}");
        assert!(msg.chars().all(|c| !c.is_control()), "escaped: {msg:?}");
        sb.assert_outside_untouched();
        // An empty archive is fine.
        let sb = sandbox();
        assert_eq!(sb.unpack(&[0u8; 1024][..]).unwrap().entries, 0);
        assert_eq!(sb.unpack(&[][..]).unwrap().entries, 0);
    }

    #[test]
    fn unpack_mutated_tars_never_panic_or_escape() {
        let mut t = Tar::new();
        t.dir("a/")
            .file("a/f", b"hello")
            .symlink("a/s", "../../outside")
            .hardlink("a/h", "a/f")
            .file("a/.wh.x", b"")
            .entry(b"a/dev", EntryType::Char, b"", |h| {
                h.set_device_major(1).unwrap();
            })
            .file("b", b"bye");
        let base = t.bytes();
        let mut rng = Rng(12345);
        for _ in 0..200 {
            let mut data = base.clone();
            for _ in 0..(1 + rng.next() % 8) {
                let i = (rng.next() as usize) % data.len();
                data[i] = match rng.next() % 4 {
                    0 => b'.',
                    1 => b'/',
                    2 => 0,
                    _ => rng.next() as u8,
                };
            }
            let sb = sandbox();
            let _ = sb.unpack(&data[..]);
            sb.assert_outside_untouched();
        }
    }

    #[test]
    fn unpack_error_messages_name_the_entry() {
        let e = UnpackError::Escape {
            path: "../etc/passwd".into(),
        };
        assert_eq!(
            e.to_string(),
            "layer entry \"../etc/passwd\": path leaves the layer root"
        );
    }

    #[test]
    fn normalize_paths() {
        let mut out = Vec::new();
        for (raw, want) in [
            ("a/b", "a/b"),
            ("/a/b/", "a/b"),
            ("./a/./b", "a/b"),
            ("//a//b", "a/b"),
            (".", ""),
            ("./", ""),
            ("/", ""),
            ("", ""),
        ] {
            normalize(raw.as_bytes(), &mut out).unwrap();
            assert_eq!(out, want.as_bytes(), "{raw}");
        }
        for raw in ["..", "../a", "a/../b", "a/..", "/.."] {
            assert_eq!(
                normalize(raw.as_bytes(), &mut out),
                Err(PathProblem::DotDot),
                "{raw}"
            );
        }
        assert_eq!(normalize(b"a\0b", &mut out), Err(PathProblem::Nul));
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
    }

    #[test]
    fn pax_times() {
        let t = |s: &str| parse_pax_time(s.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec));
        assert_eq!(t("12"), Some((12, 0)));
        assert_eq!(t("12.5"), Some((12, 500_000_000)));
        assert_eq!(t("12.0000000019"), Some((12, 1)));
        assert_eq!(t("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(t("-3"), Some((-3, 0)));
        assert_eq!(t(""), None);
        assert_eq!(t("1x"), None);
        assert_eq!(t(".5"), None);
        assert_eq!(t("99999999999999999999999"), None);
    }
}
