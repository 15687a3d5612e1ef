//! `hutch export`: a container's root filesystem (its image's layers
//! with its changes, merged; not its volumes or other mounts) as one
//! plain tar, as `podman export` writes it: names relative to the root,
//! owners as the container sees them (0 for root's files).
//!
//! The tree is read by a child of hutch in the container's namespaces
//! (sandbox/visit.rs): a running container's root mount alone (a
//! detached copy of it, without what is mounted on it), or a stopped
//! container's overlay mounted for the purpose. With `-o FILE` the tar
//! goes to a new file beside FILE that replaces it only once complete.

use super::container_tree::reach;
use super::tree_tar;
use crate::sandbox::visit::{View, visit};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written beside its final path; removed unless
/// [`Pending::commit`]ted.
struct Pending {
    tmp: PathBuf,
    done: bool,
}

impl Pending {
    fn create(dest: &Path) -> Result<(Pending, std::fs::File)> {
        let Some(name) = dest.file_name() else {
            bail!("-o {}: give a file name", dest.display());
        };
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut suffix = [0u8; 6];
        rustix::rand::getrandom(&mut suffix, rustix::rand::GetRandomFlags::empty())
            .map_err(std::io::Error::from)
            .context("reading random bytes")?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", hex::encode(suffix)));
        let tmp = dir.join(tmp_name);
        let file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        Ok((Pending { tmp, done: false }, file))
    }

    fn commit(mut self, dest: &Path) -> Result<()> {
        match std::fs::rename(&self.tmp, dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
                bail!("-o {}: it is a directory; give a file name", dest.display())
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("moving {} to {}", self.tmp.display(), dest.display())
                });
            }
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Write the tar of container `key` to `output`, or stdout.
pub(crate) fn export(store: &Store, key: &str, output: Option<&Path>) -> Result<()> {
    if output.is_none() && rustix::termios::isatty(rustix::stdio::stdout()) {
        bail!("refusing to write a tar archive to a terminal: use -o FILE or redirect stdout");
    }
    let reached = reach(store, key)?;
    if reached.spec.rootfs.host {
        bail!(
            "container {} runs on the host's own root filesystem (the `host` image): it has no \
             root filesystem of its own to export",
            reached.name
        );
    }
    let (pending, file) = match output {
        Some(path) => {
            let (p, f) = Pending::create(path)?;
            (Some(p), f)
        }
        None => {
            let fd = rustix::io::fcntl_dupfd_cloexec(rustix::stdio::stdout(), 3)
                .map_err(std::io::Error::from)
                .context("duplicating stdout")?;
            (None, std::fs::File::from(fd))
        }
    };
    let name = reached.name.clone();
    let sync = output.is_some();
    visit(
        reached.tree(),
        View::RootOnly,
        |root| {
            let mut tar = tar::Builder::new(BufWriter::with_capacity(256 * 1024, file));
            tree_tar::write_root(&mut tar, root)
                .with_context(|| format!("exporting container {name}"))?;
            tar.into_inner()
                .and_then(|mut b| {
                    b.flush()?;
                    b.into_inner().map_err(|e| e.into_error())
                })
                // A file is complete on disk before it replaces anything.
                .and_then(|f| if sync { f.sync_all() } else { Ok(()) })
                .with_context(|| format!("writing the tar of container {name}"))?;
            Ok(())
        },
        || Ok(()),
    )?;
    if let (Some(p), Some(path)) = (pending, output) {
        p.commit(path)?;
    }
    Ok(())
}
