//! Creating, removing and renaming entries (mknod, mkdir, symlink, link,
//! unlink, rmdir, rename).

use super::*;

impl OverlayFs {
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
        if self.layers.resolve(&ps.layers, &ps.path, name)?.is_some() {
            return Err(Errno::EXIST);
        }
        let path = join(&ps.path, name);
        let wh = self.layers.upper_whiteout(&ps.path, name)?;
        let (_, pgid, pmode) = self.dir_owner(&parent)?;
        let (uid, mut gid) = (caller.uid, caller.gid);
        let setgid_dir = pmode & S_ISGID != 0;
        if setgid_dir {
            gid = pgid;
        }
        let tmp = self.tmp_name();
        let (tdir, tname) = match wh {
            None => (self.layers.upper(), path.as_slice()),
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
                    let disk = format::stored_fifo_mode(*mode);
                    rustix::fs::mknodat(tdir, tname, t, Mode::from_raw_mode(disk), 0)?;
                    self.fix_mode(tdir, tname, disk)?;
                }
                NewEntry::Symlink { target } => {
                    rustix::fs::symlinkat(*target, tdir, tname)?;
                }
                NewEntry::Link { src } => {
                    let s = src.snapshot();
                    if s.unlinked || !s.is_upper() {
                        return Err(Errno::NOENT);
                    }
                    rustix::fs::linkat(
                        self.layers.upper(),
                        s.path.as_slice(),
                        tdir,
                        tname,
                        AtFlags::empty(),
                    )?;
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
            .resolve(&ps.layers, &ps.path, name)?
            .ok_or(Errno::NOENT)?;
        if dir && !f.is_dir() {
            return Err(Errno::NOTDIR);
        }
        if !dir && f.is_dir() {
            return Err(Errno::ISDIR);
        }
        let path = join(&ps.path, name);
        if dir && !self.layers.list(&f.layers(), &path)?.is_empty() {
            return Err(Errno::NOTEMPTY);
        }
        if f.top == UPPER {
            if self.lower_visible(&ps, name)? {
                self.replace_with_whiteout(&ps.path, name, dir)?;
            } else if dir {
                self.remove_upper_dir(&path)?;
            } else {
                rustix::fs::unlinkat(self.layers.upper(), path.as_slice(), AtFlags::empty())?;
            }
        } else {
            self.make_whiteout(&ps.path, name)?;
        }
        self.name_removed(&f, &path);
        Ok(())
    }

