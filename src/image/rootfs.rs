//! `hutch import`: a plain root filesystem tarball becomes a one-layer image.

use crate::image::sniff::{not_tar, read_head};
use crate::oci::compression::Compression;
use crate::oci::platform::Platform;
use crate::oci::{Digest, media};
use crate::store::Store;
use crate::store::space::NoSpace;
use crate::store::unpack::UnpackError;
use anyhow::{Context, Result};
use std::io::Read;
use std::path::Path;

/// Import the root filesystem tarball at `tarball`.
pub fn import_file(store: &Store, tarball: &Path) -> Result<Digest> {
    let shown = tarball.display().to_string();
    let file = std::fs::File::open(tarball)
        .with_context(|| format!("opening the root filesystem tarball {shown}"))?;
    let name = tarball
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    import_rootfs(store, file, &shown, &name)
}

/// Store the tarball `input` reads (plain, gzip or zstd; `shown` in
/// messages, `name` in the image's history) as a layer blob, unpack it,
/// and write a config and manifest for it. Returns the manifest digest.
/// `input` is read once, as a stream (standard input works).
pub fn import_rootfs(
    store: &Store,
    input: impl Read + Send,
    shown: &str,
    name: &str,
) -> Result<Digest> {
    // The first bytes tell the compression; a pipe may deliver them in
    // pieces, so they are gathered before looking.
    let mut input = input;
    let head = read_head(&mut input, 512).with_context(|| format!("reading {shown}"))?;
    let kind = Compression::sniff(&mut &head[..]).with_context(|| format!("reading {shown}"))?;
    let head = std::io::Cursor::new(head).chain(input);
    // An uncompressed tar is stored compressed (see `ingest_layer_unknown`).
    let compress = kind == Compression::None;
    let (blob, meta) = store.ingest_layer_unknown(head, compress).map_err(|e| {
        if is_not_tar(&e) {
            anyhow::anyhow!(
                "{shown} is not a root filesystem tarball: {}; `hutch import` takes a tar \
                 archive, plain or gzip/zstd compressed (for an image archive: `hutch load`)",
                not_tar(kind)
            )
        } else if e.is::<NoSpace>() {
            e
        } else {
            e.context(format!(
                "importing {shown} (expected a tar archive, plain, gzip or zstd)"
            ))
        }
    })?;
    let now = crate::store::refs::now_rfc3339();
    let host = Platform::host();
    let config = serde_json::json!({
        "created": now,
        "architecture": host.architecture,
        "os": host.os,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [meta.diff_id]},
        "history": [{"created": now, "created_by": format!("hutch import {name}")}],
    });
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = store.put_blob(&config_bytes)?;
    let media_type = match kind {
        Compression::None | Compression::Gzip => media::OCI_LAYER_GZIP,
        Compression::Zstd => media::OCI_LAYER_ZSTD,
    };
    let size = std::fs::metadata(store.blob_path(&blob))?.len();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest, "size": config_bytes.len()},
        "layers": [{"mediaType": media_type, "digest": blob, "size": size}],
    });
    store.put_blob(&serde_json::to_vec(&manifest)?)
}

/// Whether unpacking stopped because the input does not start like a tar.
fn is_not_tar(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<UnpackError>(),
            Some(UnpackError::NotTar { .. })
        )
    })
}
