//! The overlay filesystem proper: nodes, inode numbers, and every
//! operation as a method returning `Result<_, Errno>`. The FUSE glue
//! (`fuse.rs`) only unpacks requests and sends replies.
//!
//! # Nodes and inode numbers
//!
//! fuser 0.18 always uses `attr.ino` as the FUSE node id, so the node id
//! *is* the `st_ino` the container sees. Node ids are allocated from a
//! counter and bound to the identity (`st_dev`, `st_ino`) of the visible
//! file; the binding lives as long as the mount, so inode numbers are
//! stable even after the kernel forgets a node. A copy-up binds the upper
//! file's identity to the same id (same inode number before and after).
//! Hardlinked lower files share an identity, hence one node (one kernel
//! inode, shared page cache) reachable under several paths ("aliases").
//! When the last link of an upper file goes, its identity is unbound so a
//! reused inode number on disk gets a fresh node id.
//!
//! # Locking
//!
//! * `ns` (RwLock): the namespace. Operations that use a node's path take
//!   it shared; operations that change names (create, unlink, rename...)
//!   take it exclusively, so paths never change under a reader. Copy-up
//!   copies data without it and takes it shared only to rename the copy
//!   into place. Never taken twice by one thread.
//! * `copy_locks`: striped by source identity, so a file is copied once
//!   even under concurrent opens.
//! * node state mutexes, `nodes`, `ids`, handle maps: leaf locks, held for
//!   a few instructions.
//!
//! # Files
//!
//! This file holds the types (nodes, handles, the filesystem itself);
//! the operations are `impl OverlayFs` blocks grouped by what they touch:
//! `nodes` (ids, lookup, name bookkeeping), `attr` (getattr, setattr,
//! statfs), `files` (open, create, release, prefetch, readlink), `dirs`
//! (listings), `entries` (create and remove names), `rename`, `xattr`,
//! `whiteouts` (upper-layer name changes over lowers), `copyup_glue`
//! (copy-up entry points), `setup` (opening layers, the root node) and
//! `convert` (stat and mode conversions).

mod attr;
mod convert;
mod copyup_glue;
mod dirs;
mod entries;
mod files;
mod nodes;
mod rename;
mod setup;
mod whiteouts;
mod xattr;

pub(crate) use convert::{node_mode_on_disk, own_on_disk};
pub(crate) use setup::open_layers;

use super::format::OverrideStat;
use super::idmap::IdMap;
use super::layers::{Found, Layers, Place, Redirects, UPPER};
use fuser::FileType as FType;
use rustix::fs::FileType;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, SystemTime};

pub(crate) const ROOT_ID: u64 = 1;
const S_ISGID: u32 = 0o2000;
const COPY_LOCK_STRIPES: usize = 64;
const OVERLAY_XATTR_PREFIX: &[u8] = b"user.overlay.";
pub(crate) const ESCAPED_OVERLAY_XATTR_PREFIX: &[u8] = b"user.overlay.overlay.";

/// Largest lower file [`OverlayFs::prefetch`] pushes into the page cache.
pub const PREFETCH_MAX: u64 = 16 << 20;

/// Longest name a directory entry may have (`NAME_MAX`).
pub(crate) const NAME_MAX: usize = 255;

