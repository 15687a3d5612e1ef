//! Creating and removing names: files, directories, fifos, sockets,
//! symlinks, hard links (`create_entry`), unlink and rmdir (`remove`).

use super::convert::{errno_of, node_mode_on_disk, own_on_disk, record_kind, stored_mode};
use super::{Caller, NewEntry, Node, OverlayFs, S_ISGID, check_name_len, wlock};
use crate::overlay::format::{self, OverrideStat};
use crate::overlay::layers::{self, Res, UPPER, join};
use crate::overlay::relpath;
use fuser::FileAttr;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::{AsFd, OwnedFd};

impl OverlayFs {
    /// Stored uid, gid and mode of a directory node (for new entries).
    fn dir_owner(&self, node: &Node) -> Res<(u32, u32, u32)> {
        let s = node.snapshot();
        let (st, ovr) = self.node_stat(node, &s)?;
        Ok(match ovr {
            Some(o) => (o.uid, o.gid, o.mode),
            None => (st.st_uid, st.st_gid, st.st_mode & 0o7777),
        })
    }

    /// Apply the on-disk mode `disk` exactly (the process umask may have
    /// masked the creation mode).
    fn fix_mode(&self, dirfd: impl AsFd, name: &[u8], disk: u32) -> Res<()> {
        if disk & self.umask != 0 {
            rustix::fs::chmodat(dirfd, name, Mode::from_raw_mode(disk), AtFlags::empty())?;
        }
        Ok(())
    }

    // -- creating entries ----------------------------------------------------

