//! A tar stream written out as files below a destination directory, for
//! `hutch cp` (both ways) and a tar on stdin.
//!
//! The stream is hostile (it comes from a container, or from whoever
//! feeds stdin) and nothing outside the destination may change:
//!
//! * names are normalised: leading `/`, `.` and empty components go
//!   (absolute names land inside the destination), a `..` component is
//!   refused;
//! * every parent directory is opened one component at a time from the
//!   destination's descriptor with `O_NOFOLLOW | O_DIRECTORY` (missing
//!   ones made with `mkdirat`): a symlink on the way, one the stream
//!   itself made included, is refused, never followed;
//! * the entry is made with `*at` calls on that parent: files with
//!   `O_CREAT | O_EXCL | O_NOFOLLOW` after removing a non-directory
//!   already there, symlinks with their target stored verbatim, hard
//!   links (to an entry of the same copy) without following;
//! * a copied item (`cp`, not a tar on stdin) must stay one item: every
//!   name and hard link target starts with the first entry's name.
//!
//! Modes and mtimes are kept (a directory's once everything below it is
//! written); owners as the copy asks ([`Owners`]). On the host, set-id
//! bits are dropped and devices (which an unprivileged user cannot make)
//! are left out and reported.

use anyhow::{Context, Result, bail};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Who owns what is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owners {
    /// Whoever writes (the user, on the host).
    Caller,
    /// uid and gid 0 (root of the container).
    Root,
    /// The numbers in the tar (`cp -a`).
    Archive,
}

/// How a stream is written out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    pub(crate) owners: Owners,
    /// On the host: no set-id bits, no devices.
    pub(crate) host: bool,
    /// The stream holds one item (a `cp` source) named by its first
    /// entry; anything else in it is refused.
    pub(crate) one_item: bool,
}

/// Where the entries go, decided once the first entry is known.
pub(crate) enum Target {
    /// Below this directory, with their names.
    Into(OwnedFd),
    /// The item (the first entry) becomes `name` in the directory
    /// `parent`, and what is below it below that.
    Renamed { parent: OwnedFd, name: Vec<u8> },
}

/// What was written.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    pub(crate) entries: u64,
    /// Devices left out (on the host), by entry name.
    pub(crate) skipped: Vec<String>,
}

