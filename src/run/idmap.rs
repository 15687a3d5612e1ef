//! User namespace id maps for a run: which container ids are which host
//! ids (the launcher writes them, see src/sandbox/idmap.rs).
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

use crate::host::{Helper, helper_dirs, read_subids};
use crate::sandbox::spec::{IdMap, IdMaps, MapHelpers};
use std::path::{Path, PathBuf};

/// How many subordinate ids a container uses at most (as Podman).
const RANGE: u64 = 65536;

/// A subordinate id range of the user: host ids `start..start+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SubRange {
    start: u32,
    count: u32,
}

/// The first usable range of `user`/`uid` in a subid file, at most
/// [`RANGE`] ids.
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

/// Both `newuidmap` and `newgidmap`, when both are installed with the
/// privileges they need: their paths, as the launcher will run them.
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
pub(crate) fn plan(keep_id: bool) -> IdMaps {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let name = crate::host::user_name(uid);
    let single = std::env::var("HUTCH_IDMAP").is_ok_and(|v| v == "single");
    let with_range = privileged_helpers()
        .filter(|_| !single)
        .and_then(|helpers| {
            Some((
                helpers,
                sub_range(Path::new("/etc/subuid"), name.as_deref(), uid)?,
                sub_range(Path::new("/etc/subgid"), name.as_deref(), uid)?,
            ))
        });
    let (tu, tg) = if keep_id { (uid, gid) } else { (0, 0) };
    IdMaps {
        uid: maps_for(uid, tu, with_range.as_ref().map(|r| r.1)),
        gid: maps_for(gid, tg, with_range.as_ref().map(|r| r.2)),
        helper: with_range.map(|((newuidmap, newgidmap), _, _)| MapHelpers {
            newuidmap,
            newgidmap,
        }),
    }
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
            helper: None,
        };
        assert!(maps.maps_uid(0) && maps.maps_uid(999) && maps.maps_uid(1000));
        assert!(maps.maps_uid(65536) && !maps.maps_uid(65537));
    }
}
