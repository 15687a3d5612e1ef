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

mod attr;
mod copyup_glue;
mod dirs;
mod entries;
mod files;
mod lookup;
mod whiteouts;
mod xattr;

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
