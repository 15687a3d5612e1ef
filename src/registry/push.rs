//! `hutch push`: an image's blobs (config and layers, as stored) and then
//! its manifest to a registry. Blobs the registry has already are skipped
//! (HEAD); a blob that another repository of the same registry holds (as
//! the store remembers from pulls and pushes) is mounted from there; the
//! rest is uploaded, a few at a time, each as one monolithic PUT. The
//! manifest goes last, so a tag never points at missing data.

use super::client::Client;
use crate::image::progress::Progress;
use crate::image::resolve::{Resolved, resolve};
use crate::oci::{Digest, TagRef, media};
use crate::store::Store;
use anyhow::{Context, Result, bail};

/// Blobs uploaded at once.
const PARALLEL_UPLOADS: usize = 3;

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub dest: String,
    pub manifest: Digest,
    pub uploaded: usize,
    pub mounted: usize,
    pub skipped: usize,
}

/// How one blob reached the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Present,
    Mounted,
    Uploaded,
}

/// One push: the registry, the destination repository, the store.
struct Pusher<'a> {
    client: Client,
    store: &'a Store,
    registry: String,
    repo: String,
    /// For messages: "registry R, repository N".
    what: String,
    progress: &'a Progress,
}

pub fn push(
    store: &Store,
    image: &str,
    dest: Option<&str>,
    tls_verify: Option<bool>,
    progress: &Progress,
) -> Result<Pushed> {
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
    let tls_verify = super::config::tls_verify(&dest.registry, &dest.repository, tls_verify)?;
    let pusher = Pusher {
        client: Client::new(&dest.registry, tls_verify)?,
        store,
        registry: dest.registry.clone(),
        repo: dest.repository.clone(),
        what: format!("registry {}, repository {}", dest.registry, dest.repository),
        progress,
    };
    let mut blobs: Vec<(Digest, u64)> = img
        .layers
        .iter()
        .map(|l| (l.blob.clone(), l.size))
        .collect();
    blobs.push((img.config_digest.clone(), img.config_bytes.len() as u64));
    let mut seen = std::collections::HashSet::new();
    blobs.retain(|(d, _)| seen.insert(d.clone()));
    let outcomes = pusher.blobs(&blobs, image)?;
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    pusher.manifest(&img.manifest_bytes, &img.manifest_digest, &dest.tag)?;
    let all: Vec<Digest> = blobs.into_iter().map(|(d, _)| d).collect();
    if let Err(e) = store.add_blob_sources(&all, &format!("{}/{}", dest.registry, dest.repository))
    {
        tracing::warn!("remembering where the pushed blobs are: {e:#}");
    }
    Ok(Pushed {
        dest: dest.to_string(),
        manifest: img.manifest_digest.clone(),
        uploaded: count(Outcome::Uploaded),
        mounted: count(Outcome::Mounted),
        skipped: count(Outcome::Present),
    })
}

impl Pusher<'_> {
    fn scope(&self) -> String {
        format!("repository:{}:pull,push", self.repo)
    }

    /// Every blob into the registry, [`PARALLEL_UPLOADS`] at a time; the
    /// first failure stops the others from starting new ones.
    fn blobs(&self, blobs: &[(Digest, u64)], image: &str) -> Result<Vec<Outcome>> {
        crate::parallel::try_map(blobs, PARALLEL_UPLOADS, |(digest, size)| {
            self.blob(digest, *size, image)
        })
    }

    /// One blob: present already, mounted from another repository, or
    /// uploaded.
    fn blob(&self, d: &Digest, size: u64, image: &str) -> Result<Outcome> {
        let (repo, what, scope) = (&self.repo, &self.what, self.scope());
        let head = self
            .client
            .request("HEAD", &format!("/v2/{repo}/blobs/{d}"), "", &scope)
            .with_context(|| format!("{what}: asking for blob {d}"))?;
        if head.status().as_u16() == 200 {
            self.progress.skipped(d, "already in the registry");
            return Ok(Outcome::Present);
        }
        // A mount answers 201 (done) or 202 (an ordinary upload session,
        // when the registry cannot or will not mount).
        let prefix = format!("{}/", self.registry);
        let mut location = None;
        for from in self.store.blob_sources(d) {
            let Some(from) = from.strip_prefix(&prefix) else {
                continue;
            };
            if from == repo {
                continue;
            }
            let scopes = format!("{scope} repository:{from}:pull");
            let resp = self.client.request(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?mount={d}&from={from}"),
                "",
                &scopes,
            )?;
            match resp.status().as_u16() {
                201 => {
                    self.progress.skipped(d, &format!("mounted from {from}"));
                    return Ok(Outcome::Mounted);
                }
                202 => {
                    location = header(&resp, "location");
                    break;
                }
                _ => continue,
            }
        }
        let file = self
            .store
            .open_blob(d)
            .with_context(|| format!("{what}: blob {d} of {image} is not in the store"))?;
        let location = match location {
            Some(l) => l,
            None => {
                let start = self.client.request(
                    "POST",
                    &format!("/v2/{repo}/blobs/uploads/"),
                    "",
                    &scope,
                )?;
                let status = start.status().as_u16();
                if status != 202 {
                    bail!("{what}: starting the upload of {d}: HTTP {status}");
                }
                header(&start, "location")
                    .with_context(|| format!("{what}: the upload of {d} got no Location"))?
            }
        };
        let len = file
            .metadata()
            .with_context(|| format!("{what}: reading blob {d} in the store"))?
            .len();
        let shown = self.progress.blob(d, size.max(len), "pushed");
        let body = shown.wrap(Box::new(file), 0);
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = self.client.upload(
            "PUT",
            &format!("{location}{sep}digest={d}"),
            "application/octet-stream",
            Some(len),
            ureq::SendBody::from_owned_reader(body),
        );
        let status = put.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
        shown.finish(status == 201);
        let put = put?;
        if put.status().as_u16() != 201 {
            bail!("{what}: uploading blob {d}: HTTP {}", put.status().as_u16());
        }
        Ok(Outcome::Uploaded)
    }

    /// The manifest, under `tag`; the registry's digest for it must be ours.
    fn manifest(&self, bytes: &[u8], digest: &Digest, tag: &str) -> Result<()> {
        let what = &self.what;
        let doc: serde_json::Value = serde_json::from_slice(bytes)?;
        let content_type = doc
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or(media::OCI_MANIFEST)
            .to_owned();
        let put = self.client.upload(
            "PUT",
            &format!("/v2/{}/manifests/{tag}", self.repo),
            &content_type,
            Some(bytes.len() as u64),
            ureq::SendBody::from_reader(&mut &bytes[..]),
        )?;
        let status = put.status().as_u16();
        if status != 201 {
            bail!("{what}: storing the manifest as {tag}: HTTP {status}");
        }
        if let Some(theirs) = header(&put, "docker-content-digest")
            && theirs != digest.to_string()
        {
            bail!("{what}: the registry stored the manifest as {theirs}, not {digest}");
        }
        Ok(())
    }
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
