//! Container paths resolved inside the container's root, never as host
//! path strings.
//!
//! The image decides what its paths are: `/etc` may be a symlink to
//! `/home/you`, `/proc` a chain of relative links climbing `../../..`.
//! Before `pivot_root` those links, followed by an ordinary path lookup,
//! would lead out of the overlay into the host. Here every lookup is
//! `openat2(root, path, RESOLVE_IN_ROOT)`: the kernel treats the
//! container's root as `/` for absolute links and `..`, so whatever the
//! image holds, a path lands inside it. Missing directories and files are
//! created with `mkdirat`/`openat(O_CREAT|O_EXCL)` relative to a parent
//! that was itself resolved this way, and mounts go onto the resolved
//! descriptor (`/proc/self/fd/N`), so no host path string is ever built
//! from a container path.
//!
//! Used by the container's init before `pivot_root` (rootfs.rs): only
//! syscalls and allocation, errors as messages.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Symlinks followed while creating one path (as the kernel's 40).
const MAX_LINKS: usize = 40;

/// Lookups retried when the kernel answers EAGAIN (see `resolve`).
const MAX_RETRIES: u32 = 1000;

/// What a path must be once it exists.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Dir,
    /// Anything that is not a directory (a file to bind a file onto).
    File,
}

/// The container's root directory, opened once.
pub struct Root {
    fd: OwnedFd,
    /// Its host path, to turn a resolved descriptor back into a container
    /// path (`/proc/self/fd/N` of a descriptor below it starts with this).
    host: PathBuf,
}

/// The components of a container path, cleaned lexically as Docker does
/// (`filepath.Clean` of the path made absolute): `.` and empty parts go,
/// `..` removes the previous part and stops at the root.
pub fn clean(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

/// `/a/b/c` of components.
pub fn display(components: &[String]) -> String {
    format!("/{}", components.join("/"))
}

/// The path that names a descriptor, for syscalls that take a path
/// (mount(2)): the magic link in the host's /proc.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn err(what: impl std::fmt::Display, e: Errno) -> String {
    format!("{what}: {}", std::io::Error::from(e))
}

impl Root {
    pub fn open(host: &Path) -> Result<Root, String> {
        let fd = rustix::fs::open(
            host,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(format_args!("opening {}", host.display()), e))?;
        Ok(Root {
            fd,
            host: host.to_path_buf(),
        })
    }

