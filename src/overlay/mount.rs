//! Mounting the overlay without privileges.
//!
//! 1. [`enter_user_namespace`]: while the process is still single-threaded,
//!    `unshare(CLONE_NEWUSER | CLONE_NEWNS)`, map uid/gid 0 to the invoking
//!    user (one mapping; the launcher adds `newuidmap` ranges), and make
//!    every mount a slave so nothing we mount propagates to the host.
//! 2. [`mount_overlay`]: open `/dev/fuse` ourselves, `mount(2)` it with
//!    `fd=N,rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other`
//!    (no fusermount, no libfuse), hand the fd to fuser's `Session::from_fd`
//!    and serve on background threads (one `/dev/fuse` clone per thread).
//!
//! The mount lives in hutch's private mount namespace: it disappears with
//! the last process of that namespace. If hutch is killed, its `/dev/fuse`
//! fds close (they are close-on-exec, so children never hold them) and the
//! kernel aborts the connection: nothing hangs.

use super::fs::{Inval, OverlayFs, open_layers};
use super::fuse::Fuse;
use super::idmap::IdMap;
use anyhow::{Context, Result, bail};
use fuser::{Session, SessionACL};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What to stack.
#[derive(Debug, Clone)]
pub struct OverlayConfig {
    /// Read-only layers, top first (like overlayfs `lowerdir`).
    pub lowers: Vec<PathBuf>,
    /// The writable layer.
    pub upper: PathBuf,
    /// Scratch dir on the upper's filesystem (copy-ups are staged there).
    pub work: PathBuf,
    /// FUSE worker threads; `None` picks from the number of CPUs.
    pub threads: Option<usize>,
    /// Use the kernel's writeback cache (default). Small writes are much
    /// faster; the price is that the kernel keeps file times itself, so a
    /// truncate(2) to the current size does not update the mtime (the
    /// kernel overlay does). Off: every write goes to hutch at once.
    pub writeback: bool,
    /// Flags of the mount itself (`MS_RDONLY`, `MS_NOSUID`, ...); `MS_NODEV`
    /// is always added. A read-only mount never writes to the upper dir.
    pub flags: MountFlags,
    /// The mount's source as /proc/self/mountinfo shows it.
    pub fsname: String,
    /// Rename directories of lower layers with a redirect record (default,
    /// the kernel's `redirect_dir=on`); off, such a rename fails with
    /// `EXDEV` (callers copy) and the upper dir never holds a record, for
    /// readers without redirects (fuse-overlayfs, an unprivileged kernel
    /// overlay). Records already there are followed either way.
    pub redirect_dir: bool,
    /// Shifted owners (`hutch-overlayfs -o uidmapping=...`); `None` (default):
    /// the stored owners are shown.
    pub idmap: Option<IdMap>,
}

impl OverlayConfig {
    pub fn new(lowers: Vec<PathBuf>, upper: PathBuf, work: PathBuf) -> OverlayConfig {
        OverlayConfig {
            lowers,
            upper,
            work,
            threads: None,
            writeback: true,
            flags: MountFlags::empty(),
            fsname: "hutch".into(),
            redirect_dir: true,
            idmap: None,
        }
    }

    /// The default work dir for `upper`: its sibling `<upper>.work`.
    pub fn default_work(upper: &Path) -> PathBuf {
        let mut s = upper.as_os_str().to_owned();
        s.push(".work");
        PathBuf::from(s)
    }
}

/// Number of threads of this process (from /proc/self/status).
pub(crate) fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Move this process into a new user and mount namespace where it is root
/// (uid/gid 0 = the invoking user), with every mount made a slave. Must
/// be called while the process is single-threaded.
pub fn enter_user_namespace() -> Result<()> {
    if let Some(n) = thread_count()
        && n > 1
    {
        bail!("cannot create a user namespace: the process already runs {n} threads");
    }
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    // The process is single-threaded (checked above), as CLONE_NEWUSER
    // requires.
    crate::sys::unshare(
        rustix::thread::UnshareFlags::NEWUSER | rustix::thread::UnshareFlags::NEWNS,
    )
    .map_err(std::io::Error::from)
    .context(
        "creating a user namespace (is kernel.unprivileged_userns_clone or \
         user.max_user_namespaces disabled? `hutch check` tells)",
    )?;
    std::fs::write("/proc/self/setgroups", "deny").context("writing /proc/self/setgroups")?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1\n"))
        .context("writing /proc/self/uid_map")?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1\n"))
        .context("writing /proc/self/gid_map")?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(std::io::Error::from)
    .context("making / a slave mount")?;
    Ok(())
}

