//! The planned paths as tar entries, with the contents of the context's
//! files read through descriptors opened below the context root.
//!
//! Headers are GNU tar headers as `image::layer_tar` writes them (long
//! names through the `tar` crate's GNU long-name records), with numeric
//! owners only, no user or group names, no access or change times and no
//! device numbers. A file is opened one component at a time from the
//! context root with `O_NOFOLLOW`, so a symlink swapped in after the
//! listing is never followed; it must still be a regular file of the
//! listed size, and exactly that many bytes must be read from it.

use super::plan::{Origin, Plan};
use crate::build::context::walk::{Entry, Kind};
use rustix::fs::{FileType, Mode, OFlags};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use tar::{EntryType, Header};

/// The owner, permissions and time the entries get.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Each entry keeps its own uid and gid (`COPY --from` without
    /// `--chown`) instead of `uid`/`gid`; created parents are 0:0.
    pub(crate) keep_owners: bool,
    pub(crate) chmod: Option<u32>,
    pub(crate) source_date_epoch: Option<i64>,
}

impl Stamp {
    fn mtime(&self, mtime: i64) -> u64 {
        let t = match self.source_date_epoch {
            Some(epoch) => mtime.min(epoch),
            None => mtime,
        };
        t.max(0) as u64
    }

    fn header(&self, kind: EntryType, mode: u32, mtime: i64, e: Option<&Entry>) -> Header {
        let (uid, gid) = match e {
            Some(e) if self.keep_owners => (e.uid, e.gid),
            None if self.keep_owners => (0, 0),
            _ => (self.uid, self.gid),
        };
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h.set_mtime(self.mtime(mtime));
        h.set_size(0);
        h
    }
}

fn path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// Writes every entry of `plan` to `tar`.
pub(crate) fn write_plan<W: Write>(
    tar: &mut tar::Builder<W>,
    plan: &Plan<'_>,
    root: BorrowedFd<'_>,
    stamp: &Stamp,
) -> Result<(), String> {
    for (p, origin) in plan {
        let shown = String::from_utf8_lossy(p);
        append(tar, p, origin, root, stamp).map_err(|e| format!("writing /{shown}: {e}"))?;
    }
    Ok(())
}

fn io(e: std::io::Error) -> String {
    e.to_string()
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    p: &[u8],
    origin: &Origin<'_>,
    root: BorrowedFd<'_>,
    stamp: &Stamp,
) -> Result<(), String> {
    let e = match origin {
        Origin::Parent => {
            // Created directories: 0755, the SOURCE_DATE_EPOCH or 0 as
            // time (they have no file to take one from).
            let mut h = stamp.header(
                EntryType::Directory,
                0o755,
                stamp.source_date_epoch.unwrap_or(0),
                None,
            );
            let mut d = p.to_vec();
            d.push(b'/');
            return tar
                .append_data(&mut h, path(&d), std::io::empty())
                .map_err(io);
        }
        Origin::Entry(e) => e,
    };
    let mode = stamp.chmod.unwrap_or(e.mode);
    match &e.kind {
        Kind::Dir => {
            let mut h = stamp.header(EntryType::Directory, mode, e.mtime_sec, Some(e));
            let mut d = p.to_vec();
            d.push(b'/');
            tar.append_data(&mut h, path(&d), std::io::empty())
                .map_err(io)
        }
        Kind::File => {
            let fd = open_file(root, e)?;
            let mut h = stamp.header(EntryType::Regular, mode, e.mtime_sec, Some(e));
            h.set_size(e.size);
            let reader = Checked::new(std::fs::File::from(fd), e.size);
            tar.append_data(&mut h, path(p), reader).map_err(io)
        }
        Kind::Symlink(target) => {
            let mut h = stamp.header(EntryType::Symlink, 0o777, e.mtime_sec, Some(e));
            crate::image::layer_tar::append_symlink(tar, &mut h, path(p), target).map_err(io)
        }
        Kind::Fifo => {
            let mut h = stamp.header(EntryType::Fifo, mode, e.mtime_sec, Some(e));
            tar.append_data(&mut h, path(p), std::io::empty())
                .map_err(io)
        }
        Kind::Socket | Kind::CharDevice | Kind::BlockDevice => Err(format!(
            "internal error: {} is not a kind a COPY layer holds",
            e.path.display()
        )),
    }
}

fn changed(e: &Entry, what: &str) -> String {
    format!(
        "{} in the build context {what} since it was listed; do not change the \
         context during a build, then build again",
        e.path.display()
    )
}

/// The listed regular file `e`, opened from the context root one
/// component at a time without following symlinks.
pub(crate) fn open_file(root: BorrowedFd<'_>, e: &Entry) -> Result<OwnedFd, String> {
    let parts: Vec<&[u8]> = e
        .path
        .as_os_str()
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    let Some((name, dirs)) = parts.split_last() else {
        return Err(format!(
            "internal error: {} is not a file path",
            e.path.display()
        ));
    };
    let fail = |err: rustix::io::Errno| match err {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::NOENT => {
            changed(e, "was replaced or removed")
        }
        err => format!(
            "opening {} in the build context: {}",
            e.path.display(),
            std::io::Error::from(err)
        ),
    };
    let mut dir: Option<OwnedFd> = None;
    for d in dirs {
        let at = dir.as_ref().map(|f| f.as_fd()).unwrap_or(root);
        let next = rustix::fs::openat(
            at,
            *d,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail)?;
        dir = Some(next);
    }
    let at = dir.as_ref().map(|f| f.as_fd()).unwrap_or(root);
    // NONBLOCK: a FIFO swapped in must not hang the open.
    let fd = rustix::fs::openat(
        at,
        *name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail)?;
    let st = rustix::fs::fstat(&fd).map_err(fail)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(changed(e, "is no longer a regular file"));
    }
    if st.st_size as u64 != e.size {
        return Err(changed(e, "changed size"));
    }
    Ok(fd)
}

/// Exactly `size` bytes of a context file, or an error if it turns out
/// shorter or longer (the tar header with the size is already written).
pub(crate) struct Checked<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Checked<R> {
    pub(crate) fn new(inner: R, size: u64) -> Self {
        Checked { inner, left: size }
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut one = [0u8; 1];
            return match self.inner.read(&mut one)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(
                    "the file grew while it was read; do not change the build context \
                     during a build",
                )),
            };
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other(
                "the file shrank while it was read; do not change the build context \
                 during a build",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
