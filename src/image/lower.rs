//! The merged view of a container's read-only layers (its image's
//! unpacked layers, top first), for the readers of its upper dir: what the
//! layers show at a path (`hutch diff`) and the whole content of a lower
//! directory (a directory the container renamed, which `hutch commit` and
//! `hutch diff` write out whole, see `overlay::format`, "Renamed
//! directories").
//!
//! The rules are the overlay's (`overlay::layers`, `resolve` and `list`):
//! a whiteout (a 0:0 character device, or a `.wh.NAME` file where the
//! layer has no `NAME`) hides the name in the layers below; an opaque
//! directory (by xattr or `.wh..wh..opq` marker) hides the directories
//! below it; a non-directory hides everything below it. Image layers hold
//! no redirect records (the unpacker never stores `user.overlay.*`), so
//! none is followed here.
//!
//! Symlinks are never followed: paths are opened below a layer root with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (or name by name with
//! `O_NOFOLLOW`). Descriptors stay bounded however deep a tree is: a
//! [`Lowers`] holds one per layer root; [`Lowers::list`] holds one layer
//! directory at a time and [`Lowers::lookup`] the directories of one path
//! level, all closed on return; a [`LowerDir`] is a path and a list of
//! layer numbers, reopened from the roots when it is listed.

use crate::overlay::format;
use crate::overlay::relpath;
use anyhow::{Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// The read-only layers of a container, top first.
pub struct Lowers {
    roots: Vec<OwnedFd>,
}

/// A directory of the merged view: its path and the layers that hold it
/// (top first, ending at an opaque one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerDir {
    /// Relative to the layer roots (`usr/lib`); empty for the root.
    pub path: Vec<u8>,
    /// Indexes into the layers given to [`Lowers::open`].
    pub layers: Vec<usize>,
}

/// One visible entry of a merged directory.
#[derive(Debug)]
pub struct LowerEntry {
    pub name: Vec<u8>,
    /// The layer holding the visible entry.
    pub layer: usize,
    /// Its status there.
    pub st: Stat,
    /// For a directory: the layers that hold it.
    pub dir: Option<LowerDir>,
}

/// What [`Lowers::lookup`] found at a path.
pub struct Found {
    /// The visible entry's status.
    pub st: Stat,
    /// For a directory, the directory in that layer, open.
    pub dir: Option<OwnedFd>,
}

/// One name resolved in a directory of the merged view.
struct Resolved {
    st: Stat,
    /// For a directory: the layers holding it with the directory open in
    /// each (the top one only when the merge below was not asked for).
    dirs: Vec<(usize, OwnedFd)>,
}