    /// `O_PATH` descriptor of `components`, resolved inside the root.
    fn resolve(&self, components: &[String]) -> Result<OwnedFd, Errno> {
        let rel = if components.is_empty() {
            ".".to_string()
        } else {
            components.join("/")
        };
        // EAGAIN: a `..` was met while some mount or rename happened
        // anywhere on the system, and the kernel could not prove the walk
        // stayed inside; it asks to try again.
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                &self.fd,
                rel.as_str(),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(Errno::AGAIN) if tries < MAX_RETRIES => tries += 1,
                other => return other,
            }
        }
    }

    /// The existing `path`, resolved inside the root; `Ok(None)` when it
    /// does not exist or cannot be reached (a directory of the `host` image
    /// that hutch's user may not search, like the host's `/root`: nothing
    /// in the container can reach it either).
    pub fn lookup(&self, path: &str) -> Result<Option<OwnedFd>, String> {
        match self.resolve(&clean(path)) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::ACCESS) => Ok(None),
            Err(e) => Err(err(format_args!("looking up {path} in the container"), e)),
        }
    }

    /// Like [`lookup`](Self::lookup), for a directory (None otherwise).
    pub fn lookup_dir(&self, path: &str) -> Result<Option<OwnedFd>, String> {
        Ok(self
            .lookup(path)?
            .filter(|fd| file_type(fd) == Some(FileType::Directory)))
    }

    /// The container path a resolved descriptor names.
    fn container_path(&self, fd: &OwnedFd) -> Result<Vec<String>, String> {
        let link = std::fs::read_link(fd_path(fd))
            .map_err(|e| format!("reading the path of a descriptor: {e}"))?;
        let rest = link.strip_prefix(&self.host).map_err(|_| {
            format!(
                "internal error: {} resolved outside the container's root {}",
                link.display(),
                self.host.display()
            )
        })?;
        Ok(clean(&rest.to_string_lossy()))
    }

    /// `path` as `kind`, created if missing (directories 0755, files empty
    /// 0644): missing parents are created, symlinks (also dangling ones) are
    /// followed inside the root. Returns its `O_PATH` descriptor.
    pub fn ensure(&self, path: &str, kind: Kind) -> Result<OwnedFd, String> {
        let mut components = clean(path);
        for _ in 0..MAX_LINKS {
            match self.ensure_once(&components, kind)? {
                Walked::Done(fd) => {
                    let is_dir = file_type(&fd) == Some(FileType::Directory);
                    return match (kind, is_dir) {
                        (Kind::Dir, false) => Err(format!(
                            "{path} in the container is not a directory (it is {})",
                            describe(&fd)
                        )),
                        (Kind::File, true) => Err(format!(
                            "{path} in the container is a directory, and a file is mounted there"
                        )),
                        _ => Ok(fd),
                    };
                }
                Walked::Dangling(next) => components = next,
            }
        }
        Err(format!(
            "creating {path} in the container: too many levels of symbolic links"
        ))
    }

    fn ensure_once(&self, components: &[String], kind: Kind) -> Result<Walked, String> {
        let shown = display(components);
        match self.resolve(components) {
            Ok(fd) => return Ok(Walked::Done(fd)),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(err(format_args!("looking up {shown} in the container"), e)),
        }
        let mut parent = self
            .resolve(&[])
            .map_err(|e| err("opening the container's root", e))?;
        for (i, name) in components.iter().enumerate() {
            match self.resolve(&components[..=i]) {
                Ok(fd) => {
                    parent = fd;
                    continue;
                }
                Err(Errno::NOENT) => {}
                Err(e) => return Err(err(format_args!("looking up {shown} in the container"), e)),
            }
            // `name` is missing in `parent`, or a symlink whose target is.
            if let Ok(target) = rustix::fs::readlinkat(&parent, name.as_str(), Vec::new()) {
                let target = target.to_string_lossy().into_owned();
                let base = if target.starts_with('/') {
                    String::new()
                } else {
                    display(&self.container_path(&parent)?)
                };
                let mut next = clean(&format!("{base}/{target}"));
                next.extend_from_slice(&components[i + 1..]);
                return Ok(Walked::Dangling(next));
            }
            let last = i + 1 == components.len();
            let made = if last && kind == Kind::File {
                rustix::fs::openat(
                    &parent,
                    name.as_str(),
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::WRONLY
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map(drop)
            } else {
                rustix::fs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o755))
            };
            match made {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    return Err(err(
                        format_args!("creating {} in the container", display(&components[..=i])),
                        e,
                    ));
                }
            }
            parent = self.resolve(&components[..=i]).map_err(|e| {
                err(
                    format_args!("opening {} in the container", display(&components[..=i])),
                    e,
                )
            })?;
        }
        Ok(Walked::Done(parent))
    }

    /// Append `text` to the regular file `path` (created if missing; a
    /// newline first if the file does not end with one). A FIFO, device or
    /// directory there is refused, never opened.
    pub fn append(&self, path: &str, text: &str) -> Result<(), String> {
        let fd = self.ensure(path, Kind::File)?;
        if file_type(&fd) != Some(FileType::RegularFile) {
            return Err(format!(
                "{path} in the container is {}, not a regular file",
                describe(&fd)
            ));
        }
        let file = rustix::fs::open(
            fd_path(&fd),
            OFlags::RDWR | OFlags::APPEND | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(format_args!("opening {path} in the container"), e))?;
        let size = rustix::fs::fstat(&file)
            .map_err(|e| err(format_args!("reading {path} in the container"), e))?
            .st_size;
        let mut last = [b'\n'];
        if size > 0 {
            rustix::io::pread(&file, &mut last, (size - 1) as u64)
                .map_err(|e| err(format_args!("reading {path} in the container"), e))?;
        }
        let mut data = Vec::with_capacity(text.len() + 1);
        if last[0] != b'\n' {
            data.push(b'\n');
        }
        data.extend_from_slice(text.as_bytes());
        let mut rest = &data[..];
        while !rest.is_empty() {
            match rustix::io::write(&file, rest) {
                Ok(0) => return Err(format!("writing {path} in the container: no progress")),
                Ok(n) => rest = &rest[n..],
                Err(Errno::INTR) => {}
                Err(e) => return Err(err(format_args!("writing {path} in the container"), e)),
            }
        }
        Ok(())
    }

    /// Make `dir/name` a new empty regular file, replacing a symlink or an
    /// empty file there (the image's own `/etc/resolv.conf` may be a link
    /// to a file that only makes sense on its build host); `dir` is a
    /// resolved directory. Returns its `O_PATH` descriptor.
    pub fn replace_file(&self, dir: &OwnedFd, name: &str) -> Result<OwnedFd, String> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                rustix::fs::unlinkat(dir, name, AtFlags::empty())
                    .map_err(|e| err(format_args!("replacing the symlink {name}"), e))?;
            }
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(format!(
                    "{name} is a directory in the image; hutch mounts a file there"
                ));
            }
            _ => {}
        }
        match rustix::fs::openat(
            dir,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        ) {
            Ok(_) | Err(Errno::EXIST) => {}
            Err(e) => return Err(err(format_args!("creating {name}"), e)),
        }
        rustix::fs::openat(
            dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err(format_args!("opening {name}"), e))
    }
}

