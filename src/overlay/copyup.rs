//! Copy-up: bring a file from a lower layer into the upper one before it
//! is modified.
//!
//! The copy is staged in the work dir (same filesystem as the upper) under
//! a `#hutch.<pid>.<n>` name, complete with data, xattrs, ownership record
//! and timestamps, then renamed into place with `RENAME_NOREPLACE`: other
//! readers see either the lower file or the finished copy. Data is cloned
//! with `FICLONE` where the filesystem can (reflinks), else copied with
//! `copy_file_range` segment by segment (holes stay holes), else with
//! `pread`/`pwrite`. A file is copied once even under concurrent opens:
//! callers hold the copy lock of its identity.

use super::format::{self, OverrideStat, RecordedType};
use super::fs::OverlayFs;
use super::layers::{self, Found, Res, UPPER};
use super::relpath;
use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, RenameFlags, SeekFrom, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;
use std::os::fd::{AsFd, BorrowedFd};

/// xattrs never copied up: overlay bookkeeping of this or other tools,
/// and the ownership record, which is recomputed.
fn copied_xattr(name: &[u8]) -> bool {
    if name.starts_with(super::fs::ESCAPED_OVERLAY_XATTR_PREFIX) {
        // The container's own user.overlay.* xattrs, escaped.
        return true;
    }
    name.starts_with(b"user.")
        && !name.starts_with(b"user.overlay.")
        && !name.starts_with(b"user.fuseoverlayfs.")
        && name != format::OVERRIDE_STAT_XATTR.as_bytes()
}

