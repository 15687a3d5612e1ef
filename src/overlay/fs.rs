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

use super::format::{self, OverrideStat, RecordedType};
use super::layers::{self, Dirfd, Found, Layers, Res, UPPER, UpperWhiteout, join, split_parent};
use fuser::{FileAttr, FileType as FType, INodeNo};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat, XattrFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) const ROOT_ID: u64 = 1;
const S_ISGID: u32 = 0o2000;
const COPY_LOCK_STRIPES: usize = 64;
const OVERLAY_XATTR_PREFIX: &[u8] = b"user.overlay.";
pub(crate) const ESCAPED_OVERLAY_XATTR_PREFIX: &[u8] = b"user.overlay.overlay.";

/// Largest lower file [`OverlayFs::prefetch`] pushes into the page cache.
pub const PREFETCH_MAX: u64 = 16 << 20;

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
    /// The path used for I/O (relative to the layer roots; root is `.`).
    pub path: Vec<u8>,
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

impl SetAttr {
    /// Whether applying this request to a file presented as `cur` changes
    /// anything.
    fn changes(&self, cur: &FileAttr) -> bool {
        let time_differs = |t: &Option<Option<SystemTime>>, now: SystemTime| match t {
            None => false,
            Some(None) => true,
            Some(Some(t)) => *t != now,
        };
        self.mode.is_some_and(|m| m & 0o7777 != u32::from(cur.perm))
            || self.uid.is_some_and(|u| u != cur.uid)
            || self.gid.is_some_and(|g| g != cur.gid)
            // truncate(2) to the same size still updates the times.
            || self.size.is_some()
            || time_differs(&self.atime, cur.atime)
            || time_differs(&self.mtime, cur.mtime)
    }
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
    root_layers: Vec<u16>,
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
    pub ttl: Duration,
    inval_tx: Mutex<Option<std::sync::mpsc::Sender<Inval>>>,
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_io_error(e).unwrap_or(Errno::IO)
}

fn systime(sec: i64, nsec: i64) -> SystemTime {
    let nsec = nsec.clamp(0, 999_999_999) as u32;
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::new(sec.unsigned_abs(), 0))
            .and_then(|t| t.checked_add(Duration::new(0, nsec)))
            .unwrap_or(UNIX_EPOCH)
    }
}

fn timespec(t: Option<SystemTime>) -> rustix::fs::Timespec {
    match t {
        None => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        Some(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => rustix::fs::Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: d.subsec_nanos() as _,
            },
            Err(e) => {
                let d = e.duration();
                let (mut s, mut n) = (-(d.as_secs() as i64), -(d.subsec_nanos() as i64));
                if n < 0 {
                    s -= 1;
                    n += 1_000_000_000;
                }
                rustix::fs::Timespec {
                    tv_sec: s,
                    tv_nsec: n as _,
                }
            }
        },
    }
}

const UTIME_OMIT: rustix::fs::Timespec = rustix::fs::Timespec {
    tv_sec: 0,
    tv_nsec: rustix::fs::UTIME_OMIT,
};

pub(crate) fn fuse_kind(t: FileType) -> FType {
    match t {
        FileType::Directory => FType::Directory,
        FileType::Symlink => FType::Symlink,
        FileType::Fifo => FType::NamedPipe,
        FileType::Socket => FType::Socket,
        FileType::CharacterDevice => FType::CharDevice,
        FileType::BlockDevice => FType::BlockDevice,
        _ => FType::RegularFile,
    }
}

/// Linux `new_encode_dev`, the encoding FUSE uses for `rdev`.
fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}

/// The presented type of a file: the disk type, except regular files
/// recorded as devices (device placeholders).
fn presented_type(st: &Stat, ovr: Option<&OverrideStat>) -> FileType {
    let t = layers::ftype(st);
    if t == FileType::RegularFile {
        match ovr.and_then(|o| o.kind) {
            Some(RecordedType::Char { .. }) => return FileType::CharacterDevice,
            Some(RecordedType::Block { .. }) => return FileType::BlockDevice,
            _ => {}
        }
    }
    t
}

/// The record kind that describes a file of on-disk type `t`.
fn record_kind(t: FileType) -> RecordedType {
    match t {
        FileType::Directory => RecordedType::Dir,
        FileType::Symlink => RecordedType::Symlink,
        FileType::Fifo => RecordedType::Pipe,
        FileType::Socket => RecordedType::Socket,
        _ => RecordedType::File,
    }
}

fn stored_mode(t: FileType, mode: u32) -> u32 {
    match t {
        FileType::Directory => format::stored_dir_mode(mode),
        FileType::RegularFile => format::stored_file_mode(mode),
        _ => format::stored_fifo_mode(mode),
    }
}

