//! Listing the context's files that a `COPY`/`ADD` source names.
//!
//! The context is opened once; every name below it is opened relative to
//! its parent's descriptor with `O_NOFOLLOW` and examined with
//! `AT_SYMLINK_NOFOLLOW`, so a symlink is an entry of its own and is never
//! followed: a link to `/etc` in the context is listed as a link, and no
//! file outside the context is ever read. A source that goes through a
//! symlink is refused with a message rather than resolved.
//!
//! Sources are context-relative (a leading `/` is the context root), may
//! hold wildcards in any component (Go `filepath.Match` syntax, per
//! directory level), and may not climb out with `..` (`a/../b` is `b`;
//! `../x` is refused). Files the ignore rules exclude are left out, as if
//! they were not in the context. Entries come sorted by their path's bytes.

use super::ignore::{Ignore, NameGlob};
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Directory levels below the context a walk goes down.
const MAX_DEPTH: usize = 256;

/// What a context entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    /// A symlink, with its target as stored (never followed).
    Symlink(Vec<u8>),
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

/// One entry of the context, with what a cache key hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Relative to the context root, `/`-separated; `.` is the root.
    pub(crate) path: PathBuf,
    pub(crate) kind: Kind,
    /// Permission bits with setuid/setgid/sticky (`st_mode & 0o7777`).
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Bytes of a file or a symlink's target; 0 for the rest (a
    /// directory's size depends on the filesystem, not its contents).
    pub(crate) size: u64,
    pub(crate) mtime_sec: i64,
    pub(crate) mtime_nsec: u32,
}

/// What one source names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Selection {
    /// The paths the source matched (one for a plain path, any number for
    /// a wildcard), sorted; `.` for the context root.
    pub(crate) matched: Vec<PathBuf>,
    /// Those entries and, for directories, everything kept below them,
    /// sorted by path bytes.
    pub(crate) entries: Vec<Entry>,
}

/// The build context directory, opened.
pub(crate) struct Context {
    fd: OwnedFd,
    path: PathBuf,
}

fn err(what: impl std::fmt::Display, e: Errno) -> String {
    format!("{what}: {}", std::io::Error::from(e))
}

fn entry(path: PathBuf, st: &Stat, target: Option<Vec<u8>>) -> Entry {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Symlink(target.unwrap_or_default()),
        FileType::Fifo => Kind::Fifo,
        FileType::Socket => Kind::Socket,
        FileType::CharacterDevice => Kind::CharDevice,
        FileType::BlockDevice => Kind::BlockDevice,
        _ => Kind::File,
    };
    let size = match kind {
        Kind::File | Kind::Symlink(_) => st.st_size as u64,
        _ => 0,
    };
    Entry {
        path,
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size,
        mtime_sec: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as u32,
    }
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

