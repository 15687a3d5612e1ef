//! `hutch check --store`: verify every blob, unpacked layer and tag, and
//! with `--repair` remove or rebuild what is damaged.
//!
//! Blobs are re-hashed; a layer directory must have metadata naming its own
//! DiffID and a `root/`; every image a tag (or its history) points to must
//! have its manifest, config, layer blobs and unpacked layers. A missing
//! unpacked layer is rebuilt from its blob; a tag whose data is gone is
//! dropped (load or pull the image again).

use super::Store;
use super::remove::remove_tree;
use crate::oci::Digest;
use crate::oci::digest::HashingReader;
use crate::store::StoredImage;
use anyhow::Result;

#[derive(Debug, Default, serde::Serialize)]
pub struct StoreReport {
    pub blobs_checked: usize,
    pub layers_checked: usize,
    pub images_checked: usize,
    /// Each problem found, with what was done about it when repairing.
    pub problems: Vec<String>,
    pub repaired: Vec<String>,
}

impl StoreReport {
    pub fn clean(&self) -> bool {
        self.problems.len() == self.repaired.len()
    }
}

impl Store {
    pub fn verify(&self, repair: bool) -> Result<StoreReport> {
        // Repair deletes; it must not race an import.
        let _lock = if repair {
            self.lock_exclusive()?
        } else {
            self.lock_shared()?
        };
        let mut r = StoreReport::default();
        for blob in self.list_blobs()? {
            r.blobs_checked += 1;
            let ok = std::fs::File::open(self.blob_path(&blob))
                .and_then(|f| HashingReader::new(f).finish())
                .map(|(d, _, _)| d == blob);
            if !matches!(ok, Ok(true)) {
                r.problems.push(format!(
                    "blob {blob} is damaged (its contents do not hash to its name)"
                ));
                if repair && std::fs::remove_file(self.blob_path(&blob)).is_ok() {
                    r.repaired.push(format!("removed damaged blob {blob}"));
                }
            }
        }
        for layer in self.list_layers()? {
            r.layers_checked += 1;
            let meta_ok = self
                .layer_meta(&layer)
                .map(|m| m.diff_id == layer)
                .unwrap_or(false);
            if !meta_ok || !self.layer_root(&layer).is_dir() {
                r.problems.push(format!(
                    "unpacked layer {layer} is incomplete or its metadata is wrong"
                ));
                if repair && remove_tree(&self.layer_dir(&layer)).is_ok() {
                    r.repaired.push(format!("removed damaged layer {layer}"));
                }
            }
        }
        if repair {
            let tmp = self.tmp_dir();
            for entry in std::fs::read_dir(&tmp)?.flatten() {
                let p = entry.path();
                match remove_tree(&p) {
                    Ok(_) => {
                        r.problems.push(format!(
                            "leftover of an interrupted command: {}",
                            p.display()
                        ));
                        r.repaired.push(format!("removed {}", p.display()));
                    }
                    Err(e) => r.problems.push(format!(
                        "leftover of an interrupted command that cannot be removed: {e:#}"
                    )),
                }
            }
        }
        let refs = self.refs()?;
        let mut broken: Vec<Digest> = Vec::new();
        for manifest in refs.all_manifests() {
            r.images_checked += 1;
            if let Err(problem) = self.check_image(&manifest, repair, &mut r) {
                let tags: Vec<&str> = refs
                    .tags
                    .iter()
                    .filter(|(_, h)| h.versions.iter().any(|v| v.digest == manifest))
                    .map(|(n, _)| n.as_str())
                    .collect();
                r.problems.push(format!(
                    "image {manifest} ({}) is unusable: {problem:#}; load or pull it again",
                    if tags.is_empty() {
                        "untagged".to_owned()
                    } else {
                        tags.join(", ")
                    }
                ));
                broken.push(manifest);
            }
        }
        if repair && !broken.is_empty() {
            self.update_refs(|refs| {
                for d in &broken {
                    refs.untagged.remove(d);
                    for hist in refs.tags.values_mut() {
                        let before = hist.versions.len();
                        hist.versions.retain(|v| v.digest != *d);
                        if hist.versions.len() != before {
                            // Indexes moved: the rollback chain of this tag restarts.
                            hist.versions.iter_mut().for_each(|v| v.prev = None);
                        }
                    }
                    refs.tags.retain(|_, h| !h.versions.is_empty());
                }
                Ok(())
            })?;
            for d in &broken {
                r.repaired.push(format!(
                    "dropped the tags and history entries pointing to {d}"
                ));
            }
        }
        Ok(r)
    }

    fn check_image(&self, manifest: &Digest, repair: bool, r: &mut StoreReport) -> Result<()> {
        let img = StoredImage::load(self, manifest)?;
        for l in &img.layers {
            if !self.has_blob(&l.blob) {
                anyhow::bail!("layer blob {} is missing", l.blob);
            }
            if !self.has_layer(&l.diff_id) {
                r.problems.push(format!(
                    "image {manifest}: unpacked layer {} is missing",
                    l.diff_id
                ));
                if repair {
                    // The blob is present, so it is unpacked from the store.
                    let unused = |_| anyhow::bail!("layer blob {} vanished", l.blob);
                    self.ingest_layer(unused, false, &l.blob, &l.diff_id)?;
                    r.repaired
                        .push(format!("unpacked layer {} again from its blob", l.diff_id));
                }
            }
        }
        Ok(())
    }
}