fn shown(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

fn os(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// `raw` without leading `/`, `.` and empty components; None if it has a
/// `..` component or a NUL byte.
fn normalize(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return None,
            c if c.contains(&0) => return None,
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Some(out)
}

/// (parent, last component) of a normalised non-empty path.
fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

fn cstring(name: &[u8]) -> Result<CString> {
    CString::new(name).with_context(|| format!("the name {:?} contains a NUL byte", shown(name)))
}

/// An entry's metadata, as written at the end. Owners and time may be
/// blank in a tar some library wrote: owners are then needed only for
/// `-a`, and the time is left as it is.
struct Meta {
    mode: u32,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<u64>,
}

struct Extractor {
    opts: Options,
    target: Target,
    /// The first entry's normalised name (empty for `.`).
    top: Vec<u8>,
    /// The last parent directory opened, by its path below the base.
    parent_cache: Option<(Vec<u8>, OwnedFd)>,
    /// Directories written, to get their mode and mtime at the end.
    dirs: Vec<(Vec<u8>, Meta)>,
    done: Extracted,
}

/// Write the tar `stream` out; `decide` is given whether its first entry
/// is a directory and says where it goes. An empty stream writes nothing
/// (and `decide` is not called).
pub(crate) fn extract<R: Read>(
    stream: R,
    opts: Options,
    decide: impl FnOnce(bool) -> Result<Target>,
) -> Result<Extracted> {
    let mut archive = tar::Archive::new(stream);
    let mut decide = Some(decide);
    let mut ex: Option<Extractor> = None;
    let mut last = String::from("at its start");
    for entry in archive.entries().context("reading the tar stream")? {
        let mut entry = entry.with_context(|| format!("reading the tar stream {last}"))?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        last = format!("after entry {:?}", shown(&raw));
        let Some(name) = normalize(&raw) else {
            bail!(
                "tar entry {:?} leaves the destination (a `..` component): refused; \
                 nothing outside the destination was written",
                shown(&raw)
            );
        };
        let ex = match &mut ex {
            Some(ex) => ex,
            None => {
                let Some(decide) = decide.take() else {
                    bail!("internal error: no destination for the tar stream");
                };
                let top = match name.iter().position(|b| *b == b'/') {
                    Some(i) => name[..i].to_vec(),
                    None => name.clone(),
                };
                let target = decide(kind == tar::EntryType::Directory)?;
                ex.insert(Extractor {
                    opts,
                    target,
                    top,
                    parent_cache: None,
                    dirs: Vec::new(),
                    done: Extracted::default(),
                })
            }
        };
        ex.entry(&mut entry, &raw, &name, kind)
            .with_context(|| format!("tar entry {:?}", shown(&raw)))?;
    }
    // What follows the end-of-archive blocks, so the writer never sees a
    // closed pipe.
    let _ = std::io::copy(&mut archive.into_inner(), &mut std::io::sink());
    match ex {
        Some(mut ex) => {
            ex.finish_dirs()?;
            Ok(ex.done)
        }
        None => Ok(Extracted::default()),
    }
}

impl Extractor {
    fn base(&self) -> BorrowedFd<'_> {
        match &self.target {
            Target::Into(fd) => fd.as_fd(),
            Target::Renamed { parent, .. } => parent.as_fd(),
        }
    }

    /// The path below the base that the normalised `name` goes to (empty:
    /// the base itself).
    fn place(&self, name: &[u8]) -> Result<Vec<u8>> {
        let rest = if self.top.is_empty() {
            Some(name)
        } else if name == self.top.as_slice() {
            Some(&[][..])
        } else {
            name.strip_prefix(self.top.as_slice())
                .and_then(|r| r.strip_prefix(b"/"))
        };
        if self.opts.one_item && rest.is_none() {
            bail!(
                "it is not below {:?}, the item being copied: refused",
                shown(&self.top)
            );
        }
        Ok(match (&self.target, rest) {
            (Target::Into(_), _) | (Target::Renamed { .. }, None) => name.to_vec(),
            (Target::Renamed { name: new, .. }, Some(rest)) => {
                let mut p = new.clone();
                if !rest.is_empty() {
                    p.push(b'/');
                    p.extend_from_slice(rest);
                }
                p
            }
        })
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        name: &[u8],
        kind: tar::EntryType,
    ) -> Result<()> {
        let rel = self.place(name)?;
        if rel.is_empty() {
            // `.` of a directory's contents copied into an existing one:
            // that directory is left as it is.
            return Ok(());
        }
        let h = entry.header();
        let meta = Meta {
            mode: h.mode().context("reading its mode")?,
            uid: h.uid().ok(),
            gid: h.gid().ok(),
            mtime: h.mtime().ok(),
        };
        let (parent_rel, last) = split_last(&rel);
        let last = cstring(last)?;
        let parent = self.parent(parent_rel)?;
        let parent = parent.as_fd();
        self.done.entries += 1;
        match kind {
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(parent, &last, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        let st = rustix::fs::statat(parent, &last, AtFlags::SYMLINK_NOFOLLOW)
                            .map_err(os)?;
                        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                            bail!(
                                "{} exists and is not a directory: it is not replaced by one",
                                shown(&rel)
                            );
                        }
                    }
                    Err(e) => return Err(os(e)).context("making the directory"),
                }
                self.dirs.push((rel, meta));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                remove_non_dir(parent, &last, &rel)?;
                let fd = rustix::fs::openat(
                    parent,
                    &last,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(os)
                .context("creating the file")?;
                let mut file = std::fs::File::from(fd);
                std::io::copy(entry, &mut file).context("writing the file")?;
                self.set_meta(&OwnedFd::from(file), &meta)?;
            }
            tar::EntryType::Symlink => {
                let Some(target) = entry.link_name_bytes() else {
                    bail!("a symlink without a target");
                };
                remove_non_dir(parent, &last, &rel)?;
                rustix::fs::symlinkat(target.as_ref(), parent, &last)
                    .map_err(os)
                    .context("making the symlink")?;
                self.chown_at(parent, &last, &meta)?;
                times_at(parent, &last, &meta);
            }
            tar::EntryType::Link => {
                let Some(target) = entry.link_name_bytes() else {
                    bail!("a hard link without a target");
                };
                let Some(tname) = normalize(&target) else {
                    bail!(
                        "hard link to {:?} leaves the destination: refused",
                        shown(&target)
                    );
                };
                let trel = self
                    .place(&tname)
                    .with_context(|| format!("hard link to {:?}", shown(&target)))?;
                if trel.is_empty() || trel == rel {
                    bail!("hard link to {:?}: not a file of this copy", shown(&target));
                }
                let (tparent_rel, tlast) = split_last(&trel);
                let tlast = cstring(tlast)?;
                let tparent = open_dir_beneath(self.base(), tparent_rel, false)
                    .with_context(|| format!("hard link to {:?}", shown(&target)))?;
                remove_non_dir(parent, &last, &rel)?;
                rustix::fs::linkat(&tparent, &tlast, parent, &last, AtFlags::empty())
                    .map_err(os)
                    .with_context(|| format!("linking it to {:?}", shown(&target)))?;
            }
            tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block => {
                let ty = match kind {
                    tar::EntryType::Fifo => FileType::Fifo,
                    tar::EntryType::Char => FileType::CharacterDevice,
                    _ => FileType::BlockDevice,
                };
                if self.opts.host && ty != FileType::Fifo {
                    self.done.skipped.push(shown(raw));
                    return Ok(());
                }
                let dev = match ty {
                    FileType::Fifo => 0,
                    _ => rustix::fs::makedev(
                        h.device_major().ok().flatten().unwrap_or(0),
                        h.device_minor().ok().flatten().unwrap_or(0),
                    ),
                };
                remove_non_dir(parent, &last, &rel)?;
                match rustix::fs::mknodat(parent, &last, ty, Mode::from_raw_mode(0o600), dev) {
                    Ok(()) => {}
                    // Devices cannot be made in a user namespace.
                    Err(Errno::PERM) if ty != FileType::Fifo => {
                        self.done.skipped.push(shown(raw));
                        return Ok(());
                    }
                    Err(e) => return Err(os(e)).context("making the node"),
                }
                self.chown_at(parent, &last, &meta)?;
                rustix::fs::chmodat(
                    parent,
                    &last,
                    Mode::from_raw_mode(self.mode(meta.mode)),
                    AtFlags::empty(),
                )
                .map_err(os)
                .context("setting its mode")?;
                times_at(parent, &last, &meta);
            }
            // Anything else (a PAX global header, vendor types) carries no file.
            _ => {
                self.done.entries -= 1;
            }
        }
        Ok(())
    }

    /// The parent directory `rel` below the base (made if missing), from
    /// the cache when it is the last one used.
    fn parent(&mut self, rel: &[u8]) -> Result<OwnedFd> {
        if let Some((path, fd)) = &self.parent_cache
            && path.as_slice() == rel
        {
            return fd.try_clone().context("duplicating a descriptor");
        }
        let fd = open_dir_beneath(self.base(), rel, true)?;
        self.parent_cache = Some((
            rel.to_vec(),
            fd.try_clone().context("duplicating a descriptor")?,
        ));
        Ok(fd)
    }

    fn mode(&self, mode: u32) -> u32 {
        if self.opts.host {
            mode & 0o1777
        } else {
            mode & 0o7777
        }
    }

    fn ids(&self, meta: &Meta) -> Result<Option<(rustix::fs::Uid, rustix::fs::Gid)>> {
        let (uid, gid) = match self.opts.owners {
            Owners::Caller => return Ok(None),
            Owners::Root => (0, 0),
            Owners::Archive => match (meta.uid, meta.gid) {
                (Some(u), Some(g)) => (u, g),
                _ => bail!("its owner is blank in the tar: -a cannot keep it"),
            },
        };
        let (Ok(u), Ok(g)) = (u32::try_from(uid), u32::try_from(gid)) else {
            bail!("owner {uid}:{gid} is out of range");
        };
        if u == u32::MAX || g == u32::MAX {
            bail!("owner {uid}:{gid} is out of range");
        }
        Ok(Some((
            rustix::fs::Uid::from_raw(u),
            rustix::fs::Gid::from_raw(g),
        )))
    }

    fn chown_failed(e: Errno, meta: &Meta, owners: Owners) -> anyhow::Error {
        if e == Errno::INVAL && owners == Owners::Archive {
            anyhow::anyhow!(
                "setting its owner {}:{}: the container's user namespace has no such id \
                 (drop -a to make it root's)",
                meta.uid.unwrap_or(0),
                meta.gid.unwrap_or(0)
            )
        } else {
            anyhow::Error::from(os(e)).context("setting its owner")
        }
    }

    /// Owner, then mode (a chown clears set-id bits), then times.
    fn set_meta(&self, fd: &OwnedFd, meta: &Meta) -> Result<()> {
        if let Some((u, g)) = self.ids(meta)? {
            rustix::fs::fchown(fd, Some(u), Some(g))
                .map_err(|e| Self::chown_failed(e, meta, self.opts.owners))?;
        }
        rustix::fs::fchmod(fd, Mode::from_raw_mode(self.mode(meta.mode)))
            .map_err(os)
            .context("setting its mode")?;
        if let Some(t) = meta.mtime {
            rustix::fs::futimens(fd, &times(t))
                .map_err(os)
                .context("setting its modification time")?;
        }
        Ok(())
    }

    fn chown_at(&self, parent: BorrowedFd<'_>, last: &CString, meta: &Meta) -> Result<()> {
        if let Some((u, g)) = self.ids(meta)? {
            rustix::fs::chownat(parent, last, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| Self::chown_failed(e, meta, self.opts.owners))?;
        }
        Ok(())
    }

    /// Modes and times of the directories written, deepest first (a
    /// directory without write or search permission last).
    fn finish_dirs(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (rel, meta) in dirs.iter().rev() {
            let fd = open_dir_beneath(self.base(), rel, false)
                .with_context(|| format!("directory {:?}", shown(rel)))?;
            self.set_meta(&fd, meta)
                .with_context(|| format!("directory {:?}", shown(rel)))?;
        }
        Ok(())
    }
}

