//! Attributes: how a node is presented (stat plus ownership record),
//! `getattr`, `setattr` (chmod, chown, truncate, utimens) and `statfs`.

use super::convert::{
    UTIME_OMIT, encode_dev, errno_of, fuse_kind, has_user_xattrs, node_mode_on_disk, own_on_disk,
    presented_type, record_kind, stored_mode, systime, timespec,
};
use super::{Node, NodeState, OverlayFs, SetAttr, lock, rlock};
use crate::overlay::format::{self, OverrideStat, RecordedType};
use crate::overlay::layers::{self, Res, UPPER};
use crate::overlay::relpath;
use fuser::{FileAttr, INodeNo};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Uid, XattrFlags};
use rustix::io::Errno;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

impl SetAttr {
    /// Whether applying this request to a file presented as `cur` changes
    /// anything. `shown_is_stored`: the owner presented is the stored one
    /// (no [`crate::overlay::idmap::IdMap`]); otherwise any owner asked
    /// for counts as a change (a squashed or overflow owner says nothing
    /// of the stored one).
    fn changes(&self, cur: &FileAttr, shown_is_stored: bool) -> bool {
        let time_differs = |t: &Option<Option<SystemTime>>, now: SystemTime| match t {
            None => false,
            Some(None) => true,
            Some(Some(t)) => *t != now,
        };
        self.mode.is_some_and(|m| m & 0o7777 != u32::from(cur.perm))
            || self.uid.is_some_and(|u| u != cur.uid || !shown_is_stored)
            || self.gid.is_some_and(|g| g != cur.gid || !shown_is_stored)
            // truncate(2) to the same size still updates the times.
            || self.size.is_some()
            || time_differs(&self.atime, cur.atime)
            || time_differs(&self.mtime, cur.mtime)
    }
}

impl OverlayFs {
    /// The owner to show for a stored one.
    pub(super) fn shown_owner(&self, uid: u32, gid: u32) -> (u32, u32) {
        match &self.idmap {
            None => (uid, gid),
            Some(m) => (m.shown_uid(uid), m.shown_gid(gid)),
        }
    }

    /// The uid to store for a shown one (a caller's, a chown's).
    pub(super) fn stored_uid(&self, uid: u32) -> u32 {
        self.idmap.as_ref().map_or(uid, |m| m.stored_uid(uid))
    }

    /// The gid to store for a shown one.
    pub(super) fn stored_gid(&self, gid: u32) -> u32 {
        self.idmap.as_ref().map_or(gid, |m| m.stored_gid(gid))
    }

    /// The outcome `r` of changing an owner on disk (`lchown` of a
    /// symlink, fifo or socket): a failure is ignored while a squash
    /// option is on, as fuse-overlayfs ignores failed chowns then.
    pub(crate) fn owner_kept(&self, r: Res<()>) -> Res<()> {
        match r {
            Err(e) if self.idmap.as_ref().is_some_and(|m| m.squashes()) => {
                tracing::debug!("owner change on disk failed ({e}); ignored with squash_to_*");
                Ok(())
            }
            r => r,
        }
    }

    /// Status and ownership record of a node as it is now.
    pub(super) fn node_stat(
        &self,
        node: &Node,
        s: &NodeState,
    ) -> Res<(Stat, Option<OverrideStat>)> {
        if s.unlinked {
            let h = s.handle.upgrade().ok_or(Errno::NOENT)?;
            let fd = h.current_fd();
            let st = rustix::fs::fstat(&*fd)?;
            let ovr = if has_user_xattrs(layers::ftype(&st)) {
                format::read_override_stat(&*fd).ok().flatten()
            } else {
                None
            };
            return Ok((st, ovr));
        }
        let st = self.layers.stat(s.top(), s.top_path())?;
        if format::is_whiteout_stat(&st) {
            return Err(Errno::NOENT);
        }
        let ovr = match s.ovr {
            Some(o) => o,
            None if has_user_xattrs(layers::ftype(&st)) => {
                let o = self.layers.read_override(s.top(), s.top_path())?;
                let mut g = lock(&node.st);
                if g.key == s.key && g.path == s.path {
                    g.ovr = Some(o);
                }
                o
            }
            None => None,
        };
        Ok((st, ovr))
    }