/// The matching text of a relative path (ignore rules are text).
fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A source's components, cleaned; an error if `..` leaves the context.
fn components(source: &str) -> Result<Vec<&str>, String> {
    let mut out: Vec<&str> = Vec::new();
    for c in source.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(format!(
                        "COPY/ADD source `{source}` points outside the build context: \
                         sources are paths inside the context directory; move the file \
                         into the context or choose a context that contains it"
                    ));
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

impl Context {
    /// Opens the context directory.
    pub(crate) fn open(path: &Path) -> Result<Context, String> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOTDIR => format!(
                "opening the build context {}: it is not a directory; give the \
                 directory whose files COPY and ADD read",
                path.display()
            ),
            e => err(
                format_args!(
                    "opening the build context {} (give an existing, readable directory)",
                    path.display()
                ),
                e,
            ),
        })?;
        Ok(Context {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The context directory's descriptor, for opening the entries
    /// [`Context::select`] listed (relative to it, without following
    /// symlinks).
    pub(crate) fn root(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The entries `source` names, minus those `ignore` excludes.
    pub(crate) fn select(&self, source: &str, ignore: &Ignore) -> Result<Selection, String> {
        let parts = components(source)?;
        let mut entries = Vec::new();
        let mut matched = Vec::new();
        if parts.is_empty() {
            let st = rustix::fs::fstat(&self.fd).map_err(|e| {
                err(
                    format_args!("reading the build context {}", self.path.display()),
                    e,
                )
            })?;
            self.tree(self.fd.as_fd(), Path::new(""), ignore, 0, &mut entries)?;
            entries.push(entry(PathBuf::from("."), &st, None));
            matched.push(PathBuf::from("."));
        } else {
            self.expand(
                self.fd.as_fd(),
                Path::new(""),
                &parts,
                source,
                ignore,
                &mut matched,
                &mut entries,
            )?;
        }
        if matched.is_empty() {
            let hint = match ignore.source() {
                Some(file) => format!(" (or all of it is excluded by {})", file.display()),
                None => String::new(),
            };
            return Err(format!(
                "COPY/ADD source `{source}`: no such file or directory in the build context {}{hint}; \
                 check the path, which is relative to the context",
                self.path.display()
            ));
        }
        matched.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
        entries.sort_by(|a, b| {
            a.path
                .as_os_str()
                .as_bytes()
                .cmp(b.path.as_os_str().as_bytes())
        });
        Ok(Selection { matched, entries })
    }

    /// The names in `dir` that `part` names (itself, or the matches of a
    /// wildcard), sorted.
    fn names(
        &self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        part: &str,
        source: &str,
    ) -> Result<Vec<Vec<u8>>, String> {
        let glob = NameGlob::new(part).map_err(|e| {
            format!("COPY/ADD source `{source}`: bad wildcard `{part}`: {e}; fix the pattern")
        })?;
        let Some(glob) = glob else {
            return Ok(vec![part.as_bytes().to_vec()]);
        };
        let mut names: Vec<Vec<u8>> = read_names(dir, rel)?
            .into_iter()
            .filter(|n| glob.matches(&String::from_utf8_lossy(n)))
            .collect();
        names.sort();
        Ok(names)
    }

    #[allow(clippy::too_many_arguments)]
    fn expand(
        &self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        parts: &[&str],
        source: &str,
        ignore: &Ignore,
        matched: &mut Vec<PathBuf>,
        entries: &mut Vec<Entry>,
    ) -> Result<(), String> {
        let (part, rest) = parts
            .split_first()
            .expect("expand is given at least one component");
        let wildcard = NameGlob::new(part).ok().flatten().is_some();
        for name in self.names(dir, rel, part, source)? {
            let child = rel.join(std::ffi::OsStr::from_bytes(&name));
            let Some(st) = stat_child(dir, &name, &child)? else {
                continue;
            };
            if !rest.is_empty() {
                if FileType::from_raw_mode(st.st_mode) == FileType::Symlink && !wildcard {
                    return Err(format!(
                        "COPY/ADD source `{source}`: {} is a symlink, and hutch does not \
                         follow symlinks in sources; name the directory it points to",
                        child.display()
                    ));
                }
                if !is_dir(&st) {
                    continue;
                }
                let fd = open_dir(dir, &name, &child)?;
                self.expand(fd.as_fd(), &child, rest, source, ignore, matched, entries)?;
                continue;
            }
            let excluded = ignore.is_excluded(&text(&child));
            if is_dir(&st) {
                if excluded && !ignore.may_contain_exceptions(&text(&child)) {
                    continue;
                }
                let fd = open_dir(dir, &name, &child)?;
                let before = entries.len();
                self.tree(fd.as_fd(), &child, ignore, 1, entries)?;
                if excluded && entries.len() == before {
                    continue;
                }
                entries.push(entry(child.clone(), &st, None));
            } else {
                if excluded {
                    continue;
                }
                entries.push(entry(
                    child.clone(),
                    &st,
                    link_target(dir, &name, &st, &child)?,
                ));
            }
            matched.push(child);
        }
        Ok(())
    }

    /// Everything kept below the directory `dir` (at `rel`).
    fn tree(
        &self,
        dir: BorrowedFd<'_>,
        rel: &Path,
        ignore: &Ignore,
        depth: usize,
        entries: &mut Vec<Entry>,
    ) -> Result<(), String> {
        if depth >= MAX_DEPTH {
            return Err(format!(
                "{} in the build context is nested more than {MAX_DEPTH} levels deep; \
                 exclude it in the ignore file",
                rel.display()
            ));
        }
        let mut names = read_names(dir, rel)?;
        names.sort();
        for name in names {
            let child = rel.join(std::ffi::OsStr::from_bytes(&name));
            let Some(st) = stat_child(dir, &name, &child)? else {
                continue;
            };
            let excluded = ignore.is_excluded(&text(&child));
            if is_dir(&st) {
                if excluded && !ignore.may_contain_exceptions(&text(&child)) {
                    continue;
                }
                let fd = open_dir(dir, &name, &child)?;
                let before = entries.len();
                self.tree(fd.as_fd(), &child, ignore, depth + 1, entries)?;
                if !excluded || entries.len() > before {
                    entries.push(entry(child, &st, None));
                }
            } else if !excluded {
                let target = link_target(dir, &name, &st, &child)?;
                entries.push(entry(child, &st, target));
            }
        }
        Ok(())
    }
}

/// The names in a directory, without `.` and `..`.
/// `name` in `dir` (known as `child`), not following a symlink; `None`
/// when it went away since it was listed.
fn stat_child(dir: BorrowedFd<'_>, name: &[u8], child: &Path) -> Result<Option<Stat>, String> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(err(
            format_args!("reading {} in the build context", child.display()),
            e,
        )),
    }
}

fn read_names(dir: BorrowedFd<'_>, rel: &Path) -> Result<Vec<Vec<u8>>, String> {
    let shown = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let mut names = Vec::new();
    for e in Dir::read_from(dir).map_err(|e| {
        err(
            format_args!("listing {} in the build context", shown.display()),
            e,
        )
    })? {
        let e = e.map_err(|e| {
            err(
                format_args!("listing {} in the build context", shown.display()),
                e,
            )
        })?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}

/// A subdirectory, opened without following a symlink put in its place.
fn open_dir(dir: BorrowedFd<'_>, name: &[u8], rel: &Path) -> Result<OwnedFd, String> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        err(
            format_args!("opening {} in the build context", rel.display()),
            e,
        )
    })
}

/// A symlink's target, `None` for anything else.
fn link_target(
    dir: BorrowedFd<'_>,
    name: &[u8],
    st: &Stat,
    rel: &Path,
) -> Result<Option<Vec<u8>>, String> {
    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
        return Ok(None);
    }
    rustix::fs::readlinkat(dir, name, Vec::new())
        .map(|t| Some(t.into_bytes()))
        .map_err(|e| {
            err(
                format_args!("reading the symlink {} in the build context", rel.display()),
                e,
            )
        })
}
