//! Whiteouts and names in the upper layer: hiding a lower name, removing
//! and moving upper entries, keeping the node table in step.

use super::*;

impl OverlayFs {
    /// Whether `dir/name` is visible in the lower layers of `ps`.
    pub(super) fn lower_visible(&self, ps: &NodeState, name: &[u8]) -> Res<bool> {
        let lower = ps.lower_layers();
        Ok(!lower.is_empty() && self.layers.resolve(&lower, &ps.path, name)?.is_some())
    }

    pub(super) fn make_whiteout(&self, dir: &[u8], name: &[u8]) -> Res<()> {
        let dfd = self.upper_dirfd(dir)?;
        format::make_whiteout(&dfd, name)
            .map(|_| ())
            .map_err(|e| errno_of(&e))
    }

    /// Replace the upper entry `dir/name` by a whiteout, atomically where
    /// the kernel lets us make a whiteout device.
    pub(super) fn replace_with_whiteout(&self, dir: &[u8], name: &[u8], is_dir: bool) -> Res<()> {
        let path = join(dir, name);
        let work = self.layers.work.fd();
        let tmp = self.tmp_name();
        match rustix::fs::mknodat(
            work,
            tmp.as_slice(),
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        ) {
            Ok(()) => {
                let r = if is_dir {
                    rustix::fs::renameat_with(
                        work,
                        tmp.as_slice(),
                        self.layers.upper(),
                        path.as_slice(),
                        RenameFlags::EXCHANGE,
                    )
                } else {
                    rustix::fs::renameat(work, tmp.as_slice(), self.layers.upper(), path.as_slice())
                };
                if let Err(e) = r {
                    let _ = rustix::fs::unlinkat(work, tmp.as_slice(), AtFlags::empty());
                    return Err(e);
                }
                if is_dir {
                    layers::remove_all(work, &tmp)?;
                }
                Ok(())
            }
            Err(Errno::PERM | Errno::OPNOTSUPP) => {
                if is_dir {
                    self.remove_upper_dir(&path)?;
                } else {
                    rustix::fs::unlinkat(self.layers.upper(), path.as_slice(), AtFlags::empty())?;
                }
                let dfd = rustix::fs::openat(
                    self.layers.upper(),
                    dir,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                format::make_whiteout_file(&dfd, name).map_err(|e| errno_of(&e))
            }
            Err(e) => Err(e),
        }
    }

    /// Remove an upper directory that is empty in the merged view (it may
    /// still hold whiteouts).
    pub(super) fn remove_upper_dir(&self, path: &[u8]) -> Res<()> {
        match rustix::fs::unlinkat(self.layers.upper(), path, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(()),
            Err(Errno::NOTEMPTY | Errno::EXIST) => {
                let tmp = self.tmp_name();
                rustix::fs::renameat(
                    self.layers.upper(),
                    path,
                    self.layers.work.fd(),
                    tmp.as_slice(),
                )?;
                layers::remove_all(self.layers.work.fd(), &tmp)
            }
            Err(e) => Err(e),
        }
    }

    /// Move the object prepared as `work/tmp` to `upper/dir/name`, where
    /// the upper holds a whiteout.
    pub(super) fn place_over_whiteout(
        &self,
        tmp: &[u8],
        dir: &[u8],
        name: &[u8],
        wh: UpperWhiteout,
        is_dir: bool,
    ) -> Res<()> {
        let path = join(dir, name);
        let work = self.layers.work.fd();
        let upper = self.layers.upper();
        match wh {
            UpperWhiteout::Device if is_dir => {
                rustix::fs::renameat_with(
                    work,
                    tmp,
                    upper,
                    path.as_slice(),
                    RenameFlags::EXCHANGE,
                )?;
                let _ = rustix::fs::unlinkat(work, tmp, AtFlags::empty());
            }
            UpperWhiteout::Device => rustix::fs::renameat(work, tmp, upper, path.as_slice())?,
            UpperWhiteout::File => {
                rustix::fs::renameat_with(
                    work,
                    tmp,
                    upper,
                    path.as_slice(),
                    RenameFlags::NOREPLACE,
                )?;
                let mut wh = format::WHITEOUT_PREFIX.to_vec();
                wh.extend_from_slice(name);
                match rustix::fs::unlinkat(upper, join(dir, &wh).as_slice(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Bookkeeping after the name `path` (resolved as `f`) went away.
    pub(super) fn name_removed(&self, f: &Found, path: &[u8]) {
        if let Some(node) = self.node_by_key(f.key()) {
            let mut g = lock(&node.st);
            if g.path == path {
                if let Some(alias) = g.aliases.pop() {
                    g.path = alias;
                    g.ovr = None;
                    drop(g);
                    self.relocate(&node);
                } else {
                    g.unlinked = true;
                }
            } else {
                g.aliases.retain(|a| a != path);
            }
        }
        if f.top == UPPER && (f.is_dir() || f.st.st_nlink <= 1) {
            let mut ids = lock(&self.ids);
            if ids.map.get(&f.key()).is_some_and(|&id| id != ROOT_ID) {
                ids.map.remove(&f.key());
            }
        }
    }

    /// A non-directory node changed its I/O path to an alias: find the
    /// layer that holds that path now.
    pub(super) fn relocate(&self, node: &Node) {
        let s = node.snapshot();
        for l in 0..self.layers.list.len() as u16 {
            match self.layers.stat(l, &s.path) {
                Ok(st) if !format::is_whiteout_stat(&st) => {
                    let mut g = lock(&node.st);
                    g.layers = vec![l];
                    g.key = (st.st_dev, st.st_ino);
                    return;
                }
                Ok(_) => break,
                Err(_) => continue,
            }
        }
        lock(&node.st).unlinked = true;
    }

    /// Bookkeeping after a rename of `old` to `new` (in `new_parent`).
    pub(super) fn name_moved(&self, f: &Found, old: &[u8], new: &[u8], new_parent: u64) {
        if let Some(node) = self.node_by_key(f.key()) {
            let mut g = lock(&node.st);
            if g.path == old {
                g.path = new.to_vec();
                g.parent = new_parent;
                g.layers = vec![UPPER];
            } else if let Some(a) = g.aliases.iter_mut().find(|a| a.as_slice() == old) {
                *a = new.to_vec();
            }
        }
        if f.is_dir() {
            let mut prefix = old.to_vec();
            prefix.push(b'/');
            let fix = |p: &mut Vec<u8>| {
                if p.starts_with(&prefix) {
                    let mut n = new.to_vec();
                    n.extend_from_slice(&p[old.len()..]);
                    *p = n;
                }
            };
            for node in rlock(&self.nodes).values() {
                let mut g = lock(&node.st);
                fix(&mut g.path);
                for a in g.aliases.iter_mut() {
                    fix(a);
                }
            }
        }
    }

    /// Presented uid, gid and mode of a directory node (for new entries).
    pub(super) fn dir_owner(&self, node: &Node) -> Res<(u32, u32, u32)> {
        let s = node.snapshot();
        let (st, ovr) = self.node_stat(node, &s)?;
        Ok(match ovr {
            Some(o) => (o.uid, o.gid, o.mode),
            None => (st.st_uid, st.st_gid, st.st_mode & 0o7777),
        })
    }

    /// Apply the on-disk mode `disk` exactly (the process umask may have
    /// masked the creation mode).
    pub(super) fn fix_mode(&self, dirfd: impl AsFd, name: &[u8], disk: u32) -> Res<()> {
        if disk & self.umask != 0 {
            rustix::fs::chmodat(dirfd, name, Mode::from_raw_mode(disk), AtFlags::empty())?;
        }
        Ok(())
    }

    pub(super) fn set_opaque_upper(&self, path: &[u8]) -> Res<()> {
        let fd = rustix::fs::openat(
            self.layers.upper(),
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        format::set_opaque(&fd)
            .map(|_| ())
            .map_err(|e| errno_of(&e))
    }
}
