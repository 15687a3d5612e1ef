//! A built stage's files as one directory tree, for `COPY --from=STAGE`
//! and `RUN --mount=type=bind,from=STAGE`: the part of its layers under
//! the paths asked for, merged bottom to top with the overlay's rules
//! (whiteouts delete, opaque directories hide what is below) into a
//! directory of the store's `tmp/`.
//!
//! Files are hard links to the layers' own files (nothing is copied, and
//! nothing here writes to a layer): the merged tree is only read, by the
//! context walker, as a build context. Directories are made anew, with
//! their layer's owner record (`user.containers.override_stat`) copied.
//! What the walker reports of the entries is what the layer stores on
//! disk (the owner's read/write bits added, no set-id bits, the user's
//! own uid); [`true_owners`] puts back the true owners and modes from the
//! records, so `COPY --from` keeps them as Docker does.

use crate::overlay::format;
use anyhow::{Context, Result, bail};
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

/// `rel` (a path inside a tree, `/` or relative) below `root`, refusing
/// `..`.
pub(crate) fn inside(root: &Path, rel: &str) -> Result<PathBuf> {
    let mut out = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => bail!("{rel:?}: `..` may not leave the tree"),
            Component::Prefix(_) => bail!("{rel:?}: not a path"),
        }
    }
    Ok(out)
}

/// `rel` below `root` ([`inside`]) where no component, the last one
/// included, is a symlink: a bind mount's source in a stage's tree or the
/// context, which must not lead out of it.
pub(crate) fn inside_no_symlinks(root: &Path, rel: &str) -> Result<PathBuf> {
    let path = inside(root, rel)?;
    let mut at = root.to_path_buf();
    for c in path
        .strip_prefix(root)
        .unwrap_or(Path::new(""))
        .components()
    {
        at.push(c);
        match at.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => bail!(
                "{rel:?}: {} is a symlink; hutch does not follow it out of the tree",
                at.display()
            ),
            Ok(_) => {}
            Err(e) => return Err(e).with_context(|| format!("{rel:?}: {}", at.display())),
        }
    }
    Ok(path)
}

/// Merge `prefixes` (paths inside the image; `/` for all) of the layers
/// `lowers` (top first, as the overlay takes them) into `dest`.
///
/// A prefix is walked one component at a time with `lstat`, in the
/// layers and in `dest`: a symlink on the way is never followed (a
/// hostile image's `out -> /` must not make `/out/etc/shadow` the host's
/// file). In a layer, a symlink or file where the path needs a directory
/// replaces what lower layers had there, and the prefix has nothing in it.
pub(crate) fn merge(lowers: &[PathBuf], prefixes: &[String], dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    for prefix in prefixes {
        let rel = inside(Path::new(""), prefix)?;
        for layer in lowers.iter().rev() {
            let (hides, present) = prefix_in_layer(layer, &rel);
            if !real_dirs_above(dest, &rel) {
                bail!(
                    "{prefix}: a symlink in the stage's tree is on the way; hutch does not \
                     follow symlinks of an image when copying from it: name the path the \
                     symlink points to"
                );
            }
            // An ancestor (or the path itself) deleted, replaced or made
            // opaque in this layer hides what lower layers had there.
            if hides {
                let _ = remove_any(&dest.join(&rel));
            }
            if present {
                merge_entry(&layer.join(&rel), &dest.join(&rel), dest)?;
            }
        }
    }
    Ok(())
}

/// Whether every ancestor of `rel` below `root` is a real directory or
/// missing (never a symlink or a file).
fn real_dirs_above(root: &Path, rel: &Path) -> bool {
    let mut at = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for c in parts.iter().take(parts.len().saturating_sub(1)) {
        at.push(c);
        match at.symlink_metadata() {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return false,
            Err(_) => return true,
        }
    }
    true
}

/// What `layer` does to `rel`: whether it hides what lower layers have
/// there (a whiteout, an opaque directory, or a non-directory where an
/// ancestor should be), and whether it has the path itself, reached
/// through real directories only.
fn prefix_in_layer(layer: &Path, rel: &Path) -> (bool, bool) {
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut hides = false;
    let mut at = layer.to_path_buf();
    for (i, name) in parts.iter().enumerate() {
        let mut wh = format::WHITEOUT_PREFIX.to_vec();
        wh.extend_from_slice(name.as_encoded_bytes());
        if at
            .join(std::ffi::OsStr::from_bytes(&wh))
            .symlink_metadata()
            .is_ok()
        {
            return (true, false);
        }
        at.push(name);
        let last = i + 1 == parts.len();
        match at.symlink_metadata() {
            Err(_) => return (hides, false),
            Ok(m) if m.file_type().is_char_device() && is_whiteout(&at) => return (true, false),
            Ok(m) if m.is_dir() => {
                if is_opaque(&at) {
                    hides = true;
                }
            }
            // A file or symlink in place of a directory on the way.
            Ok(_) if !last => return (true, false),
            Ok(_) => {}
        }
    }
    (hides, true)
}

