//! `hutch cp`: files between the host and a container, running or
//! stopped, as `docker cp` / `podman cp` copy them.
//!
//! The container's side is done by a child of hutch in the container's
//! namespaces (sandbox/visit.rs), with every container path resolved
//! inside its root; the two sides talk through a pipe carrying a tar
//! stream (tree_tar/). Which side writes where follows Docker's rules:
//!
//! * a file onto an existing directory goes inside it; onto a missing
//!   path it becomes that path (its parent must exist); a DEST ending in
//!   `/` must then be an existing directory;
//! * a directory onto an existing directory goes inside it (`SRC/.`: its
//!   contents do), onto a missing path it becomes that path, onto a file
//!   it is refused;
//! * `-` is a tar stream: from stdin, extracted into a directory of the
//!   container; to stdout, out of it.
//!
//! Owners: in the container, root's (uid and gid 0 there), or with `-a`
//! the source's numbers; on the host, the user's (hutch is unprivileged),
//! with modes and mtimes kept. Symlinks are copied as symlinks; `-L`
//! follows one given as SRC.

use super::container_tree::reach;
use super::tree_tar::{self, Base, ItemPath, Options, Owners, Target};
use crate::sandbox::visit::{View, visit};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;
use std::io::{BufWriter, Write};
use std::os::fd::OwnedFd;

/// What `hutch cp` was asked.
#[derive(Debug, Clone, Default)]
pub(crate) struct CopyRequest {
    pub(crate) src: Vec<u8>,
    pub(crate) dest: Vec<u8>,
    /// `-a`: keep the source's uid and gid in the container.
    pub(crate) archive: bool,
    /// `-L`: follow a symlink given as SRC.
    pub(crate) follow: bool,
}

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Side<'a> {
    Host(&'a [u8]),
    Container { key: &'a str, path: &'a [u8] },
}

/// `CONTAINER:PATH`, else a host path (as Docker: a path that starts
/// with `/` or `.`, or has a `/` before its first `:`, is the host's).
fn side(arg: &[u8]) -> Result<Side<'_>> {
    if arg.starts_with(b"/") || arg.starts_with(b".") || arg == b"-" {
        return Ok(Side::Host(arg));
    }
    match arg.iter().position(|b| *b == b':') {
        Some(i) if i > 0 && !arg[..i].contains(&b'/') => {
            let key = std::str::from_utf8(&arg[..i]).with_context(|| {
                format!("{:?}: not a container name", String::from_utf8_lossy(arg))
            })?;
            Ok(Side::Container {
                key,
                path: &arg[i + 1..],
            })
        }
        _ => Ok(Side::Host(arg)),
    }
}

fn pipe() -> Result<(std::fs::File, std::fs::File)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .context("creating a pipe")?;
    Ok((r.into(), w.into()))
}

/// A descriptor of this process's stdin or stdout of its own.
fn dup_std(fd: std::os::fd::BorrowedFd<'_>) -> Result<std::fs::File> {
    let fd: OwnedFd = rustix::io::fcntl_dupfd_cloexec(fd, 3)
        .map_err(std::io::Error::from)
        .context("duplicating a standard descriptor")?;
    Ok(fd.into())
}

/// Run the copy.
pub(crate) fn copy(store: &Store, req: &CopyRequest) -> Result<()> {
    match (side(&req.src)?, side(&req.dest)?) {
        (Side::Host(_), Side::Host(_)) => bail!(
            "neither SRC nor DEST names a container: one of them must be CONTAINER:PATH \
             (e.g. `hutch cp ./file web:/tmp/`)"
        ),
        (Side::Container { .. }, Side::Container { .. }) => {
            bail!("copying from a container into another is not supported: copy to the host first")
        }
        (Side::Host(src), Side::Container { key, path }) => copy_in(store, req, src, key, path),
        (Side::Container { key, path }, Side::Host(dest)) => copy_out(store, req, key, path, dest),
    }
    .with_context(|| {
        format!(
            "copying {} to {}",
            String::from_utf8_lossy(&req.src),
            String::from_utf8_lossy(&req.dest)
        )
    })
}