    pub(super) fn make_attr(
        &self,
        id: u64,
        s: &NodeState,
        st: &Stat,
        ovr: Option<&OverrideStat>,
    ) -> FileAttr {
        let t = presented_type(st, ovr);
        let (uid, gid, perm) = match ovr {
            Some(o) => (o.uid, o.gid, o.mode & 0o7777),
            None => (st.st_uid, st.st_gid, st.st_mode & 0o7777),
        };
        let (uid, gid) = self.shown_owner(uid, gid);
        let rdev = match ovr.and_then(|o| o.device()) {
            Some((ma, mi)) if matches!(t, FileType::CharacterDevice | FileType::BlockDevice) => {
                encode_dev(ma, mi)
            }
            _ => 0,
        };
        let nlink = if t == FileType::Directory && s.merged() {
            1
        } else {
            st.st_nlink as u32
        };
        FileAttr {
            ino: INodeNo(id),
            size: st.st_size.max(0) as u64,
            blocks: st.st_blocks as u64,
            atime: systime(st.st_atime, st.st_atime_nsec as i64),
            mtime: systime(st.st_mtime, st.st_mtime_nsec as i64),
            ctime: systime(st.st_ctime, st.st_ctime_nsec as i64),
            crtime: UNIX_EPOCH,
            kind: fuse_kind(t),
            perm: perm as u16,
            nlink,
            uid,
            gid,
            rdev,
            blksize: st.st_blksize as u32,
            flags: 0,
        }
    }

    pub(super) fn attr_locked(&self, node: &Node) -> Res<FileAttr> {
        let s = node.snapshot();
        let (st, ovr) = self.node_stat(node, &s)?;
        Ok(self.make_attr(node.id, &s, &st, ovr.as_ref()))
    }

    /// Attributes for an attribute reply (not an entry): names of lower
    /// hardlinked files present their shared inode number.
    fn presented(&self, node: &Node, mut a: FileAttr) -> FileAttr {
        if let Some(ino) = lock(&node.st).shared_ino {
            a.ino = INodeNo(ino);
        }
        a
    }

    pub fn getattr(&self, id: u64, fh: Option<u64>) -> Res<FileAttr> {
        let node = self.node(id)?;
        if let Some(h) = fh.and_then(|fh| self.file(fh).ok()) {
            let s = node.snapshot();
            if h.upper.load(Ordering::Relaxed) || !s.is_upper() {
                let fd = h.current_fd();
                let st = rustix::fs::fstat(&*fd)?;
                let ovr = match s.ovr {
                    Some(o) => o,
                    None if has_user_xattrs(layers::ftype(&st)) => {
                        format::read_override_stat(&*fd).ok().flatten()
                    }
                    None => None,
                };
                let a = self.make_attr(id, &s, &st, ovr.as_ref());
                return Ok(self.presented(&node, a));
            }
        }
        let _ns = rlock(&self.ns);
        let a = self.attr_locked(&node)?;
        Ok(self.presented(&node, a))
    }
    // -- attributes changes ---------------------------------------------------

