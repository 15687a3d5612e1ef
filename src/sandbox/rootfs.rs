//! The container's filesystem view, built by its init process (PID 1 of
//! the new PID namespace, in its own mount namespace) on top of the
//! overlay mount, then `pivot_root` into it.
//!
//! What the container sees, as runc/Podman give it:
//! - `/proc`: its own procfs; `/proc/kcore`, `/proc/keys`, ... masked and
//!   `/proc/sys`, `/proc/sysrq-trigger`, ... read-only;
//! - `/dev`: a tmpfs with null, zero, full, random, urandom and tty bound
//!   from the host, a private devpts instance (`/dev/ptmx` points into it),
//!   `/dev/shm` and `/dev/mqueue`, and the usual symlinks;
//! - `/sys`: read-only (a fresh sysfs in a private network namespace, the
//!   host's otherwise), with `/sys/firmware` masked;
//! - `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` provided by hutch;
//! - the profile's and command line's bind mounts and tmpfs mounts;
//! - for the `host` image, empty tmpfs mounts over the host's private
//!   places (`/home`, `/root`, `/run`, `/tmp`, `/var/tmp`) unless a mount
//!   brings them in.
//!
//! Everything here runs in a forked child: failures are returned as
//! messages for the launcher to print, never panics.

use super::spec::{MountSpec, SandboxSpec};
use rustix::fs::StatVfsMountFlags;
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use std::path::{Path, PathBuf};

/// A failed step, with what was being done.
pub type Step<T> = Result<T, String>;

fn err(what: impl std::fmt::Display, e: Errno) -> String {
    format!("{what}: {}", std::io::Error::from(e))
}

/// The host path of container path `p` under the new root.
fn under(root: &Path, p: &str) -> PathBuf {
    root.join(p.trim_start_matches('/'))
}

fn mkdir_p(p: &Path) -> Step<()> {
    std::fs::create_dir_all(p).map_err(|e| format!("creating {}: {e}", p.display()))
}

/// An empty file to bind a file onto (its directory is created too).
fn touch(p: &Path) -> Step<()> {
    if let Some(parent) = p.parent() {
        mkdir_p(parent)?;
    }
    match std::fs::symlink_metadata(p) {
        Ok(_) => Ok(()),
        Err(_) => std::fs::File::create(p)
            .map(|_| ())
            .map_err(|e| format!("creating {}: {e}", p.display())),
    }
}