/// The entry's time on what `last` names (not followed), if it has one.
fn times_at(parent: BorrowedFd<'_>, last: &CString, meta: &Meta) {
    if let Some(t) = meta.mtime {
        let _ = rustix::fs::utimensat(parent, last, &times(t), AtFlags::SYMLINK_NOFOLLOW);
    }
}

fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(mtime).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Remove what is at `last` in `parent` unless it is a directory (which
/// a non-directory does not replace), never following it.
fn remove_non_dir(parent: BorrowedFd<'_>, last: &CString, rel: &[u8]) -> Result<()> {
    match rustix::fs::statat(parent, last, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(os(e)).with_context(|| format!("looking at {}", shown(rel))),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => bail!(
            "{} exists and is a directory: it is not replaced by a non-directory",
            shown(rel)
        ),
        Ok(_) => rustix::fs::unlinkat(parent, last, AtFlags::empty())
            .map_err(os)
            .with_context(|| format!("replacing {}", shown(rel))),
    }
}

/// The directory `rel` (normalised, maybe empty) below `base`, one
/// component at a time without following symlinks; missing components
/// are made when `create`.
fn open_dir_beneath(base: BorrowedFd<'_>, rel: &[u8], create: bool) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur = rustix::fs::openat(base, ".", flags, Mode::empty())
        .map_err(os)
        .context("opening the destination")?;
    let mut done = 0;
    for comp in rel.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
        done += comp.len() + 1;
        let here = || shown(&rel[..(done - 1).min(rel.len())]);
        let c = cstring(comp)?;
        let next = match rustix::fs::openat(&cur, &c, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&cur, &c, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => {
                        return Err(os(e))
                            .with_context(|| format!("making the directory {}", here()));
                    }
                }
                rustix::fs::openat(&cur, &c, flags, Mode::empty())
                    .map_err(os)
                    .with_context(|| format!("opening the directory {}", here()))?
            }
            Err(Errno::LOOP | Errno::NOTDIR) => bail!(
                "{} is a symlink or not a directory: refusing to write through it",
                here()
            ),
            Err(e) => {
                return Err(os(e)).with_context(|| format!("opening the directory {}", here()));
            }
        };
        cur = next;
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_dotdot_refused() {
        assert_eq!(normalize(b"/etc//./passwd").unwrap(), b"etc/passwd");
        assert_eq!(normalize(b"./").unwrap(), b"");
        assert_eq!(normalize(b"a/../b"), None);
        assert_eq!(normalize(b"../x"), None);
        assert_eq!(split_last(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split_last(b"c"), (&b""[..], &b"c"[..]));
    }
}
