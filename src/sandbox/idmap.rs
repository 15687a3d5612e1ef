//! User namespace id maps: which container ids are which host ids, and
//! writing them.
//!
//! With `newuidmap`/`newgidmap` (setuid or file capabilities, from the
//! `uidmap` package) and a subordinate id range in /etc/subuid and
//! /etc/subgid, container root is the user and ids 1..65536 come from the
//! range, as in rootless Podman. Without them, container root is the user
//! and no other id exists: the overlay still presents the image's owners
//! it can map, and unmapped ones show as `nobody`.
//!
//! With `keep_id` the user's own uid/gid is the same number inside (as with
//! Podman's `--userns=keep-id`), and root inside comes from the range.
//!
//! The maps of a process must be written from outside its namespace: the
//! launcher forks a helper before `unshare(CLONE_NEWUSER)` and the helper
//! calls [`write_maps`] for the launcher's pid.

use super::spec::{IdMap, IdMaps};
use crate::host::{Helper, helper_dirs, read_subids};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How many subordinate ids a container uses at most (as Podman).
const RANGE: u64 = 65536;

/// A subordinate id range of the user: host ids `start..start+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRange {
    pub start: u32,
    pub count: u32,
}

/// The first usable range of `user`/`uid` in a subid file.
fn sub_range(file: &Path, user: Option<&str>, uid: u32) -> Option<SubRange> {
    let entries = read_subids(file)?;
    entries
        .iter()
        .find(|e| Some(e.owner.as_str()) == user || e.owner == uid.to_string())
        .and_then(|e| {
            let start = u32::try_from(e.start).ok()?;
            let count = u32::try_from(e.count.min(RANGE)).ok()?;
            (count > 0).then_some(SubRange { start, count })
        })
}

/// Both helpers, if installed with the privileges they need.
fn privileged_helpers() -> Option<(PathBuf, PathBuf)> {
    let dirs = helper_dirs();
    let u = Helper::find("newuidmap", &dirs).filter(Helper::privileged)?;
    let g = Helper::find("newgidmap", &dirs).filter(Helper::privileged)?;
    Some((u.path, g.path))
}

/// The maps of one id kind: container `target` is host `own`; the rest
/// (when there is a range) comes from `range`.
fn maps_for(own: u32, target: u32, range: Option<SubRange>) -> Vec<IdMap> {
    let Some(r) = range else {
        return vec![IdMap {
            inside: target,
            outside: own,
            count: 1,
        }];
    };
    if target == 0 {
        return vec![
            IdMap {
                inside: 0,
                outside: own,
                count: 1,
            },
            IdMap {
                inside: 1,
                outside: r.start,
                count: r.count,
            },
        ];
    }
    // keep-id: 0..target from the range, target = own, the rest after it.
    let mut maps = Vec::new();
    let below = r.count.min(target);
    maps.push(IdMap {
        inside: 0,
        outside: r.start,
        count: below,
    });
    maps.push(IdMap {
        inside: target,
        outside: own,
        count: 1,
    });
    if r.count > target {
        maps.push(IdMap {
            inside: target + 1,
            outside: r.start + target,
            count: r.count - target,
        });
    }
    maps
}

/// The maps for a run. `keep_id`: the user's ids are the same numbers
/// inside; otherwise the user is root inside. `HUTCH_IDMAP=single` uses a
/// one-id map even when a subordinate range exists (to see how hutch
/// behaves for users without one, and for tests).
pub fn plan(keep_id: bool) -> IdMaps {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let name = crate::host::user_name(uid);
    let single = std::env::var("HUTCH_IDMAP").is_ok_and(|v| v == "single");
    let ranges = privileged_helpers().filter(|_| !single).and_then(|_| {
        Some((
            sub_range(Path::new("/etc/subuid"), name.as_deref(), uid)?,
            sub_range(Path::new("/etc/subgid"), name.as_deref(), uid)?,
        ))
    });
    let (tu, tg) = if keep_id { (uid, gid) } else { (0, 0) };
    IdMaps {
        uid: maps_for(uid, tu, ranges.map(|r| r.0)),
        gid: maps_for(gid, tg, ranges.map(|r| r.1)),
        helper: ranges.is_some(),
    }
}

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
    if maps.helper {
        let (nu, ng) = privileged_helpers()
            .context("newuidmap/newgidmap are gone or lost their privileges")?;
        // Both at once: each is a setuid exec of a few milliseconds.
        let mut running = Vec::new();
        for (tool, m) in [(&nu, &maps.uid), (&ng, &maps.gid)] {
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
    fn root_maps() {
        assert_eq!(maps_for(1000, 0, None), vec![m(0, 1000, 1)]);
        let r = SubRange {
            start: 100000,
            count: 65536,
        };
        assert_eq!(
            maps_for(1000, 0, Some(r)),
            vec![m(0, 1000, 1), m(1, 100000, 65536)]
        );
    }

    #[test]
    fn keep_id_maps() {
        assert_eq!(maps_for(1000, 1000, None), vec![m(1000, 1000, 1)]);
        let r = SubRange {
            start: 100000,
            count: 65536,
        };
        assert_eq!(
            maps_for(1000, 1000, Some(r)),
            vec![m(0, 100000, 1000), m(1000, 1000, 1), m(1001, 101000, 64536)]
        );
        let maps = IdMaps {
            uid: maps_for(1000, 1000, Some(r)),
            gid: vec![],
            helper: true,
        };
        assert!(maps.maps_uid(0) && maps.maps_uid(999) && maps.maps_uid(1000));
        assert!(maps.maps_uid(65536) && !maps.maps_uid(65537));
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