    // -- rename ---------------------------------------------------------------

    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        flags: u32,
    ) -> Res<()> {
        let noreplace = flags & RenameFlags::NOREPLACE.bits() != 0;
        let exchange = flags & RenameFlags::EXCHANGE.bits() != 0;
        if flags & !(RenameFlags::NOREPLACE.bits() | RenameFlags::EXCHANGE.bits()) != 0
            || (noreplace && exchange)
        {
            return Err(Errno::INVAL);
        }
        if format::is_reserved_name(name) || !layers::valid_name(name) {
            return Err(Errno::NOENT);
        }
        if !layers::valid_name(newname) {
            return Err(Errno::INVAL);
        }
        if format::is_reserved_name(newname) {
            return Err(Errno::PERM);
        }
        let parent = self.node(parent)?;
        let newparent = self.node(newparent)?;
        for _attempt in 0..3 {
            // Phase 1, unlocked: copy up what the rename needs.
            self.ensure_dir_upper(&parent)?;
            self.ensure_dir_upper(&newparent)?;
            {
                let (src, dst) = {
                    let _ns = rlock(&self.ns);
                    let ps = parent.snapshot();
                    let nps = newparent.snapshot();
                    let src = self.layers.resolve(&ps.layers, &ps.path, name)?;
                    let dst = if exchange {
                        self.layers.resolve(&nps.layers, &nps.path, newname)?
                    } else {
                        None
                    };
                    (
                        src.map(|f| (f, join(&ps.path, name))),
                        dst.map(|f| (f, join(&nps.path, newname))),
                    )
                };
                let (src, sp) = src.ok_or(Errno::NOENT)?;
                if !src.is_dir() && src.top != UPPER {
                    self.copy_up_path(&sp, false)?;
                }
                if let Some((d, dp)) = dst
                    && !d.is_dir()
                    && d.top != UPPER
                {
                    self.copy_up_path(&dp, false)?;
                }
            }
            // Phase 2, exclusive.
            match self.rename_locked(&parent, name, &newparent, newname, noreplace, exchange) {
                Err(Errno::AGAIN) => continue,
                r => return r,
            }
        }
        Err(Errno::BUSY)
    }

    pub(super) fn rename_locked(
        &self,
        parent: &Node,
        name: &[u8],
        newparent: &Node,
        newname: &[u8],
        noreplace: bool,
        exchange: bool,
    ) -> Res<()> {
        let _ns = wlock(&self.ns);
        let ps = parent.snapshot();
        let nps = newparent.snapshot();
        if ps.unlinked || nps.unlinked || !ps.is_upper() || !nps.is_upper() {
            return Err(Errno::NOENT);
        }
        let src = self
            .layers
            .resolve(&ps.layers, &ps.path, name)?
            .ok_or(Errno::NOENT)?;
        let dst = self.layers.resolve(&nps.layers, &nps.path, newname)?;
        let sp = join(&ps.path, name);
        let dp = join(&nps.path, newname);
        if sp == dp {
            return Ok(());
        }
        let movable = |f: &Found| -> Res<()> {
            if f.is_dir() {
                // Like overlayfs without redirect_dir.
                if f.top != UPPER || !f.dir_lowers.is_empty() {
                    return Err(Errno::XDEV);
                }
            } else if f.top != UPPER {
                return Err(Errno::AGAIN);
            }
            Ok(())
        };
        movable(&src)?;
        if src.is_dir() {
            let mut pre = sp.clone();
            pre.push(b'/');
            if dp.starts_with(&pre) {
                return Err(Errno::INVAL);
            }
        }
        let upper = self.layers.upper();
        if exchange {
            let d = dst.ok_or(Errno::NOENT)?;
            movable(&d)?;
            if d.is_dir() {
                let mut pre = dp.clone();
                pre.push(b'/');
                if sp.starts_with(&pre) {
                    return Err(Errno::INVAL);
                }
            }
            rustix::fs::renameat_with(
                upper,
                sp.as_slice(),
                upper,
                dp.as_slice(),
                RenameFlags::EXCHANGE,
            )?;
            if src.is_dir() && !src.opaque && nps.merged() {
                self.set_opaque_upper(&dp)?;
            }
            if d.is_dir() && !d.opaque && ps.merged() {
                self.set_opaque_upper(&sp)?;
            }
            // Swap the bookkeeping through a placeholder name.
            let hold = self.tmp_name();
            self.name_moved(&src, &sp, &hold, newparent.id);
            self.name_moved(&d, &dp, &sp, parent.id);
            self.name_moved(&src, &hold, &dp, newparent.id);
            return Ok(());
        }
        if let Some(d) = &dst {
            if d.key() == src.key() {
                // Two links of one file: rename does nothing.
                return Ok(());
            }
            if noreplace {
                return Err(Errno::EXIST);
            }
            if src.is_dir() && !d.is_dir() {
                return Err(Errno::NOTDIR);
            }
            if !src.is_dir() && d.is_dir() {
                return Err(Errno::ISDIR);
            }
            if d.is_dir() && !self.layers.list(&d.layers(), &dp)?.is_empty() {
                return Err(Errno::NOTEMPTY);
            }
        }
        let need_wh = self.lower_visible(&ps, name)?;
        // Clear the destination in the upper where rename(2) cannot
        // replace it: a whiteout under a directory, or an upper directory
        // that still holds whiteouts.
        let mut remove_wh_file = false;
        match self.layers.stat(UPPER, &dp) {
            Ok(st) if format::is_whiteout_stat(&st) => {
                if src.is_dir() {
                    rustix::fs::unlinkat(upper, dp.as_slice(), AtFlags::empty())?;
                }
            }
            Ok(st) if layers::ftype(&st) == FileType::Directory => self.remove_upper_dir(&dp)?,
            Ok(_) => {}
            Err(Errno::NOENT) => {
                remove_wh_file =
                    self.layers.upper_whiteout(&nps.path, newname)? == Some(UpperWhiteout::File);
            }
            Err(e) => return Err(e),
        }
        if src.is_dir() && !src.opaque && nps.merged() {
            self.set_opaque_upper(&sp)?;
        }
        let mut wh_done = false;
        if need_wh {
            match rustix::fs::renameat_with(
                upper,
                sp.as_slice(),
                upper,
                dp.as_slice(),
                RenameFlags::WHITEOUT,
            ) {
                Ok(()) => wh_done = true,
                Err(Errno::INVAL | Errno::PERM | Errno::OPNOTSUPP | Errno::NOSYS) => {}
                Err(e) => return Err(e),
            }
        }
        if !wh_done {
            rustix::fs::renameat(upper, sp.as_slice(), upper, dp.as_slice())?;
            if need_wh {
                self.make_whiteout(&ps.path, name)?;
            }
        }
        if remove_wh_file {
            let mut wh = format::WHITEOUT_PREFIX.to_vec();
            wh.extend_from_slice(newname);
            let _ = rustix::fs::unlinkat(upper, join(&nps.path, &wh).as_slice(), AtFlags::empty());
        }
        if let Some(d) = &dst {
            self.name_removed(d, &dp);
        }
        self.name_moved(&src, &sp, &dp, newparent.id);
        Ok(())
    }
}