/// `ENAMETOOLONG` for a name longer than [`NAME_MAX`] bytes: checked before
/// anything else, as the kernel filesystems do (a lookup of such a name is
/// no `ENOENT`).
pub(crate) fn check_name_len(name: &[u8]) -> Result<(), rustix::io::Errno> {
    if name.len() > NAME_MAX {
        Err(rustix::io::Errno::NAMETOOLONG)
    } else {
        Ok(())
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn rlock<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn wlock<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// What the kernel knows as one inode.
pub(crate) struct Node {
    pub id: u64,
    nlookup: AtomicU64,
    /// Opened for writing during this mount: the kernel may hold dirty
    /// pages of it (writeback cache), so the data on disk may lag.
    pub written: AtomicBool,
    /// Its data was pushed into the kernel's page cache ([`OverlayFs::prefetch`]);
    /// a node made anew after the kernel forgot the inode starts unset.
    pub prefetched: AtomicBool,
    /// Directories: the merged listing being read (built when the kernel
    /// reads from offset 0, which it does again after every change).
    listing: Mutex<Option<Arc<Vec<DirEntry>>>>,
    st: Mutex<NodeState>,
}

#[derive(Clone)]
pub(crate) struct NodeState {
    /// The path in the upper layer, and in the lower layers unless
    /// `redirects` says otherwise (relative to the layer roots; root is `.`).
    pub path: Vec<u8>,
    /// Where the lower layers hold it when not at `path` (see [`Place`]).
    pub redirects: Redirects,
    /// Other paths of the same file (hardlinks).
    pub aliases: Vec<Vec<u8>>,
    /// Parent directory node (for `..`).
    pub parent: u64,
    /// Layers holding it, top first (directories: the merge list).
    pub layers: Vec<u16>,
    /// On-disk type of the visible file.
    pub dtype: FileType,
    /// Removed from the namespace (still open, or about to be forgotten).
    pub unlinked: bool,
    /// Cached ownership record (`None` = not read yet).
    pub ovr: Option<Option<OverrideStat>>,
    /// Identity of the visible file.
    pub key: (u64, u64),
    /// Some open handle, to serve an unlinked file.
    pub handle: Weak<FileHandle>,
    /// For a name of a lower hardlinked file: the inode number all its
    /// names present (fuser makes the node id the inode number of entry
    /// replies, so attribute replies carry this one).
    pub shared_ino: Option<u64>,
}

impl NodeState {
    pub fn top(&self) -> u16 {
        self.layers.first().copied().unwrap_or(UPPER)
    }
    pub fn is_upper(&self) -> bool {
        self.top() == UPPER
    }
    pub fn is_dir(&self) -> bool {
        self.dtype == FileType::Directory
    }
    /// Where it is in each layer.
    pub fn place(&self) -> Place<'_> {
        Place::new(&self.path, &self.redirects)
    }
    /// The path in its top layer, for I/O on the visible file.
    pub fn top_path(&self) -> &[u8] {
        self.place().in_layer(self.top())
    }
    /// Merged directory: present in more than one layer.
    pub fn merged(&self) -> bool {
        self.layers.len() > 1
    }
    /// The lower layers of a directory.
    pub fn lower_layers(&self) -> Vec<u16> {
        self.layers
            .iter()
            .copied()
            .filter(|&l| l != UPPER)
            .collect()
    }
}

impl Node {
    pub fn snapshot(&self) -> NodeState {
        lock(&self.st).clone()
    }
}

/// An open file.
pub(crate) struct FileHandle {
    fd: RwLock<Arc<OwnedFd>>,
    pub node: Arc<Node>,
    upper: AtomicBool,
    pub writable: bool,
}

#[derive(Clone)]
pub(crate) struct DirEntry {
    pub name: Vec<u8>,
    pub kind: FType,
    pub ino: u64,
}

/// A kernel cache entry to drop.
pub(crate) enum Inval {
    /// The attributes of a node.
    Inode(u64),
}

struct Ids {
    map: HashMap<(u64, u64), u64>,
    /// Node ids of the names of lower files with several links: one node
    /// per name (so that a copy-up breaks the link for that name only, as
    /// in the kernel overlay), all presenting the same inode number.
    hardlinks: HashMap<(u64, u64, Vec<u8>), u64>,
    next: u64,
}

/// A non-directory in a lower layer with several links.
fn is_lower_hardlink(f: &Found) -> bool {
    !f.is_dir() && f.top != UPPER && f.st.st_nlink > 1
}

/// What to create in a directory.
pub(crate) enum NewEntry<'a> {
    File { mode: u32 },
    Dir { mode: u32 },
    Fifo { mode: u32 },
    Socket { mode: u32 },
    Symlink { target: &'a [u8] },
    Link { src: Arc<Node> },
}

/// Who asks: uid and gid from the FUSE request.
#[derive(Clone, Copy)]
pub(crate) struct Caller {
    pub uid: u32,
    pub gid: u32,
}

/// Changes requested by `setattr`.
#[derive(Default)]
pub(crate) struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<Option<SystemTime>>,
    pub mtime: Option<Option<SystemTime>>,
    pub fh: Option<u64>,
}

pub(crate) struct OverlayFs {
    pub layers: Layers,
    nodes: RwLock<HashMap<u64, Arc<Node>>>,
    ids: Mutex<Ids>,
    ns: RwLock<()>,
    files: RwLock<HashMap<u64, Arc<FileHandle>>>,
    next_fh: AtomicU64,
    tmp_seq: AtomicU64,
    copy_locks: Vec<Mutex<()>>,
    /// Whether the kernel runs a writeback cache (set in `init`).
    pub writeback: AtomicBool,
    /// Process umask at start (creation modes are fixed up when it bites).
    umask: u32,
    /// Whether renaming a lower directory writes a redirect record (else
    /// `EXDEV`): [`crate::overlay::OverlayConfig::redirect_dir`].
    pub redirect_dir: bool,
    /// Stored owners to shown ones and back ([`crate::overlay::idmap`]);
    /// `None`: shown as stored.
    pub idmap: Option<IdMap>,
    pub ttl: Duration,
    inval_tx: Mutex<Option<std::sync::mpsc::Sender<Inval>>>,
}
