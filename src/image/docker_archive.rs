//! Reading docker-archive images (`docker save`, `podman save`): the legacy
//! form (`manifest.json` + `<id>/layer.tar` + `<id>.json`) is converted to an
//! OCI manifest; the Docker 25+ form is an OCI layout that also carries a
//! `manifest.json`, whose `RepoTags` name the images.

use crate::image::ingest::ingest_layers;
use crate::image::source::Source;
use crate::oci::compression::{Compression, decompress};
use crate::oci::digest::HashingReader;
use crate::oci::{Digest, TagRef, media};
use crate::store::image::LayerRef;
use anyhow::{Context, Result, bail};
use oci_spec::image::ImageConfiguration;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

impl Entry {
    pub fn names(&self) -> Vec<TagRef> {
        self.repo_tags
            .iter()
            .flatten()
            .filter_map(|t| TagRef::parse(t).ok())
            .collect()
    }
}

pub fn read_manifest_json(src: &dyn Source) -> Result<Vec<Entry>> {
    let bytes = src.read_small("manifest.json")?;
    let entries: Vec<Entry> = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{}: manifest.json is not a docker-archive manifest",
            src.describe()
        )
    })?;
    if entries.is_empty() {
        bail!("{}: manifest.json lists no images", src.describe());
    }
    Ok(entries)
}

/// The digest a member path claims for itself (`blobs/sha256/<hex>`, `<hex>.json`).
pub fn claimed_digest(path: &str) -> Option<Digest> {
    let name = path.rsplit('/').next()?;
    let hex = name.strip_suffix(".json").unwrap_or(name);
    Digest::from_hex(hex).ok()
}

/// Bring a legacy docker-archive image into the store; returns the digest
/// of the OCI manifest written for it (deterministic for the same archive).
pub fn ingest_legacy(
    store: &crate::store::Store,
    src: &dyn Source,
    entry: &Entry,
) -> Result<Digest> {
    let what = src.describe();
    let config_bytes = src.read_small(&entry.config)?;
    let config_digest = Digest::of(&config_bytes);
    if let Some(claimed) = claimed_digest(&entry.config)
        && claimed != config_digest
    {
        bail!(
            "{what}: digest mismatch for the config {}: it hashes to {config_digest}",
            entry.config
        );
    }
    let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
        .with_context(|| format!("{what}: the image config {} is not valid", entry.config))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != entry.layers.len() {
        bail!(
            "{what}: manifest.json lists {} layers but the config has {} DiffIDs",
            entry.layers.len(),
            diff_ids.len()
        );
    }
    let mut layers = Vec::new();
    let mut paths: HashMap<Digest, &str> = HashMap::new();
    for (path, diff_id) in entry.layers.iter().zip(diff_ids) {
        let diff_id =
            Digest::parse(diff_id).with_context(|| format!("{what}: bad DiffID in the config"))?;
        let (kind, _) =
            decompress(src.open(path)?).with_context(|| format!("{what}: reading layer {path}"))?;
        let (blob, media_type) = match kind {
            Compression::None => (diff_id.clone(), media::OCI_LAYER_TAR),
            // A compressed layer: its blob digest is only known after a pass over it.
            Compression::Gzip | Compression::Zstd => {
                let (d, _, _) = HashingReader::new(src.open(path)?)
                    .finish()
                    .with_context(|| format!("{what}: reading layer {path}"))?;
                (
                    d,
                    if kind == Compression::Gzip {
                        media::OCI_LAYER_GZIP
                    } else {
                        media::OCI_LAYER_ZSTD
                    },
                )
            }
        };
        paths.insert(blob.clone(), path);
        layers.push(LayerRef {
            blob,
            diff_id,
            media_type: media_type.into(),
            size: 0,
        });
    }
    // Not resumable: layers are always read from their start.
    let open = |l: &LayerRef, _offset: u64| -> Result<Box<dyn Read + Send + '_>> {
        let path = paths.get(&l.blob).context("layer path lost")?;
        src.open(path)
    };
    ingest_layers(
        store,
        &layers,
        &open,
        false,
        src.concurrency(),
        &crate::image::progress::Progress::hidden(),
        &what,
    )?;
    store.put_blob(&config_bytes)?;
    let mut descs = Vec::new();
    for l in &layers {
        let size = std::fs::metadata(store.blob_path(&l.blob))?.len();
        descs.push(serde_json::json!({"mediaType": l.media_type, "digest": l.blob, "size": size}));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest, "size": config_bytes.len()},
        "layers": descs,
    });
    let bytes = serde_json::to_vec(&manifest)?;
    store.put_blob(&bytes)
}
