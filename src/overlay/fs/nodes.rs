//! The node table: node ids bound to file identities, the kernel's
//! references (lookup/forget), and the bookkeeping of names that move
//! or go away.

use super::convert::has_user_xattrs;
use super::{
    Node, NodeState, OverlayFs, ROOT_ID, check_name_len, is_lower_hardlink, lock, rlock, wlock,
};
use crate::overlay::format;
use crate::overlay::layers::{self, Found, Res, UPPER, join};
use fuser::FileAttr;
use rustix::io::Errno;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

impl OverlayFs {
    // -- nodes and ids ------------------------------------------------------

    pub fn node(&self, id: u64) -> Res<Arc<Node>> {
        rlock(&self.nodes).get(&id).cloned().ok_or(Errno::STALE)
    }

    pub(super) fn id_for(&self, key: (u64, u64)) -> u64 {
        let mut ids = lock(&self.ids);
        if let Some(&id) = ids.map.get(&key) {
            return id;
        }
        let id = ids.next;
        ids.next += 1;
        ids.map.insert(key, id);
        id
    }

    /// The node id of the name `path` of the lower hardlinked file `key`.
    pub(super) fn hardlink_id(&self, key: (u64, u64), path: &[u8]) -> u64 {
        let mut ids = lock(&self.ids);
        let k = (key.0, key.1, path.to_vec());
        if let Some(&id) = ids.hardlinks.get(&k) {
            return id;
        }
        let id = ids.next;
        ids.next += 1;
        ids.hardlinks.insert(k, id);
        id
    }

    fn id_get(&self, key: (u64, u64)) -> Option<u64> {
        lock(&self.ids).map.get(&key).copied()
    }

    fn node_by_key(&self, key: (u64, u64)) -> Option<Arc<Node>> {
        let id = self.id_get(key)?;
        rlock(&self.nodes).get(&id).cloned()
    }

    /// The kernel dropped `n` references to `id`.
    pub fn forget(&self, id: u64, n: u64) {
        if id == ROOT_ID {
            return;
        }
        let mut nodes = wlock(&self.nodes);
        if let Some(node) = nodes.get(&id) {
            let cur = node.nlookup.load(Ordering::Relaxed);
            let left = cur.saturating_sub(n);
            node.nlookup.store(left, Ordering::Relaxed);
            if left == 0 {
                nodes.remove(&id);
            }
        }
    }

    pub(crate) fn ns_lock(&self) -> &RwLock<()> {
        &self.ns
    }

    pub(crate) fn tmp_name(&self) -> Vec<u8> {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        format!("#hutch.{}.{n}", std::process::id()).into_bytes()
    }

    // -- attributes ---------------------------------------------------------

    // -- lookup -------------------------------------------------------------