fn joined(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn open_sub(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Whether `dir` has the fallback whiteout `.wh.NAME` (a regular file).
fn has_whiteout_file(dir: BorrowedFd<'_>, name: &[u8]) -> std::io::Result<bool> {
    let mut wh = format::WHITEOUT_PREFIX.to_vec();
    wh.extend_from_slice(name);
    match rustix::fs::statat(dir, wh.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(FileType::from_raw_mode(st.st_mode) == FileType::RegularFile),
        Err(Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl Lowers {
    /// Open the layer dirs `lowers` (top first).
    pub fn open(lowers: &[PathBuf]) -> Result<Lowers> {
        let mut roots = Vec::with_capacity(lowers.len());
        for l in lowers {
            let fd = rustix::fs::open(
                l,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(std::io::Error::from)
            .with_context(|| format!("opening the layer {}", l.display()))?;
            roots.push(fd);
        }
        Ok(Lowers { roots })
    }

    /// Open `path` (relative, `/`-separated; empty for the root) in the
    /// layer `layer` with `flags`, following no symlink: one on the way
    /// is `ENOTDIR`, one at the end `ELOOP`.
    pub fn open_in(&self, layer: usize, path: &[u8], flags: OFlags) -> Result<OwnedFd, Errno> {
        let root = self.roots.get(layer).ok_or(Errno::BADF)?.as_fd();
        if path.is_empty() {
            return rustix::fs::openat(
                root,
                ".",
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
        }
        relpath::open_below(root, path, flags)
    }

    /// The directory `path` (relative, `/`-separated, at least one name) of
    /// the merged view; `None` when the layers have nothing there, or a
    /// whiteout or a non-directory.
    pub fn dir(&self, path: &[u8]) -> std::io::Result<Option<LowerDir>> {
        let Some(live) = self.dirs_along(path)? else {
            return Ok(None);
        };
        Ok(Some(LowerDir {
            path: path.to_vec(),
            layers: live.iter().map(|(l, _)| *l).collect(),
        }))
    }

    /// What the merged view shows at `path` (relative, `/`-separated, at
    /// least one name): its top entry, and for a directory that directory
    /// open in its layer.
    pub fn lookup(&self, path: &[u8]) -> std::io::Result<Option<Found>> {
        let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (Some(&path[..i]), &path[i + 1..]),
            None => (None, path),
        };
        let live = match parent {
            Some(p) => match self.dirs_along(p)? {
                Some(live) => live,
                None => return Ok(None),
            },
            None => self.root_dirs()?,
        };
        Ok(resolve(&live, name, false)?.map(|r| Found {
            st: r.st,
            dir: r.dirs.into_iter().next().map(|(_, fd)| fd),
        }))
    }

    fn root_dirs(&self) -> std::io::Result<Vec<(usize, OwnedFd)>> {
        let mut live = Vec::with_capacity(self.roots.len());
        for (l, r) in self.roots.iter().enumerate() {
            live.push((l, rustix::io::dup(r)?));
        }
        Ok(live)
    }

    /// The layers holding the directory `path`, with it open in each.
    fn dirs_along(&self, path: &[u8]) -> std::io::Result<Option<Vec<(usize, OwnedFd)>>> {
        let mut live = self.root_dirs()?;
        for name in path.split(|&b| b == b'/') {
            match resolve(&live, name, true)? {
                Some(r) if !r.dirs.is_empty() => live = r.dirs,
                _ => return Ok(None),
            }
        }
        Ok(Some(live))
    }

    /// The visible entries of `dir`, sorted by name (bytewise), without
    /// whiteouts and `.wh.*` names.
    pub fn list(&self, dir: &LowerDir) -> std::io::Result<Vec<LowerEntry>> {
        #[derive(Default)]
        struct Seen {
            top: Option<(usize, Stat)>,
            dir_layers: Vec<usize>,
            /// Nothing below counts any more.
            closed: bool,
        }
        let mut seen: BTreeMap<Vec<u8>, Seen> = BTreeMap::new();
        for &l in &dir.layers {
            let fd = match self.open_in(l, &dir.path, OFlags::RDONLY | OFlags::DIRECTORY) {
                Ok(fd) => fd,
                // Gone since the lookup (layers do not change, but an
                // error here would stop a whole commit).
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut real = Vec::new();
            let mut hidden = Vec::new();
            let mut d = rustix::fs::Dir::read_from(&fd)?;
            while let Some(e) = d.read() {
                let e = e?;
                let name = e.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let st = match rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                };
                if format::is_whiteout_stat(&st) {
                    hidden.push(name.to_vec());
                } else if format::is_reserved_name(name) {
                    if let Some(target) = format::whiteout_target(name)
                        && FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                    {
                        hidden.push(target.to_vec());
                    }
                } else {
                    real.push((name.to_vec(), st));
                }
            }
            // This layer's entries first: its whiteouts hide names in the
            // layers below only.
            for (name, st) in real {
                let s = seen.entry(name.clone()).or_default();
                if s.closed {
                    continue;
                }
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if s.top.is_none() {
                    s.top = Some((l, st));
                }
                if !is_dir {
                    s.closed = true;
                    continue;
                }
                s.dir_layers.push(l);
                match open_sub(fd.as_fd(), &name) {
                    Ok(sub) => {
                        if format::is_opaque(&sub)? {
                            s.closed = true;
                        }
                    }
                    // Gone or replaced since the listing: nothing more
                    // below.
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {
                        s.dir_layers.pop();
                        s.closed = true;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            for name in hidden {
                seen.entry(name).or_default().closed = true;
            }
        }
        Ok(seen
            .into_iter()
            .filter_map(|(name, s)| {
                let (layer, st) = s.top?;
                let dir = (FileType::from_raw_mode(st.st_mode) == FileType::Directory).then(|| {
                    LowerDir {
                        path: joined(&dir.path, &name),
                        layers: s.dir_layers,
                    }
                });
                Some(LowerEntry {
                    name,
                    layer,
                    st,
                    dir,
                })
            })
            .collect())
    }
}

/// Resolve `name` in the directory open in each of `live` (top first, as
/// the merged view holds it). `merge`: open the directory in every layer
/// that holds it below the top one too (else only in the top one).
fn resolve(
    live: &[(usize, OwnedFd)],
    name: &[u8],
    merge: bool,
) -> std::io::Result<Option<Resolved>> {
    let mut found: Option<Resolved> = None;
    for (l, dir) in live {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG) => {
                if has_whiteout_file(dir.as_fd(), name)? {
                    break;
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if format::is_whiteout_stat(&st) {
            break;
        }
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        let f = found.get_or_insert_with(|| Resolved {
            st,
            dirs: Vec::new(),
        });
        if !is_dir {
            break;
        }
        let sub = match open_sub(dir.as_fd(), name) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => break,
            Err(e) => return Err(e.into()),
        };
        let opaque = merge && format::is_opaque(&sub)?;
        f.dirs.push((*l, sub));
        if !merge || opaque {
            break;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(entries: &[LowerEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.name).into_owned())
            .collect()
    }

    /// A path longer than the kernel takes at once opens name by name; a
    /// symlink on the way is never followed, short path or long.
    #[test]
    fn paths_open_below_a_layer_root_without_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let l = d.path().join("l");
        let name = "d".repeat(200);
        std::fs::create_dir(&l).unwrap();
        // 25 levels of 200 bytes, made name by name (the kernel refuses
        // the whole path).
        let mut at =
            rustix::fs::open(&l, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        for _ in 0..25 {
            rustix::fs::mkdirat(&at, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            at = rustix::fs::openat(
                &at,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .unwrap();
        }
        let f = rustix::fs::openat(
            &at,
            "f",
            OFlags::WRONLY | OFlags::CREATE,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&f, b"x").unwrap();
        std::fs::create_dir_all(l.join("real/sub")).unwrap();
        std::os::unix::fs::symlink("real", l.join("link")).unwrap();
        std::os::unix::fs::symlink(&name, l.join("far")).unwrap();
        let lowers = Lowers::open(&[l]).unwrap();
        let mut rel = vec![name.as_str(); 25].join("/").into_bytes();
        rel.extend_from_slice(b"/f");
        assert!(rel.len() > relpath::DIRECT_MAX);
        let fd = lowers.open_in(0, &rel, OFlags::RDONLY).unwrap();
        assert_eq!(rustix::fs::fstat(&fd).unwrap().st_size, 1);
        // Control: the real path opens; through the symlink it does not.
        lowers
            .open_in(0, b"real/sub", OFlags::RDONLY | OFlags::DIRECTORY)
            .unwrap();
        let mut far = b"far".to_vec();
        far.extend_from_slice(&rel[name.len()..]);
        // Control: the same path through the real first name opens.
        assert!(lowers.open_in(0, &rel, OFlags::RDONLY).is_ok());
        for through in [&b"link/sub"[..], b"link", &far[..]] {
            let r = lowers.open_in(0, through, OFlags::RDONLY);
            assert!(
                matches!(r, Err(Errno::NOTDIR | Errno::LOOP)),
                "{:?}: {r:?}",
                String::from_utf8_lossy(through)
            );
        }
        let mut long_link = b"link/".to_vec();
        long_link.extend_from_slice(&rel);
        assert!(lowers.open_in(0, &long_link, OFlags::RDONLY).is_err());
        // Out of range: an error, no panic.
        assert_eq!(
            lowers.open_in(3, b"real", OFlags::RDONLY).err(),
            Some(Errno::BADF)
        );
    }

    /// The merged listing and the lookup follow the overlay's rules.
    #[test]
    fn merged_listing_and_lookup() {
        let d = tempfile::tempdir().unwrap();
        let (top, bottom) = (d.path().join("top"), d.path().join("bottom"));
        for dir in ["d/keep", "d/opq", "d/shadowed", "d/replaced"] {
            std::fs::create_dir_all(bottom.join(dir)).unwrap();
        }
        for f in ["d/gone", "d/gone-file", "d/keep/k", "d/opq/below"] {
            std::fs::write(bottom.join(f), b"b").unwrap();
        }
        std::fs::create_dir_all(top.join("d/opq")).unwrap();
        std::fs::create_dir_all(top.join("d/keep")).unwrap();
        let dfd = rustix::fs::open(top.join("d"), OFlags::RDONLY, Mode::empty()).unwrap();
        format::make_whiteout(&dfd, b"gone").unwrap();
        format::make_whiteout_file(&dfd, b"gone-file").unwrap();
        format::make_whiteout(&dfd, b"shadowed").unwrap();
        format::set_opaque(
            rustix::fs::open(top.join("d/opq"), OFlags::RDONLY, Mode::empty()).unwrap(),
        )
        .unwrap();
        std::fs::write(top.join("d/replaced"), b"t").unwrap();
        let lowers = Lowers::open(&[top, bottom]).unwrap();
        let dir = lowers.dir(b"d").unwrap().unwrap();
        assert_eq!(dir.layers, [0, 1]);
        let list = lowers.list(&dir).unwrap();
        assert_eq!(names_of(&list), ["keep", "opq", "replaced"]);
        let by = |n: &str| list.iter().find(|e| e.name == n.as_bytes()).unwrap();
        assert_eq!(by("keep").dir.as_ref().unwrap().layers, [0, 1]);
        assert_eq!(by("opq").dir.as_ref().unwrap().layers, [0]);
        assert!(by("replaced").dir.is_none());
        assert_eq!(by("replaced").layer, 0);
        assert_eq!(
            names_of(&lowers.list(by("keep").dir.as_ref().unwrap()).unwrap()),
            ["k"]
        );
        assert!(
            lowers
                .list(by("opq").dir.as_ref().unwrap())
                .unwrap()
                .is_empty()
        );
        for hidden in [
            &b"d/gone"[..],
            b"d/gone-file",
            b"d/shadowed",
            b"d/opq/below",
        ] {
            assert!(lowers.lookup(hidden).unwrap().is_none(), "{hidden:?}");
            assert!(lowers.dir(hidden).unwrap().is_none(), "{hidden:?}");
        }
        assert!(lowers.lookup(b"d/keep/k").unwrap().is_some());
        assert!(lowers.lookup(b"d/keep").unwrap().unwrap().dir.is_some());
        assert!(lowers.lookup(b"d/replaced").unwrap().unwrap().dir.is_none());
        // A file hides the directory below it.
        assert!(lowers.dir(b"d/replaced").unwrap().is_none());
    }
}
