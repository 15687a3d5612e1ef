//! The copy-up entry points the operations use (parents first, once per
//! file under its copy lock) and the bookkeeping after a copy: the
//! upper identity keeps the node id. The copy itself is in
//! `overlay::copyup`.

use super::{COPY_LOCK_STRIPES, Inval, Node, OverlayFs, is_lower_hardlink, lock, rlock};
use crate::overlay::layers::{Found, Place, Redirects, Res, UPPER, split_parent};
use rustix::fs::FileType;
use rustix::io::Errno;
use std::sync::MutexGuard;

impl OverlayFs {
    /// The copy lock for the file with identity `key`.
    pub(crate) fn copy_lock(&self, key: (u64, u64)) -> MutexGuard<'_, ()> {
        let h = key.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key.1;
        let i = (h % COPY_LOCK_STRIPES as u64) as usize;
        lock(&self.copy_locks[i.min(COPY_LOCK_STRIPES - 1)])
    }

    /// After copying the file `f` visible at `path` up to upper identity
    /// `upper`: bind the new identity to the node id of that name and
    /// update a live node.
    pub(crate) fn note_copied_up(&self, f: &Found, path: &[u8], upper: (u64, u64)) {
        let lower = f.key();
        let id = if is_lower_hardlink(f) {
            self.hardlink_id(lower, path)
        } else {
            self.id_for(lower)
        };
        lock(&self.ids).map.insert(upper, id);
        let node = rlock(&self.nodes).get(&id).cloned();
        let Some(node) = node else { return };
        let mut g = lock(&node.st);
        if g.key != lower {
            return;
        }
        if g.dtype == FileType::Directory {
            if g.layers.first() != Some(&UPPER) {
                g.layers.insert(0, UPPER);
            }
        } else {
            g.layers = vec![UPPER];
        }
        g.key = upper;
        g.ovr = None;
        if g.shared_ino.take().is_some() {
            // The copy is a file of its own now (like the kernel overlay
            // without `index`): it shows its own inode number and link
            // count; let the kernel fetch them.
            drop(g);
            self.invalidate(Inval::Inode(id));
        }
    }

    /// Queue a cache invalidation for the kernel (sent from another
    /// thread: the kernel may hold locks the current request waits on).
    pub(crate) fn invalidate(&self, what: Inval) {
        if let Some(tx) = lock(&self.inval_tx).as_ref() {
            let _ = tx.send(what);
        }
    }

    pub(crate) fn set_invalidator(&self, tx: std::sync::mpsc::Sender<Inval>) {
        *lock(&self.inval_tx) = Some(tx);
    }

    /// The merge list of the directory at `path`, copying it (and its
    /// ancestors) up first. On return the directory exists in the upper.
    /// Name by name from the root, in a loop: an image may nest
    /// directories deeper than a thread's stack would go by recursion.
    pub(crate) fn copy_up_dir(&self, path: &[u8]) -> Res<(Vec<u16>, Redirects)> {
        let mut layers = self.layers.root.clone();
        let mut redirects = Vec::new();
        if path == b"." {
            return Ok((layers, redirects));
        }
        let mut from = 0;
        loop {
            let slash = path[from..]
                .iter()
                .position(|&b| b == b'/')
                .map(|i| from + i);
            let cur = &path[..slash.unwrap_or(path.len())];
            let (pp, name) = split_parent(cur);
            let f = self
                .layers
                .resolve(&layers, Place::new(pp, &redirects), name)?
                .ok_or(Errno::NOENT)?;
            if !f.is_dir() {
                return Err(Errno::NOTDIR);
            }
            layers = f.layers();
            if f.top != UPPER {
                self.copy_up_found(&f, cur, false)?;
                layers.insert(0, UPPER);
            }
            redirects = f.redirects;
            match slash {
                Some(i) => from = i + 1,
                None => return Ok((layers, redirects)),
            }
        }
    }

    /// Copy the visible file at `path` up (parents first). `trunc`: the
    /// data is about to be truncated away, copy none.
    pub(crate) fn copy_up_path(&self, path: &[u8], trunc: bool) -> Res<()> {
        let (pp, name) = split_parent(path);
        let (pl, pr) = self.copy_up_dir(pp)?;
        let parent = Place::new(pp, &pr);
        let f = self
            .layers
            .resolve(&pl, parent, name)?
            .ok_or(Errno::NOENT)?;
        if f.is_dir() {
            return self.copy_up_dir(path).map(|_| ());
        }
        if f.top == UPPER {
            return Ok(());
        }
        let _g = self.copy_lock(f.key());
        // Re-check under the lock: another thread may have done it.
        let f = self
            .layers
            .resolve(&pl, parent, name)?
            .ok_or(Errno::NOENT)?;
        if f.top == UPPER {
            return Ok(());
        }
        self.copy_up_found(&f, path, trunc)
    }

    /// Make sure a node lives in the upper layer.
    pub(crate) fn copy_up_node(&self, node: &Node, trunc: bool) -> Res<()> {
        let s = node.snapshot();
        if s.is_upper() {
            return Ok(());
        }
        if s.unlinked {
            return Err(Errno::NOENT);
        }
        if s.is_dir() {
            self.copy_up_dir(&s.path).map(|_| ())
        } else {
            self.copy_up_path(&s.path, trunc)
        }
    }

    pub(super) fn ensure_dir_upper(&self, node: &Node) -> Res<()> {
        let s = node.snapshot();
        if !s.is_dir() {
            return Err(Errno::NOTDIR);
        }
        if s.unlinked {
            return Err(Errno::NOENT);
        }
        if s.is_upper() {
            return Ok(());
        }
        self.copy_up_dir(&s.path).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{OverlayFs, open_layers};
    use crate::overlay::relpath;
    use rustix::fs::{AtFlags, Mode, OFlags};
    use std::os::fd::AsFd;

    /// Writing under a chain of lower directories deeper than a small
    /// stack could recurse through (an image may nest them so): the
    /// ancestors are copied up name by name in a loop. The chain is also
    /// longer than PATH_MAX.
    #[test]
    fn copy_up_under_a_deep_chain_needs_no_deep_stack() {
        let t = tempfile::tempdir().unwrap();
        let (l, u, w) = (t.path().join("L"), t.path().join("U"), t.path().join("W"));
        for d in [&l, &u, &w] {
            std::fs::create_dir(d).unwrap();
        }
        let root = rustix::fs::open(&l, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let mut path = Vec::new();
        for _ in 0..2500 {
            if !path.is_empty() {
                path.push(b'/');
            }
            path.push(b'd');
            let a = relpath::at(root.as_fd(), &path).unwrap();
            rustix::fs::mkdirat(a.fd(), a.rest, Mode::from_raw_mode(0o755)).unwrap();
        }
        path.extend_from_slice(b"/f");
        let a = relpath::at(root.as_fd(), &path).unwrap();
        rustix::fs::openat(
            a.fd(),
            a.rest,
            OFlags::WRONLY | OFlags::CREATE,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        let fs = OverlayFs::new(open_layers(&[l], &u, &w).unwrap()).unwrap();
        let file = path.clone();
        let copied = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || fs.copy_up_path(&file, false))
            .unwrap()
            .join()
            .expect("the copy-up thread ran to its end");
        assert_eq!(copied, Ok(()));
        let upper =
            rustix::fs::open(&u, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let a = relpath::at(upper.as_fd(), &path).unwrap();
        let st = rustix::fs::statat(a.fd(), a.rest, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        assert_eq!(
            st.st_mode & 0o170000,
            0o100000,
            "the file is in the upper dir"
        );
    }
}