    /// Look `name` up in `parent`, counting a kernel reference on success.
    /// Caller holds `ns` (either way).
    pub(super) fn lookup_locked(
        &self,
        parent: &Node,
        name: &[u8],
    ) -> Res<Option<(Arc<Node>, FileAttr)>> {
        let ps = parent.snapshot();
        if !ps.is_dir() {
            return Err(Errno::NOTDIR);
        }
        if ps.unlinked {
            return Err(Errno::NOENT);
        }
        let Some(f) = self.layers.resolve(&ps.layers, ps.place(), name)? else {
            return Ok(None);
        };
        let path = join(&ps.path, name);
        let key = f.key();
        let (id, shared_ino) = if is_lower_hardlink(&f) {
            (self.hardlink_id(key, &path), Some(self.id_for(key)))
        } else {
            (self.id_for(key), None)
        };
        let node_layers = if f.is_dir() { f.layers() } else { vec![f.top] };
        let dtype = layers::ftype(&f.st);
        let node = {
            let mut nodes = wlock(&self.nodes);
            let node = nodes
                .entry(id)
                .or_insert_with(|| {
                    Arc::new(Node {
                        id,
                        nlookup: AtomicU64::new(0),
                        written: AtomicBool::new(false),
                        prefetched: AtomicBool::new(false),
                        listing: Mutex::new(None),
                        st: Mutex::new(NodeState {
                            path: path.clone(),
                            redirects: f.redirects.clone(),
                            aliases: Vec::new(),
                            parent: parent.id,
                            layers: node_layers.clone(),
                            dtype,
                            unlinked: false,
                            ovr: None,
                            key,
                            handle: Weak::new(),
                            shared_ino,
                        }),
                    })
                })
                .clone();
            node.nlookup.fetch_add(1, Ordering::Relaxed);
            node
        };
        let s = {
            let mut g = lock(&node.st);
            if g.path == path || g.unlinked || g.dtype != dtype {
                if g.key != key
                    || g.layers != node_layers
                    || g.path != path
                    || g.redirects != f.redirects
                {
                    g.ovr = None;
                }
                if g.unlinked {
                    g.aliases.clear();
                }
                g.path = path;
                g.redirects = f.redirects.clone();
                g.parent = parent.id;
                g.layers = node_layers;
                g.dtype = dtype;
                g.unlinked = false;
                g.key = key;
                g.shared_ino = shared_ino;
            } else if !g.aliases.contains(&path) {
                g.aliases.push(path);
            }
            g.clone()
        };
        let st = f.st;
        let ovr = match s.ovr {
            Some(o) => o,
            None if has_user_xattrs(dtype) => {
                let o = self.layers.read_override(s.top(), s.top_path())?;
                let mut g = lock(&node.st);
                if g.key == s.key && g.path == s.path {
                    g.ovr = Some(o);
                }
                o
            }
            None => None,
        };
        let attr = if s.path == join(&ps.path, name) {
            self.make_attr(id, &s, &st, ovr.as_ref())
        } else {
            // Reached through an alias: present the node as it is.
            match self.node_stat(&node, &s) {
                Ok((st, ovr)) => self.make_attr(id, &s, &st, ovr.as_ref()),
                Err(_) => self.make_attr(id, &s, &st, ovr.as_ref()),
            }
        };
        Ok(Some((node, attr)))
    }

    /// Look a name up. The flag says the attributes must not be cached
    /// (the entry carries the node id as inode number, see `shared_ino`).
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Res<Option<(FileAttr, bool)>> {
        check_name_len(name)?;
        if format::is_reserved_name(name) || !layers::valid_name(name) {
            return Ok(None);
        }
        let parent = self.node(parent)?;
        let _ns = rlock(&self.ns);
        Ok(self
            .lookup_locked(&parent, name)?
            .map(|(n, a)| (a, lock(&n.st).shared_ino.is_some())))
    }

    // -- copy-up support ----------------------------------------------------

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
    fn relocate(&self, node: &Node) {
        let s = node.snapshot();
        for l in 0..self.layers.list.len() as u16 {
            match self.layers.stat(l, s.place().in_layer(l)) {
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
    /// What moved keeps its place in the lower layers (a renamed directory
    /// has a redirect record, and what is below it follows).
    pub(super) fn name_moved(&self, f: &Found, old: &[u8], new: &[u8], new_parent: u64) {
        if let Some(node) = self.node_by_key(f.key()) {
            let mut g = lock(&node.st);
            if g.path == old {
                pin_lower_place(&mut g);
                g.path = new.to_vec();
                g.parent = new_parent;
                if !g.is_dir() {
                    g.layers = vec![UPPER];
                }
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
                if g.path.starts_with(&prefix) {
                    pin_lower_place(&mut g);
                }
                fix(&mut g.path);
                for a in g.aliases.iter_mut() {
                    fix(a);
                }
            }
        }
    }
}

/// Before a node's path changes by a rename: if it has content in lower
/// layers found at its own path, keep finding it there (a redirect from
/// the first lower layer down).
fn pin_lower_place(g: &mut NodeState) {
    let has_lower = g.layers.iter().any(|&l| l != UPPER);
    let pinned = g.redirects.first().is_some_and(|(k, _)| *k <= 1);
    if has_lower && !pinned {
        let p = g.path.clone();
        g.redirects.insert(0, (1, p));
    }
}
