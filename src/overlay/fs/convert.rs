//! Conversions between what the layers store and what FUSE presents:
//! errno and time conversions, file kinds, device numbers, the on-disk
//! modes and record kinds of the hutch format.

use crate::overlay::format::{self, OverrideStat, RecordedType};
use crate::overlay::layers::{self, Res};
use crate::overlay::relpath;
use fuser::FileType as FType;
use rustix::fs::{AtFlags, FileType, Gid, Mode, Stat, Uid};
use rustix::io::Errno;
use std::os::fd::BorrowedFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(super) fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_io_error(e).unwrap_or(Errno::IO)
}

pub(super) fn systime(sec: i64, nsec: i64) -> SystemTime {
    let nsec = nsec.clamp(0, 999_999_999) as u32;
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::new(sec.unsigned_abs(), 0))
            .and_then(|t| t.checked_add(Duration::new(0, nsec)))
            .unwrap_or(UNIX_EPOCH)
    }
}

pub(super) fn timespec(t: Option<SystemTime>) -> rustix::fs::Timespec {
    match t {
        None => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => rustix::fs::Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos() as _,
            },
            Err(e) => {
                let d = e.duration();
                let (mut s, mut n) = (-(d.as_secs() as i64), -(d.subsec_nanos() as i64));
                if n < 0 {
                    s -= 1;
                    n += 1_000_000_000;
                }
                rustix::fs::Timespec {
                    tv_sec: s,
                    tv_nsec: n as _,
                }
            }
        },
    }
}

pub(super) const UTIME_OMIT: rustix::fs::Timespec = rustix::fs::Timespec {
    tv_sec: 0,
    tv_nsec: rustix::fs::UTIME_OMIT,
};

pub(super) fn fuse_kind(t: FileType) -> FType {
    match t {
        FileType::Directory => FType::Directory,
        FileType::Symlink => FType::Symlink,
        FileType::Fifo => FType::NamedPipe,
        FileType::Socket => FType::Socket,
        FileType::CharacterDevice => FType::CharDevice,
        FileType::BlockDevice => FType::BlockDevice,
        _ => FType::RegularFile,
    }
}

/// Linux `new_encode_dev`, the encoding FUSE uses for `rdev`.
pub(super) fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// The presented type of a file: the disk type, except regular files
/// recorded as devices (device placeholders).
pub(super) fn presented_type(st: &Stat, ovr: Option<&OverrideStat>) -> FileType {
    let t = layers::ftype(st);
    if t == FileType::RegularFile {
        match ovr.and_then(|o| o.kind) {
            Some(RecordedType::Char { .. }) => return FileType::CharacterDevice,
            Some(RecordedType::Block { .. }) => return FileType::BlockDevice,
            _ => {}
        }
    }
    t
}

/// The record kind that describes a file of on-disk type `t`.
pub(super) fn record_kind(t: FileType) -> RecordedType {
    match t {
        FileType::Directory => RecordedType::Dir,
        FileType::Symlink => RecordedType::Symlink,
        FileType::Fifo => RecordedType::Pipe,
        FileType::Socket => RecordedType::Socket,
        _ => RecordedType::File,
    }
}

pub(super) fn stored_mode(t: FileType, mode: u32) -> u32 {
    match t {
        FileType::Directory => format::stored_dir_mode(mode),
        FileType::RegularFile => format::stored_file_mode(mode),
        _ => format::stored_node_mode(mode),
    }
}

/// Give the symlink, fifo or socket `name` (a path) below `dir` the owner `uid:gid` on
/// disk, unless it has it already: these types carry no ownership record
/// (`format`, "Limits"). Fails with the error of `lchown(2)` when the
/// owner cannot be kept (`EINVAL` for an id not mapped in the server's
/// namespace, `EPERM` without `CAP_CHOWN` there).
pub(crate) fn own_on_disk(dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> Res<()> {
    if uid == u32::MAX || gid == u32::MAX {
        return Err(Errno::INVAL);
    }
    let at = relpath::at(dir, name)?;
    let (dir, name) = (at.fd(), at.rest);
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let u = (st.st_uid != uid).then(|| Uid::from_raw(uid));
    let g = (st.st_gid != gid).then(|| Gid::from_raw(gid));
    if u.is_none() && g.is_none() {
        return Ok(());
    }
    rustix::fs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)
}

/// Set the mode of the fifo or socket `name` in `dir` to `disk` and check
/// that it holds: the kernel silently drops setgid when the server is
/// neither in the file's group nor has `CAP_FSETID`, and a change that
/// did not happen must not be reported as done (`EPERM`).
pub(crate) fn node_mode_on_disk(dir: BorrowedFd<'_>, name: &[u8], disk: u32) -> Res<()> {
    let at = relpath::at(dir, name)?;
    let (dir, name) = (at.fd(), at.rest);
    rustix::fs::chmodat(dir, name, Mode::from_raw_mode(disk), AtFlags::empty())?;
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if st.st_mode & 0o7777 != disk & 0o7777 {
        return Err(Errno::PERM);
    }
    Ok(())
}

pub(super) fn has_user_xattrs(t: FileType) -> bool {
    matches!(t, FileType::RegularFile | FileType::Directory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, OwnedFd};

    fn dir(p: &std::path::Path) -> OwnedFd {
        rustix::fs::open(
            p,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn own_on_disk_changes_the_owner_or_fails() {
        let t = tempfile::tempdir().unwrap();
        let d = dir(t.path());
        rustix::fs::symlinkat("target", &d, "l").unwrap();
        let st = rustix::fs::statat(&d, "l", AtFlags::SYMLINK_NOFOLLOW).unwrap();
        // Its own owner: nothing to do.
        own_on_disk(d.as_fd(), b"l", st.st_uid, st.st_gid).unwrap();
        assert_eq!(
            own_on_disk(d.as_fd(), b"l", u32::MAX, 0),
            Err(Errno::INVAL),
            "-1 is no owner"
        );
        let r = own_on_disk(d.as_fd(), b"l", 123, 456);
        let after = rustix::fs::statat(&d, "l", AtFlags::SYMLINK_NOFOLLOW).unwrap();
        if rustix::process::geteuid().is_root() {
            assert_eq!(r, Ok(()));
            assert_eq!((after.st_uid, after.st_gid), (123, 456));
        } else {
            // Never a success that changed nothing.
            assert_eq!(r, Err(Errno::PERM));
            assert_eq!((after.st_uid, after.st_gid), (st.st_uid, st.st_gid));
        }
    }

    #[test]
    fn node_mode_on_disk_keeps_special_bits() {
        let t = tempfile::tempdir().unwrap();
        let d = dir(t.path());
        rustix::fs::mknodat(&d, "f", FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        for mode in [0o1621, 0o6755, 0o644] {
            node_mode_on_disk(d.as_fd(), b"f", mode).unwrap();
            let st = rustix::fs::statat(&d, "f", AtFlags::SYMLINK_NOFOLLOW).unwrap();
            assert_eq!(st.st_mode & 0o7777, mode);
        }
        assert_eq!(stored_mode(FileType::Fifo, 0o1621), 0o1621);
        assert_eq!(stored_mode(FileType::Socket, 0o6755), 0o6755);
        assert_eq!(stored_mode(FileType::RegularFile, 0o4755), 0o755);
    }
}
