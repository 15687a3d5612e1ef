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

mod fields;
mod paths;
mod work;

use fields::*;
use paths::*;

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

#[cfg(test)]
mod tests;
