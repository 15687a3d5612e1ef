//! Name lookup through the layers, top first, with whiteouts and opaque
//! directories.

use super::*;

impl OverlayFs {
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
        let Some(f) = self.layers.resolve(&ps.layers, &ps.path, name)? else {
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
                if g.key != key || g.layers != node_layers || g.path != path {
                    g.ovr = None;
                }
                if g.unlinked {
                    g.aliases.clear();
                }
                g.path = path;
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
                let o = self.layers.read_override(s.top(), &s.path)?;
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
        if format::is_reserved_name(name) || !layers::valid_name(name) {
            return Ok(None);
        }
        let parent = self.node(parent)?;
        let _ns = rlock(&self.ns);
        Ok(self
            .lookup_locked(&parent, name)?
            .map(|(n, a)| (a, lock(&n.st).shared_ino.is_some())))
    }
}
