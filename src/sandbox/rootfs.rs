//! The container's filesystem view, built by its init process (PID 1 of
//! the new PID namespace, in its own mount namespace) on top of the
//! overlay mount, then `pivot_root` into it.
//!
//! What the container sees, as runc/Podman give it:
//! - `/proc`: its own procfs; `/proc/kcore`, `/proc/keys`, ... masked and
//!   `/proc/sys`, `/proc/sysrq-trigger`, ... read-only;
//! - `/dev`: a tmpfs with null, zero, full, random, urandom and tty bound
//!   from the host, a private devpts instance (`/dev/ptmx` points into it),
//!   `/dev/shm` and `/dev/mqueue`, and the usual symlinks; with `-t`,
//!   `/dev/console` is the container's pty (a `/dev/pts/N` of its devpts);
//! - `/sys`: read-only (a fresh sysfs in a private network namespace, the
//!   host's otherwise), with `/sys/firmware` masked;
//! - `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` provided by hutch;
//! - the profile's and command line's bind mounts and tmpfs mounts;
//! - for the `host` image, empty tmpfs mounts over the host's private
//!   places (`/home`, `/root`, `/run`, `/tmp`, `/var/tmp`) unless a mount
//!   brings them in.
//!
//! Every container path (mount points, the /etc files, volumes, masked
//! paths) is resolved inside the root by `inroot`, whatever symlinks the
//! image holds, and mounted onto the resolved descriptor: nothing here
//! builds a host path from a container path.
//!
//! Everything here runs in a forked child: failures are returned as
//! messages for the launcher to print, never panics.

