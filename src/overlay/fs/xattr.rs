//! Extended attributes: the container's names mapped to stored names
//! (escaped `user.overlay.*`, foreign namespaces under a prefix, the
//! hutch format's own names hidden).

use super::convert::has_user_xattrs;
use super::{ESCAPED_OVERLAY_XATTR_PREFIX, OVERLAY_XATTR_PREFIX, OverlayFs, rlock};
use crate::overlay::format;
use crate::overlay::layers::{Res, UPPER};
use rustix::fs::XattrFlags;
use rustix::io::Errno;

impl OverlayFs {
    /// The stored name of a presented xattr name; `Err` for names the
    /// container may not see or touch.
    fn stored_xattr(name: &[u8], for_write: bool) -> Res<Vec<u8>> {
        if name.is_empty() || name.contains(&0) {
            return Err(Errno::INVAL);
        }
        if name.starts_with(b"user.") {
            if let Some(rest) = name.strip_prefix(OVERLAY_XATTR_PREFIX) {
                // Escaped like the kernel overlay does (Linux 6.7+): the
                // container's user.overlay.X is stored as
                // user.overlay.overlay.X.
                let mut v = ESCAPED_OVERLAY_XATTR_PREFIX.to_vec();
                v.extend_from_slice(rest);
                return Ok(v);
            }
            if format::RESERVED_XATTR_PREFIXES
                .iter()
                .any(|p| name.starts_with(p.as_bytes()))
            {
                return Err(if for_write {
                    Errno::PERM
                } else {
                    Errno::NODATA
                });
            }
            return Ok(name.to_vec());
        }
        let mut v = format::FOREIGN_XATTR_PREFIX.as_bytes().to_vec();
        v.extend_from_slice(name);
        Ok(v)
    }

    pub fn getxattr(&self, id: u64, name: &[u8]) -> Res<Vec<u8>> {
        let stored = Self::stored_xattr(name, false)?;
        let node = self.node(id)?;
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        if s.unlinked {
            let h = s.handle.upgrade().ok_or(Errno::NOENT)?;
            let fd = h.current_fd();
            let mut buf = vec![0u8; 65536];
            let n = rustix::fs::fgetxattr(&*fd, stored.as_slice(), &mut buf[..])?;
            buf.truncate(n);
            return Ok(buf);
        }
        if !has_user_xattrs(s.dtype) {
            return Err(Errno::NODATA);
        }
        self.layers.getxattr(s.top(), s.top_path(), &stored)
    }

    pub fn listxattr(&self, id: u64) -> Res<Vec<u8>> {
        let node = self.node(id)?;
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        if s.unlinked || !has_user_xattrs(s.dtype) {
            return Ok(Vec::new());
        }
        let raw = self.layers.listxattr(s.top(), s.top_path())?;
        let mut out = Vec::with_capacity(raw.len());
        for stored in raw.split(|&b| b == 0) {
            if !stored.starts_with(b"user.") {
                continue;
            }
            if let Some(rest) = stored.strip_prefix(ESCAPED_OVERLAY_XATTR_PREFIX) {
                out.extend_from_slice(OVERLAY_XATTR_PREFIX);
                out.extend_from_slice(rest);
                out.push(0);
            } else if let Some(p) = format::presented_xattr_name(stored) {
                out.extend_from_slice(p);
                out.push(0);
            }
        }
        Ok(out)
    }

    pub fn setxattr(&self, id: u64, name: &[u8], value: &[u8], flags: i32) -> Res<()> {
        let stored = Self::stored_xattr(name, true)?;
        let node = self.node(id)?;
        self.copy_up_node(&node, false)?;
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        if s.unlinked {
            return Err(Errno::NOENT);
        }
        if !has_user_xattrs(s.dtype) {
            return Err(Errno::PERM);
        }
        self.layers.setxattr(
            UPPER,
            &s.path,
            &stored,
            value,
            XattrFlags::from_bits_retain(flags as u32),
        )
    }

    pub fn removexattr(&self, id: u64, name: &[u8]) -> Res<()> {
        let stored = Self::stored_xattr(name, true)?;
        let node = self.node(id)?;
        {
            // Nothing to copy up for a name that is not there.
            let _ns = rlock(&self.ns);
            let s = node.snapshot();
            if s.unlinked {
                return Err(Errno::NOENT);
            }
            if !has_user_xattrs(s.dtype) {
                return Err(Errno::NODATA);
            }
            self.layers.getxattr(s.top(), s.top_path(), &stored)?;
        }
        self.copy_up_node(&node, false)?;
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        self.layers.removexattr(UPPER, &s.path, &stored)
    }
}
