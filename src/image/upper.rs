//! Reading a container's upper dir (`containers/<id>/upper/`, in the format
//! of `overlay::format`) entry by entry, with each entry's true owner, mode
//! and type: what `hutch diff` compares and `hutch commit` archives.
//!
//! The container writes its upper dir, so nothing in it is trusted: every
//! name is opened relative to its parent's descriptor with `O_NOFOLLOW`, a
//! symlink is read as a symlink and never followed, and only regular files
//! and directories are opened. Entries that vanish during the walk (the
//! container may be running) are skipped; a file that changes size while
//! it is read is cut or padded to the size it had when it was opened.
//!
//! A directory of the upper dir with a valid redirect record (a lower
//! directory the container renamed, `overlay::format`, "Renamed
//! directories") is visited whole, since image layers have no redirects:
//! the directory itself as opaque (it hides whatever the layers have at its
//! new path), then its merged content: the layers' entries at the redirect
//! path ([`super::lower`]) overlaid by the upper's own entries there, an
//! upper subdirectory merged with the layers' one of the same name unless
//! it is opaque, and a renamed subdirectory read from its own redirect
//! path (a bare-name record names a sibling where the parent's content is
//! in the layers, which inside a renamed directory is below its redirect
//! path, as on the kernel overlay). A record on an opaque directory is not
//! followed: opaque hides the layers, as on the kernel overlay. Upper
//! whiteouts inside remove names and are not visited. Entries
//! from the layers keep their true attributes (layers have the same
//! format) and, for files with several names, their `(st_dev, st_ino)` as
//! the link key. A record whose value `format::redirect_target` refuses is
//! ignored (logged at debug level); a redirect path the layers do not have
//! as a directory gives no lower content. The walk holds one descriptor
//! per depth level of the upper dir, plus one per layer root; directories
//! of the layers are reopened from their roots when listed, never held
//! across a subdirectory's walk.
//!
//! The overlay keeps no bookkeeping files in the upper dir (its staging
//! names `#hutch.*` live in the separate work dir), but the launcher leaves
//! empty mount points for the files it bind-mounts over the image's
//! ([`LAUNCHER_FILES`]); those are not the container's changes and are
//! skipped, as Podman's `diff` skips its own.

