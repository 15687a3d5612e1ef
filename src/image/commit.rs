//! `hutch commit`: a container's upper dir becomes one new layer on top of
//! its image's layers, and a new image.
//!
//! The layer is the tar of [`layer_tar`](super::layer_tar), stored
//! gzip-compressed and unpacked like any imported layer
//! (`Store::ingest_layer_unknown`), so the new image runs at once and
//! shares its lower layers with the image it came from. Its config is the
//! image's config with the new DiffID, a history entry (`created_by`
//! `hutch commit`, the message as comment), the author, and the `-c`
//! instructions applied (see [`instructions`](super::instructions)); its
//! manifest lists the image's layer blobs as they were plus the new one, in
//! the image's own manifest format (OCI or Docker schema 2). The tag moves
//! through the refs with its history, so `hutch rollback` undoes a commit.
//!
//! Everything is written in `Store::all_or_nothing`, and the tag last: a
//! commit that fails leaves no new blob, layer or tag.
//!
//! A running container may be committed (as `podman commit --pause=false`
//! does): files it changes meanwhile may be caught half-written.

use super::instructions::{self, Instruction};
use super::layer_tar::write_layer_tar;
use super::resolve::HOST_IMAGE;
use crate::oci::{Digest, TagRef, media};
use crate::store::{Store, StoredImage};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::io::{BufWriter, Write};

/// What `hutch commit` was asked for.
#[derive(Debug, Default, Clone)]
pub struct CommitOptions {
    /// The history entry's comment (`-m`).
    pub message: Option<String>,
    /// The image's author (`--author`).
    pub author: Option<String>,
    /// Dockerfile instructions (`-c`), in order.
    pub changes: Vec<String>,
    /// The name to give the image; `None` leaves it untagged.
    pub tag: Option<TagRef>,
}

/// The image a commit made.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The image ID (config digest), as Podman prints it.
    pub id: Digest,
}

/// Commit the container `key` (name, ID or ID prefix).
pub fn commit(store: &Store, key: &str, opts: &CommitOptions) -> Result<Committed> {
    let c = store.find_container(key)?;
    let name = c.state.name.clone();
    if c.state.image_id == HOST_IMAGE {
        bail!(
            "container {name} runs on the host's root filesystem (image `host`), which is no \
             image a layer can go on top of; `hutch diff {name}` shows its changes"
        );
    }
    // Every instruction is checked before anything is written.
    let changes = instructions::parse_all(&opts.changes)?;
    let base_digest = Digest::parse(&c.state.image_id).with_context(|| {
        format!(
            "container {name}: bad image digest {:?} in its record",
            c.state.image_id
        )
    })?;
    let base = StoredImage::load(store, &base_digest).with_context(|| {
        format!(
            "container {name} was made from {} ({base_digest}), which is no longer in the store; \
             pull or load it again to commit the container",
            c.state.image
        )
    })?;
    let upper = store.container_dir(&c.state.id).join("upper");
    let lowers = super::diff::container_lowers(store, &c)?;
    store.all_or_nothing(|| {
        let tar_path = store.tmp_path("commit-layer");
        let _remove = RemoveOnDrop(&tar_path);
        let file = std::fs::File::create(&tar_path)
            .with_context(|| format!("creating {}", tar_path.display()))?;
        let (out, stats) = write_layer_tar(&upper, &lowers, BufWriter::new(file))
            .with_context(|| format!("archiving the changes of container {name}"))?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|mut f| f.flush())
            .with_context(|| format!("writing {}", tar_path.display()))?;
        tracing::info!(
            "container {name}: {} entries, {} bytes of files",
            stats.entries,
            stats.file_bytes
        );
        let tar = std::fs::File::open(&tar_path)
            .with_context(|| format!("reading {}", tar_path.display()))?;
        let (blob, meta) = store
            .ingest_layer_unknown(tar, true)
            .with_context(|| format!("storing the new layer of container {name}"))?;
        let blob_size = std::fs::metadata(store.blob_path(&blob))
            .with_context(|| format!("reading the size of blob {blob}"))?
            .len();
        let config = new_config(&base, &meta.diff_id, opts, &changes, &now())?;
        let config_bytes = serde_json::to_vec(&config)?;
        let config_digest = store.put_blob(&config_bytes)?;
        let manifest = new_manifest(&base, &config_digest, config_bytes.len(), &blob, blob_size)?;
        let manifest_digest = store.put_blob(&serde_json::to_vec(&manifest)?)?;
        // The store reads back what it would run.
        let img = StoredImage::load(store, &manifest_digest)
            .context("reading back the committed image")?;
        let reason = format!("commit {name}");
        store.update_refs(|r| {
            match &opts.tag {
                Some(t) => {
                    r.set_tag(&t.to_string(), &manifest_digest, &reason);
                }
                None => r.add_untagged(&manifest_digest, &reason),
            }
            Ok(())
        })?;
        tracing::info!(
            "container {name}: image {manifest_digest}, new layer {} (blob {blob})",
            meta.diff_id
        );
        Ok(Committed {
            id: img.id().clone(),
        })
    })
}

struct RemoveOnDrop<'a>(&'a std::path::Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