    /// Create `name` in `parent`; returns the new node's attributes and,
    /// for regular files, an open read-write fd.
    pub fn create_entry(
        &self,
        caller: Caller,
        parent: u64,
        name: &[u8],
        what: NewEntry<'_>,
    ) -> Res<(FileAttr, Option<OwnedFd>)> {
        check_name_len(name)?;
        if !layers::valid_name(name) {
            return Err(Errno::INVAL);
        }
        if format::is_reserved_name(name) {
            return Err(Errno::PERM);
        }
        let parent = self.node(parent)?;
        if let NewEntry::Link { src } = &what {
            if src.snapshot().is_dir() {
                return Err(Errno::PERM);
            }
            self.copy_up_node(src, false)?;
        }
        self.ensure_dir_upper(&parent)?;
        let _ns = wlock(&self.ns);
        let ps = parent.snapshot();
        if ps.unlinked || !ps.is_upper() {
            return Err(Errno::NOENT);
        }
        if self.layers.resolve(&ps.layers, ps.place(), name)?.is_some() {
            return Err(Errno::EXIST);
        }
        let path = join(&ps.path, name);
        let wh = self.layers.upper_whiteout(&ps.path, name)?;
        let (_, pgid, pmode) = self.dir_owner(&parent)?;
        // Stored ids (the caller's are shown ones); a setgid directory's
        // group is stored already.
        let (uid, mut gid) = (self.stored_uid(caller.uid), self.stored_gid(caller.gid));
        let setgid_dir = pmode & S_ISGID != 0;
        if setgid_dir {
            gid = pgid;
        }
        let tmp = self.tmp_name();
        let at_path = relpath::at(self.layers.upper(), &path)?;
        let (tdir, tname) = match wh {
            None => (at_path.fd(), at_path.rest),
            Some(_) => (self.layers.work.fd(), tmp.as_slice()),
        };
        let mut is_dir = false;
        let mut file_fd = None;
        let record = |fd: &OwnedFd, t: FileType, mode: u32| -> Res<()> {
            let disk = stored_mode(t, mode);
            if uid != 0 || gid != 0 || disk != mode {
                let o = OverrideStat {
                    uid,
                    gid,
                    mode,
                    kind: Some(record_kind(t)),
                };
                format::write_override_stat(fd, &o).map_err(|e| errno_of(&e))?;
            }
            Ok(())
        };
        let made: Res<()> = (|| {
            match &what {
                NewEntry::File { mode } => {
                    let mode = mode & 0o7777;
                    let disk = format::stored_file_mode(mode);
                    let fd = rustix::fs::openat(
                        tdir,
                        tname,
                        OFlags::RDWR
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(disk),
                    )?;
                    if disk & self.umask != 0 {
                        rustix::fs::fchmod(&fd, Mode::from_raw_mode(disk))?;
                    }
                    record(&fd, FileType::RegularFile, mode)?;
                    file_fd = Some(fd);
                }
                NewEntry::Dir { mode } => {
                    is_dir = true;
                    let mut mode = mode & 0o7777;
                    if setgid_dir {
                        mode |= S_ISGID;
                    }
                    let disk = format::stored_dir_mode(mode);
                    rustix::fs::mkdirat(tdir, tname, Mode::from_raw_mode(disk))?;
                    self.fix_mode(tdir, tname, disk)?;
                    let need_record = uid != 0 || gid != 0 || disk != mode;
                    if need_record || wh.is_some() {
                        let fd = rustix::fs::openat(
                            tdir,
                            tname,
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )?;
                        record(&fd, FileType::Directory, mode)?;
                        if wh.is_some() {
                            format::set_opaque(&fd).map_err(|e| errno_of(&e))?;
                        }
                    }
                }
                NewEntry::Fifo { mode } | NewEntry::Socket { mode } => {
                    let t = if matches!(what, NewEntry::Fifo { .. }) {
                        FileType::Fifo
                    } else {
                        FileType::Socket
                    };
                    let disk = format::stored_node_mode(*mode);
                    rustix::fs::mknodat(tdir, tname, t, Mode::from_raw_mode(disk), 0)?;
                    // The owner on disk (no record on these types), then
                    // the mode: a chown clears setuid.
                    let owned = self
                        .owner_kept(own_on_disk(tdir, tname, uid, gid))
                        .and_then(|()| {
                            if disk & (self.umask | 0o7000) != 0 {
                                node_mode_on_disk(tdir, tname, disk)
                            } else {
                                Ok(())
                            }
                        });
                    if let Err(e) = owned {
                        let _ = rustix::fs::unlinkat(tdir, tname, AtFlags::empty());
                        return Err(e);
                    }
                }
                NewEntry::Symlink { target } => {
                    rustix::fs::symlinkat(*target, tdir, tname)?;
                    if let Err(e) = self.owner_kept(own_on_disk(tdir, tname, uid, gid)) {
                        let _ = rustix::fs::unlinkat(tdir, tname, AtFlags::empty());
                        return Err(e);
                    }
                }
                NewEntry::Link { src } => {
                    let s = src.snapshot();
                    if s.unlinked || !s.is_upper() {
                        return Err(Errno::NOENT);
                    }
                    let from = relpath::at(self.layers.upper(), &s.path)?;
                    rustix::fs::linkat(from.fd(), from.rest, tdir, tname, AtFlags::empty())?;
                }
            }
            if let Some(wh) = wh {
                self.place_over_whiteout(&tmp, &ps.path, name, wh, is_dir)?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            if wh.is_some() {
                let _ = layers::remove_all(self.layers.work.fd(), &tmp);
            }
            return Err(e);
        }
        match self.lookup_locked(&parent, name)? {
            Some((_, attr)) => Ok((attr, file_fd)),
            None => Err(Errno::IO),
        }
    }

    // -- removing entries ---------------------------------------------------

    pub fn remove(&self, parent: u64, name: &[u8], dir: bool) -> Res<()> {
        check_name_len(name)?;
        if format::is_reserved_name(name) || !layers::valid_name(name) {
            return Err(Errno::NOENT);
        }
        let parent = self.node(parent)?;
        self.ensure_dir_upper(&parent)?;
        let _ns = wlock(&self.ns);
        let ps = parent.snapshot();
        if ps.unlinked || !ps.is_upper() {
            return Err(Errno::NOENT);
        }
        let f = self
            .layers
            .resolve(&ps.layers, ps.place(), name)?
            .ok_or(Errno::NOENT)?;
        if dir && !f.is_dir() {
            return Err(Errno::NOTDIR);
        }
        if !dir && f.is_dir() {
            return Err(Errno::ISDIR);
        }
        let path = join(&ps.path, name);
        if dir && !self.layers.list(&f.layers(), f.place(&path))?.is_empty() {
            return Err(Errno::NOTEMPTY);
        }
        if f.top == UPPER {
            if self.lower_visible(&ps, name)? {
                self.replace_with_whiteout(&ps.path, name, dir)?;
            } else if dir {
                self.remove_upper_dir(&path)?;
            } else {
                let a = relpath::at(self.layers.upper(), &path)?;
                rustix::fs::unlinkat(a.fd(), a.rest, AtFlags::empty())?;
            }
        } else {
            self.make_whiteout(&ps.path, name)?;
        }
        self.name_removed(&f, &path);
        Ok(())
    }
}