use super::inroot::{self, Kind, Root};
use super::spec::{AddAccounts, MountSpec, SandboxSpec};
use rustix::fs::{FileType, StatVfsMountFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// A failed step, with what was being done.
pub type Step<T> = Result<T, String>;

fn err(what: impl std::fmt::Display, e: Errno) -> String {
    format!("{what}: {}", std::io::Error::from(e))
}

/// Mount flags a remount of a bind must keep (in a user namespace the
/// kernel locks them on mounts from the host).
fn locked_flags(mounted: &impl AsFd) -> MountFlags {
    let mut f = MountFlags::empty();
    if let Ok(s) = rustix::fs::fstatvfs(mounted) {
        let map = [
            (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
            (StatVfsMountFlags::NODEV, MountFlags::NODEV),
            (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
            (StatVfsMountFlags::RDONLY, MountFlags::RDONLY),
            (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
            (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
            (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
        ];
        for (sv, mf) in map {
            if s.f_flag.contains(sv) {
                f |= mf;
            }
        }
    }
    f
}

/// Bind `source` (a host path, or a descriptor's `/proc/self/fd/N`) onto
/// the resolved container path `dest`; read-only if asked.
fn bind(
    root: &Root,
    source: &Path,
    target: &OwnedFd,
    dest: &str,
    recursive: bool,
    read_only: bool,
) -> Step<()> {
    let to = inroot::fd_path(target);
    let r = if recursive {
        rustix::mount::mount_bind_recursive(source, to.as_str())
    } else {
        rustix::mount::mount_bind(source, to.as_str())
    };
    r.map_err(|e| {
        err(
            format_args!("bind-mounting {} on {dest}", source.display()),
            e,
        )
    })?;
    if read_only {
        // The descriptor names what is under the new mount; look the path
        // up again to reach the mount itself.
        let mounted = root
            .lookup(dest)?
            .ok_or_else(|| format!("{dest} vanished after mounting it"))?;
        let flags = MountFlags::BIND | MountFlags::RDONLY | locked_flags(&mounted);
        rustix::mount::mount_remount(inroot::fd_path(&mounted).as_str(), flags, "")
            .map_err(|e| err(format_args!("making {dest} read-only"), e))?;
    }
    Ok(())
}

/// mount(2) of a filesystem with a data string onto a resolved descriptor.
fn mount_fs(
    source: &str,
    target: &OwnedFd,
    fstype: &str,
    flags: MountFlags,
    data: &str,
) -> Result<(), Errno> {
    let data = std::ffi::CString::new(data).map_err(|_| Errno::INVAL)?;
    let to = inroot::fd_path(target);
    rustix::mount::mount(source, to.as_str(), fstype, flags, Some(data.as_c_str()))
}

fn tmpfs(root: &Root, dest: &str, flags: MountFlags, options: &str) -> Step<()> {
    let target = root.ensure(dest, Kind::Dir)?;
    mount_fs("tmpfs", &target, "tmpfs", flags, options)
        .map_err(|e| err(format_args!("mounting a tmpfs on {dest}"), e))
}

/// /proc: the container's own procfs.
fn mount_proc(root: &Root) -> Step<()> {
    let target = root.ensure("/proc", Kind::Dir)?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mount_fs("proc", &target, "proc", flags, "").map_err(|e| {
        err(
            "mounting /proc (a host whose own /proc has parts hidden, as in some containers, refuses it)",
            e,
        )
    })
}

const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Hide or freeze what runc hides: files get /dev/null bound over them,
/// directories an empty read-only tmpfs; read-only paths a read-only bind
/// of themselves.
fn mask_paths(root: &Root) -> Step<()> {
    let null = root
        .lookup("/dev/null")?
        .ok_or("the container's /dev/null is missing")?;
    let null = inroot::fd_path(&null);
    for p in MASKED {
        let Some(t) = root.lookup(p)? else {
            continue;
        };
        if inroot::file_type(&t) == Some(FileType::Directory) {
            mount_fs("tmpfs", &t, "tmpfs", MountFlags::RDONLY, "size=0,mode=755")
                .map_err(|e| err(format_args!("masking {p}"), e))?;
        } else {
            bind(root, Path::new(&null), &t, p, false, false)?;
        }
    }
    for p in READ_ONLY {
        let Some(t) = root.lookup(p)? else {
            continue;
        };
        bind(root, Path::new(&inroot::fd_path(&t)), &t, p, true, true)?;
    }
    Ok(())
}

/// /dev: a small tmpfs with the safe device nodes bound from the host.
fn mount_dev(root: &Root, ptmx_gid5: bool) -> Step<()> {
    tmpfs(
        root,
        "/dev",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        "mode=755,size=65536k",
    )?;
    // From here on /dev resolves to the fresh tmpfs, whatever the image had.
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let dest = format!("/dev/{node}");
        let t = root.ensure(&dest, Kind::File)?;
        // The source is the host's node (no pivot_root yet).
        let host_node = Path::new("/dev").join(node);
        bind(root, &host_node, &t, &dest, false, false)?;
    }
    let pts = root.ensure("/dev/pts", Kind::Dir)?;
    let opts = if ptmx_gid5 {
        "newinstance,ptmxmode=0666,mode=0620,gid=5"
    } else {
        "newinstance,ptmxmode=0666,mode=0620"
    };
    mount_fs(
        "devpts",
        &pts,
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        opts,
    )
    .map_err(|e| err("mounting a private devpts on /dev/pts", e))?;
    let dev = root
        .lookup_dir("/dev")?
        .ok_or("the container's /dev is missing")?;
    let links = [
        ("pts/ptmx", "ptmx"),
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("/proc/kcore", "core"),
    ];
    for (target, name) in links {
        rustix::fs::symlinkat(target, &dev, name)
            .map_err(|e| err(format_args!("creating /dev/{name}"), e))?;
    }
    tmpfs(
        root,
        "/dev/shm",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "mode=1777,size=65536k",
    )?;
    let mq = root.ensure("/dev/mqueue", Kind::Dir)?;
    mount_fs(
        "mqueue",
        &mq,
        "mqueue",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "",
    )
    .map_err(|e| err("mounting /dev/mqueue", e))
}

/// The container's console with `-t`: a pty of its own devpts, so the
/// command's terminal is `/dev/pts/N` in its view (as in Podman).
pub struct Console {
    /// The controller side, for hutch.
    pub controller: OwnedFd,
    /// The terminal side, for the command.
    pub terminal: OwnedFd,
}

/// Open a pty in the container's devpts (mounted by [`mount_dev`]), give
/// its terminal side to `owner` (the command's uid) and bind it onto
/// `/dev/console`, as runc and crun do.
fn console(root: &Root, owner: u32) -> Step<Console> {
    let pts = root
        .lookup_dir("/dev/pts")?
        .ok_or("the container's /dev/pts is missing")?;
    let Console {
        controller,
        terminal,
    } = pty_in(&pts, owner)?;
    let target = root.ensure("/dev/console", Kind::File)?;
    bind(
        root,
        Path::new(&inroot::fd_path(&terminal)),
        &target,
        "/dev/console",
        false,
        false,
    )?;
    Ok(Console {
        controller,
        terminal,
    })
}

/// A new pty of the devpts `pts`, its terminal side given to `owner`.
fn pty_in(pts: &OwnedFd, owner: u32) -> Step<Console> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::OpenptFlags;
    let controller = rustix::fs::openat(
        pts,
        "ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| err("opening /dev/pts/ptmx of the container for -t", e))?;
    rustix::pty::unlockpt(&controller).map_err(|e| err("unlocking the container's pty", e))?;
    // The terminal side straight from the controller: no path is looked up.
    let terminal = rustix::pty::ioctl_tiocgptpeer(
        &controller,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )
    .map_err(|e| err("opening the terminal side of the container's pty", e))?;
    // The command may run as another user than init: its terminal is its
    // own, as a login's is (the group stays tty where gid 5 exists). Not
    // fatal: the command holds the descriptor either way.
    let _ = rustix::fs::fchown(&terminal, Some(rustix::fs::Uid::from_raw(owner)), None);
    Ok(Console {
        controller,
        terminal,
    })
}

/// `hutch exec -t`: a new pty of the container's devpts, from a process
/// that has joined the container's mount namespace (its root is the
/// container's), the terminal side given to `owner`.
pub fn open_pty(owner: u32) -> Step<Console> {
    let pts = rustix::fs::open(
        "/dev/pts",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| err("opening the container's /dev/pts for -t", e))?;
    pty_in(&pts, owner)
}

/// /sys read-only: a fresh sysfs when the container has its own network
/// namespace (the kernel allows it then), else the host's, bound.
fn mount_sys(root: &Root, own_netns: bool) -> Step<()> {
    let target = root.ensure("/sys", Kind::Dir)?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::RDONLY;
    if own_netns && mount_fs("sysfs", &target, "sysfs", flags, "").is_ok() {
        return Ok(());
    }
    bind(root, Path::new("/sys"), &target, "/sys", true, true)
}

/// Bring the loopback interface of a new network namespace up.
fn loopback_up() -> Step<()> {
    crate::sys::interface_up("lo").map_err(|e| err("bringing up the loopback interface", e))
}

fn user_mounts(root: &Root, spec: &SandboxSpec) -> Step<()> {
    for m in &spec.mounts {
        let dest = m.destination();
        match m {
            MountSpec::Bind {
                source,
                read_only,
                copy_up,
                ..
            } => {
                if *copy_up {
                    super::copy_up::copy_up(root, dest, source)?;
                }
                let is_dir = std::fs::metadata(source)
                    .map_err(|e| format!("volume {}: {e}", source.display()))?
                    .is_dir();
                let kind = if is_dir { Kind::Dir } else { Kind::File };
                let target = root
                    .ensure(dest, kind)
                    .map_err(|e| format!("volume {}:{dest}: {e}", source.display()))?;
                bind(root, source, &target, dest, true, *read_only)?;
            }
            MountSpec::Tmpfs { options, .. } => {
                tmpfs(root, dest, MountFlags::NOSUID | MountFlags::NODEV, options)?;
            }
        }
    }
    Ok(())
}

/// The spec's bind mounts (named volumes, host directories) on the
/// overlay mounted at `root`, for a stopped container's files as a run
/// would show them (visit.rs): no tmpfs (empty in a run too), no volume
/// filled (its first run does that), read-only unless `writable` and the
/// spec allows writing.
pub(super) fn bind_mounts(root: &Path, spec: &SandboxSpec, writable: bool) -> Step<()> {
    let root = Root::open(root)?;
    for m in &spec.mounts {
        if let MountSpec::Bind {
            source,
            destination,
            read_only,
            ..
        } = m
        {
            let is_dir = std::fs::metadata(source)
                .map_err(|e| format!("volume {}: {e}", source.display()))?
                .is_dir();
            let kind = if is_dir { Kind::Dir } else { Kind::File };
            let target = root
                .ensure(destination, kind)
                .map_err(|e| format!("volume {}:{destination}: {e}", source.display()))?;
            bind(
                &root,
                source,
                &target,
                destination,
                true,
                *read_only || !writable,
            )?;
        }
    }
    Ok(())
}

/// Places of the host a container on the `host` image must not see unless
/// mounted in explicitly.
const HOST_PRIVATE: &[&str] = &[
    "/home", "/root", "/run", "/tmp", "/var/tmp", "/mnt", "/media",
];

fn hide_host_private(root: &Root) -> Step<()> {
    for p in HOST_PRIVATE {
        if root.lookup_dir(p)?.is_some() {
            let mode = if *p == "/tmp" || *p == "/var/tmp" {
                "mode=1777"
            } else {
                "mode=755"
            };
            tmpfs(root, p, MountFlags::NOSUID | MountFlags::NODEV, mode)?;
        }
    }
    Ok(())
}

fn etc_files(root: &Root, etc_dir: &Path) -> Step<()> {
    let etc = root.ensure("/etc", Kind::Dir)?;
    for f in ["hosts", "hostname", "resolv.conf"] {
        // A symlink (Debian's resolv.conf may be one) is replaced by a file,
        // never followed.
        let target = root
            .replace_file(&etc, f)
            .map_err(|e| format!("preparing /etc/{f}: {e}"))?;
        bind(
            root,
            &etc_dir.join(f),
            &target,
            &format!("/etc/{f}"),
            false,
            false,
        )?;
    }
    Ok(())
}

/// keep_id's passwd and group entries, appended in the container's own
/// layer (not bind-mounted, so that `useradd` and package scripts can
/// still rewrite the files).
fn add_accounts(root: &Root, add: &AddAccounts) -> Step<()> {
    for (path, line) in [("/etc/passwd", &add.passwd), ("/etc/group", &add.group)] {
        if let Some(line) = line {
            root.append(path, line)
                .map_err(|e| format!("adding your user to {path}: {e}"))?;
        }
    }
    Ok(())
}

/// Build the view under `root` (the overlay mount) and pivot into it.
/// `etc_dir` holds the generated hosts/hostname/resolv.conf. With `-t`,
/// returns the container's console.
pub fn setup(
    spec: &SandboxSpec,
    root: &Path,
    etc_dir: &Path,
    own_netns: bool,
) -> Step<Option<Console>> {
    // Nothing we mount may propagate back to hutch's namespace.
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| err("making the mount namespace private", e))?;
    let console = {
        let r = Root::open(root)?;
        if spec.rootfs.host {
            hide_host_private(&r)?;
        }
        mount_proc(&r)?;
        mount_dev(&r, spec.id_maps.maps_gid(5))?;
        let console = if spec.process.terminal {
            Some(console(&r, spec.process.user.uid)?)
        } else {
            None
        };
        mount_sys(&r, own_netns)?;
        etc_files(&r, etc_dir)?;
        add_accounts(&r, &spec.process.add_accounts)?;
        user_mounts(&r, spec)?;
        mask_paths(&r)?;
        console
    };
    if spec.rootfs.read_only {
        let top = rustix::fs::open(
            root,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| err("opening the root filesystem", e))?;
        rustix::mount::mount_remount(
            root,
            MountFlags::BIND | MountFlags::RDONLY | locked_flags(&top),
            "",
        )
        .map_err(|e| err("making the root filesystem read-only", e))?;
    }
    pivot(root)?;
    if own_netns {
        loopback_up()?;
    }
    rustix::system::sethostname(spec.hostname.as_bytes())
        .map_err(|e| err(format_args!("setting the hostname {:?}", spec.hostname), e))?;
    Ok(console)
}

/// pivot_root into `root` and drop the old root (the `pivot_root(".", ".")`
/// idiom: no directory for the old root is needed in the image).
fn pivot(root: &Path) -> Step<()> {
    rustix::process::chdir(root)
        .map_err(|e| err(format_args!("entering {}", root.display()), e))?;
    rustix::process::pivot_root(".", ".").map_err(|e| err("pivot_root into the container", e))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| err("detaching the host's root", e))?;
    rustix::process::chdir("/").map_err(|e| err("chdir /", e))?;
    Ok(())
}

/// Create the working directory if missing (as Docker does for `-w`).
pub fn ensure_dir(path: &str) -> Step<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("the working directory {path} is not a directory")),
        Err(_) => std::fs::create_dir_all(path)
            .map_err(|e| format!("creating the working directory {path}: {e}")),
    }
}