use super::lower::{LowerDir, LowerEntry, Lowers};
use crate::overlay::format::{self, RecordedType};
use anyhow::{Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The files `sandbox/rootfs.rs` bind-mounts in every container; an empty
/// regular file at one of these paths in an upper dir is a mount point the
/// launcher made, never content (writes go to the bind-mounted file).
pub const LAUNCHER_FILES: [&[u8]; 3] = [b"etc/hosts", b"etc/hostname", b"etc/resolv.conf"];

/// What an upper-dir entry is.
#[derive(Debug)]
pub enum Kind {
    Dir {
        /// Hides what lower layers have below it.
        opaque: bool,
    },
    File {
        /// Open for reading.
        fd: OwnedFd,
        size: u64,
        /// `(st_dev, st_ino)` when the file has other hard links.
        link_key: Option<(u64, u64)>,
    },
    Symlink {
        target: Vec<u8>,
    },
    Fifo,
    /// A device node from an image (stored as an empty file with a record).
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    /// The entry's path was deleted (a 0:0 device or a `.wh.NAME` file).
    Whiteout,
}

/// One entry of an upper dir, with its true attributes.
#[derive(Debug)]
pub struct Entry {
    /// Relative to the upper dir, no leading `/` (`etc/passwd`); for a
    /// whiteout, the path of the deleted name.
    pub path: Vec<u8>,
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits with setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// The xattrs a container sees (names as presented), sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }
}

/// Visit every entry of the upper dir at `upper` in Podman's order: depth
/// first, a directory before its contents, names sorted bytewise. The root
/// itself is not visited. `lowers` are the container's layer dirs (top
/// first), read for its renamed directories (see the module
/// documentation).
pub fn walk(
    upper: &Path,
    lowers: &[PathBuf],
    visit: &mut dyn FnMut(Entry) -> Result<()>,
) -> Result<()> {
    let root = rustix::fs::open(
        upper,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("opening the upper dir {}", upper.display()))?;
    let lowers = Lowers::open(lowers)?;
    let mut w = Walker {
        lowers: Some(&lowers),
        launcher_files: true,
        visit,
    };
    w.changes(root.as_fd(), &[])
        .with_context(|| format!("reading the upper dir {}", upper.display()))
}

/// Visit every entry of the unpacked layer at `layer` (a
/// `layers/sha256/<hex>/root/`) as [`walk`] does, except that an empty
/// `etc/hosts` is the image's content there, not a mount point, and there
/// are no redirects (the unpacker never stores one); returns the entry of
/// the layer's root directory itself (path empty).
pub fn walk_layer(layer: &Path, visit: &mut dyn FnMut(Entry) -> Result<()>) -> Result<Entry> {
    let root = rustix::fs::open(
        layer,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("opening the layer dir {}", layer.display()))?;
    let st = rustix::fs::fstat(&root)
        .map_err(std::io::Error::from)
        .with_context(|| format!("reading the layer dir {}", layer.display()))?;
    let opaque = format::is_opaque(&root)
        .with_context(|| format!("reading whether {} is opaque", layer.display()))?;
    let (attrs, _) = true_attributes(&root, &[], &st)
        .with_context(|| format!("reading the layer dir {}", layer.display()))?;
    let mut w = Walker {
        lowers: None,
        launcher_files: false,
        visit,
    };
    w.changes(root.as_fd(), &[])
        .with_context(|| format!("reading the layer dir {}", layer.display()))?;
    Ok(attrs.entry(Vec::new(), Kind::Dir { opaque }, &st))
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() + name.len() + 1);
    if !prefix.is_empty() {
        p.extend_from_slice(prefix);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn shown(path: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(path))
}

/// The names in `dir` (without `.` and `..`).
fn names(dir: BorrowedFd<'_>) -> std::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

/// Where a name of a directory read whole comes from.
enum Source {
    /// The upper dir (what the lowers have there, if anything).
    Upper(Option<LowerEntry>),
    Lower(LowerEntry),
}

/// A directory of the upper dir, opened, and what it says.
struct UpperDir {
    fd: OwnedFd,
    attrs: Attributes,
    opaque: bool,
    /// The path of its content in the layers, for a renamed directory.
    redirect: Option<Vec<u8>>,
}

/// One walk: the layers for redirects, and where to send the entries.
struct Walker<'a> {
    /// The container's layers; `None` for a layer's own walk, where
    /// redirects are not followed.
    lowers: Option<&'a Lowers>,
    /// Skip the empty mount points of [`LAUNCHER_FILES`] (an upper dir's,
    /// not a layer's).
    launcher_files: bool,
    visit: &'a mut dyn FnMut(Entry) -> Result<()>,
}

impl Walker<'_> {
    fn is_launcher_file(&self, path: &[u8], t: FileType, st: &Stat) -> bool {
        self.launcher_files
            && t == FileType::RegularFile
            && LAUNCHER_FILES.contains(&path)
            && st.st_size == 0
    }

    /// The entries of the upper directory `dir` at `prefix` as they are:
    /// changes to the layers, whiteouts included.
    fn changes(&mut self, dir: BorrowedFd<'_>, prefix: &[u8]) -> Result<()> {
        let mut names = names(dir).with_context(|| format!("listing {}", shown(prefix)))?;
        // Bytewise, a fallback whiteout `.wh.NAME` in the place of NAME.
        names.sort_by_cached_key(|n| format::whiteout_target(n).unwrap_or(n).to_vec());
        for name in names {
            let path = join(prefix, &name);
            let st = match rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", shown(&path))),
            };
            let t = FileType::from_raw_mode(st.st_mode);
            if format::is_reserved_name(&name) {
                // `.wh.NAME` (the fallback whiteout) deletes NAME; the opaque
                // marker is read with its directory; aufs metadata is skipped.
                if let Some(target) = format::whiteout_target(&name)
                    && t == FileType::RegularFile
                {
                    (self.visit)(whiteout(join(prefix, target), &st))?;
                }
                continue;
            }
            if self.is_launcher_file(&path, t, &st) {
                continue;
            }
            match t {
                FileType::CharacterDevice if format::is_whiteout_stat(&st) => {
                    (self.visit)(whiteout(path, &st))?;
                }
                FileType::Directory => {
                    let Some(UpperDir {
                        fd,
                        attrs,
                        opaque,
                        redirect,
                    }) = self.upper_dir(dir, &name, &path, &st, prefix)?
                    else {
                        continue;
                    };
                    match redirect {
                        // A renamed lower directory: written whole and
                        // opaque, hiding what the layers have at `path`.
                        Some(target) => {
                            (self.visit)(attrs.entry(
                                path.clone(),
                                Kind::Dir { opaque: true },
                                &st,
                            ))?;
                            let lower = self.lower_dir(&target)?;
                            self.whole(Some(fd.as_fd()), &path, &target, lower.as_ref())?;
                        }
                        None => {
                            (self.visit)(attrs.entry(path.clone(), Kind::Dir { opaque }, &st))?;
                            self.changes(fd.as_fd(), &path)?;
                        }
                    }
                }
                _ => {
                    if let Some(e) = leaf(dir, &name, path, &st)? {
                        (self.visit)(e)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The directory `name` of the upper directory `dir` (at `path`, with
    /// status `st`; its parent's content is at `parent` in the layers),
    /// opened, with what it says; `None` when it went away.
    fn upper_dir(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        st: &Stat,
        parent: &[u8],
    ) -> Result<Option<UpperDir>> {
        let fd = match open(dir, name, OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("opening {}", shown(path))),
        };
        let opaque = format::is_opaque(&fd)
            .with_context(|| format!("reading whether {} is opaque", shown(path)))?;
        let (attrs, _) = true_attributes(&fd, path, st)?;
        let redirect = match opaque {
            true => None,
            false => self.redirect(&fd, parent, path)?,
        };
        Ok(Some(UpperDir {
            fd,
            attrs,
            opaque,
            redirect,
        }))
    }

    /// The path in the layers that the directory `dir` at `path` (in the
    /// upper dir; its parent's content is at `parent` in the layers) is a
    /// rename of, from its [`format::REDIRECT_XATTR`]; `None` without a
    /// record, for a record to ignore, and in a layer's own walk.
    fn redirect(&self, dir: &OwnedFd, parent: &[u8], path: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.lowers.is_none() {
            return Ok(None);
        }
        let value = match read_sized(|buf| rustix::fs::fgetxattr(dir, format::REDIRECT_XATTR, buf))
        {
            Ok(v) => v,
            Err(e)
                if [Errno::NODATA, Errno::OPNOTSUPP]
                    .iter()
                    .any(|n| e.raw_os_error() == Some(n.raw_os_error())) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading the redirect of {}", shown(path)));
            }
        };
        let parent: &[u8] = if parent.is_empty() { b"." } else { parent };
        let target = format::redirect_target(&value, parent);
        if target.is_none() {
            tracing::debug!(
                "{}: ignoring the invalid {} {:?}",
                shown(path),
                format::REDIRECT_XATTR,
                String::from_utf8_lossy(&value)
            );
        }
        Ok(target)
    }

    /// The directory `path` of the layers, if they have one there.
    fn lower_dir(&self, path: &[u8]) -> Result<Option<LowerDir>> {
        match self.lowers {
            Some(l) => l
                .dir(path)
                .with_context(|| format!("looking up {} in the image", shown(path))),
            None => Ok(None),
        }
    }

    /// The whole content of the directory at `prefix` of a renamed
    /// directory: its upper dir's entries (`upper`, if it has one) over the
    /// layers' entries of `lower` (the directory at `lower_path` in the
    /// layers, if they have one), merged by the overlay's rules; upper
    /// whiteouts remove names and are not written.
    fn whole(
        &mut self,
        upper: Option<BorrowedFd<'_>>,
        prefix: &[u8],
        lower_path: &[u8],
        lower: Option<&LowerDir>,
    ) -> Result<()> {
        let mut all: BTreeMap<Vec<u8>, Source> = BTreeMap::new();
        if let (Some(lowers), Some(ld)) = (self.lowers, lower) {
            let listed = lowers
                .list(ld)
                .with_context(|| format!("listing {} in the image", shown(&ld.path)))?;
            for e in listed {
                all.insert(e.name.clone(), Source::Lower(e));
            }
        }
        if let Some(dir) = upper {
            let names = names(dir).with_context(|| format!("listing {}", shown(prefix)))?;
            let mut wh_files = Vec::new();
            for name in names {
                if format::is_reserved_name(&name) {
                    if let Some(target) = format::whiteout_target(&name) {
                        wh_files.push((target.to_vec(), name.clone()));
                    }
                    continue;
                }
                let below = match all.remove(&name) {
                    Some(Source::Lower(e)) => Some(e),
                    _ => None,
                };
                all.insert(name, Source::Upper(below));
            }
            // `.wh.NAME` hides the layers' NAME where the upper has none.
            for (target, file) in wh_files {
                if matches!(all.get(&target), Some(Source::Lower(_))) {
                    match rustix::fs::statat(dir, file.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                            all.remove(&target);
                        }
                        Ok(_) | Err(Errno::NOENT) => {}
                        Err(e) => {
                            return Err(e).with_context(|| {
                                format!("reading {}", shown(&join(prefix, &file)))
                            });
                        }
                    }
                }
            }
        }
        // The layer directory the last lower entries came from, kept open
        // between them but not across a subdirectory's walk.
        let mut parent: Option<(usize, OwnedFd)> = None;
        for (name, source) in all {
            let path = join(prefix, &name);
            let child_lower_path = join(lower_path, &name);
            match source {
                Source::Upper(below) => {
                    let Some(dir) = upper else { continue };
                    let st =
                        match rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                            Ok(st) => st,
                            Err(Errno::NOENT) => continue,
                            Err(e) => {
                                return Err(e).with_context(|| format!("reading {}", shown(&path)));
                            }
                        };
                    let t = FileType::from_raw_mode(st.st_mode);
                    if format::is_whiteout_stat(&st) || self.is_launcher_file(&path, t, &st) {
                        continue;
                    }
                    if t != FileType::Directory {
                        if let Some(e) = leaf(dir, &name, path, &st)? {
                            (self.visit)(e)?;
                        }
                        continue;
                    }
                    let Some(UpperDir {
                        fd,
                        attrs,
                        opaque,
                        redirect,
                    }) = self.upper_dir(dir, &name, &path, &st, lower_path)?
                    else {
                        continue;
                    };
                    let (opaque, sub_path, sub) = match redirect {
                        Some(target) => {
                            let sub = self.lower_dir(&target)?;
                            (true, target, sub)
                        }
                        None if opaque => (true, child_lower_path, None),
                        None => (false, child_lower_path, below.and_then(|b| b.dir)),
                    };
                    (self.visit)(attrs.entry(path.clone(), Kind::Dir { opaque }, &st))?;
                    parent = None;
                    self.whole(Some(fd.as_fd()), &path, &sub_path, sub.as_ref())?;
                }
                Source::Lower(e) => {
                    let (Some(lowers), Some(ld)) = (self.lowers, lower) else {
                        continue;
                    };
                    if parent.as_ref().map(|(l, _)| *l) != Some(e.layer) {
                        parent = None;
                        match lowers.open_in(e.layer, &ld.path, OFlags::RDONLY | OFlags::DIRECTORY)
                        {
                            Ok(fd) => parent = Some((e.layer, fd)),
                            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                            Err(err) => {
                                return Err(err).with_context(|| {
                                    format!("opening {} in the image", shown(&ld.path))
                                });
                            }
                        }
                    }
                    let Some((_, pfd)) = &parent else { continue };
                    let Some(sub) = e.dir else {
                        if let Some(entry) = leaf(pfd.as_fd(), &name, path, &e.st)? {
                            (self.visit)(entry)?;
                        }
                        continue;
                    };
                    let fd = match open(pfd.as_fd(), &name, OFlags::DIRECTORY) {
                        Ok(fd) => fd,
                        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                        Err(err) => {
                            return Err(err).with_context(|| {
                                format!("opening {} in the image", shown(&sub.path))
                            });
                        }
                    };
                    let (attrs, _) = true_attributes(&fd, &path, &e.st)?;
                    drop(fd);
                    (self.visit)(attrs.entry(path.clone(), Kind::Dir { opaque: false }, &e.st))?;
                    parent = None;
                    self.whole(None, &path, &sub.path, Some(&sub))?;
                }
            }
        }
        Ok(())
    }
}

/// The entry of `name` in `dir` (status `st`), not a directory; `None`
/// for what an image cannot hold or what vanished.
fn leaf(dir: BorrowedFd<'_>, name: &[u8], path: Vec<u8>, st: &Stat) -> Result<Option<Entry>> {
    let entry = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            // O_NONBLOCK: should the name be swapped for a fifo after
            // the stat, opening it must not hang (fstat then tells).
            let fd = match open(dir, name, OFlags::NONBLOCK | OFlags::NOCTTY) {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::LOOP) => return Ok(None),
                Err(e) => return Err(e).with_context(|| format!("opening {}", shown(&path))),
            };
            let fst = rustix::fs::fstat(&fd)
                .map_err(std::io::Error::from)
                .with_context(|| format!("reading {}", shown(&path)))?;
            if FileType::from_raw_mode(fst.st_mode) != FileType::RegularFile {
                return Ok(None);
            }
            let (attrs, recorded) = true_attributes(&fd, &path, &fst)?;
            let kind = match recorded {
                Some(RecordedType::Char { major, minor }) => Kind::Char { major, minor },
                Some(RecordedType::Block { major, minor }) => Kind::Block { major, minor },
                Some(RecordedType::Pipe) => Kind::Fifo,
                _ => Kind::File {
                    link_key: (fst.st_nlink > 1).then_some((fst.st_dev, fst.st_ino)),
                    size: fst.st_size.max(0) as u64,
                    fd,
                },
            };
            attrs.entry(path, kind, &fst)
        }
        FileType::Symlink => {
            let target = match rustix::fs::readlinkat(dir, name, Vec::new()) {
                Ok(t) => t.into_bytes(),
                Err(Errno::NOENT | Errno::INVAL) => return Ok(None),
                Err(e) => return Err(e).with_context(|| format!("reading {}", shown(&path))),
            };
            plain(path, Kind::Symlink { target }, 0o777, st)
        }
        FileType::Fifo => plain(path, Kind::Fifo, st.st_mode & 0o7777, st),
        FileType::Socket => {
            tracing::debug!(
                "{}: a socket, which an image cannot hold; skipped",
                shown(&path)
            );
            return Ok(None);
        }
        _ => {
            tracing::warn!(
                "{}: a device node, which hutch never writes in an upper dir; skipped",
                shown(&path)
            );
            return Ok(None);
        }
    };
    Ok(Some(entry))
}

