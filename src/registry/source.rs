//! A repository in a registry as an image [`Source`]: blob paths map to
//! the distribution API (`/v2/NAME/blobs/DIGEST`, or `/manifests/DIGEST`
//! for manifests and indexes, which registries keep apart), so the store's
//! ingest (verification while streaming, parallel layers, skipping what the
//! store has) is the same as for archives.

use super::client::Client;
use crate::image::source::Source;
use anyhow::{Result, bail};
use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

/// Every manifest and index media type hutch reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

pub struct RegistrySource {
    pub client: Client,
    pub repository: String,
    /// Documents already fetched (by hex digest), served from memory.
    fetched: Mutex<HashMap<String, Vec<u8>>>,
}

impl RegistrySource {
    pub fn new(client: Client, repository: String) -> RegistrySource {
        RegistrySource {
            client,
            repository,
            fetched: Mutex::new(HashMap::new()),
        }
    }

    /// Keep a document fetched by tag, so that reading it again by its
    /// digest costs no request.
    pub fn remember(&self, digest: &crate::image::Digest, bytes: Vec<u8>) {
        if let Ok(mut f) = self.fetched.lock() {
            f.insert(digest.hex().to_owned(), bytes);
        }
    }

    pub fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    /// GET `/v2/REPO/{kind}/{reference}`; a clear error unless 200.
    pub fn get(&self, kind: &str, reference: &str) -> Result<ureq::Body> {
        let path = format!("/v2/{}/{kind}/{reference}", self.repository);
        let accept = if kind == "manifests" {
            MANIFEST_ACCEPT
        } else {
            ""
        };
        let resp = self.client.request("GET", &path, accept, &self.scope())?;
        match resp.status().as_u16() {
            200 => Ok(resp.into_body()),
            404 => bail!(
                "{}: {reference} not found (HTTP 404 for {kind})",
                self.describe()
            ),
            401 | 403 => bail!(
                "{}: access to {reference} denied (HTTP {})",
                self.describe(),
                resp.status().as_u16()
            ),
            s => bail!("{}: HTTP {s} for {kind}/{reference}", self.describe()),
        }
    }
}

impl Source for RegistrySource {
    fn describe(&self) -> String {
        format!(
            "registry {}, repository {}",
            self.client.registry, self.repository
        )
    }

    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>> {
        let Some(hex) = path.strip_prefix("blobs/sha256/") else {
            bail!("{}: no file {path} in a registry", self.describe());
        };
        if let Some(bytes) = self.fetched.lock().ok().and_then(|f| f.get(hex).cloned()) {
            return Ok(Box::new(std::io::Cursor::new(bytes)));
        }
        let digest = format!("sha256:{hex}");
        let body = match self.get("blobs", &digest) {
            Ok(b) => b,
            // Manifests and indexes are not blobs to most registries.
            Err(blob_err) => self.get("manifests", &digest).map_err(|_| blob_err)?,
        };
        Ok(Box::new(body.into_reader()))
    }

    fn exists(&self, path: &str) -> bool {
        // Blobs are looked up when opened (a missing one is an error then);
        // layout files (oci-layout, manifest.json) do not exist here.
        path.starts_with("blobs/sha256/")
    }
}
