//! `hutch diff`: what a container changed, read from its upper dir and
//! compared with its image's layers, reported as Podman does.
//!
//! The rules are those of containers-storage's `OverlayChanges`:
//!
//! * entries come in the upper dir's walk order (depth first, a directory
//!   before its contents, names sorted bytewise);
//! * a whiteout is `D`; an opaque directory whose path the layers have is
//!   `D` too (the directory was removed and made again), its contents
//!   follow as `A` (or `C` where the layers have the same path);
//! * another entry is `C` when the layers have its path, else `A`; a
//!   directory the layers have with the same owner and mode is no change
//!   (it is in the upper dir because something below it changed). Podman
//!   also compares the directories' sizes and modification times; hutch
//!   does not, because on disk those follow the launcher's mount points and
//!   the filesystem rather than what the container did, and every entry
//!   added or removed below a directory reports it anyway (next rule);
//! * a directory the container renamed from a lower layer comes from the
//!   walk as an opaque directory with its whole content (see
//!   [`upper`](super::upper)): at a new path the layers do not have, it is
//!   `A` with everything below it, and its old path (a whiteout) `D`, as
//!   Podman reports a directory move (onto a path the layers have, an
//!   empty directory it replaced, it is `D` and its content `A`, by the
//!   rule of opaque directories);
//! * every parent directory of an `A` or `D` is `C`. (Podman reports
//!   those it did not report by their times just before the entry; hutch
//!   reports them in their place in the walk, so the list stays in order.)

use super::lower::Lowers;
use super::upper::{self, Entry, Kind};
use crate::oci::Digest;
use crate::overlay::format;
use crate::store::Store;
use crate::store::containers::ContainerInfo;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The kind of one change, as `podman diff` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

