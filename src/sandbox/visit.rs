//! Work on a container's files from a child process of hutch that sees
//! them as the container does (`hutch cp`, `hutch export`).
//!
//! ```text
//! hutch (outside: the host side of the work, then waits)
//!  └─ visitor  in the container's user and mount namespaces: running, the
//!              container's own (from its join socket, namespaces.rs);
//!              stopped, a new user namespace with the container's id
//!              maps and a private mount namespace where it mounts the
//!              container's overlay (its layers and upper dir) itself,
//!              and for `cp` its volumes and bind mounts on it
//! ```
//!
//! The visitor runs hutch's own code on the container's root directory
//! (given as a descriptor; paths below it are the caller's to resolve
//! inside it): nothing of the container is executed, and none of its
//! confinement applies (it is not the container's code). It is not
//! dumpable, so the container's processes cannot read or trace it; it
//! dies with hutch (PDEATHSIG), and a stopped container's mount and FUSE
//! server live only in the visitor's own mount namespace, so whatever
//! happens, they go with it.
//!
//! The visitor is forked from a single-threaded hutch, so it may use
//! anything (allocation, std I/O): no lock can be held by a thread that
//! was not copied. Its error is written to a pipe and becomes the error
//! of [`visit`].

use super::namespaces::Namespaces;
use super::spec::SandboxSpec;
use crate::overlay::{OverlayConfig, mount_overlay};
use crate::sys::{self, Forked};
use anyhow::{Context, Result, bail};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// The container whose files are visited.
pub enum Tree<'a> {
    /// A running container: its namespaces (from its join socket).
    Running(&'a Namespaces),
    /// A stopped one: its spec (layers, upper dir, id maps). The caller
    /// holds its running lock, so nothing starts it meanwhile.
    Stopped(&'a SandboxSpec),
}

/// What part of the container the work sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Its whole file view (volumes, /proc, /dev of a running container
    /// included; of a stopped one, its volumes and bind mounts), as `hutch
    /// cp` wants it. `write`: the work writes.
    Mounted { write: bool },
    /// Only its root filesystem (the image's layers and its changes),
    /// read only, as `hutch export` wants it.
    RootOnly,
}

/// Exit status of a visitor whose peer stopped reading or writing (the
/// outside's error says why).
const PEER_GONE: i32 = 3;

/// The visitor stopped because what it wrote to was closed by its reader
/// (`hutch export | head`) while hutch itself had nothing to say.
#[derive(Debug, thiserror::Error)]
#[error("the reader of the output went away before the end")]
pub struct ReaderGone;

