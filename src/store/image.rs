//! An image as the store holds it: manifest, config and layers, read back
//! from blobs and checked for consistency.

use crate::oci::{Digest, media};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use oci_spec::image::{ImageConfiguration, ImageManifest};

/// One layer of an image: the blob as published and its unpacked DiffID.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerRef {
    pub blob: Digest,
    pub diff_id: Digest,
    pub media_type: String,
    /// Size of the blob (compressed, as published).
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct StoredImage {
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub manifest_bytes: Vec<u8>,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
    pub config_bytes: Vec<u8>,
    pub layers: Vec<LayerRef>,
}

/// Convert an oci-spec digest to ours (sha256 only).
pub fn digest_of(d: &oci_spec::image::Digest) -> Result<Digest> {
    Digest::parse(d.as_ref())
        .with_context(|| format!("unsupported digest {d}: hutch handles sha256 only"))
}

/// Parse a manifest document and check that it is an image manifest whose
/// layers hutch can unpack.
pub fn parse_manifest(bytes: &[u8], what: &str) -> Result<ImageManifest> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .with_context(|| format!("{what}: the manifest is not valid JSON"))?;
    match media::sniff_document(&value) {
        media::Kind::Manifest => {}
        media::Kind::Index => bail!("{what}: expected an image manifest, found an image index"),
        _ => bail!(
            "{what}: unknown manifest media type {}; hutch reads OCI and Docker schema 2 manifests",
            value
                .get("mediaType")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "(none)".into())
        ),
    }
    let manifest: ImageManifest = serde_json::from_value(value)
        .with_context(|| format!("{what}: the manifest is malformed"))?;
    let cfg_type = manifest.config().media_type().to_string();
    if media::kind(&cfg_type) != media::Kind::Config {
        bail!("{what}: unknown config media type {cfg_type}");
    }
    for layer in manifest.layers() {
        let mt = layer.media_type().to_string();
        if media::kind(&mt) != media::Kind::Layer {
            bail!(
                "{what}: layer {} has unknown media type {mt}; hutch unpacks tar, tar+gzip and tar+zstd layers",
                layer.digest()
            );
        }
    }
    Ok(manifest)
}

/// Parse a config and pair its DiffIDs with the manifest's layers.
pub fn parse_config(
    bytes: &[u8],
    manifest: &ImageManifest,
    what: &str,
) -> Result<(ImageConfiguration, Vec<LayerRef>)> {
    let config: ImageConfiguration = serde_json::from_slice(bytes)
        .with_context(|| format!("{what}: the image config is not valid"))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        bail!(
            "{what}: the manifest lists {} layers but the config has {} DiffIDs",
            manifest.layers().len(),
            diff_ids.len()
        );
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (desc, diff_id) in manifest.layers().iter().zip(diff_ids) {
        layers.push(LayerRef {
            blob: digest_of(desc.digest())?,
            diff_id: Digest::parse(diff_id)
                .with_context(|| format!("{what}: bad DiffID in the config"))?,
            media_type: desc.media_type().to_string(),
            size: desc.size(),
        });
    }
    Ok((config, layers))
}

impl StoredImage {
    /// Load the image whose manifest has `digest` from the store.
    pub fn load(store: &Store, digest: &Digest) -> Result<StoredImage> {
        let what = format!("image {digest}");
        let manifest_bytes = store.read_blob(digest)?;
        let manifest = parse_manifest(&manifest_bytes, &what)?;
        let config_digest = digest_of(manifest.config().digest())?;
        let config_bytes = store.read_blob(&config_digest)?;
        let (config, layers) = parse_config(&config_bytes, &manifest, &what)?;
        Ok(StoredImage {
            manifest_digest: digest.clone(),
            manifest,
            manifest_bytes,
            config_digest,
            config,
            config_bytes,
            layers,
        })
    }

    /// The image ID, as Docker and Podman show it: the config digest.
    pub fn id(&self) -> &Digest {
        &self.config_digest
    }

    /// Sum of the unpacked sizes of the layers (as `podman images` shows).
    pub fn size(&self, store: &Store) -> u64 {
        self.layers
            .iter()
            .filter_map(|l| store.layer_meta(&l.diff_id).ok())
            .map(|m| m.tar_size)
            .sum()
    }

    pub fn created(&self) -> Option<String> {
        self.config.created().clone()
    }

    /// True when every blob and unpacked layer of the image is in the store.
    pub fn is_complete(&self, store: &Store) -> bool {
        self.layers
            .iter()
            .all(|l| store.has_blob(&l.blob) && store.has_layer(&l.diff_id))
    }
}