impl ChangeKind {
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path (absolute, as the container sees it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: Vec<u8>,
}

impl Change {
    pub fn path_lossy(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// The layer dirs (top first) a container's upper dir lies on: its image's
/// unpacked layers, or `/` for the `host` image.
pub fn container_lowers(store: &Store, c: &ContainerInfo) -> Result<Vec<PathBuf>> {
    if c.state.image_id == super::resolve::HOST_IMAGE {
        return Ok(vec![PathBuf::from("/")]);
    }
    let mut out = Vec::with_capacity(c.state.layers.len());
    for l in &c.state.layers {
        let d = Digest::parse(l).with_context(|| {
            format!("container {}: bad layer {l:?} in its record", c.state.name)
        })?;
        if !store.has_layer(&d) {
            anyhow::bail!(
                "container {}: layer {d} of its image {} is missing from the store; \
                 `hutch check --store` tells more",
                c.state.name,
                c.state.image
            );
        }
        out.push(store.layer_root(&d));
    }
    Ok(out)
}

/// The changes of the container `key` (name, ID or ID prefix).
pub fn container_changes(store: &Store, key: &str) -> Result<Vec<Change>> {
    let c = store.find_container(key)?;
    let lowers = container_lowers(store, &c)?;
    let upper = store.container_dir(&c.state.id).join("upper");
    changes(&upper, &lowers)
        .with_context(|| format!("comparing container {} with its image", c.state.name))
}

/// The changes the upper dir `upper` makes to the layers `lowers` (top
/// first).
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let view = Lowers::open(lowers)?;
    // Every entry in walk order; directories that are no change by
    // themselves too (`None`), so the parents of an addition or deletion
    // are reported in their place, before their contents.
    let mut items: Vec<(Vec<u8>, Option<ChangeKind>)> = Vec::new();
    let mut dirs: HashMap<Vec<u8>, usize> = HashMap::new();
    upper::walk(upper, lowers, &mut |e: Entry| {
        let below = below(&view, &e.path).with_context(|| {
            format!(
                "looking up /{} in the image",
                String::from_utf8_lossy(&e.path)
            )
        })?;
        let kind = match (&e.kind, &below) {
            (Kind::Whiteout, _) => Some(ChangeKind::Deleted),
            (Kind::Dir { opaque: true }, Some(_)) => Some(ChangeKind::Deleted),
            (_, None) => Some(ChangeKind::Added),
            (Kind::Dir { .. }, Some(Below::Dir { uid, gid, mode }))
                if (*uid, *gid, *mode) == (e.uid, e.gid, e.mode) =>
            {
                None
            }
            (_, Some(_)) => Some(ChangeKind::Changed),
        };
        if matches!(kind, Some(ChangeKind::Added | ChangeKind::Deleted)) {
            let mut p = e.path.as_slice();
            while let Some(i) = p.iter().rposition(|&b| b == b'/') {
                p = &p[..i];
                if let Some(&at) = dirs.get(p)
                    && items[at].1.is_none()
                {
                    items[at].1 = Some(ChangeKind::Changed);
                }
            }
        }
        if e.is_dir() {
            dirs.insert(e.path.clone(), items.len());
        }
        items.push((e.path, kind));
        Ok(())
    })?;
    Ok(items
        .into_iter()
        .filter_map(|(p, kind)| {
            kind.map(|kind| Change {
                kind,
                path: absolute(&p),
            })
        })
        .collect())
}

fn absolute(rel: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(rel.len() + 1);
    p.push(b'/');
    p.extend_from_slice(rel);
    p
}

/// What the layers have at a path.
#[derive(Debug, PartialEq, Eq)]
enum Below {
    Dir { uid: u32, gid: u32, mode: u32 },
    Other,
}

/// What the layers show at `path` (relative, `/`-separated).
fn below(view: &Lowers, path: &[u8]) -> std::io::Result<Option<Below>> {
    let Some(found) = view.lookup(path)? else {
        return Ok(None);
    };
    let Some(dir) = found.dir else {
        return Ok(Some(Below::Other));
    };
    let (uid, gid, mode) = match format::read_override_stat(&dir)? {
        Some(r) => (r.uid, r.gid, r.mode),
        None => (0, 0, found.st.st_mode & 0o7777),
    };
    Ok(Some(Below::Dir { uid, gid, mode }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::format::{OverrideStat, RecordedType};
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::OwnedFd;

    fn dirfd(p: &Path) -> OwnedFd {
        rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    fn text(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path_lossy()))
            .collect()
    }

    /// Copy the attributes of `from` onto the directory `to` (what copy-up
    /// does).
    fn same_mode(from: &Path, to: &Path) {
        let m = std::fs::metadata(from).unwrap().permissions();
        std::fs::set_permissions(to, m).unwrap();
    }

    #[test]
    fn podman_rules_over_two_layers() {
        let d = tempfile::tempdir().unwrap();
        let (l1, l2, up) = (
            d.path().join("l1"),
            d.path().join("l2"),
            d.path().join("up"),
        );
        // Bottom layer.
        for dir in ["etc", "home/user", "opt/x", "var/log", "gone-dir/deep"] {
            std::fs::create_dir_all(l1.join(dir)).unwrap();
        }
        for f in [
            "etc/group",
            "etc/passwd",
            "home/user/.profile",
            "opt/x/old",
            "var/log/a",
        ] {
            std::fs::write(l1.join(f), b"1").unwrap();
        }
        // Top layer deletes /opt/x/old and makes /var/log opaque.
        std::fs::create_dir_all(l2.join("opt/x")).unwrap();
        format::make_whiteout(dirfd(&l2.join("opt/x")), b"old").unwrap();
        std::fs::create_dir_all(l2.join("var/log")).unwrap();
        format::set_opaque(dirfd(&l2.join("var/log"))).unwrap();
        // The container: changes /etc/group, adds /etc/new and /opt/x/old
        // (deleted below: an add), deletes /home/user/.profile, replaces
        // /gone-dir, adds /var/log/a (hidden below by the opaque dir).
        for dir in ["etc", "home/user", "opt/x", "gone-dir", "var/log"] {
            std::fs::create_dir_all(up.join(dir)).unwrap();
            same_mode(&l1.join(dir), &up.join(dir));
        }
        same_mode(&l1.join("home"), &up.join("home"));
        same_mode(&l1.join("opt"), &up.join("opt"));
        same_mode(&l1.join("var"), &up.join("var"));
        std::fs::write(up.join("etc/group"), b"2").unwrap();
        std::fs::write(up.join("etc/new"), b"2").unwrap();
        std::fs::write(up.join("opt/x/old"), b"2").unwrap();
        format::make_whiteout(dirfd(&up.join("home/user")), b".profile").unwrap();
        format::set_opaque(dirfd(&up.join("gone-dir"))).unwrap();
        std::fs::write(up.join("gone-dir/fresh"), b"2").unwrap();
        std::fs::write(up.join("var/log/a"), b"2").unwrap();
        // A directory whose owner changed is a change by itself.
        let f = dirfd(&up.join("var"));
        format::write_override_stat(
            &f,
            &OverrideStat {
                uid: 5,
                gid: 5,
                mode: 0o755,
                kind: Some(RecordedType::Dir),
            },
        )
        .unwrap();

        let got = changes(&up, &[l2.clone(), l1.clone()]).unwrap();
        assert_eq!(
            text(&got),
            [
                "C /etc",
                "C /etc/group",
                "A /etc/new",
                "D /gone-dir",
                "A /gone-dir/fresh",
                // Every parent of a D or A, as Podman.
                "C /home",
                "C /home/user",
                "D /home/user/.profile",
                "C /opt",
                "C /opt/x",
                "A /opt/x/old",
                "C /var",
                "C /var/log",
                "A /var/log/a",
            ]
        );
        // Controls: the same upper over no layers is all additions (and a
        // whiteout still a deletion); over the bottom layer alone,
        // /opt/x/old and /var/log/a exist: changes.
        let alone = text(&changes(&up, &[]).unwrap());
        assert!(alone.contains(&"A /etc/group".to_string()), "{alone:?}");
        assert!(
            alone.contains(&"D /home/user/.profile".to_string()),
            "{alone:?}"
        );
        let bottom = text(&changes(&up, &[l1]).unwrap());
        assert!(bottom.contains(&"C /opt/x/old".to_string()), "{bottom:?}");
        assert!(bottom.contains(&"C /var/log/a".to_string()), "{bottom:?}");
    }
}