fn open(dir: BorrowedFd<'_>, name: &[u8], extra: OFlags) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | extra,
        Mode::empty(),
    )
}

fn whiteout(path: Vec<u8>, st: &Stat) -> Entry {
    plain(path, Kind::Whiteout, 0o600, st)
}

/// An entry that carries no ownership record (owned by 0:0).
fn plain(path: Vec<u8>, kind: Kind, mode: u32, st: &Stat) -> Entry {
    Entry {
        path,
        kind,
        uid: 0,
        gid: 0,
        mode,
        mtime: st.st_mtime,
        xattrs: Vec::new(),
    }
}

/// The true owner, mode and xattrs of a regular file or directory.
struct Attributes {
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Attributes {
    fn entry(self, path: Vec<u8>, kind: Kind, st: &Stat) -> Entry {
        Entry {
            path,
            kind,
            uid: self.uid,
            gid: self.gid,
            mode: self.mode,
            mtime: st.st_mtime,
            xattrs: self.xattrs,
        }
    }
}

/// A regular file's or directory's attributes: owner and mode from its
/// record, else 0:0 and the mode on disk; and the type its record gives
/// (a regular file may stand for a device node or a fifo).
fn true_attributes(
    fd: &OwnedFd,
    path: &[u8],
    st: &Stat,
) -> Result<(Attributes, Option<RecordedType>)> {
    let record = format::read_override_stat(fd)
        .with_context(|| format!("reading the owner of {}", shown(path)))?;
    let (uid, gid, mode) = match &record {
        Some(r) => (r.uid, r.gid, r.mode),
        None => (0, 0, st.st_mode & 0o7777),
    };
    let xattrs = xattrs(fd).with_context(|| format!("reading the xattrs of {}", shown(path)))?;
    let attrs = Attributes {
        uid,
        gid,
        mode,
        xattrs,
    };
    Ok((attrs, record.and_then(|r| r.kind)))
}

/// The xattrs of `fd` as the container sees them: stored `user.*` names
/// only (an xattr the host set, such as an SELinux label, is not the
/// container's), reserved names of the format left out, foreign names
/// given back their own namespace.
fn xattrs(fd: &OwnedFd) -> std::io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let list = match read_sized(|buf| rustix::fs::flistxattr(fd, buf)) {
        Ok(l) => l,
        Err(e) if e.raw_os_error() == Some(Errno::OPNOTSUPP.raw_os_error()) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for stored in list.split(|&b| b == 0) {
        if !stored.starts_with(b"user.") {
            continue;
        }
        let Some(presented) = format::presented_xattr_name(stored) else {
            continue;
        };
        let value = match read_sized(|buf| rustix::fs::fgetxattr(fd, stored, buf)) {
            Ok(v) => v,
            Err(e) if e.raw_os_error() == Some(Errno::NODATA.raw_os_error()) => continue,
            Err(e) => return Err(e),
        };
        out.push((presented.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// Call `get` with a buffer big enough for its answer (`ERANGE` asks for
/// a bigger one; lists and values of xattrs are at most 64 KiB).
fn read_sized(get: impl Fn(&mut [u8]) -> Result<usize, Errno>) -> std::io::Result<Vec<u8>> {
    let mut size = 1024;
    loop {
        let mut buf = vec![0u8; size];
        match get(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::RANGE) if size < 1 << 17 => size *= 4,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::format::OverrideStat;
    use std::os::unix::fs::PermissionsExt;

    fn collect(dir: &Path) -> Vec<Entry> {
        let mut out = Vec::new();
        walk(dir, &[], &mut |e| {
            out.push(e);
            Ok(())
        })
        .unwrap();
        out
    }

    fn dirfd(p: &Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    /// The overlay keeps a fifo's setuid/setgid/sticky bits on disk in the
    /// upper dir (`overlay::format`, "Limits"): diff and commit see them.
    #[test]
    fn fifo_special_bits_are_kept() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o1621)).unwrap();
        let got = collect(d.path());
        let f = got.iter().find(|e| e.path == b"f").unwrap();
        assert!(matches!(f.kind, Kind::Fifo));
        assert_eq!(f.mode, 0o1621);
    }

    #[test]
    fn entries_come_in_podman_order_with_their_true_attributes() {
        let d = tempfile::tempdir().unwrap();
        let u = d.path();
        std::fs::create_dir_all(u.join("a/b")).unwrap();
        std::fs::create_dir(u.join("a-b")).unwrap();
        std::fs::write(u.join("a/b/f"), b"data").unwrap();
        std::fs::set_permissions(u.join("a/b/f"), std::fs::Permissions::from_mode(0o640)).unwrap();
        let f = rustix::fs::open(u.join("a/b/f"), OFlags::RDONLY, Mode::empty()).unwrap();
        format::write_override_stat(
            &f,
            &OverrideStat {
                uid: 1234,
                gid: 5678,
                mode: 0o4750,
                kind: Some(RecordedType::File),
            },
        )
        .unwrap();
        rustix::fs::fsetxattr(
            &f,
            "user.hutch.xattr.security.capability",
            b"cap",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        rustix::fs::fsetxattr(&f, "user.note", b"n", rustix::fs::XattrFlags::empty()).unwrap();
        std::fs::write(u.join("dev"), b"").unwrap();
        let f = rustix::fs::open(u.join("dev"), OFlags::RDONLY, Mode::empty()).unwrap();
        format::write_override_stat(
            &f,
            &OverrideStat {
                uid: 0,
                gid: 0,
                mode: 0o666,
                kind: Some(RecordedType::Char { major: 1, minor: 3 }),
            },
        )
        .unwrap();
        format::make_whiteout(dirfd(&u.join("a")), b"gone").unwrap();
        format::make_whiteout_file(dirfd(&u.join("a")), b"old").unwrap();
        format::set_opaque(dirfd(&u.join("a-b"))).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", u.join("link")).unwrap();
        std::fs::create_dir(u.join("etc")).unwrap();
        std::fs::write(u.join("etc/hosts"), b"").unwrap();
        std::fs::write(u.join("etc/hostname"), b"real content\n").unwrap();

        let got = collect(u);
        let paths: Vec<String> = got
            .iter()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .collect();
        // Depth first: "a/..." before "a-b" although '-' < '/'.
        assert_eq!(
            paths,
            [
                "a",
                "a/b",
                "a/b/f",
                "a/gone",
                "a/old",
                "a-b",
                "dev",
                "etc",
                "etc/hostname",
                "link"
            ]
        );
        let by = |p: &str| got.iter().find(|e| e.path == p.as_bytes()).unwrap();
        let f = by("a/b/f");
        assert_eq!((f.uid, f.gid, f.mode), (1234, 5678, 0o4750));
        assert!(matches!(
            f.kind,
            Kind::File {
                size: 4,
                link_key: None,
                ..
            }
        ));
        assert_eq!(
            f.xattrs,
            vec![
                (b"security.capability".to_vec(), b"cap".to_vec()),
                (b"user.note".to_vec(), b"n".to_vec())
            ]
        );
        assert!(matches!(by("a/gone").kind, Kind::Whiteout));
        assert!(matches!(by("a/old").kind, Kind::Whiteout));
        assert!(matches!(by("a-b").kind, Kind::Dir { opaque: true }));
        assert!(matches!(by("a").kind, Kind::Dir { opaque: false }));
        assert!(matches!(by("dev").kind, Kind::Char { major: 1, minor: 3 }));
        assert_eq!(by("dev").mode, 0o666);
        let a = by("a");
        let disk = std::fs::metadata(u.join("a")).unwrap().permissions().mode() & 0o7777;
        assert_eq!((a.uid, a.gid, a.mode), (0, 0, disk));
        match &by("link").kind {
            Kind::Symlink { target } => assert_eq!(target, b"/etc/shadow"),
            k => panic!("{k:?}"),
        }
    }
}
