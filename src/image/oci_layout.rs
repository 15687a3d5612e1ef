//! Reading OCI image layouts (a directory, or the same in a tar: an OCI
//! archive, or a Docker 25+ docker-archive), following nested indexes and
//! choosing the host's platform.

use crate::image::source::Source;
use crate::oci::platform::{self, Platform};
use crate::oci::{Digest, TagRef, media};
use anyhow::{Context, Result, bail};
use serde_json::Value;

/// An image found in a layout: its manifest and the names it carries.
pub struct FoundImage {
    pub manifest: Digest,
    pub manifest_bytes: Vec<u8>,
    pub names: Vec<TagRef>,
}

pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// The names an index entry carries. A bare tag in `ref.name` (`latest`,
/// as `skopeo copy oci:DIR:latest` writes) is given the repository
/// `localhost/<fallback_repo>`, and a name without a registry
/// (`app:1`) goes under `localhost/`, which is how Podman names such
/// images too. containerd's annotation holds Docker's full names.
pub fn names_from_annotations(desc: &Value, fallback_repo: &str) -> Vec<TagRef> {
    let ann = |k: &str| {
        desc.get("annotations")
            .and_then(|a| a.get(k))
            .and_then(|v| v.as_str())
    };
    if let Some(full) = ann(ANNOTATION_CONTAINERD_NAME)
        && let Ok(t) = TagRef::parse(full)
    {
        return vec![t];
    }
    if let Some(name) = ann(ANNOTATION_REF_NAME) {
        if (name.contains('/') || name.contains(':'))
            && let Ok(t) = TagRef::parse_local(name)
        {
            return vec![t];
        }
        if let Ok(t) = TagRef::parse(&format!("localhost/{fallback_repo}:{name}")) {
            return vec![t];
        }
    }
    Vec::new()
}

/// Every image in the layout's `index.json`, each resolved to one manifest.
pub fn read_layout(
    src: &dyn Source,
    fallback_repo: &str,
    want: &Platform,
) -> Result<Vec<FoundImage>> {
    let layout = src.read_small("oci-layout")?;
    let layout: Value = serde_json::from_slice(&layout)
        .with_context(|| format!("{}: oci-layout is not valid JSON", src.describe()))?;
    if layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        bail!("{}: oci-layout has no imageLayoutVersion", src.describe());
    }
    let index = src.read_small("index.json")?;
    let index: Value = serde_json::from_slice(&index)
        .with_context(|| format!("{}: index.json is not valid JSON", src.describe()))?;
    let entries = index
        .get("manifests")
        .and_then(|m| m.as_array())
        .with_context(|| format!("{}: index.json has no manifests list", src.describe()))?;
    if entries.is_empty() {
        bail!("{}: index.json lists no images", src.describe());
    }
    let mut found = Vec::new();
    for desc in entries {
        let names = names_from_annotations(desc, fallback_repo);
        let (manifest, manifest_bytes) = resolve(src, desc, want, 0)?;
        found.push(FoundImage {
            manifest,
            manifest_bytes,
            names,
        });
    }
    Ok(found)
}

fn descriptor_digest(src: &dyn Source, desc: &Value) -> Result<Digest> {
    let d = desc
        .get("digest")
        .and_then(|d| d.as_str())
        .with_context(|| format!("{}: an index entry has no digest", src.describe()))?;
    Digest::parse(d).with_context(|| format!("{}: bad digest in an index", src.describe()))
}

/// Follow a descriptor through indexes down to an image manifest.
pub(crate) fn resolve(
    src: &dyn Source,
    desc: &Value,
    want: &Platform,
    depth: u32,
) -> Result<(Digest, Vec<u8>)> {
    if depth > 4 {
        bail!("{}: indexes nested more than 4 deep", src.describe());
    }
    let digest = descriptor_digest(src, desc)?;
    let bytes = src.read_manifest(&digest)?;
    let doc: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: manifest {digest} is not valid JSON", src.describe()))?;
    match media::sniff_document(&doc) {
        media::Kind::Manifest => Ok((digest, bytes)),
        media::Kind::Index => {
            let entries = doc
                .get("manifests")
                .and_then(|m| m.as_array())
                .cloned()
                .unwrap_or_default();
            let chosen = entries
                .iter()
                .find(|e| e.get("platform").is_some_and(|p| want.matches(p)))
                .or_else(|| {
                    if entries.len() == 1 && entries[0].get("platform").is_none() {
                        entries.first()
                    } else {
                        None
                    }
                });
            match chosen {
                Some(e) => resolve(src, e, want, depth + 1),
                None => {
                    let have: Vec<String> = entries
                        .iter()
                        .map(|e| platform::describe(e.get("platform")))
                        .collect();
                    bail!(
                        "{}: image index {digest} has no image for {want} (it has: {})",
                        src.describe(),
                        have.join(", ")
                    )
                }
            }
        }
        _ => bail!(
            "{}: {digest} has unknown media type {}",
            src.describe(),
            doc.get("mediaType")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "(none)".into())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ann: Value) -> Vec<String> {
        names_from_annotations(&serde_json::json!({ "annotations": ann }), "fx")
            .iter()
            .map(|t| t.to_string())
            .collect()
    }

    #[test]
    fn short_ref_names_go_under_localhost_full_ones_stay() {
        assert_eq!(
            names(serde_json::json!({ ANNOTATION_REF_NAME: "latest" })),
            ["localhost/fx:latest"]
        );
        assert_eq!(
            names(serde_json::json!({ ANNOTATION_REF_NAME: "app:1" })),
            ["localhost/app:1"]
        );
        assert_eq!(
            names(serde_json::json!({ ANNOTATION_REF_NAME: "me/app:1" })),
            ["localhost/me/app:1"]
        );
        assert_eq!(
            names(serde_json::json!({ ANNOTATION_REF_NAME: "docker.io/library/busybox:1" })),
            ["docker.io/library/busybox:1"]
        );
        // containerd's annotation is Docker's name, normalised as Docker does.
        assert_eq!(
            names(serde_json::json!({
                ANNOTATION_CONTAINERD_NAME: "busybox:1", ANNOTATION_REF_NAME: "1"
            })),
            ["docker.io/library/busybox:1"]
        );
    }
}
