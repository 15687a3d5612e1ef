//! `rename(2)` with `RENAME_NOREPLACE` and `RENAME_EXCHANGE`: copy up
//! what is needed unlocked, then rename in the upper under `ns`.
//!
//! A directory with content in lower layers is not copied: its upper
//! directory gets a redirect record (the path of that content, `format`,
//! "Renamed directories") and moves, and a whiteout hides the old name.

use super::{Node, OverlayFs, check_name_len, rlock, wlock};
use crate::overlay::format;
use crate::overlay::layers::{self, Found, Res, UPPER, UpperWhiteout, join};
use crate::overlay::relpath;
use rustix::fs::{AtFlags, FileType, RenameFlags, XattrFlags};
use rustix::io::Errno;

impl OverlayFs {
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
        check_name_len(name)?;
        check_name_len(newname)?;
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
                    let src = self.layers.resolve(&ps.layers, ps.place(), name)?;
                    let dst = if exchange {
                        self.layers.resolve(&nps.layers, nps.place(), newname)?
                    } else {
                        None
                    };
                    (
                        src.map(|f| (f, join(&ps.path, name))),
                        dst.map(|f| (f, join(&nps.path, newname))),
                    )
                };
                let (src, sp) = src.ok_or(Errno::NOENT)?;
                let has_lower_dir =
                    |f: &Found| f.is_dir() && (f.top != UPPER || !f.dir_lowers.is_empty());
                if !self.redirect_dir
                    && (has_lower_dir(&src) || dst.as_ref().is_some_and(|(d, _)| has_lower_dir(d)))
                {
                    // Nothing to copy up for a rename that cannot be.
                    return Err(Errno::XDEV);
                }
                if src.top != UPPER {
                    self.copy_up_path(&sp, false)?;
                }
                if let Some((d, dp)) = dst
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

    fn rename_locked(
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
            .resolve(&ps.layers, ps.place(), name)?
            .ok_or(Errno::NOENT)?;
        let dst = self.layers.resolve(&nps.layers, nps.place(), newname)?;
        let sp = join(&ps.path, name);
        let dp = join(&nps.path, newname);
        if sp == dp {
            return Ok(());
        }
        // Copied up in phase 1; a copy-up undone since (the name was
        // removed and made again) means another round.
        let movable = |f: &Found| -> Res<()> {
            if f.top != UPPER {
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
            self.record_redirect(&src, &sp)?;
            self.record_redirect(&d, &dp)?;
            let (from, to) = (relpath::at(upper, &sp)?, relpath::at(upper, &dp)?);
            rustix::fs::renameat_with(
                from.fd(),
                from.rest,
                to.fd(),
                to.rest,
                RenameFlags::EXCHANGE,
            )?;
            if needs_opaque(&src) && nps.merged() {
                self.set_opaque_upper(&dp)?;
            }
            if needs_opaque(&d) && ps.merged() {
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
            if d.is_dir() && !self.layers.list(&d.layers(), d.place(&dp))?.is_empty() {
                return Err(Errno::NOTEMPTY);
            }
        }
        self.record_redirect(&src, &sp)?;
        let need_wh = self.lower_visible(&ps, name)?;
        // Clear the destination in the upper where rename(2) cannot
        // replace it: a whiteout under a directory, or an upper directory
        // that still holds whiteouts.
        let mut remove_wh_file = false;
        match self.layers.stat(UPPER, &dp) {
            Ok(st) if format::is_whiteout_stat(&st) => {
                if src.is_dir() {
                    let a = relpath::at(upper, &dp)?;
                    rustix::fs::unlinkat(a.fd(), a.rest, AtFlags::empty())?;
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
        if needs_opaque(&src) && nps.merged() {
            self.set_opaque_upper(&sp)?;
        }
        let mut wh_done = false;
        let (from, to) = (relpath::at(upper, &sp)?, relpath::at(upper, &dp)?);
        if need_wh {
            match rustix::fs::renameat_with(
                from.fd(),
                from.rest,
                to.fd(),
                to.rest,
                RenameFlags::WHITEOUT,
            ) {
                Ok(()) => wh_done = true,
                Err(Errno::INVAL | Errno::PERM | Errno::OPNOTSUPP | Errno::NOSYS) => {}
                Err(e) => return Err(e),
            }
        }
        if !wh_done {
            rustix::fs::renameat(from.fd(), from.rest, to.fd(), to.rest)?;
            if need_wh {
                self.make_whiteout(&ps.path, name)?;
            }
        }
        if remove_wh_file {
            let mut wh = format::WHITEOUT_PREFIX.to_vec();
            wh.extend_from_slice(newname);
            let whp = join(&nps.path, &wh);
            if let Ok(a) = relpath::at(upper, &whp) {
                let _ = rustix::fs::unlinkat(a.fd(), a.rest, AtFlags::empty());
            }
        }
        if let Some(d) = &dst {
            self.name_removed(d, &dp);
        }
        self.name_moved(&src, &sp, &dp, newparent.id);
        Ok(())
    }
}

/// Whether the upper directory `f`, moved into a merged directory, must be
/// marked opaque so that lower content at its new path stays hidden: a
/// directory of the upper only, not opaque yet. (A directory with lower
/// content has a redirect record: the lower layers are read at its path.)
fn needs_opaque(f: &Found) -> bool {
    f.is_dir() && !f.opaque && f.dir_lowers.is_empty()
}

impl OverlayFs {
    /// Before the directory `f` (in the upper, at `path`) moves: record
    /// where the lower layers hold its content, if they hold any. `EXDEV`
    /// (the kernel overlay's answer without redirects: callers copy) when
    /// the record cannot be written or its path is too long for one.
    fn record_redirect(&self, f: &Found, path: &[u8]) -> Res<()> {
        let Some(&low) = f.dir_lowers.first() else {
            return Ok(());
        };
        if !self.redirect_dir {
            return Err(Errno::XDEV);
        }
        let value = format::redirect_value(f.place(path).in_layer(low));
        if format::redirect_target(&value, b".").is_none() {
            return Err(Errno::XDEV);
        }
        self.layers
            .setxattr(
                UPPER,
                path,
                format::REDIRECT_XATTR.as_bytes(),
                &value,
                XattrFlags::empty(),
            )
            .map_err(|e| match e {
                Errno::OPNOTSUPP | Errno::PERM | Errno::NOSPC | Errno::TOOBIG => Errno::XDEV,
                e => e,
            })
    }
}
