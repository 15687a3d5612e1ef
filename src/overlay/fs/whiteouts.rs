//! Changes to names in the upper layer where lower layers show through:
//! whiteouts, opaque directories, and placing or removing upper entries
//! over them. The caller holds `ns` exclusively.

use super::convert::errno_of;
use super::{NodeState, OverlayFs};
use crate::overlay::format;
use crate::overlay::layers::{self, Res, UpperWhiteout, join};
use crate::overlay::relpath;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use std::os::fd::OwnedFd;

impl OverlayFs {
    // -- namespace helpers (caller holds `ns` exclusively) --------------------

    fn upper_dirfd(&self, dir: &[u8], flags: OFlags) -> Res<OwnedFd> {
        let a = relpath::at(self.layers.upper(), dir)?;
        rustix::fs::openat(
            a.fd(),
            a.rest,
            flags | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }

    /// Whether `dir/name` is visible in the lower layers of `ps`.
    pub(super) fn lower_visible(&self, ps: &NodeState, name: &[u8]) -> Res<bool> {
        let lower = ps.lower_layers();
        Ok(!lower.is_empty() && self.layers.resolve(&lower, ps.place(), name)?.is_some())
    }

    pub(super) fn make_whiteout(&self, dir: &[u8], name: &[u8]) -> Res<()> {
        let dfd = self.upper_dirfd(dir, OFlags::PATH)?;
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
                let r = relpath::at(self.layers.upper(), &path).and_then(|a| {
                    if is_dir {
                        rustix::fs::renameat_with(
                            work,
                            tmp.as_slice(),
                            a.fd(),
                            a.rest,
                            RenameFlags::EXCHANGE,
                        )
                    } else {
                        rustix::fs::renameat(work, tmp.as_slice(), a.fd(), a.rest)
                    }
                });
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
                    let a = relpath::at(self.layers.upper(), &path)?;
                    rustix::fs::unlinkat(a.fd(), a.rest, AtFlags::empty())?;
                }
                let dfd = self.upper_dirfd(dir, OFlags::RDONLY)?;
                format::make_whiteout_file(&dfd, name).map_err(|e| errno_of(&e))
            }
            Err(e) => Err(e),
        }
    }

    /// Remove an upper directory that is empty in the merged view (it may
    /// still hold whiteouts).
    pub(super) fn remove_upper_dir(&self, path: &[u8]) -> Res<()> {
        let a = relpath::at(self.layers.upper(), path)?;
        match rustix::fs::unlinkat(a.fd(), a.rest, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(()),
            Err(Errno::NOTEMPTY | Errno::EXIST) => {
                let tmp = self.tmp_name();
                rustix::fs::renameat(a.fd(), a.rest, self.layers.work.fd(), tmp.as_slice())?;
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
        let work = self.layers.work.fd();
        let dfd = self.upper_dirfd(dir, OFlags::PATH)?;
        match wh {
            UpperWhiteout::Device if is_dir => {
                rustix::fs::renameat_with(work, tmp, &dfd, name, RenameFlags::EXCHANGE)?;
                let _ = rustix::fs::unlinkat(work, tmp, AtFlags::empty());
            }
            UpperWhiteout::Device => rustix::fs::renameat(work, tmp, &dfd, name)?,
            UpperWhiteout::File => {
                rustix::fs::renameat_with(work, tmp, &dfd, name, RenameFlags::NOREPLACE)?;
                let mut wh = format::WHITEOUT_PREFIX.to_vec();
                wh.extend_from_slice(name);
                match rustix::fs::unlinkat(&dfd, wh.as_slice(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    pub(super) fn set_opaque_upper(&self, path: &[u8]) -> Res<()> {
        let fd = self.upper_dirfd(path, OFlags::RDONLY)?;
        format::set_opaque(&fd)
            .map(|_| ())
            .map_err(|e| errno_of(&e))
    }
}