/// Host → container.
fn copy_in(store: &Store, req: &CopyRequest, src: &[u8], key: &str, path: &[u8]) -> Result<()> {
    let from_stdin = src == b"-";
    let item = ItemPath::host(src);
    if from_stdin {
        if rustix::termios::isatty(rustix::stdio::stdin()) {
            bail!(
                "`-` reads a tar archive from stdin, which is a terminal: pipe one in \
                 (e.g. `tar -C dir -c . | hutch cp - {key}:/dest`)"
            );
        }
    } else {
        // Before anything of the container is touched.
        let st = Base::Host
            .open(
                &item.full,
                OFlags::PATH,
                req.follow || item.slash || item.split.is_none(),
            )
            .and_then(rustix::fs::fstat);
        match st {
            Ok(st) if item.slash && FileType::from_raw_mode(st.st_mode) != FileType::Directory => {
                bail!("{} is not a directory", item.shown)
            }
            Ok(_) => {}
            Err(Errno::NOENT) => bail!("{} does not exist on the host", item.shown),
            Err(e) => return Err(std::io::Error::from(e)).with_context(|| item.shown.clone()),
        }
    }
    let reached = reach(store, key)?;
    let dest = ItemPath::container(path, &reached.spec.process.cwd);
    let place = "in the container";
    let opts = Options {
        owners: if req.archive {
            Owners::Archive
        } else {
            Owners::Root
        },
        host: false,
        one_item: !from_stdin,
    };
    let (r, w) = pipe()?;
    let follow = req.follow;
    visit(
        reached.tree(),
        View::Mounted { write: true },
        |root| {
            let input = if from_stdin {
                drop(r);
                dup_std(rustix::stdio::stdin())?
            } else {
                r
            };
            let base = Base::Root(root);
            let done = tree_tar::extract(input, opts, |is_dir| {
                destination(base, &dest, is_dir, from_stdin, place)
            })?;
            report_skipped(&done);
            Ok(())
        },
        || {
            if from_stdin {
                return Ok(());
            }
            let mut tar = tar::Builder::new(BufWriter::with_capacity(256 * 1024, w));
            tree_tar::write_item(&mut tar, Base::Host, &item, follow, "on the host")?;
            tar.into_inner()
                .and_then(|mut b| b.flush())
                .context("sending the files to the container")?;
            Ok(())
        },
    )
}

/// Container → host.
fn copy_out(store: &Store, req: &CopyRequest, key: &str, path: &[u8], dest: &[u8]) -> Result<()> {
    let to_stdout = dest == b"-";
    if to_stdout && rustix::termios::isatty(rustix::stdio::stdout()) {
        bail!(
            "refusing to write a tar archive to a terminal: redirect stdout, or give a DEST path"
        );
    }
    let reached = reach(store, key)?;
    let src = ItemPath::container(path, &reached.spec.process.cwd);
    let place = "in the container";
    let dest = ItemPath::host(dest);
    let (r, w) = pipe()?;
    let follow = req.follow;
    let done = visit(
        reached.tree(),
        View::Mounted { write: false },
        |root| {
            let out = if to_stdout {
                drop(w);
                dup_std(rustix::stdio::stdout())?
            } else {
                w
            };
            let mut tar = tar::Builder::new(BufWriter::with_capacity(256 * 1024, out));
            tree_tar::write_item(&mut tar, Base::Root(root), &src, follow, place)?;
            tar.into_inner()
                .and_then(|mut b| b.flush())
                .context("sending the files out of the container")?;
            Ok(())
        },
        || {
            if to_stdout {
                drop(r);
                return Ok(tree_tar::Extracted::default());
            }
            let opts = Options {
                owners: Owners::Caller,
                host: true,
                one_item: true,
            };
            tree_tar::extract(r, opts, |is_dir| {
                destination(Base::Host, &dest, is_dir, false, "on the host")
            })
        },
    )?;
    report_skipped(&done);
    Ok(())
}

