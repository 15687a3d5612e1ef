//! The build cache: what each build step produced, by its cache key
//! (`build::cache_key`), so a later build with the same step reuses it.
//!
//! ```text
//! build-cache/entries/<key hex>.json   one step: the layer's DiffID and
//!                                      blob (null for a step that adds no
//!                                      layer), the image config after it,
//!                                      when it ran
//! build-cache/files/<hex>.json         a build context's file-hash index
//!                                      (`FileHasher`), <hex> = sha256 of
//!                                      the context's path
//! ```
//!
//! Every file is written atomically (temp file beside it, fsync, rename),
//! so two builds recording the same step leave one whole entry. The cache
//! is only a cache: an entry that cannot be read or parsed, or that names
//! another key, or whose layer is no longer in the store, is a miss (with a
//! warning when it is damaged), never an error; the step then runs again
//! and its entry is rewritten. A file index that cannot be read is empty.
//! Two builds of the same context saving their indexes: the last one
//! wins, which costs the other's next build some re-reading, nothing more.
//!
//! The layers and blobs entries name live in `layers/` and `blobs/` like
//! any other; gc keeps them through [`Store::build_cache_refs`], and
//! `hutch prune --build-cache` empties the cache with
//! [`Store::remove_build_cache`].

use super::remove::remove_tree;
use super::{Store, write_atomic};
use crate::build::cache_key::FileIndex;
use crate::oci::Digest;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The version of the entry format; entries of another version are misses.
const ENTRY_VERSION: u32 = 2;

/// What one step produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedStep {
    /// The DiffID of the layer the step added; `None` for a step that adds
    /// no layer (ENV, WORKDIR, ...: only the config changes).
    pub diff_id: Option<Digest>,
    /// That layer's blob, as the image's manifest lists it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<LayerBlob>,
    /// The image config after the step.
    pub config: serde_json::Value,
    /// When the step ran (RFC 3339, UTC).
    pub created: String,
}

/// A layer blob as a manifest describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    pub digest: Digest,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// An entry file: the step, the key it answers and the format version.
#[derive(Serialize, Deserialize)]
struct EntryFile {
    version: u32,
    key: Digest,
    #[serde(flatten)]
    step: CachedStep,
}

impl Store {
    /// `build-cache/` in the store.
    pub(crate) fn build_cache_dir(&self) -> PathBuf {
        self.root().join("build-cache")
    }

    fn build_cache_entry(&self, key: &Digest) -> PathBuf {
        self.build_cache_dir()
            .join("entries")
            .join(format!("{}.json", key.hex()))
    }

    fn build_cache_file_index(&self, context: &Path) -> PathBuf {
        let id = Digest::of(context.as_os_str().as_bytes());
        self.build_cache_dir()
            .join("files")
            .join(format!("{}.json", id.hex()))
    }