fn has_user_xattrs(t: FileType) -> bool {
    matches!(t, FileType::RegularFile | FileType::Directory)
}

impl OverlayFs {
    /// Build the filesystem over opened layers (`list[0]` = upper).
    pub fn new(layers: Layers) -> std::io::Result<OverlayFs> {
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
                aliases: Vec::new(),
                parent: ROOT_ID,
                layers: root_layers.clone(),
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
            root_layers,
            nodes: RwLock::new(nodes),
            ids: Mutex::new(ids),
            ns: RwLock::new(()),
            files: RwLock::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            tmp_seq: AtomicU64::new(0),
            copy_locks: (0..COPY_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            writeback: AtomicBool::new(false),
            umask: old.as_raw_mode(),
            ttl: Duration::from_secs(24 * 3600),
            inval_tx: Mutex::new(None),
        })
    }

    // -- nodes and ids ------------------------------------------------------

    pub fn node(&self, id: u64) -> Res<Arc<Node>> {
        rlock(&self.nodes).get(&id).cloned().ok_or(Errno::STALE)
    }

    fn id_for(&self, key: (u64, u64)) -> u64 {
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
    fn hardlink_id(&self, key: (u64, u64), path: &[u8]) -> u64 {
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

    /// Status and ownership record of a node as it is now.
    fn node_stat(&self, node: &Node, s: &NodeState) -> Res<(Stat, Option<OverrideStat>)> {
        if s.unlinked {
            let h = s.handle.upgrade().ok_or(Errno::NOENT)?;
            let fd = h.current_fd();
            let st = rustix::fs::fstat(&*fd)?;
            let ovr = if has_user_xattrs(layers::ftype(&st)) {
                format::read_override_stat(&*fd).ok().flatten()
            } else {
                None
            };
            return Ok((st, ovr));
        }
        let st = self.layers.stat(s.top(), &s.path)?;
        if format::is_whiteout_stat(&st) {
            return Err(Errno::NOENT);
        }
        let ovr = match s.ovr {
            Some(o) => o,
            None if has_user_xattrs(layers::ftype(&st)) => {
                let o = self.layers.read_override(s.top(), &s.path)?;
                let mut g = lock(&node.st);
                if g.key == s.key && g.path == s.path {
                    g.ovr = Some(o);
                }
                o
            }
            None => None,
        };
        Ok((st, ovr))
    }

    fn make_attr(&self, id: u64, s: &NodeState, st: &Stat, ovr: Option<&OverrideStat>) -> FileAttr {
        let t = presented_type(st, ovr);
        let (uid, gid, perm) = match ovr {
            Some(o) => (o.uid, o.gid, o.mode & 0o7777),
            None => (st.st_uid, st.st_gid, st.st_mode & 0o7777),
        };
        let rdev = match ovr.and_then(|o| o.device()) {
            Some((ma, mi)) if matches!(t, FileType::CharacterDevice | FileType::BlockDevice) => {
                encode_dev(ma, mi)
            }
            _ => 0,
        };
        let nlink = if t == FileType::Directory && s.merged() {
            1
        } else {
            st.st_nlink as u32
        };
        FileAttr {
            ino: INodeNo(id),
            size: st.st_size.max(0) as u64,
            blocks: st.st_blocks as u64,
            atime: systime(st.st_atime, st.st_atime_nsec as i64),
            mtime: systime(st.st_mtime, st.st_mtime_nsec as i64),
            ctime: systime(st.st_ctime, st.st_ctime_nsec as i64),
            crtime: UNIX_EPOCH,
            kind: fuse_kind(t),
            perm: perm as u16,
            nlink,
            uid,
            gid,
            rdev,
            blksize: st.st_blksize as u32,
            flags: 0,
        }
    }

    fn attr_locked(&self, node: &Node) -> Res<FileAttr> {
        let s = node.snapshot();
        let (st, ovr) = self.node_stat(node, &s)?;
        Ok(self.make_attr(node.id, &s, &st, ovr.as_ref()))
    }

    /// Attributes for an attribute reply (not an entry): names of lower
    /// hardlinked files present their shared inode number.
    fn presented(&self, node: &Node, mut a: FileAttr) -> FileAttr {
        if let Some(ino) = lock(&node.st).shared_ino {
            a.ino = INodeNo(ino);
        }
        a
    }

    pub fn getattr(&self, id: u64, fh: Option<u64>) -> Res<FileAttr> {
        let node = self.node(id)?;
        if let Some(h) = fh.and_then(|fh| self.file(fh).ok()) {
            let s = node.snapshot();
            if h.upper.load(Ordering::Relaxed) || !s.is_upper() {
                let fd = h.current_fd();
                let st = rustix::fs::fstat(&*fd)?;
                let ovr = match s.ovr {
                    Some(o) => o,
                    None if has_user_xattrs(layers::ftype(&st)) => {
                        format::read_override_stat(&*fd).ok().flatten()
                    }
                    None => None,
                };
                let a = self.make_attr(id, &s, &st, ovr.as_ref());
                return Ok(self.presented(&node, a));
            }
        }
        let _ns = rlock(&self.ns);
        let a = self.attr_locked(&node)?;
        Ok(self.presented(&node, a))
    }

    // -- lookup -------------------------------------------------------------

    /// Look `name` up in `parent`, counting a kernel reference on success.
    /// Caller holds `ns` (either way).
    fn lookup_locked(&self, parent: &Node, name: &[u8]) -> Res<Option<(Arc<Node>, FileAttr)>> {
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

    // -- copy-up support ----------------------------------------------------

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
    pub(crate) fn copy_up_dir(&self, path: &[u8]) -> Res<Vec<u16>> {
        if path == b"." {
            return Ok(self.root_layers.clone());
        }
        let (pp, name) = split_parent(path);
        let pl = self.copy_up_dir(pp)?;
        let f = self.layers.resolve(&pl, pp, name)?.ok_or(Errno::NOENT)?;
        if !f.is_dir() {
            return Err(Errno::NOTDIR);
        }
        if f.top == UPPER {
            return Ok(f.layers());
        }
        self.copy_up_found(&f, path, false)?;
        let mut l = vec![UPPER];
        l.extend(f.layers());
        Ok(l)
    }

    /// Copy the visible file at `path` up (parents first). `trunc`: the
    /// data is about to be truncated away, copy none.
    pub(crate) fn copy_up_path(&self, path: &[u8], trunc: bool) -> Res<()> {
        let (pp, name) = split_parent(path);
        let pl = self.copy_up_dir(pp)?;
        let f = self.layers.resolve(&pl, pp, name)?.ok_or(Errno::NOENT)?;
        if f.is_dir() {
            return self.copy_up_dir(path).map(|_| ());
        }
        if f.top == UPPER {
            return Ok(());
        }
        let _g = self.copy_lock(f.key());
        // Re-check under the lock: another thread may have done it.
        let f = self.layers.resolve(&pl, pp, name)?.ok_or(Errno::NOENT)?;
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

    fn ensure_dir_upper(&self, node: &Node) -> Res<()> {
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

    // -- namespace helpers (caller holds `ns` exclusively) --------------------

    fn upper_dirfd(&self, dir: &[u8]) -> Res<OwnedFd> {
        rustix::fs::openat(
            self.layers.upper(),
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }

    /// Whether `dir/name` is visible in the lower layers of `ps`.
    fn lower_visible(&self, ps: &NodeState, name: &[u8]) -> Res<bool> {
        let lower = ps.lower_layers();
        Ok(!lower.is_empty() && self.layers.resolve(&lower, &ps.path, name)?.is_some())
    }

    fn make_whiteout(&self, dir: &[u8], name: &[u8]) -> Res<()> {
        let dfd = self.upper_dirfd(dir)?;
        format::make_whiteout(&dfd, name)
            .map(|_| ())
            .map_err(|e| errno_of(&e))
    }

    /// Replace the upper entry `dir/name` by a whiteout, atomically where
    /// the kernel lets us make a whiteout device.
    fn replace_with_whiteout(&self, dir: &[u8], name: &[u8], is_dir: bool) -> Res<()> {
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
    fn remove_upper_dir(&self, path: &[u8]) -> Res<()> {
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
    fn place_over_whiteout(
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
    fn name_removed(&self, f: &Found, path: &[u8]) {
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
    fn name_moved(&self, f: &Found, old: &[u8], new: &[u8], new_parent: u64) {
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
    fn dir_owner(&self, node: &Node) -> Res<(u32, u32, u32)> {
        let s = node.snapshot();
        let (st, ovr) = self.node_stat(node, &s)?;
        Ok(match ovr {
            Some(o) => (o.uid, o.gid, o.mode),
            None => (st.st_uid, st.st_gid, st.st_mode & 0o7777),
        })
    }

    /// Apply the on-disk mode `disk` exactly (the process umask may have
    /// masked the creation mode).
    fn fix_mode(&self, dirfd: impl AsFd, name: &[u8], disk: u32) -> Res<()> {
        if disk & self.umask != 0 {
            rustix::fs::chmodat(dirfd, name, Mode::from_raw_mode(disk), AtFlags::empty())?;
        }
        Ok(())
    }

    // -- creating entries ----------------------------------------------------

    /// Create `name` in `parent`; returns the new node's attributes and,
    /// for regular files, an open read-write fd.
    pub fn create_entry(
        &self,
        caller: Caller,
        parent: u64,
        name: &[u8],
        what: NewEntry<'_>,
    ) -> Res<(FileAttr, Option<OwnedFd>)> {
        if !layers::valid_name(name) {
            return Err(Errno::INVAL);
        }
        if format::is_reserved_name(name) {
            return Err(Errno::PERM);
        }
        let parent = self.node(parent)?;
        if let NewEntry::Link { src } = &what {
            if src.snapshot().is_dir() {
                return Err(Errno::PERM);
            }
            self.copy_up_node(src, false)?;
        }
        self.ensure_dir_upper(&parent)?;
        let _ns = wlock(&self.ns);
        let ps = parent.snapshot();
        if ps.unlinked || !ps.is_upper() {
            return Err(Errno::NOENT);
        }
        if self.layers.resolve(&ps.layers, &ps.path, name)?.is_some() {
            return Err(Errno::EXIST);
        }
        let path = join(&ps.path, name);
        let wh = self.layers.upper_whiteout(&ps.path, name)?;
        let (_, pgid, pmode) = self.dir_owner(&parent)?;
        let (uid, mut gid) = (caller.uid, caller.gid);
        let setgid_dir = pmode & S_ISGID != 0;
        if setgid_dir {
            gid = pgid;
        }
        let tmp = self.tmp_name();
        let (tdir, tname) = match wh {
            None => (self.layers.upper(), path.as_slice()),
            Some(_) => (self.layers.work.fd(), tmp.as_slice()),
        };
        let mut is_dir = false;
        let mut file_fd = None;
        let record = |fd: &OwnedFd, t: FileType, mode: u32| -> Res<()> {
            let disk = stored_mode(t, mode);
            if uid != 0 || gid != 0 || disk != mode {
                let o = OverrideStat {
                    uid,
                    gid,
                    mode,
                    kind: Some(record_kind(t)),
                };
                format::write_override_stat(fd, &o).map_err(|e| errno_of(&e))?;
            }
            Ok(())
        };
        let made: Res<()> = (|| {
            match &what {
                NewEntry::File { mode } => {
                    let mode = mode & 0o7777;
                    let disk = format::stored_file_mode(mode);
                    let fd = rustix::fs::openat(
                        tdir,
                        tname,
                        OFlags::RDWR
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(disk),
                    )?;
                    if disk & self.umask != 0 {
                        rustix::fs::fchmod(&fd, Mode::from_raw_mode(disk))?;
                    }
                    record(&fd, FileType::RegularFile, mode)?;
                    file_fd = Some(fd);
                }
                NewEntry::Dir { mode } => {
                    is_dir = true;
                    let mut mode = mode & 0o7777;
                    if setgid_dir {
                        mode |= S_ISGID;
                    }
                    let disk = format::stored_dir_mode(mode);
                    rustix::fs::mkdirat(tdir, tname, Mode::from_raw_mode(disk))?;
                    self.fix_mode(tdir, tname, disk)?;
                    let need_record = uid != 0 || gid != 0 || disk != mode;
                    if need_record || wh.is_some() {
                        let fd = rustix::fs::openat(
                            tdir,
                            tname,
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )?;
                        record(&fd, FileType::Directory, mode)?;
                        if wh.is_some() {
                            format::set_opaque(&fd).map_err(|e| errno_of(&e))?;
                        }
                    }
                }
                NewEntry::Fifo { mode } | NewEntry::Socket { mode } => {
                    let t = if matches!(what, NewEntry::Fifo { .. }) {
                        FileType::Fifo
                    } else {
                        FileType::Socket
                    };
                    let disk = format::stored_fifo_mode(*mode);
                    rustix::fs::mknodat(tdir, tname, t, Mode::from_raw_mode(disk), 0)?;
                    self.fix_mode(tdir, tname, disk)?;
                }
                NewEntry::Symlink { target } => {
                    rustix::fs::symlinkat(*target, tdir, tname)?;
                }
                NewEntry::Link { src } => {
                    let s = src.snapshot();
                    if s.unlinked || !s.is_upper() {
                        return Err(Errno::NOENT);
                    }
                    rustix::fs::linkat(
                        self.layers.upper(),
                        s.path.as_slice(),
                        tdir,
                        tname,
                        AtFlags::empty(),
                    )?;
                }
            }
            if let Some(wh) = wh {
                self.place_over_whiteout(&tmp, &ps.path, name, wh, is_dir)?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            if wh.is_some() {
                let _ = layers::remove_all(self.layers.work.fd(), &tmp);
            }
            return Err(e);
        }
        match self.lookup_locked(&parent, name)? {
            Some((_, attr)) => Ok((attr, file_fd)),
            None => Err(Errno::IO),
        }
    }

    // -- removing entries ---------------------------------------------------

    pub fn remove(&self, parent: u64, name: &[u8], dir: bool) -> Res<()> {
        if format::is_reserved_name(name) || !layers::valid_name(name) {
            return Err(Errno::NOENT);
        }
        let parent = self.node(parent)?;
        self.ensure_dir_upper(&parent)?;
        let _ns = wlock(&self.ns);
        let ps = parent.snapshot();
        if ps.unlinked || !ps.is_upper() {
            return Err(Errno::NOENT);
        }
        let f = self
            .layers
            .resolve(&ps.layers, &ps.path, name)?
            .ok_or(Errno::NOENT)?;
        if dir && !f.is_dir() {
            return Err(Errno::NOTDIR);
        }
        if !dir && f.is_dir() {
            return Err(Errno::ISDIR);
        }
        let path = join(&ps.path, name);
        if dir && !self.layers.list(&f.layers(), &path)?.is_empty() {
            return Err(Errno::NOTEMPTY);
        }
        if f.top == UPPER {
            if self.lower_visible(&ps, name)? {
                self.replace_with_whiteout(&ps.path, name, dir)?;
            } else if dir {
                self.remove_upper_dir(&path)?;
            } else {
                rustix::fs::unlinkat(self.layers.upper(), path.as_slice(), AtFlags::empty())?;
            }
        } else {
            self.make_whiteout(&ps.path, name)?;
        }
        self.name_removed(&f, &path);
        Ok(())
    }

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
                    let src = self.layers.resolve(&ps.layers, &ps.path, name)?;
                    let dst = if exchange {
                        self.layers.resolve(&nps.layers, &nps.path, newname)?
                    } else {
                        None
                    };
                    (
                        src.map(|f| (f, join(&ps.path, name))),
                        dst.map(|f| (f, join(&nps.path, newname))),
                    )
                };
                let (src, sp) = src.ok_or(Errno::NOENT)?;
                if !src.is_dir() && src.top != UPPER {
                    self.copy_up_path(&sp, false)?;
                }
                if let Some((d, dp)) = dst
                    && !d.is_dir()
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
            .resolve(&ps.layers, &ps.path, name)?
            .ok_or(Errno::NOENT)?;
        let dst = self.layers.resolve(&nps.layers, &nps.path, newname)?;
        let sp = join(&ps.path, name);
        let dp = join(&nps.path, newname);
        if sp == dp {
            return Ok(());
        }
        let movable = |f: &Found| -> Res<()> {
            if f.is_dir() {
                // Like overlayfs without redirect_dir.
                if f.top != UPPER || !f.dir_lowers.is_empty() {
                    return Err(Errno::XDEV);
                }
            } else if f.top != UPPER {
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
            rustix::fs::renameat_with(
                upper,
                sp.as_slice(),
                upper,
                dp.as_slice(),
                RenameFlags::EXCHANGE,
            )?;
            if src.is_dir() && !src.opaque && nps.merged() {
                self.set_opaque_upper(&dp)?;
            }
            if d.is_dir() && !d.opaque && ps.merged() {
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
            if d.is_dir() && !self.layers.list(&d.layers(), &dp)?.is_empty() {
                return Err(Errno::NOTEMPTY);
            }
        }
        let need_wh = self.lower_visible(&ps, name)?;
        // Clear the destination in the upper where rename(2) cannot
        // replace it: a whiteout under a directory, or an upper directory
        // that still holds whiteouts.
        let mut remove_wh_file = false;
        match self.layers.stat(UPPER, &dp) {
            Ok(st) if format::is_whiteout_stat(&st) => {
                if src.is_dir() {
                    rustix::fs::unlinkat(upper, dp.as_slice(), AtFlags::empty())?;
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
        if src.is_dir() && !src.opaque && nps.merged() {
            self.set_opaque_upper(&sp)?;
        }
        let mut wh_done = false;
        if need_wh {
            match rustix::fs::renameat_with(
                upper,
                sp.as_slice(),
                upper,
                dp.as_slice(),
                RenameFlags::WHITEOUT,
            ) {
                Ok(()) => wh_done = true,
                Err(Errno::INVAL | Errno::PERM | Errno::OPNOTSUPP | Errno::NOSYS) => {}
                Err(e) => return Err(e),
            }
        }
        if !wh_done {
            rustix::fs::renameat(upper, sp.as_slice(), upper, dp.as_slice())?;
            if need_wh {
                self.make_whiteout(&ps.path, name)?;
            }
        }
        if remove_wh_file {
            let mut wh = format::WHITEOUT_PREFIX.to_vec();
            wh.extend_from_slice(newname);
            let _ = rustix::fs::unlinkat(upper, join(&nps.path, &wh).as_slice(), AtFlags::empty());
        }
        if let Some(d) = &dst {
            self.name_removed(d, &dp);
        }
        self.name_moved(&src, &sp, &dp, newparent.id);
        Ok(())
    }

    fn set_opaque_upper(&self, path: &[u8]) -> Res<()> {
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

    // -- attributes changes ---------------------------------------------------

    pub fn setattr(&self, id: u64, a: SetAttr) -> Res<FileAttr> {
        let node = self.node(id)?;
        // A request that changes nothing is answered without a copy-up:
        // with the writeback cache the kernel sends the times it holds
        // after link/unlink/rename of a name (fuse_flush_time_update).
        let cur = {
            let _ns = rlock(&self.ns);
            self.attr_locked(&node)
        };
        if let Ok(cur) = cur
            && !a.changes(&cur)
        {
            return Ok(self.presented(&node, cur));
        }
        let s0 = node.snapshot();
        if s0.unlinked && !s0.is_upper() {
            // Removed before it was ever copied up: the data is the lower
            // file, which must not change.
            return Err(Errno::NOENT);
        }
        let trunc_only = a.size == Some(0)
            && a.mode.is_none()
            && a.uid.is_none()
            && a.gid.is_none()
            && s0.dtype == FileType::RegularFile;
        if !s0.unlinked {
            self.copy_up_node(&node, trunc_only)?;
        }
        let handle = a.fh.and_then(|fh| self.file(fh).ok());
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        let upper = self.layers.upper();
        // A file reachable only through an open handle.
        let hfd = if s.unlinked {
            Some(s.handle.upgrade().ok_or(Errno::NOENT)?.current_fd())
        } else {
            None
        };
        if let Some(size) = a.size {
            if s.dtype != FileType::RegularFile {
                return Err(if s.is_dir() {
                    Errno::ISDIR
                } else {
                    Errno::INVAL
                });
            }
            let via_handle = handle
                .as_ref()
                .filter(|h| h.writable && h.upper.load(Ordering::Relaxed))
                .map(|h| h.current_fd());
            let fd = match via_handle.or_else(|| hfd.clone()) {
                Some(fd) => fd,
                None => Arc::new(rustix::fs::openat(
                    upper,
                    s.path.as_slice(),
                    OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
                    Mode::empty(),
                )?),
            };
            // With the writeback cache the kernel keeps the file times
            // itself and adds "mtime = now" only when the size changes: a
            // same-size truncate must then leave the times on disk alone,
            // or the upper dir disagrees with what the container saw.
            let before = rustix::fs::fstat(&*fd)?;
            rustix::fs::ftruncate(&*fd, size)?;
            if a.mtime.is_none()
                && before.st_size == size as i64
                && self.writeback.load(Ordering::Relaxed)
            {
                let ts = rustix::fs::Timestamps {
                    last_access: UTIME_OMIT,
                    last_modification: rustix::fs::Timespec {
                        tv_sec: before.st_mtime,
                        tv_nsec: before.st_mtime_nsec as _,
                    },
                };
                rustix::fs::futimens(&*fd, &ts)?;
            }
        }
        if a.mode.is_some() || a.uid.is_some() || a.gid.is_some() {
            let (st, ovr) = self.node_stat(&node, &s)?;
            let (cu, cg, cm) = match ovr {
                Some(o) => (o.uid, o.gid, o.mode),
                None => (st.st_uid, st.st_gid, st.st_mode & 0o7777),
            };
            let nu = a.uid.unwrap_or(cu);
            let ng = a.gid.unwrap_or(cg);
            let nm = a.mode.map(|m| m & 0o7777).unwrap_or(cm);
            let t = layers::ftype(&st);
            let disk = stored_mode(t, nm);
            match t {
                FileType::RegularFile | FileType::Directory => {
                    if disk != st.st_mode & 0o7777 {
                        match &hfd {
                            Some(fd) => rustix::fs::fchmod(&**fd, Mode::from_raw_mode(disk))?,
                            None => rustix::fs::chmodat(
                                upper,
                                s.path.as_slice(),
                                Mode::from_raw_mode(disk),
                                AtFlags::empty(),
                            )?,
                        }
                    }
                    let kind = ovr.and_then(|o| o.kind).unwrap_or(record_kind(t));
                    let is_dev =
                        matches!(kind, RecordedType::Char { .. } | RecordedType::Block { .. });
                    let name = format::OVERRIDE_STAT_XATTR.as_bytes();
                    let newovr =
                        if nu != 0 || ng != 0 || disk != nm || is_dev {
                            let o = OverrideStat {
                                uid: nu,
                                gid: ng,
                                mode: nm,
                                kind: Some(kind),
                            };
                            match &hfd {
                                Some(fd) => format::write_override_stat(&**fd, &o)
                                    .map_err(|e| errno_of(&e))?,
                                None => self.layers.setxattr(
                                    UPPER,
                                    &s.path,
                                    name,
                                    o.encode().as_bytes(),
                                    XattrFlags::empty(),
                                )?,
                            }
                            Some(o)
                        } else {
                            if ovr.is_some() {
                                match &hfd {
                                    Some(fd) => format::remove_override_stat(&**fd)
                                        .map_err(|e| errno_of(&e))?,
                                    None => match self.layers.removexattr(UPPER, &s.path, name) {
                                        Ok(()) | Err(Errno::NODATA) => {}
                                        Err(e) => return Err(e),
                                    },
                                }
                            }
                            None
                        };
                    lock(&node.st).ovr = Some(newovr);
                }
                FileType::Fifo | FileType::Socket => {
                    if a.mode.is_some() && disk != st.st_mode & 0o7777 {
                        rustix::fs::chmodat(
                            upper,
                            s.path.as_slice(),
                            Mode::from_raw_mode(disk),
                            AtFlags::empty(),
                        )?;
                    }
                    if nu != cu || ng != cg {
                        tracing::debug!(
                            "cannot record owner of fifo/socket {:?}",
                            String::from_utf8_lossy(&s.path)
                        );
                    }
                }
                _ => {
                    if nu != cu || ng != cg {
                        tracing::debug!(
                            "cannot record owner of symlink {:?}",
                            String::from_utf8_lossy(&s.path)
                        );
                    }
                }
            }
        }
        if a.atime.is_some() || a.mtime.is_some() {
            let ts = rustix::fs::Timestamps {
                last_access: a.atime.map(timespec).unwrap_or(UTIME_OMIT),
                last_modification: a.mtime.map(timespec).unwrap_or(UTIME_OMIT),
            };
            match &hfd {
                Some(fd) => rustix::fs::futimens(&**fd, &ts)?,
                None => {
                    rustix::fs::utimensat(upper, s.path.as_slice(), &ts, AtFlags::SYMLINK_NOFOLLOW)?
                }
            }
        }
        let a = self.attr_locked(&node)?;
        Ok(self.presented(&node, a))
    }

    pub fn readlink(&self, id: u64) -> Res<Vec<u8>> {
        let node = self.node(id)?;
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        if s.unlinked {
            return Err(Errno::NOENT);
        }
        let l = rustix::fs::readlinkat(self.layers.fd(s.top())?, s.path.as_slice(), Vec::new())?;
        Ok(l.into_bytes())
    }

    // -- files ------------------------------------------------------------------

    pub fn file(&self, fh: u64) -> Res<Arc<FileHandle>> {
        rlock(&self.files).get(&fh).cloned().ok_or(Errno::BADF)
    }

    fn add_file(&self, node: Arc<Node>, fd: OwnedFd, writable: bool) -> u64 {
        let upper = node.snapshot().is_upper();
        if writable {
            node.written.store(true, Ordering::Relaxed);
        }
        let h = Arc::new(FileHandle {
            fd: RwLock::new(Arc::new(fd)),
            node: node.clone(),
            upper: AtomicBool::new(upper),
            writable,
        });
        lock(&node.st).handle = Arc::downgrade(&h);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        wlock(&self.files).insert(fh, h);
        fh
    }

    fn open_flags(&self, flags: i32) -> (OFlags, bool) {
        let acc = flags & libc::O_ACCMODE;
        let write = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        let mut o = OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY;
        if write {
            // The writeback cache may read pages of write-only files.
            if acc == libc::O_RDWR || self.writeback.load(Ordering::Relaxed) {
                o |= OFlags::RDWR;
            } else {
                o |= OFlags::WRONLY;
            }
        }
        // O_APPEND is the kernel's business (we pwrite at its offsets),
        // O_DIRECT is honoured by the kernel side of FUSE, O_NOATIME may
        // fail on files we do not own: pass only the sync flags.
        if flags & libc::O_SYNC == libc::O_SYNC {
            o |= OFlags::SYNC;
        } else if flags & libc::O_DSYNC != 0 {
            o |= OFlags::DSYNC;
        }
        (o, write)
    }

    pub fn open(&self, id: u64, flags: i32) -> Res<(u64, bool)> {
        let node = self.node(id)?;
        let s = node.snapshot();
        if s.is_dir() {
            return Err(Errno::ISDIR);
        }
        let (mut o, write) = self.open_flags(flags);
        let trunc = flags & libc::O_TRUNC != 0;
        if (write || trunc) && s.unlinked && !s.is_upper() {
            return Err(Errno::NOENT);
        }
        if (write || trunc) && !s.unlinked {
            self.copy_up_node(&node, trunc)?;
        }
        if trunc && write {
            o |= OFlags::TRUNC;
        }
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        let fd = if s.unlinked {
            let h = s.handle.upgrade().ok_or(Errno::NOENT)?;
            let cur = h.current_fd();
            let p = format!("/proc/self/fd/{}", cur.as_raw_fd());
            rustix::fs::open(p.as_str(), o & !OFlags::NOFOLLOW, Mode::empty())?
        } else {
            rustix::fs::openat(
                self.layers.fd(s.top())?,
                s.path.as_slice(),
                o,
                Mode::empty(),
            )?
        };
        Ok((self.add_file(node, fd, write), write))
    }

    /// Push node `id`'s data to `store` when it is a regular file of a
    /// read-only layer that looks executable (x bits, or `.so` in its name)
    /// and is at most [`PREFETCH_MAX`] bytes. `store` runs with the file's
    /// copy lock held, so no copy-up (and so no write through this mount)
    /// can come in between and be overwritten by the stored lower data.
    /// Once per node: later calls return at once.
    pub fn prefetch(&self, id: u64, store: impl FnOnce(&[u8])) -> Res<()> {
        let node = self.node(id)?;
        if node.prefetched.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let s = node.snapshot();
        if s.is_upper() || s.unlinked || s.dtype != FileType::RegularFile {
            return Ok(());
        }
        let attr = {
            let _ns = rlock(&self.ns);
            self.attr_locked(&node)?
        };
        let name = s.path.rsplit(|b| *b == b'/').next().unwrap_or_default();
        let looks_exec = attr.perm & 0o111 != 0 || name.windows(3).any(|w| w == b".so");
        if !looks_exec || attr.size == 0 || attr.size > PREFETCH_MAX {
            return Ok(());
        }
        let _g = self.copy_lock(s.key);
        let fd = {
            let _ns = rlock(&self.ns);
            let s = node.snapshot();
            if s.is_upper() || s.unlinked {
                return Ok(());
            }
            rustix::fs::openat(
                self.layers.fd(s.top())?,
                s.path.as_slice(),
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?
        };
        let mut data = vec![0u8; attr.size as usize];
        let mut off = 0;
        while off < data.len() {
            match rustix::io::pread(&fd, &mut data[off..], off as u64)? {
                0 => break,
                n => off += n,
            }
        }
        data.truncate(off);
        store(&data);
        Ok(())
    }

    /// `create(2)`: make a regular file and open it.
    pub fn create(
        &self,
        caller: Caller,
        parent: u64,
        name: &[u8],
        mode: u32,
        flags: i32,
    ) -> Res<(FileAttr, u64)> {
        let (attr, fd) = self.create_entry(caller, parent, name, NewEntry::File { mode })?;
        let fd = fd.ok_or(Errno::IO)?;
        let node = self.node(attr.ino.0)?;
        let (_, write) = self.open_flags(flags);
        Ok((attr, self.add_file(node, fd, write)))
    }

    pub fn release(&self, fh: u64) {
        wlock(&self.files).remove(&fh);
    }

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
        let list = self.layers.list(&s.layers, &s.path)?;
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
        self.layers.getxattr(s.top(), &s.path, &stored)
    }

    pub fn listxattr(&self, id: u64) -> Res<Vec<u8>> {
        let node = self.node(id)?;
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        if s.unlinked || !has_user_xattrs(s.dtype) {
            return Ok(Vec::new());
        }
        let raw = self.layers.listxattr(s.top(), &s.path)?;
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
            self.layers.getxattr(s.top(), &s.path, &stored)?;
        }
        self.copy_up_node(&node, false)?;
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        self.layers.removexattr(UPPER, &s.path, &stored)
    }

    pub fn statfs(&self) -> Res<rustix::fs::StatVfs> {
        rustix::fs::fstatvfs(self.layers.upper())
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

impl FileHandle {
    pub fn current_fd(&self) -> Arc<OwnedFd> {
        rlock(&self.fd).clone()
    }

    /// The fd to read from: a read-only handle opened on a lower file
    /// switches to the upper copy once the file was copied up, so it sees
    /// writes made through other handles.
    pub fn read_fd(&self, fs: &OverlayFs) -> Arc<OwnedFd> {
        if !self.upper.load(Ordering::Relaxed) && !self.writable {
            let s = self.node.snapshot();
            if s.is_upper() && !s.unlinked {
                let _ns = rlock(&fs.ns);
                let s = self.node.snapshot();
                if let Ok(fd) = rustix::fs::openat(
                    fs.layers.upper(),
                    s.path.as_slice(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    *wlock(&self.fd) = Arc::new(fd);
                    self.upper.store(true, Ordering::Relaxed);
                }
            }
        }
        self.current_fd()
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
