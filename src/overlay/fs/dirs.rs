//! Directory listings: the merged entries of all layers of a directory,
//! served to `readdir` and `readdirplus`.

use super::convert::fuse_kind;
use super::{DirEntry, Node, OverlayFs, lock, rlock};
use crate::overlay::layers::Res;
use fuser::{FileAttr, FileType as FType};
use rustix::io::Errno;
use std::sync::Arc;

impl OverlayFs {
    // -- directories --------------------------------------------------------------

    fn dir_entries(&self, node: &Node) -> Res<Vec<DirEntry>> {
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        if !s.is_dir() {
            return Err(Errno::NOTDIR);
        }
        if s.unlinked {
            return Ok(Vec::new());
        }
        let list = self.layers.list(&s.layers, s.place())?;
        let mut out = Vec::with_capacity(list.len() + 2);
        out.push(DirEntry {
            name: b".".to_vec(),
            kind: FType::Directory,
            ino: node.id,
        });
        out.push(DirEntry {
            name: b"..".to_vec(),
            kind: FType::Directory,
            ino: s.parent,
        });
        for e in list {
            let dev = self.layers.dir(e.layer).map(|d| d.dev).unwrap_or(0);
            out.push(DirEntry {
                ino: self.id_for((dev, e.ino)),
                name: e.name,
                kind: fuse_kind(e.ftype),
            });
        }
        Ok(out)
    }

    /// The merged listing of directory `id` for a read from `offset`
    /// (directories are served without opendir: the kernel caches the
    /// listing and reads from 0 again after any change).
    pub fn readdir_entries(&self, id: u64, offset: u64) -> Res<(Arc<Node>, Arc<Vec<DirEntry>>)> {
        let node = self.node(id)?;
        let cached = if offset == 0 {
            None
        } else {
            lock(&node.listing).clone()
        };
        let list = match cached {
            Some(l) => l,
            None => {
                let l = Arc::new(self.dir_entries(&node)?);
                *lock(&node.listing) = Some(l.clone());
                l
            }
        };
        Ok((node, list))
    }

    /// For readdirplus: look an entry up (counting a reference) or
    /// present `.`/`..` (no reference).
    pub fn readdirplus_entry(&self, dir: &Node, e: &DirEntry) -> Res<Option<(FileAttr, bool)>> {
        let _ns = rlock(&self.ns);
        if e.name == b"." || e.name == b".." {
            let n = self.node(e.ino)?;
            return self.attr_locked(&n).map(|a| Some((a, false)));
        }
        Ok(self
            .lookup_locked(dir, &e.name)?
            .map(|(n, a)| (a, lock(&n.st).shared_ino.is_some())))
    }

    // -- xattrs ---------------------------------------------------------------------
}