use std::os::unix::ffi::OsStrExt;

fn is_whiteout(path: &Path) -> bool {
    rustix::fs::lstat(path).is_ok_and(|st| format::is_whiteout_stat(&st))
}

fn is_opaque(dir: &Path) -> bool {
    let Ok(fd) = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    format::is_opaque(&fd).unwrap_or(false)
        || dir
            .join(std::ffi::OsStr::from_bytes(format::OPAQUE_MARKER))
            .exists()
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
}

/// Put one layer's `src` at `dst` over what lower layers put there.
fn merge_entry(src: &Path, dst: &Path, dest_root: &Path) -> Result<()> {
    let m = src
        .symlink_metadata()
        .with_context(|| format!("reading {}", src.display()))?;
    if let Some(parent) = dst.parent()
        && parent.starts_with(dest_root)
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    if m.file_type().is_char_device() && is_whiteout(src) {
        let _ = remove_any(dst);
        return Ok(());
    }
    if m.is_dir() {
        let existing = dst.symlink_metadata().ok();
        if is_opaque(src) || existing.as_ref().is_some_and(|e| !e.is_dir()) {
            let _ = remove_any(dst);
        }
        if !dst.is_dir() {
            std::fs::create_dir(dst).with_context(|| format!("creating {}", dst.display()))?;
        }
        std::fs::set_permissions(dst, m.permissions())
            .with_context(|| format!("setting the mode of {}", dst.display()))?;
        copy_owner_record(src, dst);
        let mut names: Vec<_> = std::fs::read_dir(src)
            .with_context(|| format!("listing {}", src.display()))?
            .collect::<std::io::Result<Vec<_>>>()
            .with_context(|| format!("listing {}", src.display()))?
            .into_iter()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let bytes = name.as_bytes();
            if format::is_opaque_marker(bytes) {
                continue;
            }
            if let Some(target) = format::whiteout_target(bytes) {
                let _ = remove_any(&dst.join(std::ffi::OsStr::from_bytes(target)));
                continue;
            }
            merge_entry(&src.join(&name), &dst.join(&name), dest_root)?;
        }
        return Ok(());
    }
    let _ = remove_any(dst);
    if m.file_type().is_symlink() {
        let target =
            std::fs::read_link(src).with_context(|| format!("reading {}", src.display()))?;
        std::os::unix::fs::symlink(target, dst)
            .with_context(|| format!("creating {}", dst.display()))?;
    } else if m.is_file() {
        std::fs::hard_link(src, dst)
            .or_else(|_| std::fs::copy(src, dst).map(|_| ()))
            .with_context(|| format!("linking {} to {}", src.display(), dst.display()))?;
    }
    // FIFOs, sockets and devices of a stage are not copied.
    Ok(())
}

fn open_nofollow(path: &Path) -> Option<std::os::fd::OwnedFd> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

/// The layer directory's owner record onto the merged one (best effort:
/// without it the directory is 0:0 with its on-disk mode).
fn copy_owner_record(src: &Path, dst: &Path) {
    if let (Some(s), Some(d)) = (open_nofollow(src), open_nofollow(dst))
        && let Ok(Some(record)) = format::read_override_stat(&s)
    {
        let _ = format::write_override_stat(&d, &record);
    }
}

