//! `hutch push`: an image's blobs (config and layers, as stored) and then
//! its manifest to a registry. Blobs the registry has already are skipped
//! (HEAD); each upload is one monolithic PUT; the manifest goes last, so a
//! tag never points at missing data.

use super::client::Client;
use crate::image::resolve::{Resolved, resolve};
use crate::image::{Digest, TagRef, media};
use crate::store::Store;
use anyhow::{Context, Result, bail};

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub dest: String,
    pub manifest: Digest,
    pub uploaded: usize,
    pub skipped: usize,
}

pub fn push(store: &Store, image: &str, dest: Option<&str>, tls_verify: bool) -> Result<Pushed> {
    let (img, tag) = match resolve(store, image)? {
        Resolved::Stored { image, tag } => (image, tag),
        Resolved::Host => bail!("the host image is the host's own root; it cannot be pushed"),
    };
    let dest_name = match (dest, &tag) {
        (Some(d), _) => d.to_owned(),
        (None, Some(t)) => t.clone(),
        (None, None) => {
            bail!("{image} has no name to push to: give a destination (REGISTRY/NAME:TAG)")
        }
    };
    let dest = TagRef::parse(&dest_name)?;
    let client = Client::new(&dest.registry, tls_verify)?;
    let repo = &dest.repository;
    let what = format!("registry {}, repository {repo}", dest.registry);
    let scope = format!("repository:{repo}:pull,push");
    let mut blobs: Vec<Digest> = img.layers.iter().map(|l| l.blob.clone()).collect();
    blobs.push(img.config_digest.clone());
    blobs.dedup();
    let (mut uploaded, mut skipped) = (0, 0);
    for d in &blobs {
        let head = client.request("HEAD", &format!("/v2/{repo}/blobs/{d}"), "", &scope)?;
        if head.status().as_u16() == 200 {
            skipped += 1;
            continue;
        }
        let file = store
            .open_blob(d)
            .with_context(|| format!("{what}: blob {d} of {image} is not in the store"))?;
        let start = client.request("POST", &format!("/v2/{repo}/blobs/uploads/"), "", &scope)?;
        let status = start.status().as_u16();
        if status != 202 {
            bail!("{what}: starting the upload of {d}: HTTP {status}");
        }
        let location = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .with_context(|| format!("{what}: the upload of {d} got no Location"))?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = client.upload(
            "PUT",
            &format!("{location}{sep}digest={d}"),
            "application/octet-stream",
            &file,
        )?;
        let status = put.status().as_u16();
        if status != 201 {
            bail!("{what}: uploading blob {d}: HTTP {status}");
        }
        uploaded += 1;
    }
    let doc: serde_json::Value = serde_json::from_slice(&img.manifest_bytes)?;
    let content_type = doc
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or(media::OCI_MANIFEST)
        .to_owned();
    let put = client.upload(
        "PUT",
        &format!("/v2/{repo}/manifests/{}", dest.tag),
        &content_type,
        &img.manifest_bytes[..],
    )?;
    let status = put.status().as_u16();
    if status != 201 {
        bail!(
            "{what}: storing the manifest as {}: HTTP {status}",
            dest.tag
        );
    }
    if let Some(theirs) = put
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        && theirs != img.manifest_digest.to_string()
    {
        bail!(
            "{what}: the registry stored the manifest as {theirs}, not {}",
            img.manifest_digest
        );
    }
    Ok(Pushed {
        dest: dest.to_string(),
        manifest: img.manifest_digest.clone(),
        uploaded,
        skipped,
    })
}
