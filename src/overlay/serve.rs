//! Mounting in the caller's own mount namespace and serving until
//! unmounted, as fuse-overlayfs does (`hutch-overlayfs`, `hutch overlayfs`).
//!
//! Unlike [`super::enter_user_namespace`] + [`super::mount_overlay`] for one
//! command, nothing here creates a namespace: the caller must already be
//! root of a user namespace that owns its mount namespace (`podman
//! unshare`, `unshare -Urm`, the unionmount-testsuite's namespace).
//!
//! In the background form the process forks first (while it is still
//! single-threaded); the child makes its own session, mounts, checks that
//! the mount answers (a `stat` of the mount point goes through the FUSE
//! server), points its stdio at /dev/null and only then tells the parent
//! `ready` over a pipe. The parent exits 0 on `ready` and with the child's
//! error otherwise, so a caller can use the mount as soon as the command
//! returns, and one that reads the command's stderr to its end (Podman)
//! is not kept waiting by the server. The server ends when the mount is
//! unmounted (`umount MNT`, `fusermount3 -u MNT`) or on SIGTERM, SIGINT or
//! SIGHUP (it then detaches the mount itself).

use super::mount::{OverlayConfig, mount_overlay};
use anyhow::{Context, Result, bail};
use rustix::mount::UnmountFlags;
use std::io::Read as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// How [`serve_until_unmounted`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeMode {
    /// Return once the mount is ready; a background process serves it.
    Background,
    /// Serve in this process; return when the mount is gone.
    Foreground,
}

/// Check the caller can mount here: root (euid 0) of its user namespace.
/// Mounting needs CAP_SYS_ADMIN in the user namespace that owns the mount
/// namespace; euid 0 there is what gives it to an unprivileged user.
fn check_root() -> Result<()> {
    let euid = rustix::process::geteuid().as_raw();
    if euid != 0 {
        bail!(
            "mounting in the caller's mount namespace needs root of a user namespace \
             that owns it, and this process runs as uid {euid}: run it inside \
             `unshare -Urm`, `podman unshare` or a container, or use \
             `hutch overlay ... MNT -- CMD`, which makes a namespace of its own"
        );
    }
    Ok(())
}

/// Mount `cfg` at `mountpoint` in this mount namespace and serve it until
/// it is unmounted. `scratch`, if given, is a directory of hutch's own
/// (the empty upper and work dirs of a read-only mount) removed when the
/// server ends. In the background form this returns in the parent as soon
/// as the mount is ready; the serving child never returns.
pub fn serve_until_unmounted(
    cfg: OverlayConfig,
    mountpoint: &Path,
    mode: ServeMode,
    scratch: Option<PathBuf>,
) -> Result<()> {
    check_root()?;
    if !mountpoint.is_dir() {
        bail!("mount point {} is not a directory", mountpoint.display());
    }
    if mode == ServeMode::Foreground {
        let r = serve(cfg, mountpoint, None);
        remove_scratch(scratch.as_deref());
        return r;
    }
    if let Some(n) = super::thread_count()
        && n > 1
    {
        bail!("cannot fork the overlay server: the process already runs {n} threads");
    }
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .context("creating a pipe to the overlay server")?;
    match crate::sys::fork()
        .map_err(std::io::Error::from)
        .context("forking the overlay server")?
    {
        crate::sys::Forked::Child => {
            drop(rd);
            let _ = rustix::process::setsid();
            let code = match serve(cfg, mountpoint, Some(wr)) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            remove_scratch(scratch.as_deref());
            std::process::exit(code);
        }
        crate::sys::Forked::Parent(pid) => {
            drop(wr);
            let mut msg = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut msg);
            if msg == "ready\n" {
                return Ok(());
            }
            // The child failed (and has removed the scratch dir) or died.
            let _ = crate::sys::wait(pid, false);
            remove_scratch(scratch.as_deref());
            match msg.strip_prefix("error: ") {
                Some(e) => bail!("{}", e.trim_end()),
                None => bail!(
                    "the overlay server (pid {pid}) ended before the mount on {} was ready",
                    mountpoint.display()
                ),
            }
        }
    }
}

fn remove_scratch(scratch: Option<&Path>) {
    if let Some(d) = scratch {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Mount, check, serve until unmounted. With `ready` (the background
/// child), errors and `ready` go to the parent through it, and stdio is
/// pointed at /dev/null before `ready`.
fn serve(cfg: OverlayConfig, mountpoint: &Path, ready: Option<OwnedFd>) -> Result<()> {
    let report = |e: &anyhow::Error| {
        if let Some(fd) = &ready {
            crate::sys::write_fd(
                std::os::fd::AsRawFd::as_raw_fd(fd),
                format!("error: {e:#}\n").as_bytes(),
            );
        }
    };
    // Signals that end the server: blocked here, before the serving
    // threads exist (they inherit the mask), and waited for by one thread.
    let stop = crate::sys::SigSet::of(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
    crate::sys::block(&stop);
    let mounted = match mount_overlay(cfg, mountpoint) {
        Ok(m) => m,
        Err(e) => {
            report(&e);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::metadata(mountpoint)
        .with_context(|| format!("the new mount on {} does not answer", mountpoint.display()))
    {
        report(&e);
        let _ = mounted.unmount();
        return Err(e);
    }
    let target = mountpoint.to_path_buf();
    let _ = std::thread::Builder::new()
        .name("hutch-signals".into())
        .spawn(move || {
            let sig = crate::sys::wait_signal(&stop);
            tracing::info!("signal {sig}: unmounting {}", target.display());
            let _ = rustix::mount::unmount(&target, UnmountFlags::DETACH);
        });
    if let Some(fd) = ready {
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            for n in 0..=2 {
                let _ = crate::sys::dup_onto(null.as_fd(), n);
            }
        }
        let _ = std::env::set_current_dir("/");
        crate::sys::write_fd(std::os::fd::AsRawFd::as_raw_fd(&fd), b"ready\n");
        drop(fd);
    }
    mounted.wait()
}
