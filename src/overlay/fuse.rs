//! The `fuser::Filesystem` glue: unpack each request, call [`OverlayFs`],
//! reply. Every handler runs under `catch_unwind` (`panic_guard`): a bug
//! answers `EIO` (the dropped reply does that) instead of killing a
//! session thread, and the first panic of each operation is logged.
//!
//! Not implemented on purpose (the kernel then does the right thing):
//! `getlk`/`setlk` and flock (we do not request `FUSE_POSIX_LOCKS` or
//! `FUSE_FLOCK_LOCKS`, so the kernel keeps locks locally: correct for a
//! filesystem that only this mount serves), `flush` (answered `ENOSYS`
//! once; data is written synchronously so there is nothing to report on
//! close), `ioctl`, `poll`, `bmap`, `O_TMPFILE` (fuser does not know
//! `FUSE_TMPFILE`, answers `ENOSYS`, the kernel reports `EOPNOTSUPP`).

use super::fs::{Caller, NewEntry, OverlayFs, SetAttr};
use super::panic_guard::PanicLog;
use fuser::{
    FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use rustix::fs::SeekFrom;
use rustix::io::Errno;
use std::cell::RefCell;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The FUSE front of an [`OverlayFs`].
pub(crate) struct Fuse {
    pub fs: Arc<OverlayFs>,
    /// For FUSE_NOTIFY_STORE (set once the session exists).
    pub notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
    /// Ask for the kernel's writeback cache (faster small writes; the
    /// kernel then owns file times and sizes, see `OverlayConfig`).
    pub writeback: bool,
    pub stats: Stats,
    /// The panics caught in handlers (see `panic_guard`).
    pub panics: PanicLog,
}

fn fe(e: Errno) -> fuser::Errno {
    fuser::Errno::from_i32(e.raw_os_error())
}

/// Request counters by operation, printed at unmount when
/// `HUTCH_OVERLAY_STATS` is set (a debugging and benchmarking aid).
pub(crate) struct Stats(Vec<(&'static str, AtomicU64)>);

const OPS: &[&str] = &[
    "lookup",
    "forget",
    "getattr",
    "setattr",
    "readlink",
    "mknod",
    "mkdir",
    "unlink",
    "rmdir",
    "symlink",
    "rename",
    "link",
    "open",
    "read",
    "write",
    "release",
    "fsync",
    "opendir",
    "readdir",
    "readdirplus",
    "statfs",
    "getxattr",
    "listxattr",
    "removexattr",
    "create",
    "fallocate",
    "lseek",
    "copy_file_range",
    "flush",
    "setxattr",
];

impl Stats {
    pub fn new() -> Stats {
        Stats(OPS.iter().map(|&n| (n, AtomicU64::new(0))).collect())
    }

    fn count(&self, op: &'static str) {
        if let Some((_, c)) = self.0.iter().find(|(n, _)| *n == op) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn report(&self) {
        let mut v: Vec<(&str, u64)> = self
            .0
            .iter()
            .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect();
        v.sort_by_key(|b| std::cmp::Reverse(b.1));
        let total: u64 = v.iter().map(|(_, c)| c).sum();
        let parts: Vec<String> = v.iter().map(|(n, c)| format!("{n} {c}")).collect();
        eprintln!("hutch overlay: {total} requests: {}", parts.join(", "));
    }
}

impl Fuse {
    /// Run the handler of `op` on inode `ino`. A panic inside drops the
    /// reply, which answers EIO, and is logged (see `panic_guard`).
    fn guard(&self, op: &'static str, ino: INodeNo, f: impl FnOnce()) {
        self.stats.count(op);
        let _ = self.panics.run(op, ino.0, f);
    }
}

fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: fuser::FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn time_or_now(t: Option<TimeOrNow>) -> Option<Option<SystemTime>> {
    t.map(|t| match t {
        TimeOrNow::SpecificTime(t) => Some(t),
        TimeOrNow::Now => None,
    })
}

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Fuse {
    /// Push an executable or shared library of a read-only layer into the
    /// kernel's page cache at its first open (FUSE_NOTIFY_STORE, before the
    /// open is answered). Every container starts on a fresh mount, whose
    /// page cache is empty: exec'ing a binary would otherwise cost one FUSE
    /// read per 128 KiB of read-around (23 round trips for busybox).
    fn prefetch(&self, ino: u64) {
        let Some(n) = self.notifier.get() else {
            return;
        };
        let r = self.fs.prefetch(ino, |data| {
            for (i, chunk) in data.chunks(1 << 20).enumerate() {
                if let Err(e) = n.store(INodeNo(ino), (i as u64) << 20, chunk) {
                    tracing::debug!("FUSE_NOTIFY_STORE of inode {ino} failed: {e}");
                    break;
                }
            }
        });
        if let Err(e) = r {
            tracing::debug!("prefetch of inode {ino}: {e}");
        }
    }

    fn reply_entry(&self, reply: ReplyEntry, r: Result<FileAttr, Errno>) {
        match r {
            Ok(attr) => reply.entry(&self.fs.ttl, &attr, Generation(0)),
            Err(e) => reply.error(fe(e)),
        }
    }
}

impl Filesystem for Fuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        let caps = config.capabilities();
        let wanted = [
            InitFlags::FUSE_WRITEBACK_CACHE,
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            InitFlags::FUSE_ASYNC_DIO,
            InitFlags::FUSE_NO_OPENDIR_SUPPORT,
        ];
        for f in wanted {
            if f == InitFlags::FUSE_WRITEBACK_CACHE && !self.writeback {
                continue;
            }
            if caps.contains(f) && config.add_capabilities(f).is_ok() {
                if f == InitFlags::FUSE_WRITEBACK_CACHE {
                    self.fs.writeback.store(true, Ordering::Relaxed);
                }
            } else {
                tracing::debug!("FUSE capability {f:?} not available");
            }
        }
        // Passthrough (FUSE_PASSTHROUGH + open_backing) needs CAP_SYS_ADMIN
        // in the initial user namespace and excludes the writeback cache:
        // not used.
        Ok(())
    }

    fn destroy(&mut self) {
        self.panics.report();
        if std::env::var_os("HUTCH_OVERLAY_STATS").is_some() {
            self.stats.report();
        }
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.guard("lookup", parent, || {
            match self.fs.lookup(parent.0, name.as_bytes()) {
                Ok(Some((attr, false))) => reply.entry(&self.fs.ttl, &attr, Generation(0)),
                // The attributes (inode number) come with the next getattr.
                Ok(Some((attr, true))) => {
                    reply.entry_with_ttls(&Duration::ZERO, &self.fs.ttl, &attr, Generation(0))
                }
                // A cached negative entry: names change only through us.
                Ok(None) => reply.entry(&self.fs.ttl, &negative_attr(), Generation(0)),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.guard("forget", ino, || self.fs.forget(ino.0, nlookup))
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        self.guard("getattr", ino, || {
            match self.fs.getattr(ino.0, fh.map(|f| f.0)) {
                Ok(attr) => reply.attr(&self.fs.ttl, &attr),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.guard("setattr", ino, || {
            let a = SetAttr {
                mode,
                uid,
                gid,
                size,
                atime: time_or_now(atime),
                mtime: time_or_now(mtime),
                fh: fh.map(|f| f.0),
            };
            match self.fs.setattr(ino.0, a) {
                Ok(attr) => reply.attr(&self.fs.ttl, &attr),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.guard("readlink", ino, || match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(fe(e)),
        })
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        self.guard("mknod", parent, || {
            let perm = mode & 0o7777;
            let what = match mode & libc::S_IFMT {
                libc::S_IFREG | 0 => NewEntry::File { mode: perm },
                libc::S_IFIFO => NewEntry::Fifo { mode: perm },
                libc::S_IFSOCK => NewEntry::Socket { mode: perm },
                // Device nodes: never in a rootless container.
                _ => return reply.error(fuser::Errno::EPERM),
            };
            let r = self
                .fs
                .create_entry(caller(req), parent.0, name.as_bytes(), what)
                .map(|(a, _)| a);
            self.reply_entry(reply, r)
        })
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        self.guard("mkdir", parent, || {
            let r = self
                .fs
                .create_entry(
                    caller(req),
                    parent.0,
                    name.as_bytes(),
                    NewEntry::Dir { mode },
                )
                .map(|(a, _)| a);
            self.reply_entry(reply, r)
        })
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.guard("unlink", parent, || {
            match self.fs.remove(parent.0, name.as_bytes(), false) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.guard("rmdir", parent, || {
            match self.fs.remove(parent.0, name.as_bytes(), true) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        self.guard("symlink", parent, || {
            let r = self
                .fs
                .create_entry(
                    caller(req),
                    parent.0,
                    link_name.as_bytes(),
                    NewEntry::Symlink {
                        target: target.as_os_str().as_bytes(),
                    },
                )
                .map(|(a, _)| a);
            self.reply_entry(reply, r)
        })
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.guard("rename", parent, || {
            match self.fs.rename(
                parent.0,
                name.as_bytes(),
                newparent.0,
                newname.as_bytes(),
                flags.bits(),
            ) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.guard("link", ino, || {
            let r = self.fs.node(ino.0).and_then(|src| {
                self.fs
                    .create_entry(
                        caller(req),
                        newparent.0,
                        newname.as_bytes(),
                        NewEntry::Link { src },
                    )
                    .map(|(a, _)| a)
            });
            self.reply_entry(reply, r)
        })
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.guard("open", ino, || match self.fs.open(ino.0, flags.0) {
            // The data of a node changes only through this mount, whose
            // page cache the kernel keeps coherent: keep it across opens.
            Ok((fh, write)) => {
                if !write {
                    self.prefetch(ino.0);
                }
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE)
            }
            Err(e) => reply.error(fe(e)),
        })
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.guard("read", ino, || {
            let h = match self.fs.file(fh.0) {
                Ok(h) => h,
                Err(e) => return reply.error(fe(e)),
            };
            let fd = h.read_fd(&self.fs);
            READ_BUF.with(|b| {
                let mut buf = b.borrow_mut();
                let size = size as usize;
                if buf.len() < size {
                    buf.resize(size, 0);
                }
                let mut done = 0usize;
                while done < size {
                    match rustix::io::pread(&*fd, &mut buf[done..size], offset + done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(Errno::INTR) => {}
                        Err(e) => return reply.error(fe(e)),
                    }
                }
                reply.data(&buf[..done]);
            })
        })
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.guard("write", ino, || {
            let h = match self.fs.file(fh.0) {
                Ok(h) if h.writable => h,
                Ok(_) => return reply.error(fuser::Errno::EBADF),
                Err(e) => return reply.error(fe(e)),
            };
            let fd = h.current_fd();
            // Pages flushed from the writeback cache: the kernel owns the
            // file times (it sends them with setattr), so the write must
            // not move the mtime on disk, e.g. past a later utimens().
            let keep_mtime = if write_flags.contains(WriteFlags::FUSE_WRITE_CACHE) {
                rustix::fs::fstat(&*fd).ok()
            } else {
                None
            };
            let mut done = 0usize;
            while done < data.len() {
                match rustix::io::pwrite(&*fd, &data[done..], offset + done as u64) {
                    Ok(n) => done += n,
                    Err(Errno::INTR) => {}
                    Err(e) => return reply.error(fe(e)),
                }
            }
            if let Some(st) = keep_mtime {
                let ts = rustix::fs::Timestamps {
                    last_access: rustix::fs::Timespec {
                        tv_sec: 0,
                        tv_nsec: rustix::fs::UTIME_OMIT,
                    },
                    last_modification: rustix::fs::Timespec {
                        tv_sec: st.st_mtime,
                        tv_nsec: st.st_mtime_nsec as _,
                    },
                };
                let _ = rustix::fs::futimens(&*fd, &ts);
            }
            reply.written(done as u32)
        })
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.stats.count("flush");
        reply.error(fuser::Errno::ENOSYS)
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.guard("release", ino, || {
            self.fs.release(fh.0);
            reply.ok()
        })
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.guard("fsync", ino, || {
            let r = self.fs.file(fh.0).and_then(|h| {
                let fd = h.current_fd();
                if datasync {
                    rustix::fs::fdatasync(&*fd)
                } else {
                    rustix::fs::fsync(&*fd)
                }
            });
            match r {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // "No opendir support": the kernel stops sending opendir and
        // releasedir and caches listings (FOPEN_KEEP_CACHE|FOPEN_CACHE_DIR
        // by default); every change of a directory goes through this
        // mount, which invalidates that cache.
        self.stats.count("opendir");
        reply.error(fuser::Errno::ENOSYS)
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.guard("readdir", ino, || {
            let (_, entries) = match self.fs.readdir_entries(ino.0, offset) {
                Ok(x) => x,
                Err(e) => return reply.error(fe(e)),
            };
            let start = (offset as usize).min(entries.len());
            for (i, e) in entries[start..].iter().enumerate() {
                let off = offset + i as u64 + 1;
                if reply.add(INodeNo(e.ino), off, e.kind, OsStr::from_bytes(&e.name)) {
                    break;
                }
            }
            reply.ok()
        })
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        self.guard("readdirplus", ino, || {
            let (dir, entries) = match self.fs.readdir_entries(ino.0, offset) {
                Ok(x) => x,
                Err(e) => return reply.error(fe(e)),
            };
            let start = (offset as usize).min(entries.len());
            for (i, e) in entries[start..].iter().enumerate() {
                let off = offset + i as u64 + 1;
                let (attr, uncached) = match self.fs.readdirplus_entry(&dir, e) {
                    Ok(Some(a)) => a,
                    // Gone since the listing: skip it.
                    Ok(None) | Err(_) => continue,
                };
                let dot = e.name == b"." || e.name == b"..";
                // Names of lower hardlinked files: see `lookup`.
                let ttl = if uncached {
                    Duration::ZERO
                } else {
                    self.fs.ttl
                };
                if reply.add(
                    attr.ino,
                    off,
                    OsStr::from_bytes(&e.name),
                    &ttl,
                    &attr,
                    Generation(0),
                ) {
                    if !dot {
                        // Not sent: give back the reference the lookup took.
                        self.fs.forget(attr.ino.0, 1);
                    }
                    break;
                }
            }
            reply.ok()
        })
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok()
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        self.guard("statfs", ino, || match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(fe(e)),
        })
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        self.guard("setxattr", ino, || {
            match self.fs.setxattr(ino.0, name.as_bytes(), value, flags) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.guard("getxattr", ino, || {
            match self.fs.getxattr(ino.0, name.as_bytes()) {
                Ok(v) if size == 0 => reply.size(v.len() as u32),
                Ok(v) if v.len() > size as usize => reply.error(fuser::Errno::ERANGE),
                Ok(v) => reply.data(&v),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.guard("listxattr", ino, || match self.fs.listxattr(ino.0) {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(fuser::Errno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(fe(e)),
        })
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.guard("removexattr", ino, || {
            match self.fs.removexattr(ino.0, name.as_bytes()) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // Only called without default_permissions, which we always set.
        reply.ok()
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.guard("create", parent, || {
            if mode & libc::S_IFMT != libc::S_IFREG && mode & libc::S_IFMT != 0 {
                return reply.error(fuser::Errno::EINVAL);
            }
            match self
                .fs
                .create(caller(req), parent.0, name.as_bytes(), mode, flags)
            {
                Ok((attr, fh)) => reply.created(
                    &self.fs.ttl,
                    &attr,
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::FOPEN_KEEP_CACHE,
                ),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.guard("fallocate", ino, || {
            let r = self.fs.file(fh.0).and_then(|h| {
                if !h.writable {
                    return Err(Errno::BADF);
                }
                rustix::fs::fallocate(
                    &*h.current_fd(),
                    rustix::fs::FallocateFlags::from_bits_retain(mode as u32),
                    offset,
                    length,
                )
            });
            match r {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        self.guard("lseek", ino, || {
            let r = self.fs.file(fh.0).and_then(|h| {
                if h.node.written.load(Ordering::Relaxed)
                    && self.fs.writeback.load(Ordering::Relaxed)
                {
                    // Dirty pages may sit in the kernel's writeback cache,
                    // which FUSE_LSEEK does not flush: let the kernel
                    // answer from its own size (all data, no holes).
                    return Err(Errno::NOSYS);
                }
                let fd = h.read_fd(&self.fs);
                let off = u64::try_from(offset).map_err(|_| Errno::INVAL)?;
                let pos = match whence {
                    libc::SEEK_DATA => SeekFrom::Data(off),
                    libc::SEEK_HOLE => SeekFrom::Hole(off),
                    libc::SEEK_SET => SeekFrom::Start(off),
                    libc::SEEK_END => SeekFrom::End(offset),
                    _ => return Err(Errno::INVAL),
                };
                rustix::fs::seek(&*fd, pos)
            });
            match r {
                Ok(p) => reply.offset(p as i64),
                Err(e) => reply.error(fe(e)),
            }
        })
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        self.guard("copy_file_range", ino_in, || {
            let r = (|| {
                let hin = self.fs.file(fh_in.0)?;
                let hout = self.fs.file(fh_out.0)?;
                if !hout.writable {
                    return Err(Errno::BADF);
                }
                let (fin, fout) = (hin.read_fd(&self.fs), hout.current_fd());
                let (mut oi, mut oo) = (offset_in, offset_out);
                let len = len.min(u32::MAX as u64 & !0xfff) as usize;
                rustix::fs::copy_file_range(&*fin, Some(&mut oi), &*fout, Some(&mut oo), len)
            })();
            match r {
                Ok(n) => reply.written(n as u32),
                Err(e) => reply.error(fe(e)),
            }
        })
    }
}
