//! A file tree as a tar stream: one item (file, symlink, directory with
//! everything below it) for `hutch cp`, or a whole root for `hutch
//! export`.
//!
//! Below the item every entry is opened relative to its directory's
//! descriptor with `O_NOFOLLOW`: symlinks are written as symlinks, never
//! followed, and a tree that changes while it is read cannot lead the
//! walk elsewhere. Owners are the numbers the reader sees (inside a
//! container's user namespace, the container's), modes and mtimes as
//! they are; hard links within the tree become tar hard links; sockets
//! are left out. A file that shrinks while it is read is padded with
//! zeros and one that grows is cut, so the stream stays a valid tar.

use super::paths::{Base, ItemPath};
use anyhow::{Context, Result, bail};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Regular files are opened without blocking (a FIFO swapped in after the
/// stat must not hang the walk) and never as a controlling terminal.
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

fn os(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

fn shown(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// What an entry holds besides its header.
enum Content {
    Dir(OwnedFd),
    File(OwnedFd),
    Symlink(Vec<u8>),
    /// FIFOs and devices: the header says everything.
    Node,
    /// Sockets: not copied.
    Skip,
}

/// Writes entries into a tar stream.
struct Writer<'a, W: Write> {
    out: &'a mut tar::Builder<W>,
    /// (dev, ino) of files with several links -> the first name written.
    links: HashMap<(u64, u64), Vec<u8>>,
}

/// Write the item `path` (resolved in `base`) and everything below it.
/// Its entries are named after its last component (`.` for a
/// directory's contents, `DIR/.`). A symlink as the last component is
/// followed only with `follow` (or a trailing `/`). `place` names where
/// the path is looked for, in messages ("in container c").
pub(crate) fn write_item<W: Write>(
    out: &mut tar::Builder<W>,
    base: Base<'_>,
    path: &ItemPath,
    follow: bool,
    place: &str,
) -> Result<()> {
    let missing = |e: Errno| -> anyhow::Error {
        if e == Errno::NOENT {
            anyhow::anyhow!("{} does not exist {place}", path.shown)
        } else if e == Errno::NOTDIR {
            anyhow::anyhow!(
                "{}: a component of the path is not a directory {place}",
                path.shown
            )
        } else {
            anyhow::anyhow!("{} {place}: {}", path.shown, os(e))
        }
    };
    let mut w = Writer {
        out,
        links: HashMap::new(),
    };
    let (name, st, content) = match &path.split {
        Some((parent, last)) if !follow && !path.slash => {
            let dir = base
                .open(parent, OFlags::PATH | OFlags::DIRECTORY, true)
                .map_err(missing)?;
            let cname = CString::new(last.clone())
                .with_context(|| format!("{}: the path contains a NUL byte", path.shown))?;
            let st =
                rustix::fs::statat(&dir, &cname, AtFlags::SYMLINK_NOFOLLOW).map_err(missing)?;
            let content = open_child(dir.as_fd(), &cname, &st)
                .with_context(|| format!("reading {} {place}", path.shown))?;
            (last.clone(), st, content)
        }
        _ => {
            let name = match &path.split {
                Some((_, last)) => last.clone(),
                None => b".".to_vec(),
            };
            let fd = base.open(&path.full, OFlags::PATH, true).map_err(missing)?;
            let st = rustix::fs::fstat(&fd).map_err(missing)?;
            let content = match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => Content::Dir(
                    rustix::fs::openat(&fd, ".", DIR_FLAGS, Mode::empty()).map_err(|e| {
                        anyhow::anyhow!("opening {} {place}: {}", path.shown, os(e))
                    })?,
                ),
                _ if path.slash || path.split.is_none() => {
                    bail!("{} is not a directory {place}", path.shown)
                }
                FileType::RegularFile => {
                    let f = base
                        .open(&path.full, FILE_FLAGS.difference(OFlags::NOFOLLOW), true)
                        .map_err(missing)?;
                    let now = rustix::fs::fstat(&f).map_err(missing)?;
                    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
                        bail!("{} changed while it was being copied {place}", path.shown);
                    }
                    Content::File(f)
                }
                FileType::Socket => Content::Skip,
                _ => Content::Node,
            };
            (name, st, content)
        }
    };
    w.entry(&name, &st, content)
}

/// Write everything below the directory `root` (not itself), named
/// relative to it: a root filesystem as `podman export` gives it.
pub(crate) fn write_root<W: Write>(out: &mut tar::Builder<W>, root: BorrowedFd<'_>) -> Result<()> {
    let dir = rustix::fs::openat(root, ".", DIR_FLAGS, Mode::empty())
        .map_err(os)
        .context("opening the container's root directory")?;
    let mut w = Writer {
        out,
        links: HashMap::new(),
    };
    w.walk(dir, Vec::new())
}

/// Open what an entry's content is read from (`dir`/`name`, whose
/// lstat is `st`), never following a symlink.
fn open_child(dir: BorrowedFd<'_>, name: &CStr, st: &Stat) -> Result<Content> {
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            Content::Dir(rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()).map_err(os)?)
        }
        FileType::RegularFile => {
            let f = rustix::fs::openat(dir, name, FILE_FLAGS, Mode::empty()).map_err(os)?;
            let now = rustix::fs::fstat(&f).map_err(os)?;
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
                bail!("it changed while it was being copied");
            }
            Content::File(f)
        }
        FileType::Symlink => Content::Symlink(
            rustix::fs::readlinkat(dir, name, Vec::new())
                .map_err(os)?
                .into_bytes(),
        ),
        FileType::Socket | FileType::Unknown => Content::Skip,
        _ => Content::Node,
    })
}

