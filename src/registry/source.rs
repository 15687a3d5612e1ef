//! A repository in a registry as an image [`Source`]: blobs come from
//! `/v2/NAME/blobs/DIGEST` (resumable, see `download`), manifests and
//! indexes from `/v2/NAME/manifests/REF` (registries keep them apart), so
//! the store's ingest (verification while streaming, parallel layers,
//! skipping what the store has) is the same as for archives.

use super::client::Client;
use super::download::{BlobEndpoint, BlobStream};
use super::error::RegistryError;
use crate::image::source::{MAX_DOCUMENT, Source};
use crate::oci::Digest;
use anyhow::{Context, Result, bail};
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
    pub fn remember(&self, digest: &Digest, bytes: Vec<u8>) {
        if let Ok(mut f) = self.fetched.lock() {
            f.insert(digest.hex().to_owned(), bytes);
        }
    }

    pub fn scope(&self) -> String {
        format!("repository:{}:pull", self.repository)
    }

    /// GET with more `headers`; a clear error unless 200, 206 or 416.
    pub fn get_with(
        &self,
        kind: &str,
        reference: &str,
        headers: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let path = format!("/v2/{}/{kind}/{reference}", self.repository);
        let accept = if kind == "manifests" {
            MANIFEST_ACCEPT
        } else {
            ""
        };
        let mut all = vec![("Accept", accept)];
        all.extend_from_slice(headers);
        let resp = self
            .client
            .request_with("GET", &path, &all, &self.scope())
            .with_context(|| format!("{}: fetching {kind}/{reference}", self.describe()))?;
        let status = resp.status().as_u16();
        // 416: a Range from the blob's very end (see `download`).
        if matches!(status, 200 | 206 | 416) {
            return Ok(resp);
        }
        let (repository, kind, reference) =
            (self.describe(), kind.to_owned(), reference.to_owned());
        Err(match status {
            404 => RegistryError::NotFound {
                repository,
                kind,
                reference,
            },
            401 | 403 => RegistryError::Denied {
                repository,
                reference,
                status,
            },
            _ => RegistryError::Status {
                repository,
                kind,
                reference,
                status,
            },
        }
        .into())
    }

    /// A manifest or index by tag or digest: at most [`MAX_DOCUMENT`]
    /// bytes, answered as one of the manifest media types hutch asked for.
    pub fn fetch_manifest(&self, reference: &str) -> Result<Vec<u8>> {
        let resp = self.get_with("manifests", reference, &[])?;
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        // application/json: old registries; the document's own mediaType
        // (checked when it is parsed) then says what it is.
        let known = MANIFEST_ACCEPT.split(", ").any(|t| t == content_type)
            || content_type == "application/json";
        if !known {
            bail!(
                "{}: manifest {reference} came back with Content-Type {:?}, which is not a \
                 manifest media type (is this a registry, or a proxy or login page in front of \
                 it?)",
                self.describe(),
                content_type
            );
        }
        let mut out = Vec::new();
        resp.into_body()
            .into_reader()
            .take(MAX_DOCUMENT + 1)
            .read_to_end(&mut out)
            .with_context(|| format!("{}: reading manifest {reference}", self.describe()))?;
        if out.len() as u64 > MAX_DOCUMENT {
            bail!(
                "{}: manifest {reference} is larger than {} MiB; refusing it",
                self.describe(),
                MAX_DOCUMENT >> 20
            );
        }
        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&out)
            && let Some(declared) = doc.get("mediaType").and_then(|m| m.as_str())
            && content_type != "application/json"
            && declared != content_type
        {
            bail!(
                "{}: manifest {reference} says its media type is {declared} but came back \
                 with Content-Type {content_type}",
                self.describe()
            );
        }
        Ok(out)
    }
}

impl BlobEndpoint for RegistrySource {
    fn endpoint(&self) -> String {
        Source::describe(self)
    }

    fn get_blob(
        &self,
        digest: &Digest,
        headers: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>> {
        self.get_with("blobs", &digest.to_string(), headers)
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
        let digest = Digest::from_hex(hex)
            .map_err(|e| anyhow::anyhow!("{}: {path}: {e}", self.describe()))?;
        self.open_blob_at(&digest, 0)
    }

    fn open_blob_at(&self, digest: &Digest, offset: u64) -> Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(BlobStream::new(self, digest.clone(), offset)))
    }

    fn resumable(&self) -> bool {
        true
    }

    /// As many downloads at once as Podman's default (6), or more on a
    /// machine with more CPUs to unpack them.
    fn concurrency(&self) -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(6)
    }

    fn read_manifest(&self, digest: &Digest) -> Result<Vec<u8>> {
        let cached = self
            .fetched
            .lock()
            .ok()
            .and_then(|f| f.get(digest.hex()).cloned());
        let bytes = match cached {
            Some(b) => b,
            None => self.fetch_manifest(&digest.to_string())?,
        };
        let actual = Digest::of(&bytes);
        if actual != *digest {
            bail!(
                "{}: digest mismatch for manifest {digest}: the registry sent a document that \
                 hashes to {actual}",
                self.describe()
            );
        }
        Ok(bytes)
    }

    fn exists(&self, path: &str) -> bool {
        // Blobs are looked up when opened (a missing one is an error then);
        // layout files (oci-layout, manifest.json) do not exist here.
        path.starts_with("blobs/sha256/")
    }
}