/// Set each selected entry's uid, gid and mode to what its owner record
/// in the merged tree at `root` says (0:0 and the on-disk mode without a
/// record). Symlinks have no record and stay 0:0.
pub(crate) fn true_owners(root: &Path, selections: &mut [super::context::walk::Selection]) {
    use super::context::walk::Kind;
    for sel in selections {
        for e in &mut sel.entries {
            e.uid = 0;
            e.gid = 0;
            if matches!(e.kind, Kind::Symlink(_)) {
                continue;
            }
            if let Some(fd) = open_nofollow(&root.join(&e.path))
                && let Ok(Some(record)) = format::read_override_stat(&fd)
            {
                e.uid = record.uid;
                e.gid = record.gid;
                e.mode = record.mode & 0o7777;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_of_a_layer_are_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let (l1, l2, out) = (
            d.path().join("l1"),
            d.path().join("l2"),
            d.path().join("out"),
        );
        // A host directory a hostile image points at.
        let host = d.path().join("host");
        std::fs::create_dir_all(host.join("etc")).unwrap();
        std::fs::write(host.join("etc/secret"), "host secret").unwrap();
        std::fs::create_dir_all(&l1).unwrap();
        std::os::unix::fs::symlink(&host, l1.join("out")).unwrap();
        merge(std::slice::from_ref(&l1), &["/out/etc/secret".into()], &out).unwrap();
        assert!(
            !out.join("out/etc/secret").exists(),
            "followed the layer's symlink"
        );
        // A lower layer's symlink in the merged tree, an upper layer's
        // files below the same path: refused, nothing written outside.
        std::fs::create_dir_all(l2.join("out/etc")).unwrap();
        std::fs::write(l2.join("out/etc/new"), "x").unwrap();
        let out2 = d.path().join("out2");
        merge(std::slice::from_ref(&l1), &["/out".into()], &out2).unwrap();
        assert!(
            out2.join("out")
                .symlink_metadata()
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let e = merge(std::slice::from_ref(&l2), &["/out/etc/new".into()], &out2).unwrap_err();
        assert!(format!("{e:#}").contains("symlink"), "{e:#}");
        assert!(
            !host.join("etc/new").exists(),
            "wrote through the merged symlink"
        );
        // Control: the upper layer alone merges.
        let out3 = d.path().join("out3");
        merge(&[l2, l1], &["/out/etc/new".into()], &out3).unwrap();
        assert_eq!(
            std::fs::read_to_string(out3.join("out/etc/new")).unwrap(),
            "x"
        );
    }

    #[test]
    fn upper_layers_win_and_whiteouts_delete() {
        let d = tempfile::tempdir().unwrap();
        let (l1, l2, out) = (
            d.path().join("l1"),
            d.path().join("l2"),
            d.path().join("out"),
        );
        std::fs::create_dir_all(l1.join("app/old")).unwrap();
        std::fs::write(l1.join("app/a"), "one").unwrap();
        std::fs::write(l1.join("app/gone"), "x").unwrap();
        std::fs::write(l1.join("app/old/f"), "x").unwrap();
        std::fs::write(l1.join("other"), "x").unwrap();
        std::fs::create_dir_all(l2.join("app")).unwrap();
        std::fs::write(l2.join("app/a"), "two").unwrap();
        std::fs::write(l2.join("app/.wh.gone"), "").unwrap();
        std::fs::create_dir_all(l2.join("app/old")).unwrap();
        std::fs::write(l2.join("app/old/.wh..wh..opq"), "").unwrap();
        std::fs::write(l2.join("app/old/g"), "y").unwrap();
        merge(&[l2.clone(), l1.clone()], &["/app".into()], &out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("app/a")).unwrap(), "two");
        assert!(!out.join("app/gone").exists());
        assert!(!out.join("app/old/f").exists(), "opaque dir hides");
        assert!(out.join("app/old/g").exists());
        assert!(!out.join("other").exists(), "only the prefix");
        // The true owners come back from the records.
        let f = std::fs::File::open(l2.join("app/a")).unwrap();
        let rec = format::OverrideStat {
            uid: 33,
            gid: 44,
            mode: 0o4755,
            kind: None,
        };
        if format::write_override_stat(&f, &rec).is_ok() {
            let out2 = d.path().join("out2");
            merge(&[l2.clone(), l1.clone()], &["/app/a".into()], &out2).unwrap();
            let ctx = crate::build::context::walk::Context::open(&out2).unwrap();
            let none = crate::build::context::ignore::Ignore::parse("", None).unwrap();
            let mut sel = vec![ctx.select("app/a", &none).unwrap()];
            let me = rustix::process::getuid().as_raw();
            assert_eq!(
                (sel[0].entries[0].uid, sel[0].entries[0].mode),
                (me, 0o644),
                "control: the on-disk owner"
            );
            true_owners(&out2, &mut sel);
            let e = &sel[0].entries[0];
            assert_eq!((e.uid, e.gid, e.mode), (33, 44, 0o4755));
        } else {
            eprintln!("no user xattrs on this file system: the owner part is not tested");
        }
        // The layers themselves are untouched.
        assert_eq!(std::fs::read_to_string(l1.join("app/a")).unwrap(), "one");
        assert!(inside(&out, "../x").is_err());
        std::os::unix::fs::symlink("/etc", out.join("app/link")).unwrap();
        assert!(inside_no_symlinks(&out, "/app/link").is_err());
        assert!(inside_no_symlinks(&out, "/app/link/passwd").is_err());
        assert_eq!(
            inside_no_symlinks(&out, "app/a").unwrap(),
            out.join("app/a")
        );
    }
}