fn times(st: &rustix::fs::Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// Copy bytes `[from, to)` of `src` to the same offsets of `dst`.
fn copy_range(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, from: u64, to: u64) -> Res<()> {
    let mut inoff = from;
    let mut outoff = from;
    while inoff < to {
        let len = (to - inoff).min(1 << 30) as usize;
        match rustix::fs::copy_file_range(src, Some(&mut inoff), dst, Some(&mut outoff), len) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::PERM) => {
                return copy_range_rw(src, dst, inoff, to);
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn copy_range_rw(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, from: u64, to: u64) -> Res<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut off = from;
    while off < to {
        let want = ((to - off) as usize).min(buf.len());
        let n = match rustix::io::pread(src, &mut buf[..want], off) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        };
        let mut done = 0;
        while done < n {
            match rustix::io::pwrite(dst, &buf[done..n], off + done as u64) {
                Ok(w) => done += w,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        off += n as u64;
    }
    Ok(())
}

/// Copy the contents of `src` (`size` bytes) into the empty file `dst`.
pub(crate) fn copy_data(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, size: u64) -> Res<()> {
    if size == 0 {
        return Ok(());
    }
    if rustix::fs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(());
    }
    let mut off = 0u64;
    while off < size {
        let data = match rustix::fs::seek(src, SeekFrom::Data(off)) {
            Ok(d) => d,
            Err(Errno::NXIO) => break,
            Err(_) => {
                copy_range(src, dst, off, size)?;
                break;
            }
        };
        if data >= size {
            break;
        }
        let hole = rustix::fs::seek(src, SeekFrom::Hole(data))
            .unwrap_or(size)
            .min(size);
        copy_range(src, dst, data, hole)?;
        off = hole.max(data + 1);
    }
    // Trailing hole (and a file that shrank under us: keep its size).
    rustix::fs::ftruncate(dst, size)
}

impl OverlayFs {
    fn copy_xattrs(&self, layer: u16, path: &[u8], dst: BorrowedFd<'_>) -> Res<()> {
        let names = match self.layers.listxattr(layer, path) {
            Ok(n) => n,
            Err(Errno::OPNOTSUPP) => return Ok(()),
            Err(e) => return Err(e),
        };
        for name in names.split(|&b| b == 0) {
            if name.is_empty() || !copied_xattr(name) {
                continue;
            }
            let value = match self.layers.getxattr(layer, path, name) {
                Ok(v) => v,
                Err(Errno::NODATA) => continue,
                Err(e) => return Err(e),
            };
            rustix::fs::fsetxattr(dst, name, &value, XattrFlags::empty())?;
        }
        Ok(())
    }

    /// Copy the lower file `f` visible at `path` into the upper layer. The
    /// parent directory must already be in the upper layer.
    pub(crate) fn copy_up_found(&self, f: &Found, path: &[u8], trunc: bool) -> Res<()> {
        let l = f.top;
        // Where it is in its layer (under a renamed directory, not at `path`).
        let src_path = f.place(path).in_layer(l);
        let st = &f.st;
        let t = layers::ftype(st);
        let ovr = match t {
            FileType::RegularFile | FileType::Directory => {
                self.layers.read_override(l, src_path)?
            }
            _ => None,
        };
        let (pu, pg, pm) = match ovr {
            Some(o) => (o.uid, o.gid, o.mode),
            None => (st.st_uid, st.st_gid, st.st_mode & 0o7777),
        };
        let disk = match t {
            FileType::Directory => format::stored_dir_mode(pm),
            FileType::RegularFile => format::stored_file_mode(pm),
            _ => format::stored_node_mode(pm),
        };
        let kind = ovr.and_then(|o| o.kind).unwrap_or(match t {
            FileType::Directory => RecordedType::Dir,
            _ => RecordedType::File,
        });
        let is_dev = matches!(kind, RecordedType::Char { .. } | RecordedType::Block { .. });
        let record = (pu != 0 || pg != 0 || disk != pm || is_dev).then_some(OverrideStat {
            uid: pu,
            gid: pg,
            mode: pm,
            kind: Some(kind),
        });
        let work = self.layers.work.fd();
        let src_dir = self.layers.fd(l)?;
        let tmp = self.tmp_name();
        let staged: Res<()> = (|| {
            match t {
                FileType::RegularFile | FileType::Directory => {
                    let dst = if t == FileType::RegularFile {
                        let dst = rustix::fs::openat(
                            work,
                            tmp.as_slice(),
                            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                            Mode::from_raw_mode(0o600),
                        )?;
                        if !trunc {
                            let a = relpath::at(src_dir, src_path)?;
                            let src = rustix::fs::openat(
                                a.fd(),
                                a.rest,
                                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                                Mode::empty(),
                            )?;
                            copy_data(src.as_fd(), dst.as_fd(), st.st_size.max(0) as u64)?;
                        }
                        dst
                    } else {
                        rustix::fs::mkdirat(work, tmp.as_slice(), Mode::from_raw_mode(0o700))?;
                        rustix::fs::openat(
                            work,
                            tmp.as_slice(),
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )?
                    };
                    rustix::fs::fchmod(&dst, Mode::from_raw_mode(disk))?;
                    self.copy_xattrs(l, src_path, dst.as_fd())?;
                    if let Some(r) = &record {
                        format::write_override_stat(&dst, r)
                            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
                    }
                    rustix::fs::futimens(&dst, &times(st))?;
                }
                FileType::Symlink => {
                    let a = relpath::at(src_dir, src_path)?;
                    let target = rustix::fs::readlinkat(a.fd(), a.rest, Vec::new())?;
                    rustix::fs::symlinkat(target.as_c_str(), work, tmp.as_slice())?;
                    // No record on symlinks: the owner is the one on disk.
                    self.owner_kept(super::fs::own_on_disk(work, &tmp, pu, pg))?;
                    rustix::fs::utimensat(
                        work,
                        tmp.as_slice(),
                        &times(st),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )?;
                }
                FileType::Fifo | FileType::Socket => {
                    rustix::fs::mknodat(work, tmp.as_slice(), t, Mode::from_raw_mode(disk), 0)?;
                    // The owner on disk (no record), then the mode: a
                    // chown clears setuid.
                    self.owner_kept(super::fs::own_on_disk(work, &tmp, pu, pg))?;
                    super::fs::node_mode_on_disk(work, &tmp, disk)?;
                    rustix::fs::utimensat(
                        work,
                        tmp.as_slice(),
                        &times(st),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )?;
                }
                _ => return Err(Errno::PERM),
            }
            Ok(())
        })();
        if let Err(e) = staged {
            let _ = layers::remove_all(work, &tmp);
            return Err(e);
        }
        let _ns = super::fs::rlock(self.ns_lock());
        let upper = self.layers.upper();
        // Placing the copy is no visible change of the parent: keep its times.
        let (parent, _) = layers::split_parent(path);
        let parent_st = self.layers.stat(UPPER, parent).ok();
        let dst = relpath::at(upper, path)?;
        let placed = match rustix::fs::renameat_with(
            work,
            tmp.as_slice(),
            dst.fd(),
            dst.rest,
            RenameFlags::NOREPLACE,
        ) {
            Err(Errno::INVAL) => match self.layers.stat(UPPER, path) {
                Err(Errno::NOENT) => rustix::fs::renameat(work, tmp.as_slice(), dst.fd(), dst.rest),
                Ok(_) => Err(Errno::EXIST),
                Err(e) => Err(e),
            },
            r => r,
        };
        match placed {
            Ok(()) => {
                if let Some(pst) = parent_st
                    && let Ok(a) = relpath::at(upper, parent)
                {
                    let _ = rustix::fs::utimensat(
                        a.fd(),
                        a.rest,
                        &times(&pst),
                        AtFlags::SYMLINK_NOFOLLOW,
                    );
                }
                let ust = self.layers.stat(UPPER, path)?;
                self.note_copied_up(f, path, (ust.st_dev, ust.st_ino));
                Ok(())
            }
            Err(Errno::EXIST) => {
                let _ = layers::remove_all(work, &tmp);
                // Raced with another copy-up (fine) or with a removal.
                let ust = self.layers.stat(UPPER, path)?;
                if format::is_whiteout_stat(&ust) {
                    Err(Errno::NOENT)
                } else {
                    Ok(())
                }
            }
            Err(e) => {
                let _ = layers::remove_all(work, &tmp);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    #[test]
    fn copy_data_keeps_holes_and_size() {
        let t = tempfile::tempdir().unwrap();
        let sp = t.path().join("src");
        let mut f = std::fs::File::create(&sp).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(std::io::SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(b"middle").unwrap();
        f.set_len(3 << 20).unwrap();
        drop(f);
        let src = std::fs::File::open(&sp).unwrap();
        let dst = std::fs::File::create(t.path().join("dst")).unwrap();
        copy_data(src.as_fd(), dst.as_fd(), 3 << 20).unwrap();
        let a = std::fs::read(&sp).unwrap();
        let b = std::fs::read(t.path().join("dst")).unwrap();
        assert_eq!(a.len(), b.len());
        assert!(a == b);
    }

    #[test]
    fn xattr_filter() {
        assert!(copied_xattr(b"user.foo"));
        assert!(copied_xattr(b"user.hutch.xattr.security.capability"));
        assert!(!copied_xattr(b"user.overlay.opaque"));
        assert!(copied_xattr(b"user.overlay.overlay.opaque"));
        assert!(!copied_xattr(b"user.containers.override_stat"));
        assert!(!copied_xattr(b"security.selinux"));
    }
}