fn header(st: &Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h
}

/// A file's data, exactly `left` bytes: cut if the file grew, padded
/// with zeros if it shrank since its size was read.
struct Exact {
    file: std::fs::File,
    left: u64,
    ended: bool,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = if self.ended {
            buf[..want].fill(0);
            want
        } else {
            match self.file.read(&mut buf[..want])? {
                0 => {
                    self.ended = true;
                    buf[..want].fill(0);
                    want
                }
                n => n,
            }
        };
        self.left -= n as u64;
        Ok(n)
    }
}

impl<W: Write> Writer<'_, W> {
    /// One entry named `name`, and below it if it is a directory.
    fn entry(&mut self, name: &[u8], st: &Stat, content: Content) -> Result<()> {
        let path = std::ffi::OsStr::from_bytes(name);
        match content {
            Content::Skip => Ok(()),
            Content::Dir(fd) => {
                let mut h = header(st, tar::EntryType::Directory);
                self.out
                    .append_data(&mut h, path, std::io::empty())
                    .with_context(|| format!("writing the entry of {}", shown(name)))?;
                self.walk(fd, name.to_vec())
            }
            Content::Symlink(target) => {
                let mut h = header(st, tar::EntryType::Symlink);
                crate::image::layer_tar::append_symlink(
                    self.out,
                    &mut h,
                    std::path::Path::new(path),
                    &target,
                )
                .with_context(|| format!("writing the entry of {}", shown(name)))
            }
            Content::Node => {
                let kind = match FileType::from_raw_mode(st.st_mode) {
                    FileType::Fifo => tar::EntryType::Fifo,
                    FileType::CharacterDevice => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                };
                let mut h = header(st, kind);
                if kind != tar::EntryType::Fifo {
                    h.set_device_major(rustix::fs::major(st.st_rdev))?;
                    h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
                }
                self.out
                    .append_data(&mut h, path, std::io::empty())
                    .with_context(|| format!("writing the entry of {}", shown(name)))
            }
            Content::File(fd) => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        let mut h = header(st, tar::EntryType::Link);
                        let first = std::ffi::OsStr::from_bytes(first).to_owned();
                        return self
                            .out
                            .append_link(&mut h, path, first)
                            .with_context(|| format!("writing the entry of {}", shown(name)));
                    }
                    self.links.insert(key, name.to_vec());
                }
                let mut h = header(st, tar::EntryType::Regular);
                let size = u64::try_from(st.st_size).unwrap_or(0);
                h.set_size(size);
                let data = Exact {
                    file: std::fs::File::from(fd),
                    left: size,
                    ended: false,
                };
                self.out
                    .append_data(&mut h, path, data)
                    .with_context(|| format!("copying {}", shown(name)))
            }
        }
    }

    /// Everything below the directory `dir`, whose entry is `prefix`
    /// (empty: the root of an export; `.`: a directory's contents).
    /// Depth-first with a stack of open directories, names sorted.
    fn walk(&mut self, dir: OwnedFd, prefix: Vec<u8>) -> Result<()> {
        struct Level {
            dir: OwnedFd,
            /// Names still to write, last first.
            names: Vec<CString>,
            prefix: Vec<u8>,
        }
        let list = |dir: &OwnedFd, prefix: &[u8]| -> Result<Vec<CString>> {
            let mut names = Vec::new();
            for e in Dir::read_from(dir)
                .map_err(os)
                .with_context(|| format!("listing {}", shown(prefix)))?
            {
                let e = e
                    .map_err(os)
                    .with_context(|| format!("listing {}", shown(prefix)))?;
                let n = e.file_name();
                if n.to_bytes() != b"." && n.to_bytes() != b".." {
                    names.push(n.to_owned());
                }
            }
            names.sort_unstable_by(|a, b| b.cmp(a));
            Ok(names)
        };
        let names = list(&dir, &prefix)?;
        let mut stack = vec![Level { dir, names, prefix }];
        while let Some(level) = stack.last_mut() {
            let Some(cname) = level.names.pop() else {
                stack.pop();
                continue;
            };
            let mut name = Vec::new();
            if !level.prefix.is_empty() && level.prefix != b"." {
                name.extend_from_slice(&level.prefix);
                name.push(b'/');
            }
            name.extend_from_slice(cname.to_bytes());
            let st = match rustix::fs::statat(&level.dir, &cname, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed since it was listed.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(os(e)).with_context(|| format!("reading {}", shown(&name))),
            };
            let content = match open_child(level.dir.as_fd(), &cname, &st) {
                Ok(c) => c,
                Err(e) => return Err(e.context(format!("reading {}", shown(&name)))),
            };
            match content {
                Content::Dir(fd) => {
                    let mut h = header(&st, tar::EntryType::Directory);
                    self.out
                        .append_data(&mut h, std::ffi::OsStr::from_bytes(&name), std::io::empty())
                        .with_context(|| format!("writing the entry of {}", shown(&name)))?;
                    let names = list(&fd, &name)?;
                    stack.push(Level {
                        dir: fd,
                        names,
                        prefix: name,
                    });
                }
                other => self.entry(&name, &st, other)?,
            }
        }
        Ok(())
    }
}
