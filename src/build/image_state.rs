//! The image a stage is building, step by step: its config (as JSON, so
//! fields hutch does not know pass through), the layer blobs its manifest
//! will list, and the cache key chain it is at.

use super::cache_key::Parent;
use crate::oci::{Digest, media};
use crate::store::build_cache::LayerBlob;
use crate::store::{Store, StoredImage};
use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub(crate) struct ImageState {
    /// The whole image config (`config`, `rootfs`, `history`, ...).
    pub(crate) config: Value,
    /// The manifest's layer descriptors, bottom first (one per DiffID).
    pub(crate) layers: Vec<LayerBlob>,
    /// Where the cache key chain is: the base, or the last step's key.
    pub(crate) parent: Parent,
    /// Whether a CMD of this stage set Cmd (ENTRYPOINT then keeps it).
    pub(crate) cmd_set: bool,
}

impl ImageState {
    /// `FROM scratch`.
    pub(crate) fn scratch() -> ImageState {
        let p = crate::oci::platform::Platform::host();
        let mut config = json!({
            "architecture": p.architecture,
            "os": p.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        });
        if let Some(v) = &p.variant {
            config["variant"] = json!(v);
        }
        ImageState {
            config,
            layers: Vec::new(),
            parent: Parent::Scratch,
            cmd_set: false,
        }
    }

    /// `FROM image`: its config and layers as stored.
    pub(crate) fn of_image(image: &StoredImage) -> Result<ImageState> {
        let what = format!("image {}", image.manifest_digest);
        let config: Value = serde_json::from_slice(&image.config_bytes)
            .with_context(|| format!("reading the config of {what}"))?;
        if !config.is_object() {
            bail!("the config of {what} is not a JSON object");
        }
        let manifest: Value = serde_json::from_slice(&image.manifest_bytes)
            .with_context(|| format!("reading the manifest of {what}"))?;
        let mut layers = Vec::new();
        for l in manifest
            .get("layers")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let digest = l
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| Digest::parse(d).ok())
                .with_context(|| format!("{what}: a layer without a digest in its manifest"))?;
            let size = l.get("size").and_then(Value::as_u64).unwrap_or(0);
            let media_type = l
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or(media::OCI_LAYER_GZIP);
            layers.push(LayerBlob {
                digest,
                size,
                media_type: oci_layer_type(media_type).to_string(),
            });
        }
        if layers.len() != image.layers.len() {
            bail!(
                "{what}: its manifest lists {} layers and its config {}",
                layers.len(),
                image.layers.len()
            );
        }
        let mut state = ImageState {
            config,
            layers,
            parent: Parent::Image(image.manifest_digest.clone()),
            cmd_set: false,
        };
        // Docker runs the base's triggers and does not pass them on;
        // hutch does not run them, and says so.
        if let Some(c) = state
            .config
            .get_mut("config")
            .and_then(Value::as_object_mut)
            && let Some(triggers) = c.remove("OnBuild")
            && triggers.as_array().is_some_and(|t| !t.is_empty())
        {
            eprintln!(
                "hutch: warning: {what} has ONBUILD triggers ({triggers}); hutch does not run \
                 them: write them into this Containerfile"
            );
        }
        Ok(state)
    }

    /// The container config part (`config` in the image config), made an
    /// object when missing.
    pub(crate) fn container(&mut self) -> &mut Map<String, Value> {
        let obj = self
            .config
            .as_object_mut()
            .expect("an image config is an object");
        let c = obj.entry("config").or_insert_with(|| json!({}));
        if !c.is_object() {
            *c = json!({});
        }
        c.as_object_mut().expect("just made an object")
    }

    /// A string field of the container config ("" when unset).
    pub(crate) fn field(&self, name: &str) -> &str {
        self.config
            .get("config")
            .and_then(|c| c.get(name))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// A string-list field of the container config.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.config
            .get("config")
            .and_then(|c| c.get(name))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `Env` as KEY=VALUE strings.
    pub(crate) fn env(&self) -> Vec<String> {
        self.list("Env")
    }

    /// Set one variable in `Env` (replacing it in place, else appended).
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        let kv = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(e) => *e = kv,
            None => env.push(kv),
        }
        self.container().insert("Env".into(), json!(env));
    }

    /// The SHELL in effect (Docker's default `/bin/sh -c`).
    pub(crate) fn shell(&self) -> Vec<String> {
        let s = self.list("Shell");
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    /// The DiffIDs, bottom first.
    pub(crate) fn diff_ids(&self) -> Result<Vec<Digest>> {
        self.config
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|d| {
                d.as_str()
                    .and_then(|d| Digest::parse(d).ok())
                    .context("a DiffID in the image config is not a digest")
            })
            .collect()
    }

    /// The layers' directories in the store, top first (the overlay's
    /// lower dirs).
    pub(crate) fn lowers(&self, store: &Store) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for d in self.diff_ids()?.iter().rev() {
            if !store.has_layer(d) {
                bail!(
                    "layer {d} of the image being built is missing from the store; \
                     `hutch check --store --repair` finds damage"
                );
            }
            out.push(store.layer_root(d));
        }
        Ok(out)
    }

    /// Append a history entry.
    pub(crate) fn push_history(&mut self, created: &str, created_by: &str, empty_layer: bool) {
        let mut entry = json!({"created": created, "created_by": created_by});
        if empty_layer {
            entry["empty_layer"] = json!(true);
        }
        let obj = self
            .config
            .as_object_mut()
            .expect("an image config is an object");
        let history = obj.entry("history").or_insert_with(|| json!([]));
        match history.as_array_mut() {
            Some(h) => h.push(entry),
            None => *history = json!([entry]),
        }
        obj.insert("created".into(), json!(created));
    }

    /// Add a layer on top.
    pub(crate) fn push_layer(&mut self, diff_id: &Digest, blob: LayerBlob) {
        let obj = self
            .config
            .as_object_mut()
            .expect("an image config is an object");
        let rootfs = obj
            .entry("rootfs")
            .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        if !rootfs.get("diff_ids").is_some_and(Value::is_array) {
            *rootfs = json!({"type": "layers", "diff_ids": []});
        }
        if let Some(ids) = rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
            ids.push(json!(diff_id));
        }
        self.layers.push(blob);
    }
}

/// The OCI media type of a layer blob given in a Docker manifest (the same
/// bytes), so a built image's manifest is all OCI.
pub(crate) fn oci_layer_type(media_type: &str) -> &str {
    match media_type {
        media::DOCKER_LAYER_GZIP => media::OCI_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_history_and_layers() {
        let mut s = ImageState::scratch();
        assert_eq!(s.shell(), ["/bin/sh", "-c"]);
        s.set_env("A", "1");
        s.set_env("B", "x=y");
        s.set_env("A", "2");
        assert_eq!(s.env(), ["A=2", "B=x=y"]);
        s.push_history("2024-01-01T00:00:00Z", "ENV A=2", true);
        let d = Digest::of(b"t");
        s.push_layer(
            &d,
            LayerBlob {
                digest: Digest::of(b"b"),
                size: 3,
                media_type: media::OCI_LAYER_GZIP.into(),
            },
        );
        assert_eq!(s.diff_ids().unwrap(), vec![d]);
        assert_eq!(s.config["created"], json!("2024-01-01T00:00:00Z"));
        assert_eq!(s.config["history"][0]["empty_layer"], json!(true));
        assert_eq!(
            oci_layer_type(media::DOCKER_LAYER_GZIP),
            media::OCI_LAYER_GZIP
        );
    }
}