fn now() -> String {
    crate::store::refs::now_rfc3339()
}

/// The base image's config with the new layer, history entry, author and
/// instructions. Fields hutch does not know are kept as they were.
fn new_config(
    base: &StoredImage,
    diff_id: &Digest,
    opts: &CommitOptions,
    changes: &[Instruction],
    created: &str,
) -> Result<Value> {
    let mut cfg: Value = serde_json::from_slice(&base.config_bytes)
        .context("reading the config of the container's image")?;
    let obj = cfg
        .as_object_mut()
        .context("the config of the container's image is not a JSON object")?;
    obj.insert("created".into(), json!(created));
    if let Some(a) = &opts.author {
        obj.insert("author".into(), json!(a));
    }
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        Some(ids) => ids.push(json!(diff_id)),
        None => bail!("the config of the container's image has no rootfs.diff_ids"),
    }
    let mut entry = json!({"created": created, "created_by": "hutch commit"});
    if let Some(a) = &opts.author {
        entry["author"] = json!(a);
    }
    if let Some(m) = &opts.message {
        entry["comment"] = json!(m);
    }
    let history = obj.entry("history").or_insert_with(|| json!([]));
    match history.as_array_mut() {
        Some(h) => h.push(entry),
        None => *history = json!([entry]),
    }
    let config = obj.entry("config").or_insert_with(|| json!({}));
    if !config.is_object() {
        *config = json!({});
    }
    if let Some(c) = config.as_object_mut() {
        instructions::apply(c, changes);
    }
    Ok(cfg)
}

/// A manifest in the base image's format: its layer descriptors as they
/// were, then the new layer.
fn new_manifest(
    base: &StoredImage,
    config: &Digest,
    config_size: usize,
    blob: &Digest,
    blob_size: u64,
) -> Result<Value> {
    let old: Value = serde_json::from_slice(&base.manifest_bytes)
        .context("reading the manifest of the container's image")?;
    let docker = old.get("mediaType").and_then(Value::as_str) == Some(media::DOCKER_MANIFEST);
    let (manifest_type, config_type, layer_type) = if docker {
        (
            media::DOCKER_MANIFEST,
            media::DOCKER_CONFIG,
            media::DOCKER_LAYER_GZIP,
        )
    } else {
        (
            media::OCI_MANIFEST,
            media::OCI_CONFIG,
            media::OCI_LAYER_GZIP,
        )
    };
    let mut layers = old
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    layers.push(json!({"mediaType": layer_type, "digest": blob, "size": blob_size}));
    Ok(json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": config, "size": config_size},
        "layers": layers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_gets_the_layer_history_author_and_changes() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let layer = Digest::of(b"layer");
        let base_cfg = json!({
            "architecture": "amd64", "os": "linux", "x-unknown": 1,
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(b"tar")]},
            "history": [{"created_by": "base"}],
        });
        let cfg_bytes = serde_json::to_vec(&base_cfg).unwrap();
        let cfg_digest = store.put_blob(&cfg_bytes).unwrap();
        let manifest = json!({
            "schemaVersion": 2, "mediaType": media::DOCKER_MANIFEST,
            "config": {"mediaType": media::DOCKER_CONFIG, "digest": cfg_digest, "size": cfg_bytes.len()},
            "layers": [{"mediaType": media::DOCKER_LAYER_GZIP, "digest": layer, "size": 5}],
        });
        let m = store
            .put_blob(&serde_json::to_vec(&manifest).unwrap())
            .unwrap();
        let base = StoredImage::load(&store, &m).unwrap();
        let opts = CommitOptions {
            message: Some("fixed it".into()),
            author: Some("Ann <ann@example.org>".into()),
            ..Default::default()
        };
        let changes = instructions::parse_all(&["ENV A=1".into()]).unwrap();
        let new_diff = Digest::of(b"new tar");
        let cfg = new_config(&base, &new_diff, &opts, &changes, "2024-01-02T03:04:05Z").unwrap();
        assert_eq!(cfg["rootfs"]["diff_ids"][1], json!(new_diff));
        assert_eq!(cfg["x-unknown"], json!(1));
        assert_eq!(cfg["author"], json!("Ann <ann@example.org>"));
        assert_eq!(cfg["config"]["Env"], json!(["PATH=/bin", "A=1"]));
        assert_eq!(cfg["config"]["Cmd"], json!(["sh"]));
        assert_eq!(
            cfg["history"][1],
            json!({"created": "2024-01-02T03:04:05Z", "created_by": "hutch commit",
                   "author": "Ann <ann@example.org>", "comment": "fixed it"})
        );
        let blob = Digest::of(b"blob");
        let man = new_manifest(&base, &cfg_digest, 10, &blob, 7).unwrap();
        assert_eq!(man["mediaType"], json!(media::DOCKER_MANIFEST));
        assert_eq!(man["config"]["mediaType"], json!(media::DOCKER_CONFIG));
        assert_eq!(man["layers"][0]["digest"], json!(layer));
        assert_eq!(
            man["layers"][1],
            json!({"mediaType": media::DOCKER_LAYER_GZIP, "digest": blob, "size": 7})
        );
    }
}