    pub fn setattr(&self, id: u64, a: SetAttr) -> Res<FileAttr> {
        let node = self.node(id)?;
        // A request that changes nothing is answered without a copy-up:
        // with the writeback cache the kernel sends the times it holds
        // after link/unlink/rename of a name (fuse_flush_time_update).
        let cur = {
            let _ns = rlock(&self.ns);
            self.attr_locked(&node)
        };
        if let Ok(cur) = cur
            && !a.changes(&cur, self.idmap.is_none())
        {
            return Ok(self.presented(&node, cur));
        }
        let s0 = node.snapshot();
        if s0.unlinked && !s0.is_upper() {
            // Removed before it was ever copied up: the data is the lower
            // file, which must not change.
            return Err(Errno::NOENT);
        }
        let trunc_only = a.size == Some(0)
            && a.mode.is_none()
            && a.uid.is_none()
            && a.gid.is_none()
            && s0.dtype == FileType::RegularFile;
        if !s0.unlinked {
            self.copy_up_node(&node, trunc_only)?;
        }
        let handle = a.fh.and_then(|fh| self.file(fh).ok());
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        let upper = self.layers.upper();
        // A file reachable only through an open handle.
        let hfd = if s.unlinked {
            Some(s.handle.upgrade().ok_or(Errno::NOENT)?.current_fd())
        } else {
            None
        };
        if let Some(size) = a.size {
            if s.dtype != FileType::RegularFile {
                return Err(if s.is_dir() {
                    Errno::ISDIR
                } else {
                    Errno::INVAL
                });
            }
            let via_handle = handle
                .as_ref()
                .filter(|h| h.writable && h.upper.load(Ordering::Relaxed))
                .map(|h| h.current_fd());
            let fd = match via_handle.or_else(|| hfd.clone()) {
                Some(fd) => fd,
                None => {
                    let a = relpath::at(upper, &s.path)?;
                    Arc::new(rustix::fs::openat(
                        a.fd(),
                        a.rest,
                        OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
                        Mode::empty(),
                    )?)
                }
            };
            // With the writeback cache the kernel keeps the file times
            // itself and adds "mtime = now" only when the size changes: a
            // same-size truncate must then leave the times on disk alone,
            // or the upper dir disagrees with what the container saw.
            let before = rustix::fs::fstat(&*fd)?;
            rustix::fs::ftruncate(&*fd, size)?;
            if a.mtime.is_none()
                && before.st_size == size as i64
                && self.writeback.load(Ordering::Relaxed)
            {
                let ts = rustix::fs::Timestamps {
                    last_access: UTIME_OMIT,
                    last_modification: rustix::fs::Timespec {
                        tv_sec: before.st_mtime,
                        tv_nsec: before.st_mtime_nsec as _,
                    },
                };
                rustix::fs::futimens(&*fd, &ts)?;
            }
        }
        if a.mode.is_some() || a.uid.is_some() || a.gid.is_some() {
            let (st, ovr) = self.node_stat(&node, &s)?;
            let (cu, cg, cm) = match ovr {
                Some(o) => (o.uid, o.gid, o.mode),
                None => (st.st_uid, st.st_gid, st.st_mode & 0o7777),
            };
            // cu, cg: stored; a.uid, a.gid: shown.
            let nu = a.uid.map_or(cu, |u| self.stored_uid(u));
            let ng = a.gid.map_or(cg, |g| self.stored_gid(g));
            let nm = a.mode.map(|m| m & 0o7777).unwrap_or(cm);
            let t = layers::ftype(&st);
            let disk = stored_mode(t, nm);
            match t {
                FileType::RegularFile | FileType::Directory => {
                    if disk != st.st_mode & 0o7777 {
                        match &hfd {
                            Some(fd) => rustix::fs::fchmod(&**fd, Mode::from_raw_mode(disk))?,
                            None => {
                                let a = relpath::at(upper, &s.path)?;
                                rustix::fs::chmodat(
                                    a.fd(),
                                    a.rest,
                                    Mode::from_raw_mode(disk),
                                    AtFlags::empty(),
                                )?
                            }
                        }
                    }
                    let kind = ovr.and_then(|o| o.kind).unwrap_or(record_kind(t));
                    let is_dev =
                        matches!(kind, RecordedType::Char { .. } | RecordedType::Block { .. });
                    let name = format::OVERRIDE_STAT_XATTR.as_bytes();
                    let newovr =
                        if nu != 0 || ng != 0 || disk != nm || is_dev {
                            let o = OverrideStat {
                                uid: nu,
                                gid: ng,
                                mode: nm,
                                kind: Some(kind),
                            };
                            match &hfd {
                                Some(fd) => format::write_override_stat(&**fd, &o)
                                    .map_err(|e| errno_of(&e))?,
                                None => self.layers.setxattr(
                                    UPPER,
                                    &s.path,
                                    name,
                                    o.encode().as_bytes(),
                                    XattrFlags::empty(),
                                )?,
                            }
                            Some(o)
                        } else {
                            if ovr.is_some() {
                                match &hfd {
                                    Some(fd) => format::remove_override_stat(&**fd)
                                        .map_err(|e| errno_of(&e))?,
                                    None => match self.layers.removexattr(UPPER, &s.path, name) {
                                        Ok(()) | Err(Errno::NODATA) => {}
                                        Err(e) => return Err(e),
                                    },
                                }
                            }
                            None
                        };
                    lock(&node.st).ovr = Some(newovr);
                }
                _ => {
                    // Symlinks, fifos and sockets: no record, the owner and
                    // mode are the ones on disk (format.rs, "Limits"). The
                    // owner first: a chown clears setuid (and setgid); the
                    // mode sent with it (the kernel adds one for that)
                    // comes after.
                    if nu != cu || ng != cg {
                        let owned = match &hfd {
                            Some(fd) if nu != u32::MAX && ng != u32::MAX => rustix::fs::fchown(
                                &**fd,
                                Some(Uid::from_raw(nu)),
                                Some(Gid::from_raw(ng)),
                            ),
                            Some(_) => Err(Errno::INVAL),
                            None => own_on_disk(upper, &s.path, nu, ng),
                        };
                        self.owner_kept(owned)?;
                    }
                    if t != FileType::Symlink && a.mode.is_some() {
                        match &hfd {
                            Some(fd) => rustix::fs::fchmod(&**fd, Mode::from_raw_mode(disk))?,
                            None => node_mode_on_disk(upper, &s.path, disk)?,
                        }
                    }
                }
            }
        }
        if a.atime.is_some() || a.mtime.is_some() {
            let ts = rustix::fs::Timestamps {
                last_access: a.atime.map(timespec).unwrap_or(UTIME_OMIT),
                last_modification: a.mtime.map(timespec).unwrap_or(UTIME_OMIT),
            };
            match &hfd {
                Some(fd) => rustix::fs::futimens(&**fd, &ts)?,
                None => {
                    let a = relpath::at(upper, &s.path)?;
                    rustix::fs::utimensat(a.fd(), a.rest, &ts, AtFlags::SYMLINK_NOFOLLOW)?
                }
            }
        }
        let a = self.attr_locked(&node)?;
        Ok(self.presented(&node, a))
    }

    pub fn statfs(&self) -> Res<rustix::fs::StatVfs> {
        rustix::fs::fstatvfs(self.layers.upper())
    }
}