enum Walked {
    Done(OwnedFd),
    /// A dangling symlink was met: create this path instead.
    Dangling(Vec<String>),
}

pub fn file_type(fd: &impl AsFd) -> Option<FileType> {
    rustix::fs::fstat(fd)
        .ok()
        .map(|st| FileType::from_raw_mode(st.st_mode))
}

fn describe(fd: &OwnedFd) -> &'static str {
    match file_type(fd) {
        Some(FileType::RegularFile) => "a file",
        Some(FileType::Symlink) => "a symlink",
        Some(FileType::Fifo) => "a FIFO",
        Some(FileType::Socket) => "a socket",
        Some(FileType::CharacterDevice) => "a character device",
        Some(FileType::BlockDevice) => "a block device",
        _ => "not a directory",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn clean_is_lexical_and_stops_at_root() {
        assert_eq!(clean("/../../../../tmp/x"), ["tmp", "x"]);
        assert_eq!(clean("a/./b//c/.."), ["a", "b"]);
        assert_eq!(display(&clean("/..")), "/");
    }

    /// A root with hostile links, and a "host" directory beside it that
    /// must stay untouched.
    fn hostile() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let host = t.path().join("host");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        symlink(&host, root.join("abs")).unwrap();
        symlink("../../../../host", root.join("rel")).unwrap();
        symlink("rel", root.join("chain")).unwrap();
        symlink("/missing/deeper", root.join("dangling")).unwrap();
        symlink("../../host/gone", root.join("real/dangling-rel")).unwrap();
        (t, root, host)
    }

    #[test]
    fn links_out_of_the_root_land_inside_it() {
        let (_t, root, host) = hostile();
        let r = Root::open(&root).unwrap();
        for p in ["/abs/x", "/rel/x", "/chain/x", "abs/../../x/y"] {
            r.ensure(p, Kind::Dir).unwrap();
        }
        r.ensure("/abs/file", Kind::File).unwrap();
        assert_eq!(std::fs::read_dir(&host).unwrap().count(), 0, "host touched");
        // The absolute link's target was created inside the root.
        assert!(
            root.join(host.strip_prefix("/").unwrap())
                .join("x")
                .is_dir()
        );
        assert!(
            root.join("host/x").is_dir(),
            "relative chain lands in root/host"
        );
        assert!(root.join("x/y").is_dir());
    }

    #[test]
    fn dangling_links_are_followed_inside_the_root() {
        let (_t, root, host) = hostile();
        let r = Root::open(&root).unwrap();
        r.ensure("/dangling/sub", Kind::Dir).unwrap();
        assert!(root.join("missing/deeper/sub").is_dir());
        r.ensure("/real/dangling-rel", Kind::File).unwrap();
        assert!(root.join("host/gone").is_file());
        assert!(!host.join("gone").exists());
        assert!(std::fs::symlink_metadata("/missing").is_err());
    }

    #[test]
    fn kinds_are_checked() {
        let (_t, root, _host) = hostile();
        let r = Root::open(&root).unwrap();
        std::fs::write(root.join("f"), b"").unwrap();
        assert!(
            r.ensure("/f", Kind::Dir)
                .unwrap_err()
                .contains("not a directory")
        );
        assert!(
            r.ensure("/real", Kind::File)
                .unwrap_err()
                .contains("is a directory")
        );
        assert!(r.lookup("/nope/x").unwrap().is_none());
        assert!(r.lookup_dir("/f").unwrap().is_none());
    }

    #[test]
    fn a_loop_is_an_error_not_a_hang() {
        let t = tempfile::tempdir().unwrap();
        symlink("b", t.path().join("a")).unwrap();
        symlink("a", t.path().join("b")).unwrap();
        let r = Root::open(t.path()).unwrap();
        let e = r.ensure("/a/x", Kind::Dir).unwrap_err();
        assert!(e.contains("symbolic links"), "{e}");
    }

    #[test]
    fn replace_file_replaces_a_symlink_not_its_target() {
        let (_t, root, host) = hostile();
        std::fs::write(host.join("hosts"), b"host's").unwrap();
        symlink(host.join("hosts"), root.join("real/hosts")).unwrap();
        let r = Root::open(&root).unwrap();
        let dir = r.ensure("/real", Kind::Dir).unwrap();
        r.replace_file(&dir, "hosts").unwrap();
        let m = std::fs::symlink_metadata(root.join("real/hosts")).unwrap();
        assert!(m.is_file());
        assert_eq!(std::fs::read(host.join("hosts")).unwrap(), b"host's");
    }
}
