//! The entry lists of rootfs digests: `rootfs-index/<hex>` holds the
//! entries (paths and what the digest covers of each) of the tree whose
//! rootfs digest is `sha256:<hex>`, so that `hutch verify` can name the
//! first path where a tree differs from the one a lock records.
//!
//! The store keeps bytes only: `image::rootfs_digest` encodes and decodes
//! them (and checks them: a file that does not decode is absent). A rootfs
//! digest determines its entries, so a file is never out of date; gc
//! leaves these files (they are small, and a lock made here may need
//! one), and removing any of them, or the whole directory, is always safe.

use super::{Store, write_atomic};
use crate::oci::Digest;
use anyhow::{Context, Result};
use std::io::Read;
use std::path::PathBuf;

/// Index files larger than this are not read (a damaged or foreign file).
const MAX_INDEX_BYTES: u64 = 256 << 20;

impl Store {
    fn rootfs_index_path(&self, rootfs: &Digest) -> PathBuf {
        self.root.join("rootfs-index").join(rootfs.hex())
    }

    /// Keep `bytes` as the index of `rootfs`, replacing any (atomically).
    pub(crate) fn write_rootfs_index(&self, rootfs: &Digest, bytes: &[u8]) -> Result<()> {
        let path = self.rootfs_index_path(rootfs);
        let dir = path.parent().context("the index path has a parent")?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the store directory {}", dir.display()))?;
        write_atomic(&path, bytes)
    }

    /// The bytes kept for `rootfs`; `None` when there are none or they
    /// cannot be read (an unreadable file is as good as none).
    pub(crate) fn read_rootfs_index(&self, rootfs: &Digest) -> Option<Vec<u8>> {
        let path = self.rootfs_index_path(rootfs);
        let read = || -> std::io::Result<Vec<u8>> {
            let f = std::fs::File::open(&path)?;
            let mut bytes = Vec::new();
            f.take(MAX_INDEX_BYTES + 1).read_to_end(&mut bytes)?;
            Ok(bytes)
        };
        match read() {
            Ok(b) if b.len() as u64 <= MAX_INDEX_BYTES => Some(b),
            Ok(_) => {
                tracing::debug!("{}: larger than an index can be", path.display());
                None
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::debug!("reading {}: {e}", path.display());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_index_bytes_are_kept_by_digest() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path().join("s")).unwrap();
        let (one, two) = (Digest::of(b"one"), Digest::of(b"two"));
        assert_eq!(store.read_rootfs_index(&one), None);
        store.write_rootfs_index(&one, b"first").unwrap();
        store.write_rootfs_index(&one, b"again").unwrap();
        assert_eq!(
            store.read_rootfs_index(&one).as_deref(),
            Some(&b"again"[..])
        );
        assert_eq!(store.read_rootfs_index(&two), None, "another digest");
        // A directory where the file should be is absent, not an error.
        std::fs::create_dir_all(store.rootfs_index_path(&two)).unwrap();
        assert_eq!(store.read_rootfs_index(&two), None);
        // Only the file itself is left (no temporary files).
        let names: Vec<_> = std::fs::read_dir(d.path().join("s/rootfs-index"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