    /// What the step with `key` produced, if the cache has it whole and its
    /// layer is still in the store.
    pub fn build_cache_lookup(&self, key: &Digest) -> Option<CachedStep> {
        let path = self.build_cache_entry(key);
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(
                    "reading the build cache entry {}: {e}; the step runs again \
                     (`hutch prune --build-cache` empties the cache)",
                    path.display()
                );
                return None;
            }
        };
        let entry = match serde_json::from_slice::<EntryFile>(&data) {
            Ok(entry) if entry.version == ENTRY_VERSION && entry.key == *key => entry,
            Ok(entry) if entry.version != ENTRY_VERSION => {
                tracing::debug!(
                    "{}: build cache entry of version {}, not {ENTRY_VERSION}",
                    path.display(),
                    entry.version
                );
                return None;
            }
            Ok(entry) => {
                tracing::warn!(
                    "the build cache entry {} is for the key {}: the step runs again and \
                     its entry is rewritten",
                    path.display(),
                    entry.key
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(
                    "the build cache entry {} is damaged ({e}): the step runs again and \
                     its entry is rewritten",
                    path.display()
                );
                return None;
            }
        };
        if let Some(diff_id) = &entry.step.diff_id
            && !self.has_layer(diff_id)
        {
            tracing::debug!("build cache {key}: layer {diff_id} is gone from the store");
            return None;
        }
        if let Some(blob) = &entry.step.blob
            && !self.has_blob(&blob.digest)
        {
            tracing::debug!(
                "build cache {key}: blob {} is gone from the store",
                blob.digest
            );
            return None;
        }
        Some(entry.step)
    }

    /// Remember what the step with `key` produced (replacing any entry).
    pub fn build_cache_record(&self, key: &Digest, step: &CachedStep) -> Result<()> {
        let path = self.build_cache_entry(key);
        let dir = path.parent().context("a build cache entry has a parent")?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the build cache directory {}", dir.display()))?;
        let json = serde_json::to_vec_pretty(&EntryFile {
            version: ENTRY_VERSION,
            key: key.clone(),
            step: step.clone(),
        })?;
        write_atomic(&path, &json).context("recording a build step in the build cache")
    }

    /// The blobs and the DiffIDs of the layers the cache's readable
    /// entries name (gc keeps them).
    pub fn build_cache_refs(&self) -> Result<(HashSet<Digest>, HashSet<Digest>)> {
        let dir = self.build_cache_dir().join("entries");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((HashSet::new(), HashSet::new()));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("listing the build cache {}", dir.display()));
            }
        };
        let (mut blobs, mut layers) = (HashSet::new(), HashSet::new());
        for entry in entries {
            let entry =
                entry.with_context(|| format!("listing the build cache {}", dir.display()))?;
            let Some(key) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|hex| Digest::from_hex(hex).ok())
            else {
                continue;
            };
            let parsed = std::fs::read(entry.path())
                .ok()
                .and_then(|data| serde_json::from_slice::<EntryFile>(&data).ok());
            if let Some(EntryFile {
                version: ENTRY_VERSION,
                key: named,
                step: CachedStep { diff_id, blob, .. },
            }) = parsed
                && named == key
            {
                layers.extend(diff_id);
                blobs.extend(blob.map(|b| b.digest));
            }
        }
        Ok((blobs, layers))
    }

    /// Empty the build cache (entries and file indexes); the number of
    /// entries it held. The layers stay until gc finds them unreferenced.
    pub fn remove_build_cache(&self) -> Result<usize> {
        let dir = self.build_cache_dir();
        let count = std::fs::read_dir(dir.join("entries")).map_or(0, |e| e.count());
        // Moved aside first, so a build never sees a half-removed cache.
        let aside = self.tmp_path("build-cache");
        match std::fs::rename(&dir, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "moving the build cache {} aside to remove it",
                        dir.display()
                    )
                });
            }
        }
        remove_tree(&aside).with_context(|| {
            format!(
                "removing the build cache (moved to {}; `hutch prune` removes it)",
                aside.display()
            )
        })?;
        Ok(count)
    }

    /// The file-hash index kept for the build context at `context` (an
    /// absolute path); empty if there is none or it cannot be read.
    pub fn build_cache_load_files(&self, context: &Path) -> FileIndex {
        let path = self.build_cache_file_index(context);
        match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data).unwrap_or_else(|e| {
                tracing::warn!(
                    "the build cache file index {} is damaged ({e}): the context's files \
                     are read again",
                    path.display()
                );
                FileIndex::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileIndex::default(),
            Err(e) => {
                tracing::warn!(
                    "reading the build cache file index {}: {e}; the context's files are \
                     read again",
                    path.display()
                );
                FileIndex::default()
            }
        }
    }

    /// Keep `index` for the build context at `context`.
    pub fn build_cache_save_files(&self, context: &Path, index: &FileIndex) -> Result<()> {
        let path = self.build_cache_file_index(context);
        let dir = path.parent().context("a file index has a parent")?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the build cache directory {}", dir.display()))?;
        let json = serde_json::to_vec(index)?;
        write_atomic(&path, &json).context("saving the build context's file-hash index")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::cache_key::{FileStamp, Indexed};

    fn digest(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    fn step(diff_id: Option<Digest>, env: &str) -> CachedStep {
        CachedStep {
            diff_id,
            blob: None,
            config: serde_json::json!({"config": {"Env": [env]}}),
            created: "2026-12-06T19:00:00Z".into(),
        }
    }

    /// A store holding the (empty) layer `diff_id`.
    fn store_with_layer(dir: &Path, diff_id: &Digest) -> Store {
        let store = Store::open(dir.join("store")).unwrap();
        let layer = store.layer_dir(diff_id);
        std::fs::create_dir_all(layer.join("root")).unwrap();
        std::fs::write(layer.join("meta.json"), "{}").unwrap();
        store
    }

    fn entry_files(store: &Store) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(store.build_cache_dir().join("entries"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn entries_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_layer(dir.path(), &digest('d'));
        let (k1, k2) = (digest('1'), digest('2'));
        assert_eq!(store.build_cache_lookup(&k1), None);
        let with_layer = step(Some(digest('d')), "A=1");
        let without = step(None, "B=2");
        store.build_cache_record(&k1, &with_layer).unwrap();
        store.build_cache_record(&k2, &without).unwrap();
        assert_eq!(store.build_cache_lookup(&k1), Some(with_layer));
        assert_eq!(store.build_cache_lookup(&k2), Some(without.clone()));
        assert_eq!(store.build_cache_lookup(&digest('3')), None);
        assert_eq!(
            store.build_cache_refs().unwrap().1,
            HashSet::from([digest('d')])
        );
        // A new record replaces the old.
        let again = step(None, "B=3");
        store.build_cache_record(&k2, &again).unwrap();
        assert_eq!(store.build_cache_lookup(&k2), Some(again));
        assert_eq!(
            entry_files(&store),
            vec![format!("{}.json", k1.hex()), format!("{}.json", k2.hex())]
        );
    }

    #[test]
    fn an_entry_whose_layer_is_gone_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_layer(dir.path(), &digest('d'));
        store
            .build_cache_record(&digest('1'), &step(Some(digest('e')), "A"))
            .unwrap();
        assert_eq!(store.build_cache_lookup(&digest('1')), None);
        // Control: the same entry with a layer the store has.
        store
            .build_cache_record(&digest('1'), &step(Some(digest('d')), "A"))
            .unwrap();
        assert!(store.build_cache_lookup(&digest('1')).is_some());
    }

    #[test]
    fn a_damaged_entry_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_layer(dir.path(), &digest('d'));
        let good = step(Some(digest('d')), "A=1");
        let (k1, k2, k3) = (digest('1'), digest('2'), digest('3'));
        for k in [&k1, &k2, &k3] {
            store.build_cache_record(k, &good).unwrap();
            assert_eq!(store.build_cache_lookup(k), Some(good.clone()), "control");
        }
        // Truncated.
        let p1 = store.build_cache_entry(&k1);
        let data = std::fs::read(&p1).unwrap();
        std::fs::write(&p1, &data[..data.len() / 2]).unwrap();
        // Garbage.
        std::fs::write(store.build_cache_entry(&k2), [0xff, 0, 0x7b, 0x22]).unwrap();
        // Another key's entry under this key's name.
        let text = std::fs::read_to_string(store.build_cache_entry(&k3)).unwrap();
        assert!(text.contains(k3.as_str()));
        let foreign = text.replace(k3.as_str(), digest('4').as_str());
        std::fs::write(store.build_cache_entry(&k3), foreign).unwrap();

        for k in [&k1, &k2, &k3] {
            assert_eq!(store.build_cache_lookup(k), None, "{k}");
        }
        assert!(store.build_cache_refs().unwrap().1.is_empty());
        // A damaged entry is rewritten by the next record.
        store.build_cache_record(&k2, &good).unwrap();
        assert_eq!(store.build_cache_lookup(&k2), Some(good));
        assert_eq!(
            store.build_cache_refs().unwrap().1,
            HashSet::from([digest('d')])
        );
    }

    #[test]
    fn remove_all_leaves_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_layer(dir.path(), &digest('d'));
        assert_eq!(store.remove_build_cache().unwrap(), 0, "no cache yet");
        for c in ['1', '2'] {
            store
                .build_cache_record(&digest(c), &step(Some(digest('d')), "A"))
                .unwrap();
        }
        let ctx = Path::new("/some/context");
        let mut index = FileIndex::default();
        index.files.insert(
            "/some/context/f".into(),
            Indexed {
                stamp: FileStamp {
                    dev: 1,
                    ino: 2,
                    size: 3,
                    mtime_ns: 4,
                    ctime_ns: 5,
                },
                sha256: digest('f'),
            },
        );
        store.build_cache_save_files(ctx, &index).unwrap();
        assert_eq!(store.build_cache_load_files(ctx), index, "control");
        assert!(store.build_cache_lookup(&digest('1')).is_some(), "control");

        assert_eq!(store.remove_build_cache().unwrap(), 2);
        assert_eq!(store.build_cache_lookup(&digest('1')), None);
        assert_eq!(store.build_cache_lookup(&digest('2')), None);
        assert!(store.build_cache_refs().unwrap().1.is_empty());
        assert_eq!(store.build_cache_load_files(ctx), FileIndex::default());
        assert!(!store.build_cache_dir().exists());
        assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        assert!(store.has_layer(&digest('d')), "layers are gc's business");
    }

    #[test]
    fn file_indexes_round_trip_per_context_and_damage_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let (a, b) = (Path::new("/ctx/a"), Path::new("/ctx/b"));
        assert_eq!(store.build_cache_load_files(a), FileIndex::default());
        let mut index = FileIndex::default();
        index.files.insert(
            "/ctx/a/x".into(),
            Indexed {
                stamp: FileStamp {
                    dev: 9,
                    ino: 8,
                    size: 7,
                    mtime_ns: -6,
                    ctime_ns: 5,
                },
                sha256: digest('a'),
            },
        );
        store.build_cache_save_files(a, &index).unwrap();
        assert_eq!(store.build_cache_load_files(a), index);
        assert_eq!(store.build_cache_load_files(b), FileIndex::default());
        std::fs::write(store.build_cache_file_index(a), "{\"files\": {\"x\": 1").unwrap();
        assert_eq!(store.build_cache_load_files(a), FileIndex::default());
    }

    #[test]
    fn concurrent_records_of_one_key_leave_one_whole_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_layer(dir.path(), &digest('d'));
        let key = digest('1');
        let steps: Vec<CachedStep> = (0..8)
            .map(|i| step(Some(digest('d')), &"X".repeat(1 + i * 1000)))
            .collect();
        std::thread::scope(|s| {
            for st in &steps {
                let (store, key) = (&store, &key);
                s.spawn(move || {
                    for _ in 0..20 {
                        store.build_cache_record(key, st).unwrap();
                    }
                });
            }
        });
        let found = store.build_cache_lookup(&key).expect("one whole entry");
        assert!(steps.contains(&found));
        assert_eq!(entry_files(&store), vec![format!("{}.json", key.hex())]);
    }

    #[test]
    fn gc_keeps_the_layers_of_cached_steps_until_the_cache_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        // Two layers no image uses: one a cached step names, one not.
        let store = store_with_layer(dir.path(), &digest('d'));
        let loose = store.layer_dir(&digest('e'));
        std::fs::create_dir_all(loose.join("root")).unwrap();
        std::fs::write(loose.join("meta.json"), "{}").unwrap();
        store
            .build_cache_record(&digest('1'), &step(Some(digest('d')), "A=1"))
            .unwrap();
        let report = store.gc(false).unwrap();
        assert_eq!(report.layers_removed, 1, "the loose layer goes (control)");
        assert!(
            store.has_layer(&digest('d')),
            "the cached step's layer stays"
        );
        assert!(!store.has_layer(&digest('e')));
        assert_eq!(store.remove_build_cache().unwrap(), 1);
        let report = store.gc(false).unwrap();
        assert_eq!(report.layers_removed, 1);
        assert!(!store.has_layer(&digest('d')), "freed with the cache");
    }
}
