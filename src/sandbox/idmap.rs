//! Writing a user namespace's id maps, as the run planned them
//! (src/run/idmap.rs decides them).
//!
//! The maps of a process must be written from outside its namespace: the
//! launcher forks a helper before `unshare(CLONE_NEWUSER)` and the helper
//! calls [`write_maps`] for the launcher's pid, with the `newuidmap` and
//! `newgidmap` the spec names (a subordinate range) or by writing
//! /proc/PID/{setgroups,uid_map,gid_map} itself (one id each).

use super::spec::{IdMap, IdMaps};
use crate::sys::{self, Forked};
use anyhow::{Context, Result, bail};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;

fn map_args(maps: &[IdMap]) -> Vec<String> {
    maps.iter()
        .flat_map(|m| [m.inside, m.outside, m.count])
        .map(|n| n.to_string())
        .collect()
}

fn map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect()
}

/// Write the maps of process `pid` (which has just entered a new user
/// namespace) from outside that namespace.
pub fn write_maps(pid: i32, maps: &IdMaps) -> Result<()> {
    if let Some(helpers) = &maps.helper {
        // Both at once: each is a setuid exec of a few milliseconds.
        let mut running = Vec::new();
        for (tool, m) in [
            (&helpers.newuidmap, &maps.uid),
            (&helpers.newgidmap, &maps.gid),
        ] {
            let child = Command::new(tool)
                .arg(pid.to_string())
                .args(map_args(m))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .with_context(|| format!("running {}", tool.display()))?;
            running.push((tool, m, child));
        }
        for (tool, m, child) in running {
            let out = child
                .wait_with_output()
                .with_context(|| format!("waiting for {}", tool.display()))?;
            if !out.status.success() {
                bail!(
                    "{} {pid} {} failed: {} (check /etc/subuid and /etc/subgid; `hutch check` tells)",
                    tool.display(),
                    map_args(m).join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        return Ok(());
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    std::fs::write(proc.join("setgroups"), "deny")
        .with_context(|| format!("writing {}/setgroups", proc.display()))?;
    std::fs::write(proc.join("uid_map"), map_text(&maps.uid))
        .with_context(|| format!("writing {}/uid_map", proc.display()))?;
    std::fs::write(proc.join("gid_map"), map_text(&maps.gid))
        .with_context(|| format!("writing {}/gid_map", proc.display()))?;
    Ok(())
}

/// Move the calling process into a new user namespace (and a new mount
/// namespace it owns) with `maps`, written by a helper process forked
/// before the unshare, which stays outside. The caller must be
/// single-threaded, as CLONE_NEWUSER requires.
pub(super) fn unshare_mapped(maps: &IdMaps) -> Result<()> {
    let (go_r, go_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .context("creating a pipe")?;
    let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .context("creating a pipe")?;
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let helper = match sys::fork()
        .map_err(std::io::Error::from)
        .context("forking the id map helper")?
    {
        Forked::Child => {
            drop(go_w);
            let mut b = [0u8; 1];
            let ok = matches!(rustix::io::read(&go_r, &mut b), Ok(1));
            if !ok {
                sys::exit_now(1);
            }
            match write_maps(me, maps) {
                Ok(()) => sys::exit_now(0),
                Err(e) => {
                    sys::write_fd(err_w.as_raw_fd(), format!("{e:#}").as_bytes());
                    sys::exit_now(1)
                }
            }
        }
        Forked::Parent(p) => p,
    };
    drop(go_r);
    drop(err_w);
    let unshared =
        sys::unshare(rustix::thread::UnshareFlags::NEWUSER | rustix::thread::UnshareFlags::NEWNS);
    if let Err(e) = unshared {
        drop(go_w);
        let _ = sys::wait(helper, false);
        return Err(std::io::Error::from(e)).context(
            "creating a user namespace (unprivileged user namespaces may be disabled or \
             restricted by AppArmor; `hutch check` says what to change)",
        );
    }
    let _ = rustix::io::write(&go_w, b"x");
    drop(go_w);
    let status = sys::wait(helper, false)
        .map_err(std::io::Error::from)
        .context("waiting for the id map helper")?
        .map(|(_, s)| s)
        .unwrap_or(0);
    if sys::exit_code(status) != 0 {
        // The helper has exited: every writer of the pipe is gone.
        let mut msg = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = rustix::io::read(&err_r, &mut buf) {
            msg.extend_from_slice(&buf[..n]);
        }
        bail!(
            "writing the user namespace's id maps: {}",
            String::from_utf8_lossy(&msg).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(inside: u32, outside: u32, count: u32) -> IdMap {
        IdMap {
            inside,
            outside,
            count,
        }
    }

    #[test]
    fn helper_arguments() {
        assert_eq!(
            map_args(&[m(0, 1000, 1), m(1, 100000, 65536)]),
            ["0", "1000", "1", "1", "100000", "65536"]
        );
        assert_eq!(map_text(&[m(0, 1000, 1)]), "0 1000 1\n");
    }
}