/// Run `inside` in a child process in the container's namespaces, given
/// a descriptor of the container's root directory, while this process
/// runs `outside`; the result of `outside` once both have ended. An error
/// of `inside` wins over one of `outside` (which usually follows from
/// it), except a broken pipe, which means `outside` stopped first.
///
/// Descriptors `inside` owns are closed here before `outside` runs and
/// `outside`'s in the child before `inside` runs, so a pipe between them
/// sees its end when the other side is done.
pub fn visit<T>(
    tree: Tree<'_>,
    view: View,
    inside: impl FnOnce(BorrowedFd<'_>) -> Result<()>,
    outside: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if let Some(n) = crate::overlay::thread_count()
        && n > 1
    {
        bail!(
            "internal error: hutch must be single-threaded to visit a container (it runs {n} threads)"
        );
    }
    super::rlimits::raise_own_nofile();
    let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .context("creating a pipe")?;
    let parent = rustix::process::getpid().as_raw_nonzero().get();
    let child = match sys::fork()
        .map_err(std::io::Error::from)
        .context("starting a process to reach the container's files")?
    {
        Forked::Child => {
            drop(outside);
            drop(err_r);
            let code = match visitor(parent, &tree, view, inside) {
                Ok(()) => 0,
                Err(e) if broken_pipe(&e) => PEER_GONE,
                Err(e) => {
                    let msg = format!("{e:#}");
                    let cut = (0..=msg.len().min(4000))
                        .rev()
                        .find(|i| msg.is_char_boundary(*i))
                        .unwrap_or(0);
                    sys::write_fd(err_w.as_raw_fd(), &msg.as_bytes()[..cut]);
                    crate::error::EXIT_FAILED
                }
            };
            sys::exit_now(code)
        }
        Forked::Parent(p) => p,
    };
    drop(inside);
    drop(err_w);
    let result = outside();
    let status = sys::wait(child, false)
        .map_err(std::io::Error::from)
        .context("waiting for the process that reached the container's files")?
        .map(|(_, s)| s)
        .unwrap_or(0);
    let msg = read_all(&err_r);
    if !msg.is_empty() {
        bail!("{}", msg.trim());
    }
    let value = result?;
    match sys::exit_code(status) {
        0 => Ok(value),
        PEER_GONE => Err(ReaderGone.into()),
        code => bail!(
            "the process that reached the container's files ended with status {code} \
             (with --verbose it says more)"
        ),
    }
}

/// Whether an error comes from a pipe whose reader is gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn read_all(fd: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The child: into the container's namespaces, then `inside` on its root.
fn visitor(
    parent: i32,
    tree: &Tree<'_>,
    view: View,
    inside: impl FnOnce(BorrowedFd<'_>) -> Result<()>,
) -> Result<()> {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) != Some(parent) {
        bail!("hutch exited before the container's files were reached");
    }
    sys::set_not_dumpable()
        .map_err(std::io::Error::from)
        .context("making the process that reaches the container's files not dumpable")?;
    let run = |root: BorrowedFd<'_>| -> Result<()> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inside(root)))
            .unwrap_or_else(|_| bail!("internal error: a panic while copying (see above)"))
    };
    match tree {
        Tree::Running(ns) => {
            ns.enter_user_and_mount()
                .map_err(|(what, e)| anyhow::anyhow!("{what}: {}", std::io::Error::from(e)))?;
            // setns made the mount namespace's root our root and cwd.
            let root = match view {
                View::Mounted { .. } => rustix::fs::open(
                    "/",
                    rustix::fs::OFlags::PATH
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                ),
                // A detached copy of the root mount alone: what is
                // mounted on it (volumes, /proc, the /etc files) is not
                // part of the root filesystem.
                View::RootOnly => rustix::mount::open_tree(
                    rustix::fs::CWD,
                    "/",
                    rustix::mount::OpenTreeFlags::OPEN_TREE_CLONE
                        | rustix::mount::OpenTreeFlags::OPEN_TREE_CLOEXEC,
                ),
            }
            .map_err(std::io::Error::from)
            .context("opening the container's root directory")?;
            run(root.as_fd())
        }
        Tree::Stopped(spec) => {
            super::idmap::unshare_mapped(&spec.id_maps)?;
            rustix::mount::mount_change(
                "/",
                rustix::mount::MountPropagationFlags::DOWNSTREAM
                    | rustix::mount::MountPropagationFlags::REC,
            )
            .map_err(std::io::Error::from)
            .context("making the mounts private")?;
            let mountpoint = &spec.rootfs.mountpoint;
            std::fs::create_dir_all(mountpoint)
                .with_context(|| format!("creating {}", mountpoint.display()))?;
            let mut cfg = OverlayConfig::new(
                spec.rootfs.lowers.clone(),
                spec.rootfs.upper.clone(),
                spec.rootfs.work.clone(),
            );
            cfg.threads = Some(4);
            let mounted = mount_overlay(cfg, mountpoint)
                .context("mounting the container's root filesystem")?;
            let writes = matches!(view, View::Mounted { write: true });
            if matches!(view, View::Mounted { .. }) {
                super::rootfs::bind_mounts(mountpoint, spec, writes)
                    .map_err(|e| anyhow::anyhow!("mounting the container's volumes: {e}"))?;
            }
            if !writes || spec.rootfs.read_only {
                rustix::mount::mount_remount(
                    mountpoint,
                    rustix::mount::MountFlags::BIND
                        | rustix::mount::MountFlags::RDONLY
                        | rustix::mount::MountFlags::NODEV,
                    "",
                )
                .map_err(std::io::Error::from)
                .context("making the container's root filesystem read-only")?;
            }
            let result = rustix::fs::open(
                mountpoint,
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(std::io::Error::from)
            .context("opening the container's root directory")
            .and_then(|root| run(root.as_fd()));
            let unmounted = mounted.unmount();
            result?;
            unmounted
        }
    }
}