fn report_skipped(done: &tree_tar::Extracted) {
    if let Some(first) = done.skipped.first() {
        eprintln!(
            "hutch: warning: {} device file(s) not copied ({first}{}): an unprivileged user cannot make them",
            done.skipped.len(),
            if done.skipped.len() > 1 { ", ..." } else { "" }
        );
    }
}

/// Where an item goes (Docker's rules, see the module's documentation);
/// `is_dir`: whether it is a directory. `stdin`: a tar stream from
/// stdin, which goes into an existing directory as it is.
fn destination(
    base: Base<'_>,
    dest: &ItemPath,
    is_dir: bool,
    stdin: bool,
    place: &str,
) -> Result<Target> {
    let shown = &dest.shown;
    let st = match base.open(&dest.full, OFlags::PATH, true) {
        Ok(fd) => Some(rustix::fs::fstat(&fd).map_err(std::io::Error::from)?),
        Err(Errno::NOENT) => None,
        Err(Errno::NOTDIR) => bail!("{shown}: a component of the path is not a directory {place}"),
        Err(e) => return Err(std::io::Error::from(e)).with_context(|| format!("{shown} {place}")),
    };
    let exists_as_dir = st
        .as_ref()
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
    match exists_as_dir {
        Some(true) => {
            let fd = base
                .open(&dest.full, OFlags::RDONLY | OFlags::DIRECTORY, true)
                .map_err(std::io::Error::from)
                .with_context(|| format!("opening {shown} {place}"))?;
            return Ok(Target::Into(fd));
        }
        Some(false) if stdin => bail!(
            "{shown} is not a directory {place}: a tar archive from stdin is extracted into a directory"
        ),
        Some(false) if is_dir => bail!("cannot copy a directory onto {shown}, a file {place}"),
        Some(false) if dest.slash => bail!("{shown} is not a directory {place}"),
        Some(false) => {}
        None if stdin => bail!(
            "{shown} does not exist {place}: a tar archive from stdin is extracted into an existing directory"
        ),
        None if dest.slash && !is_dir => bail!(
            "the directory {shown} does not exist {place} (a DEST ending in / must be an existing directory)"
        ),
        None => {}
    }
    let Some((parent, name)) = &dest.split else {
        bail!("{shown} does not exist {place}");
    };
    let parent_fd = base
        .open(parent, OFlags::RDONLY | OFlags::DIRECTORY, true)
        .map_err(|e| match e {
            Errno::NOENT | Errno::NOTDIR => anyhow::anyhow!(
                "{} is not an existing directory {place}: the parent of {shown} must be one",
                String::from_utf8_lossy(parent)
            ),
            e => anyhow::Error::from(std::io::Error::from(e))
                .context(format!("opening the parent of {shown} {place}")),
        })?;
    Ok(Target::Renamed {
        parent: parent_fd,
        name: name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_and_host_sides_are_told_apart_as_docker_does() {
        assert_eq!(
            side(b"web:/etc/hostname").unwrap(),
            Side::Container {
                key: "web",
                path: b"/etc/hostname"
            }
        );
        assert_eq!(side(b"/tmp/a:b").unwrap(), Side::Host(b"/tmp/a:b"));
        assert_eq!(side(b"./a:b").unwrap(), Side::Host(b"./a:b"));
        assert_eq!(side(b"dir/a:b").unwrap(), Side::Host(b"dir/a:b"));
        assert_eq!(side(b"file").unwrap(), Side::Host(b"file"));
        assert_eq!(side(b"-").unwrap(), Side::Host(b"-"));
        assert_eq!(
            side(b"c:").unwrap(),
            Side::Container {
                key: "c",
                path: b""
            }
        );
    }
}
