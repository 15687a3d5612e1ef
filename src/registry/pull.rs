//! `hutch pull`: a manifest (through an index to the wanted platform) and
//! its config and layers from a registry into the store, verified while
//! they stream; the tag moves last, keeping its previous digest in its
//! history (so `hutch rollback` works for pulled images).

use super::client::Client;
use super::source::RegistrySource;
use crate::image::ingest::ingest_image;
use crate::image::oci_layout::resolve;
use crate::image::progress::Progress;
use crate::image::source::Source;
use crate::oci::Digest;
use crate::oci::platform::Platform;
use crate::oci::reference::parse_any;
use crate::store::Store;
use anyhow::{Context, Result, bail};

/// What a pull brought in.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image manifest stored (for an index: the platform's manifest).
    pub manifest: Digest,
    /// The tag that now points to it (none for a pull by digest).
    pub tag: Option<String>,
}

/// Where a reference points on its registry: the document it names (an
/// index or a manifest) and the platform's image manifest, resolved
/// without fetching any config or layer (`hutch lock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteImage {
    /// The digest the reference names (an index, or the manifest itself).
    pub top: Digest,
    /// The platform's image manifest.
    pub manifest: Digest,
}

/// The registry source of `input` and what it names.
struct Remote {
    tag: Option<crate::oci::TagRef>,
    repo: crate::oci::TagRef,
    src: RegistrySource,
    top: Digest,
    manifest: Digest,
    bytes: Vec<u8>,
}

fn open_remote(input: &str, platform: &Platform, tls_verify: Option<bool>) -> Result<Remote> {
    let (tag, digest) = parse_any(input)?;
    // NAME@DIGEST has no tag; its registry and repository come from NAME.
    let repo = match (&tag, input.split_once('@')) {
        (None, Some((name, _))) if !name.is_empty() => parse_any(name)?.0,
        _ => tag.clone(),
    };
    let Some(repo) = repo else {
        bail!("{input:?}: a pull needs a name (NAME[:TAG] or NAME@sha256:...)");
    };
    let tls_verify = super::config::tls_verify(&repo.registry, &repo.repository, tls_verify)?;
    let src = RegistrySource::new(
        Client::new(&repo.registry, tls_verify)?,
        repo.repository.clone(),
    );
    let reference = digest
        .as_ref()
        .map(|d| d.to_string())
        .unwrap_or_else(|| repo.tag.clone());
    let top = src.fetch_manifest(&reference)?;
    let top_digest = Digest::of(&top);
    if let Some(d) = &digest
        && *d != top_digest
    {
        bail!(
            "{}: digest mismatch for manifest {d}: the registry sent a document that hashes to {top_digest}",
            src.describe()
        );
    }
    src.remember(&top_digest, top);
    let desc = serde_json::json!({ "digest": top_digest.to_string() });
    let (manifest, bytes) = resolve(&src, &desc, platform, 0)?;
    Ok(Remote {
        tag,
        repo,
        src,
        top: top_digest,
        manifest,
        bytes,
    })
}

/// Resolve `input` on its registry for `platform`, fetching only
/// manifests.
pub fn resolve_remote(
    input: &str,
    platform: &Platform,
    tls_verify: Option<bool>,
) -> Result<RemoteImage> {
    let r = open_remote(input, platform, tls_verify)?;
    Ok(RemoteImage {
        top: r.top,
        manifest: r.manifest,
    })
}

pub fn pull(
    store: &Store,
    input: &str,
    platform: &Platform,
    tls_verify: Option<bool>,
    progress: &Progress,
) -> Result<Pulled> {
    let Remote {
        tag,
        repo,
        src,
        manifest,
        bytes,
        ..
    } = open_remote(input, platform, tls_verify)?;
    let reason = format!("pull {input}");
    store.all_or_nothing(|| {
        let stored = ingest_image(store, &src, &bytes, Some(&manifest), progress)?;
        remember_sources(
            store,
            &stored,
            &format!("{}/{}", repo.registry, repo.repository),
        );
        let name = tag.as_ref().map(|t| t.to_string());
        store
            .update_refs(|refs| {
                match &name {
                    Some(n) => {
                        refs.set_tag(n, &stored, &reason);
                    }
                    None => refs.add_untagged(&stored, &reason),
                }
                Ok(())
            })
            .context("recording the pulled image")?;
        Ok(Pulled {
            manifest: stored,
            tag: name,
        })
    })
}

/// Note that the registry repository holds the image's blobs, so a later
/// push to another repository there can mount them. A hint only: failing
/// to note it does not fail the pull.
fn remember_sources(store: &Store, manifest: &Digest, repository: &str) {
    let noted = crate::store::StoredImage::load(store, manifest).and_then(|img| {
        let mut blobs: Vec<Digest> = img.layers.iter().map(|l| l.blob.clone()).collect();
        blobs.push(img.config_digest);
        store.add_blob_sources(&blobs, repository)
    });
    if let Err(e) = noted {
        tracing::warn!("remembering where the pulled blobs came from: {e:#}");
    }
}
