//! `hutch overlay`: mount layer directories with hutch's FUSE overlay in a
//! private user+mount namespace and run one command there (debugging and
//! differential testing against the kernel overlayfs).

use crate::error::{EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND};
use crate::overlay::{OverlayConfig, enter_user_namespace, mount_overlay};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_long_help = "\
Creates a user namespace (uid/gid 0 = you) and a private mount namespace,
mounts the overlay at MOUNTPOINT there, runs CMD in the namespace with the
current directory and stdio unchanged, waits for it, unmounts, and exits
with CMD's status (128+N if it died of signal N; 125 if hutch failed,
126/127 if CMD cannot be run). The mount is invisible outside and goes away
with hutch.

Layers use the hutch/overlayfs format: whiteouts are 0:0 character devices
(or .wh.NAME files), opaque directories carry user.overlay.opaque=y (or a
.wh..wh..opq file), true ownership and modes live in the xattr
user.containers.override_stat. The upper and work dirs are created if
missing; the work dir must be on the upper's filesystem.

Example:
  hutch overlay --lower L2:L1 --upper U M -- sh -c 'echo x > M/a; ls -la M'")]
pub struct OverlayArgs {
    /// Read-only layers, top first, separated by ':' (like overlayfs lowerdir)
    #[arg(long, value_name = "DIR[:DIR...]")]
    lower: String,
    /// Writable layer that receives all changes
    #[arg(long, value_name = "DIR")]
    upper: PathBuf,
    /// Scratch dir on the upper's filesystem [default: <upper>.work]
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// Number of FUSE worker threads [default: from the CPU count]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Do not use the kernel's writeback cache (slower small writes; file
    /// times then follow the kernel overlay exactly, also for a truncate to
    /// the current size)
    #[arg(long)]
    no_writeback: bool,
    /// Renaming a directory of a lower layer fails with EXDEV (callers
    /// copy), as on the kernel overlay without redirect_dir (an
    /// unprivileged mount's); by default it is renamed with a redirect
    /// record in the upper dir
    #[arg(long)]
    no_redirect_dir: bool,
    /// Where to mount the overlay (inside the private namespace)
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: PathBuf,
    /// Command to run while the overlay is mounted
    #[arg(last = true, required = true, value_name = "CMD")]
    cmd: Vec<OsString>,
}

/// Ignore a signal in hutch itself (the command, started before, keeps the
/// default disposition): Ctrl-C reaches the command, whose exit we report.
fn ignore_signal(sig: libc::c_int) {
    crate::sys::ignore_signal(sig);
}

pub fn run(a: OverlayArgs) -> Result<i32> {
    let lowers: Vec<PathBuf> = a.lower.split(':').map(PathBuf::from).collect();
    if lowers.iter().any(|l| l.as_os_str().is_empty()) {
        bail!("--lower {:?}: empty layer path", a.lower);
    }
    for l in &lowers {
        if !l.is_dir() {
            bail!("lower layer {} is not a directory", l.display());
        }
    }
    if !a.mountpoint.is_dir() {
        bail!("mount point {} is not a directory", a.mountpoint.display());
    }
    let work = a
        .work
        .unwrap_or_else(|| OverlayConfig::default_work(&a.upper));
    for d in [&a.upper, &work] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut cfg = OverlayConfig::new(lowers, a.upper, work);
    cfg.threads = a.threads;
    cfg.writeback = !a.no_writeback;
    cfg.redirect_dir = !a.no_redirect_dir;
    let Some((prog, args)) = a.cmd.split_first() else {
        bail!("no command given");
    };

    enter_user_namespace()?;
    let mounted = mount_overlay(cfg, &a.mountpoint)?;
    let child = std::process::Command::new(prog).args(args).spawn();
    let code = match child {
        Ok(mut child) => {
            ignore_signal(libc::SIGINT);
            ignore_signal(libc::SIGQUIT);
            let status = child
                .wait()
                .with_context(|| format!("waiting for {}", prog.to_string_lossy()))?;
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(c), _) => c,
                (None, Some(s)) => 128 + s,
                (None, None) => 1,
            }
        }
        Err(e) => {
            eprintln!("hutch: cannot run {}: {e}", prog.to_string_lossy());
            if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_NOT_EXECUTABLE
            }
        }
    };
    mounted.unmount()?;
    Ok(code)
}