/// Mount flags a remount of a bind of `source` must keep (in a user
/// namespace the kernel locks them on mounts from the host).
fn locked_flags(source: &Path) -> MountFlags {
    let mut f = MountFlags::empty();
    if let Ok(s) = rustix::fs::statvfs(source) {
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

fn bind(source: &Path, target: &Path, recursive: bool, read_only: bool) -> Step<()> {
    let r = if recursive {
        rustix::mount::mount_bind_recursive(source, target)
    } else {
        rustix::mount::mount_bind(source, target)
    };
    r.map_err(|e| {
        err(
            format_args!("bind-mounting {} on {}", source.display(), target.display()),
            e,
        )
    })?;
    if read_only {
        let flags = MountFlags::BIND | MountFlags::RDONLY | locked_flags(target);
        rustix::mount::mount_remount(target, flags, "")
            .map_err(|e| err(format_args!("making {} read-only", target.display()), e))?;
    }
    Ok(())
}

/// mount(2) of a filesystem with a data string.
fn mount_fs(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: MountFlags,
    data: &str,
) -> Result<(), Errno> {
    let data = std::ffi::CString::new(data).map_err(|_| Errno::INVAL)?;
    rustix::mount::mount(source, target, fstype, flags, Some(data.as_c_str()))
}

fn tmpfs(target: &Path, flags: MountFlags, options: &str) -> Step<()> {
    mkdir_p(target)?;
    mount_fs("tmpfs", target, "tmpfs", flags, options)
        .map_err(|e| err(format_args!("mounting a tmpfs on {}", target.display()), e))
}

/// /proc with runc's masked and read-only paths.
fn mount_proc(root: &Path) -> Step<()> {
    let proc = under(root, "/proc");
    mkdir_p(&proc)?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mount_fs("proc", &proc, "proc", flags, "").map_err(|e| {
        err(
            "mounting /proc (a host whose own /proc has parts hidden, as in some containers, refuses it)",
            e,
        )
    })?;
    Ok(())
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
fn mask_paths(root: &Path) -> Step<()> {
    for p in MASKED {
        let t = under(root, p);
        let Ok(meta) = std::fs::symlink_metadata(&t) else {
            continue;
        };
        if meta.is_dir() {
            tmpfs(&t, MountFlags::RDONLY, "size=0,mode=755")?;
        } else {
            bind(&under(root, "/dev/null"), &t, false, false)?;
        }
    }
    for p in READ_ONLY {
        let t = under(root, p);
        if std::fs::symlink_metadata(&t).is_err() {
            continue;
        }
        bind(&t, &t, true, true)?;
    }
    Ok(())
}

/// /dev: a small tmpfs with the safe device nodes bound from the host.
fn mount_dev(root: &Path, ptmx_gid5: bool) -> Step<()> {
    let dev = under(root, "/dev");
    tmpfs(
        &dev,
        MountFlags::NOSUID | MountFlags::NOEXEC,
        "mode=755,size=65536k",
    )?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let t = dev.join(node);
        touch(&t)?;
        bind(&Path::new("/dev").join(node), &t, false, false)?;
    }
    let pts = dev.join("pts");
    mkdir_p(&pts)?;
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
    let links = [
        ("pts/ptmx", "ptmx"),
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("/proc/kcore", "core"),
    ];
    for (target, name) in links {
        std::os::unix::fs::symlink(target, dev.join(name))
            .map_err(|e| format!("creating /dev/{name}: {e}"))?;
    }
    tmpfs(
        &dev.join("shm"),
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "mode=1777,size=65536k",
    )?;
    let mq = dev.join("mqueue");
    mkdir_p(&mq)?;
    mount_fs(
        "mqueue",
        &mq,
        "mqueue",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "",
    )
    .map_err(|e| err("mounting /dev/mqueue", e))?;
    Ok(())
}

/// /sys read-only: a fresh sysfs when the container has its own network
/// namespace (the kernel allows it then), else the host's, bound.
fn mount_sys(root: &Path, own_netns: bool) -> Step<()> {
    let sys = under(root, "/sys");
    mkdir_p(&sys)?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::RDONLY;
    if own_netns && mount_fs("sysfs", &sys, "sysfs", flags, "").is_ok() {
        return Ok(());
    }
    bind(Path::new("/sys"), &sys, true, true)
}

/// Bring the loopback interface of a new network namespace up.
fn loopback_up() -> Step<()> {
    super::sys::interface_up("lo").map_err(|e| err("bringing up the loopback interface", e))
}

fn user_mounts(root: &Path, spec: &SandboxSpec) -> Step<()> {
    for m in &spec.mounts {
        let target = under(root, m.destination());
        match m {
            MountSpec::Bind {
                source, read_only, ..
            } => {
                let is_dir = std::fs::metadata(source)
                    .map_err(|e| format!("volume {}: {e}", source.display()))?
                    .is_dir();
                if is_dir {
                    mkdir_p(&target)?;
                } else {
                    touch(&target)?;
                }
                bind(source, &target, true, *read_only)?;
            }
            MountSpec::Tmpfs { options, .. } => {
                tmpfs(&target, MountFlags::NOSUID | MountFlags::NODEV, options)?;
            }
        }
    }
    Ok(())
}

/// Places of the host a container on the `host` image must not see unless
/// mounted in explicitly.
const HOST_PRIVATE: &[&str] = &[
    "/home", "/root", "/run", "/tmp", "/var/tmp", "/mnt", "/media",
];

fn hide_host_private(root: &Path) -> Step<()> {
    for p in HOST_PRIVATE {
        let t = under(root, p);
        if std::fs::symlink_metadata(&t)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            let mode = if *p == "/tmp" || *p == "/var/tmp" {
                "mode=1777"
            } else {
                "mode=755"
            };
            tmpfs(&t, MountFlags::NOSUID | MountFlags::NODEV, mode)?;
        }
    }
    Ok(())
}

fn etc_files(root: &Path, etc_dir: &Path) -> Step<()> {
    for f in ["hosts", "hostname", "resolv.conf"] {
        let t = under(root, &format!("/etc/{f}"));
        // A symlink (Debian's resolv.conf may be one) is replaced by a file.
        if std::fs::symlink_metadata(&t)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
        {
            let _ = std::fs::remove_file(&t);
        }
        touch(&t)?;
        bind(&etc_dir.join(f), &t, false, false)?;
    }
    Ok(())
}

/// Build the view under `root` (the overlay mount) and pivot into it.
/// `etc_dir` holds the generated hosts/hostname/resolv.conf.
pub fn setup(spec: &SandboxSpec, root: &Path, etc_dir: &Path, own_netns: bool) -> Step<()> {
    // Nothing we mount may propagate back to hutch's namespace.
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| err("making the mount namespace private", e))?;
    if spec.rootfs.host {
        hide_host_private(root)?;
    }
    mount_proc(root)?;
    mount_dev(root, spec.id_maps.maps_gid(5))?;
    mount_sys(root, own_netns)?;
    etc_files(root, etc_dir)?;
    user_mounts(root, spec)?;
    mask_paths(root)?;
    if spec.rootfs.read_only {
        rustix::mount::mount_remount(
            root,
            MountFlags::BIND | MountFlags::RDONLY | locked_flags(root),
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
    Ok(())
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
