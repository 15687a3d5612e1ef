//! Open files: handles, `open`, `create`, `release`, the page-cache
//! prefetch of lower executables, and `readlink`.

use super::{Caller, FileHandle, NewEntry, Node, OverlayFs, PREFETCH_MAX, lock, rlock, wlock};
use crate::overlay::layers::Res;
use crate::overlay::relpath;
use fuser::FileAttr;
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

impl OverlayFs {
    pub fn readlink(&self, id: u64) -> Res<Vec<u8>> {
        let node = self.node(id)?;
        let _ns = rlock(&self.ns);
        let s = node.snapshot();
        if s.unlinked {
            return Err(Errno::NOENT);
        }
        let a = relpath::at(self.layers.fd(s.top())?, s.top_path())?;
        let l = rustix::fs::readlinkat(a.fd(), a.rest, Vec::new())?;
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
            let a = relpath::at(self.layers.fd(s.top())?, s.top_path())?;
            rustix::fs::openat(a.fd(), a.rest, o, Mode::empty())?
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
            let a = relpath::at(self.layers.fd(s.top())?, s.top_path())?;
            rustix::fs::openat(
                a.fd(),
                a.rest,
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
                if let Ok(fd) = relpath::at(fs.layers.upper(), &s.path).and_then(|a| {
                    rustix::fs::openat(
                        a.fd(),
                        a.rest,
                        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                }) {
                    *wlock(&self.fd) = Arc::new(fd);
                    self.upper.store(true, Ordering::Relaxed);
                }
            }
        }
        self.current_fd()
    }
}
