//! Filling a new named volume with what the container's root has at the
//! volume's mount point, as Docker does, before the volume is bound there.
//!
//! The planner (src/run/plan.rs) decides which mount is filled
//! (`MountSpec::Bind::copy_up`: a volume no container has used yet, still
//! empty); this only copies. It runs in the container's init before
//! `pivot_root`, as root of the container's user namespace, so the copy
//! reads the merged view the container will see (the overlay presents the
//! image's owners and modes) and can give each entry that owner: an owner
//! the id map does not hold (shown as `nobody` by the overlay) stays the
//! namespace's root, which is the user.
//!
//! The source is the image's, so it is read fd-relative and never followed:
//! symlinks are copied as symlinks, FIFOs made anew, devices and sockets
//! left out, hard links copied as separate files, xattrs not copied.

use super::inroot::Root;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// How deep a tree is copied (two descriptors per level).
const MAX_DEPTH: usize = 128;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

fn err(what: impl std::fmt::Display, e: Errno) -> String {
    format!("{what}: {}", std::io::Error::from(e))
}

/// Copy the directory at `dest` in the container's root (nothing when it
/// is missing or no directory) into the host directory `volume`.
pub(super) fn copy_up(root: &Root, dest: &str, volume: &Path) -> Result<(), String> {
    let what = |e: String| {
        format!(
            "filling the new volume {} from {dest}: {e}",
            volume.display()
        )
    };
    let Some(src) = root.lookup_dir(dest).map_err(what)? else {
        return Ok(());
    };
    let src = rustix::fs::openat(&src, ".", DIR_FLAGS, Mode::empty())
        .map_err(|e| what(err("opening it", e)))?;
    let dst = rustix::fs::open(volume, DIR_FLAGS, Mode::empty())
        .map_err(|e| what(err("opening the volume", e)))?;
    copy_dir(src.as_fd(), dst.as_fd(), dest, 0).map_err(what)?;
    let st = rustix::fs::fstat(&src).map_err(|e| what(err("stat", e)))?;
    set_attrs(&dst, &st).map_err(what)
}

fn copy_dir(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    path: &str,
    depth: usize,
) -> Result<(), String> {
    if depth >= MAX_DEPTH {
        return Err(format!(
            "{path} is nested more than {MAX_DEPTH} levels deep"
        ));
    }
    let names: Vec<std::ffi::CString> = Dir::read_from(src)
        .map_err(|e| err(format_args!("listing {path}"), e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let child = format!("{path}/{}", name.to_string_lossy());
        let st = match rustix::fs::statat(src, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(err(format_args!("stat {child}"), e)),
        };
        match copy_entry(src, dst, &name, &st, &child, depth) {
            // Something is there already (another container filled the
            // volume at the same time): it is kept.
            Err(Errno::EXIST) => {}
            Err(e) => return Err(err(format_args!("copying {child}"), e)),
            Ok(Err(msg)) => return Err(msg),
            Ok(Ok(())) => {}
        }
    }
    Ok(())
}

/// One entry; the outer error is the syscall's, the inner one a message
/// from below a directory.
fn copy_entry(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    name: &std::ffi::CStr,
    st: &Stat,
    path: &str,
    depth: usize,
) -> Result<Result<(), String>, Errno> {
    let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o700))?;
            let s = rustix::fs::openat(src, name, DIR_FLAGS, Mode::empty())?;
            let d = rustix::fs::openat(dst, name, DIR_FLAGS, Mode::empty())?;
            if let Err(msg) = copy_dir(s.as_fd(), d.as_fd(), path, depth + 1) {
                return Ok(Err(msg));
            }
            Ok(set_attrs(&d, st))
        }
        FileType::RegularFile => {
            let s = rustix::fs::openat(
                src,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let d = rustix::fs::openat(
                dst,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let (mut s, mut d) = (std::fs::File::from(s), std::fs::File::from(d));
            if let Err(e) = std::io::copy(&mut s, &mut d) {
                return Ok(Err(format!("copying {path}: {e}")));
            }
            Ok(set_attrs(&OwnedFd::from(d), st))
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(src, name, Vec::new())?;
            rustix::fs::symlinkat(&target, dst, name)?;
            chown_at(dst, name, st);
            Ok(Ok(()))
        }
        FileType::Fifo => {
            rustix::fs::mknodat(dst, name, FileType::Fifo, mode, 0)?;
            chown_at(dst, name, st);
            Ok(Ok(()))
        }
        // Devices cannot be made in a user namespace; sockets belong to a
        // process that is not there.
        _ => Ok(Ok(())),
    }
}

/// The owner (when the id map holds it), mode and times of `st` on `fd`.
fn set_attrs(fd: &OwnedFd, st: &Stat) -> Result<(), String> {
    let _ = rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    );
    // After chown, which clears set-id bits.
    rustix::fs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))
        .map_err(|e| err("setting a mode", e))?;
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    let _ = rustix::fs::futimens(fd, &times);
    Ok(())
}

fn chown_at(dir: BorrowedFd<'_>, name: &std::ffi::CStr, st: &Stat) {
    let _ = rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    );
}