/// A mounted overlay served by background threads. Dropping it unmounts.
#[derive(Debug)]
pub struct MountedOverlay {
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

fn default_threads() -> usize {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    (cpus * 2).clamp(4, 16)
}

/// Mount the overlay described by `cfg` at `mountpoint` and serve it on
/// background threads. The caller must be root of a user namespace that
/// owns its mount namespace (see [`enter_user_namespace`]).
pub fn mount_overlay(cfg: OverlayConfig, mountpoint: &Path) -> Result<MountedOverlay> {
    let layers = open_layers(&cfg.lowers, &cfg.upper, &cfg.work)?;
    let mut fs = OverlayFs::new(layers).context("opening the overlay layers")?;
    fs.redirect_dir = cfg.redirect_dir;
    fs.idmap = cfg.idmap.clone();
    fs.clean_work();
    let dev = rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(std::io::Error::from)
        .context("opening /dev/fuse (is the fuse module loaded? `hutch check` tells)")?;
    let opts = format!(
        "fd={},rootmode=40000,user_id={},group_id={},default_permissions,allow_other",
        dev.as_raw_fd(),
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let opts = CString::new(opts).context("mount options")?;
    let flags = cfg.flags | MountFlags::NODEV;
    let source = CString::new(cfg.fsname.as_str()).unwrap_or_else(|_| c"hutch".into());
    let mut r = rustix::mount::mount(
        source.as_c_str(),
        mountpoint,
        "fuse.hutch",
        flags,
        opts.as_c_str(),
    );
    if r == Err(rustix::io::Errno::NODEV) {
        r = rustix::mount::mount(
            source.as_c_str(),
            mountpoint,
            "fuse",
            flags,
            opts.as_c_str(),
        );
    }
    r.map_err(std::io::Error::from).with_context(|| {
        let hint = if r == Err(rustix::io::Errno::PERM) {
            " (mounting needs root of the user namespace that owns this mount \
             namespace, e.g. inside `unshare -Urm` or `podman unshare`)"
        } else {
            ""
        };
        format!("mounting the overlay on {}{hint}", mountpoint.display())
    })?;
    let mut config = fuser::Config::default();
    config.acl = SessionACL::All;
    config.n_threads = Some(cfg.threads.unwrap_or_else(default_threads).max(1));
    config.clone_fd = true;
    let fs = Arc::new(fs);
    let notifier = Arc::new(std::sync::OnceLock::new());
    let fuse = Fuse {
        fs: fs.clone(),
        notifier: notifier.clone(),
        writeback: cfg.writeback,
        stats: super::fuse::Stats::new(),
        panics: Default::default(),
    };
    let session = Session::from_fd(fuse, dev, SessionACL::All, config)
        .and_then(|s| {
            start_invalidator(&fs, s.notifier())?;
            let _ = notifier.set(s.notifier());
            s.spawn()
        })
        .inspect_err(|_| {
            let _ = rustix::mount::unmount(mountpoint, UnmountFlags::DETACH);
        })
        .context("starting the FUSE session")?;
    Ok(MountedOverlay {
        mountpoint: mountpoint.to_path_buf(),
        session: Some(session),
    })
}

/// Send the kernel the cache invalidations the filesystem queues, from a
/// thread of its own (see [`OverlayFs::invalidate`]).
fn start_invalidator(fs: &OverlayFs, notifier: fuser::Notifier) -> std::io::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel::<Inval>();
    std::thread::Builder::new()
        .name("hutch-inval".into())
        .spawn(move || {
            for msg in rx {
                let r = match &msg {
                    // Attributes only (a negative offset keeps the data).
                    Inval::Inode(ino) => notifier.inval_inode(fuser::INodeNo(*ino), -1, 0),
                };
                if let Err(e) = r {
                    tracing::debug!("kernel cache invalidation failed: {e}");
                }
            }
        })?;
    fs.set_invalidator(tx);
    Ok(())
}

impl MountedOverlay {
    /// Serve until the mount goes away (`umount`, `fusermount3 -u`, or a
    /// lazy unmount once its last user is gone), then return.
    pub fn wait(mut self) -> Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if let Err(e) = session.join() {
            tracing::debug!("FUSE session ended with: {e}");
        }
        Ok(())
    }

    /// Unmount and stop serving. Processes that still use the mount keep
    /// it alive (lazy unmount); then the serving threads are left to end
    /// with the process instead of blocking here.
    pub fn unmount(mut self) -> Result<()> {
        self.stop(Duration::from_secs(5))
    }

    fn stop(&mut self, wait: Duration) -> Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        rustix::mount::unmount(&self.mountpoint, UnmountFlags::DETACH)
            .map_err(std::io::Error::from)
            .with_context(|| format!("unmounting {}", self.mountpoint.display()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let joiner = std::thread::Builder::new()
            .name("hutch-unmount".into())
            .spawn(move || {
                let _ = tx.send(session.join());
            });
        if joiner.is_err() {
            return Ok(());
        }
        match rx.recv_timeout(wait) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!("FUSE session ended with: {e}");
                Ok(())
            }
            Err(_) => {
                tracing::warn!(
                    "{} is still in use; it goes away with the last process using it",
                    self.mountpoint.display()
                );
                Ok(())
            }
        }
    }
}

impl Drop for MountedOverlay {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(1));
    }
}
