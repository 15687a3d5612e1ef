//! Bring one image from a `Source` into the store: verify the manifest and
//! config, store and unpack the layers (in parallel, one pass over each
//! blob), then publish config and manifest. The caller moves tags last.

use crate::image::progress::{BlobProgress, Progress};
use crate::image::source::Source;
use crate::oci::Digest;
use crate::store::Store;
use crate::store::image::{LayerRef, digest_of, parse_config, parse_manifest};
use anyhow::{Context, Result, bail};

/// Reads a layer blob from an offset on.
pub type LayerOpener<'s> =
    dyn Fn(&LayerRef, u64) -> Result<Box<dyn std::io::Read + Send + 's>> + Sync + 's;

/// Store every layer (skipping what the store has), `threads` at a time.
/// `open(layer, offset)` reads a layer blob from `offset` on; with
/// `resumable`, downloads a killed hutch left half done are continued.
/// Each layer's bytes are stored, hashed, decompressed and unpacked in one
/// pass as they arrive.
pub fn ingest_layers<'s>(
    store: &Store,
    layers: &[LayerRef],
    open: &LayerOpener<'s>,
    resumable: bool,
    threads: usize,
    progress: &Progress,
    what: &str,
) -> Result<()> {
    let mut todo: Vec<(&LayerRef, BlobProgress)> = Vec::new();
    for l in layers {
        if store.has_blob(&l.blob) && store.has_layer(&l.diff_id) {
            progress.skipped(&l.blob, "already in the store");
        } else if !todo.iter().any(|(t, _)| t.blob == l.blob) {
            todo.push((l, progress.blob(&l.blob, l.size, "pulled")));
        }
    }
    crate::parallel::try_map(&todo, threads, |(layer, shown)| {
        let result = store.ingest_layer(
            |offset| Ok(shown.wrap(open(layer, offset)?, offset)),
            resumable,
            &layer.blob,
            &layer.diff_id,
        );
        shown.finish(result.is_ok());
        result.with_context(|| format!("{what}: layer {}", layer.blob))
    })?;
    Ok(())
}

/// Ingest the image whose manifest is `manifest_bytes` (expected to hash to
/// `expected` when the source named a digest). Returns the manifest digest.
pub fn ingest_image(
    store: &Store,
    src: &dyn Source,
    manifest_bytes: &[u8],
    expected: Option<&Digest>,
    progress: &Progress,
) -> Result<Digest> {
    let digest = Digest::of(manifest_bytes);
    if let Some(expected) = expected
        && *expected != digest
    {
        bail!(
            "{}: digest mismatch for manifest {expected}: the file hashes to {digest}",
            src.describe()
        );
    }
    let what = format!("{} image {digest}", src.describe());
    let manifest = parse_manifest(manifest_bytes, &what)?;
    let config_digest = digest_of(manifest.config().digest())?;
    // A re-pull finds the config in the store (verified when stored).
    let config_bytes = match store.has_blob(&config_digest) {
        true => store.read_blob(&config_digest)?,
        false => src.read_verified(&config_digest, "image config")?,
    };
    let (_, layers) = parse_config(&config_bytes, &manifest, &what)?;
    for l in &layers {
        if !store.has_blob(&l.blob) && !src.exists(&format!("blobs/sha256/{}", l.blob.hex())) {
            bail!("{what}: layer blob {} is missing from the source", l.blob);
        }
    }
    ingest_layers(
        store,
        &layers,
        &|l: &LayerRef, offset| src.open_blob_at(&l.blob, offset),
        src.resumable(),
        src.concurrency(),
        progress,
        &what,
    )?;
    store
        .put_blob(&config_bytes)
        .with_context(|| format!("{what}: storing the config"))?;
    store
        .put_blob(manifest_bytes)
        .with_context(|| format!("{what}: storing the manifest"))?;
    Ok(digest)
}
