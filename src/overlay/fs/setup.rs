//! Building the filesystem: opening the layer directories, the root
//! node, and cleaning leftovers of an earlier run from the work dir.

use super::{COPY_LOCK_STRIPES, Ids, Node, NodeState, OverlayFs, ROOT_ID};
use crate::overlay::layers::{self, Dirfd, Layers, UPPER};
use rustix::fs::{FileType, Mode, OFlags};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

impl OverlayFs {
    /// Build the filesystem over opened layers (`list[0]` = upper).
    pub fn new(mut layers: Layers) -> std::io::Result<OverlayFs> {
        let upper_st = rustix::fs::fstat(layers.upper())?;
        // Root merges every layer, down to the first opaque lower root.
        let mut root_layers = vec![UPPER];
        for l in 1..layers.list.len() {
            let l = l as u16;
            root_layers.push(l);
            if layers.dir_opaque(l, b".").map_err(std::io::Error::from)? {
                break;
            }
        }
        layers.set_root(root_layers.clone());
        let mut ids = Ids {
            map: HashMap::new(),
            hardlinks: HashMap::new(),
            next: ROOT_ID + 1,
        };
        let key = (upper_st.st_dev, upper_st.st_ino);
        ids.map.insert(key, ROOT_ID);
        let root = Arc::new(Node {
            id: ROOT_ID,
            nlookup: AtomicU64::new(1),
            written: AtomicBool::new(false),
            prefetched: AtomicBool::new(false),
            listing: Mutex::new(None),
            st: Mutex::new(NodeState {
                path: b".".to_vec(),
                redirects: Vec::new(),
                aliases: Vec::new(),
                parent: ROOT_ID,
                layers: root_layers,
                dtype: FileType::Directory,
                unlinked: false,
                ovr: None,
                key,
                handle: Weak::new(),
                shared_ino: None,
            }),
        });
        let mut nodes = HashMap::new();
        nodes.insert(ROOT_ID, root);
        let old = rustix::process::umask(Mode::empty());
        rustix::process::umask(old);
        Ok(OverlayFs {
            layers,
            nodes: RwLock::new(nodes),
            ids: Mutex::new(ids),
            ns: RwLock::new(()),
            files: RwLock::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            tmp_seq: AtomicU64::new(0),
            copy_locks: (0..COPY_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            writeback: AtomicBool::new(false),
            umask: old.as_raw_mode(),
            redirect_dir: true,
            idmap: None,
            ttl: Duration::from_secs(24 * 3600),
            inval_tx: Mutex::new(None),
        })
    }

    /// Remove leftovers of an earlier run from the work dir.
    pub fn clean_work(&self) {
        let work = self.layers.work.fd();
        let Ok(fd) = rustix::fs::openat(
            work,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let Ok(mut d) = rustix::fs::Dir::new(fd) else {
            return;
        };
        let mut stale = Vec::new();
        while let Some(Ok(e)) = d.read() {
            let n = e.file_name().to_bytes();
            if n.starts_with(b"#hutch.") {
                stale.push(n.to_vec());
            }
        }
        for n in stale {
            if let Err(e) = layers::remove_all(work, &n) {
                tracing::warn!(
                    "cannot remove {} from the work dir: {e}",
                    String::from_utf8_lossy(&n)
                );
            }
        }
    }
}

/// Open the layers described by paths: `upper`, `work`, then `lowers`
/// top first.
pub(crate) fn open_layers(
    lowers: &[std::path::PathBuf],
    upper: &std::path::Path,
    work: &std::path::Path,
) -> anyhow::Result<Layers> {
    use anyhow::Context;
    let mut list = Vec::with_capacity(1 + lowers.len());
    list.push(
        Dirfd::open(upper).with_context(|| format!("opening upper dir {}", upper.display()))?,
    );
    for l in lowers {
        list.push(Dirfd::open(l).with_context(|| format!("opening lower dir {}", l.display()))?);
    }
    let work_d =
        Dirfd::open(work).with_context(|| format!("opening work dir {}", work.display()))?;
    if work_d.dev != list[0].dev {
        anyhow::bail!(
            "work dir {} must be on the same filesystem as the upper dir {}",
            work.display(),
            upper.display()
        );
    }
    Ok(Layers::new(list, work_d))
}
