//! The on-disk image store, content-addressed and shared by every image.
//!
//! Layout under the store root (`$XDG_DATA_HOME/hutch`, `--root`, `HUTCH_ROOT`):
//!
//! ```text
//! locks/                 store.lock (shared by every command, exclusive for gc),
//!                        refs.lock, layer-X.lock (16 striped locks for unpacking)
//! blobs/sha256/<hex>     manifests, configs and layer blobs exactly as received
//! layers/sha256/<hex>/   one unpacked layer per DiffID: `meta.json` and `root/`
//! refs.json              tags -> manifest digest, with each tag's history
//! blob-sources.json      registry repositories known to hold each blob (push mounts)
//! tmp/                   work in progress; anything here is garbage after a crash,
//!                        except download-<hex>: a pull's half-downloaded blob,
//!                        which the next pull of it continues (prune removes it)
//! containers/<id>/       one container: state, upper dir (see containers.rs)
//! volumes/<name>/       a named volume: volume.json and _data/ (see volumes.rs)
//! notices/<key>          the text of a warning shown once (notices.rs)
//! build-cache/           build step results by cache key, file-hash indexes
//!                        (build_cache.rs)
//! rootfs-index/<hex>     the entry list of the tree with rootfs digest
//!                        sha256:<hex> (rootfs_index.rs)
//! ```
//!
//! Everything becomes visible by an atomic rename, and the ref is written
//! last, so a process killed at any moment leaves at worst unreferenced
//! garbage in `tmp/` or unreferenced blobs, never an image that looks
//! complete but is not.

pub mod blobs;
pub mod build_cache;
pub mod containers;
pub mod gc;
pub mod image;
pub mod layers;
pub mod lock;
pub mod notices;
pub mod pipe;
pub mod refs;
pub mod remove;
pub mod rootfs_index;
pub mod sources;
pub mod space;
pub mod unpack;
pub mod verify;
pub mod volumes;

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub use image::StoredImage;
pub use lock::StoreLock;

/// An opened store. Cheap to clone; holds no open files itself.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The default store location: `$HUTCH_ROOT`, else `$XDG_DATA_HOME/hutch`,
    /// else `~/.local/share/hutch`.
    pub fn default_root() -> Result<PathBuf> {
        if let Some(dir) = std::env::var_os("HUTCH_ROOT").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(dir).join("hutch"));
        }
        let home = std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .context("cannot find the store: HOME is not set; pass --root DIR or set HUTCH_ROOT")?;
        Ok(PathBuf::from(home).join(".local/share/hutch"))
    }

    /// Open (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for sub in [
            "blobs/sha256",
            "layers/sha256",
            "tmp",
            "locks",
            "containers",
        ] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating the store directory {}", dir.display()))?;
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh, unique path in the store's tmp dir (not created).
    pub(crate) fn tmp_path(&self, what: &str) -> PathBuf {
        self.tmp_dir().join(unique_name(what))
    }

    /// Take the store lock shared (normal work) or exclusive (gc).
    pub fn lock_shared(&self) -> Result<StoreLock> {
        StoreLock::shared(&self.lock_path("store"))
    }

    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        StoreLock::exclusive(&self.lock_path("store"))
    }

    /// Lock files live in `locks/` and are never deleted (deleting a lock
    /// file that another process waits on would let two holders in).
    pub(crate) fn lock_path(&self, name: &str) -> PathBuf {
        self.root.join("locks").join(format!("{name}.lock"))
    }
}

/// `what-<pid>-<nanos>-<counter>`: unique within this machine for tmp names.
pub(crate) fn unique_name(what: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{what}-{}-{nanos}-{n}", std::process::id())
}

/// Write `data` to `path` atomically: a temp file beside it, fsync, rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_replace(path, data, true)
}

/// Like [`write_atomic`] but without the fsync: readers see the old or the
/// new content, and after a power loss the file may be lost. For state
/// that is cheap to lose (a container's status), where an fsync per
/// `hutch run` would cost milliseconds.
pub(crate) fn write_replace_nosync(path: &Path, data: &[u8]) -> Result<()> {
    write_replace(path, data, false)
}

fn write_replace(path: &Path, data: &[u8], sync: bool) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .context("write_atomic needs a parent directory")?;
    let tmp = dir.join(format!(".{}", unique_name("tmp")));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}
