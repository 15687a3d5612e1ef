//! Where blobs came from: for each blob pulled or pushed, the registry
//! repositories known to hold it (`127.0.0.1:5000/library/busybox`), so a
//! push to another repository of the same registry can ask the registry to
//! mount the blob from there instead of uploading it again.
//!
//! One small `blob-sources.json`, rewritten atomically under its own lock.
//! It is a hint: a wrong entry costs one refused mount and then an upload.

use super::{Store, StoreLock, write_atomic};
use crate::oci::Digest;
use anyhow::Result;
use std::collections::BTreeMap;

/// Repositories remembered per blob (the most recent ones).
const PER_BLOB: usize = 8;

type Sources = BTreeMap<Digest, Vec<String>>;

impl Store {
    fn sources_path(&self) -> std::path::PathBuf {
        self.root().join("blob-sources.json")
    }

    fn read_sources(&self) -> Sources {
        std::fs::read(self.sources_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Repositories (`REGISTRY/REPO`) known to hold `digest`, newest first.
    pub fn blob_sources(&self, digest: &Digest) -> Vec<String> {
        let mut list = self.read_sources().remove(digest).unwrap_or_default();
        list.reverse();
        list
    }

    /// Remember that `repository` (`REGISTRY/REPO`) holds `digests`.
    pub fn add_blob_sources(&self, digests: &[Digest], repository: &str) -> Result<()> {
        let _lock = StoreLock::exclusive(&self.lock_path("blob-sources"))?;
        let mut all = self.read_sources();
        // Forget blobs that are gone (removed images, prune).
        all.retain(|d, _| self.has_blob(d));
        for d in digests {
            let list = all.entry(d.clone()).or_default();
            list.retain(|r| r != repository);
            list.push(repository.to_owned());
            if list.len() > PER_BLOB {
                list.remove(0);
            }
        }
        write_atomic(&self.sources_path(), &serde_json::to_vec(&all)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_remembered_newest_first_and_forgotten_with_their_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.put_blob(b"a").unwrap();
        let b = store.put_blob(b"b").unwrap();
        store
            .add_blob_sources(std::slice::from_ref(&a), "r/one")
            .unwrap();
        store
            .add_blob_sources(&[a.clone(), b.clone()], "r/two")
            .unwrap();
        store
            .add_blob_sources(std::slice::from_ref(&a), "r/one")
            .unwrap();
        assert_eq!(store.blob_sources(&a), vec!["r/one", "r/two"]);
        assert_eq!(store.blob_sources(&b), vec!["r/two"]);
        std::fs::remove_file(store.blob_path(&b)).unwrap();
        store
            .add_blob_sources(std::slice::from_ref(&a), "r/three")
            .unwrap();
        assert!(store.blob_sources(&b).is_empty());
        for i in 0..20 {
            store
                .add_blob_sources(std::slice::from_ref(&a), &format!("r/{i}"))
                .unwrap();
        }
        assert_eq!(store.blob_sources(&a).len(), PER_BLOB);
        assert_eq!(store.blob_sources(&a)[0], "r/19");
    }
}
