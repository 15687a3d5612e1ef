//! Where image files are read from when loading: a directory (OCI layout,
//! extracted docker-archive) or a tar archive read in place through an index
//! of its members (no extraction, no copy).

use crate::error::printable;
use crate::image::sniff::{BLOCK, is_tar_start, not_tar, read_head};
use crate::oci::Digest;
use crate::oci::compression::{self, Compression};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Largest manifest, index or config hutch reads into memory.
pub const MAX_DOCUMENT: u64 = 8 * 1024 * 1024;

pub trait Source: Sync {
    /// For messages: "OCI archive busybox.tar".
    fn describe(&self) -> String;
    /// Open a member by its path inside the image (`blobs/sha256/...`, `index.json`).
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>>;
    fn exists(&self, path: &str) -> bool;

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>> {
        self.open(&format!("blobs/sha256/{}", digest.hex()))
            .with_context(|| format!("{}: blob {digest} is missing", self.describe()))
    }

    /// A blob from byte `offset` on (to finish a download that a killed
    /// hutch left half done). Local sources skip the first bytes.
    fn open_blob_at(&self, digest: &Digest, offset: u64) -> Result<Box<dyn Read + Send + '_>> {
        let mut r = self.open_blob(digest)?;
        let skipped = std::io::copy(&mut r.by_ref().take(offset), &mut std::io::sink())
            .with_context(|| format!("{}: reading blob {digest}", self.describe()))?;
        if skipped < offset {
            bail!(
                "{}: blob {digest} is shorter than {offset} bytes",
                self.describe()
            );
        }
        Ok(r)
    }

    /// Whether half-done copies of this source's blobs are worth keeping
    /// across a killed hutch (downloads are; local reads are cheap).
    fn resumable(&self) -> bool {
        false
    }

    /// How many blobs to read at once: a local source is bound by the
    /// CPUs that decompress and unpack, a registry by round trips.
    fn concurrency(&self) -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    }

    /// A manifest or index by digest, verified.
    fn read_manifest(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.read_verified(digest, "manifest")
    }

    /// Read a small member (JSON documents), refusing anything too large.
    fn read_small(&self, path: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open(path)?
            .take(MAX_DOCUMENT + 1)
            .read_to_end(&mut out)
            .with_context(|| format!("{}: reading {path}", self.describe()))?;
        if out.len() as u64 > MAX_DOCUMENT {
            bail!(
                "{}: {path} is larger than {} MiB; refusing it as a manifest or config",
                self.describe(),
                MAX_DOCUMENT >> 20
            );
        }
        Ok(out)
    }

    /// Read a small blob and check that it hashes to its digest.
    fn read_verified(&self, digest: &Digest, what: &str) -> Result<Vec<u8>> {
        let path = format!("blobs/sha256/{}", digest.hex());
        if !self.exists(&path) {
            bail!("{}: the {what} blob {digest} is missing", self.describe());
        }
        let data = self.read_small(&path)?;
        let actual = Digest::of(&data);
        if actual != *digest {
            bail!(
                "{}: digest mismatch for the {what}: expected {digest}, the data hashes to {actual}",
                self.describe()
            );
        }
        Ok(data)
    }
}

/// `e` with its text made printable (the tar crate's messages quote header
/// bytes and member names) and its kind kept (a full disk stays one).
pub fn escaped(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), printable(&e.to_string(), 200))
}

/// Members of a directory.
pub struct DirSource {
    pub root: PathBuf,
    pub label: String,
}

/// Reject member paths that could leave the directory.
fn clean_member(path: &str) -> Result<&str> {
    let p = path.trim_start_matches("./");
    if p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == "..") {
        bail!("refusing the member path {path:?}: it leaves the image directory");
    }
    Ok(p)
}

impl Source for DirSource {
    fn describe(&self) -> String {
        self.label.clone()
    }
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>> {
        let full = self.root.join(clean_member(path)?);
        let f = File::open(&full)
            .with_context(|| format!("{}: opening {}", self.label, full.display()))?;
        Ok(Box::new(f))
    }
    fn exists(&self, path: &str) -> bool {
        clean_member(path)
            .map(|p| self.root.join(p).is_file())
            .unwrap_or(false)
    }
}

/// Members of an uncompressed tar file, read in place.
pub struct TarSource {
    path: PathBuf,
    label: String,
    members: HashMap<String, (u64, u64)>,
}

impl TarSource {
    /// Index the regular files of the tar at `path` (headers only; data is skipped by seeking).
    pub fn open(path: &Path, label: String) -> Result<TarSource> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let entries = archive
            .entries_with_seek()
            .with_context(|| format!("{label}: not a tar archive"))?;
        for entry in entries {
            // The tar crate's messages quote header bytes: escape them.
            let entry = entry
                .map_err(escaped)
                .with_context(|| format!("{label}: the archive is corrupt or truncated"))?;
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind == tar::EntryType::Continuous) {
                continue;
            }
            let name = entry
                .path()
                .map_err(escaped)
                .with_context(|| format!("{label}: a member has an unreadable name"))?;
            let name = name.to_string_lossy().trim_start_matches("./").to_owned();
            let size = entry.size();
            let offset = entry.raw_file_position();
            members.insert(name, (offset, size));
        }
        // The data of the last member must really be there (a truncated
        // archive can still have complete headers).
        let len = std::fs::metadata(path)?.len();
        if let Some((name, (off, size))) = members.iter().find(|(_, (o, s))| o + s > len) {
            bail!(
                "{label}: the archive is truncated: member {name} needs bytes {off}..{} of {len}",
                off + size
            );
        }
        Ok(TarSource {
            path: path.to_owned(),
            label,
            members,
        })
    }
}

impl Source for TarSource {
    fn describe(&self) -> String {
        self.label.clone()
    }
    fn open(&self, path: &str) -> Result<Box<dyn Read + Send + '_>> {
        let key = clean_member(path)?;
        let &(offset, size) = self
            .members
            .get(key)
            .with_context(|| format!("{}: no member {key} in the archive", self.label))?;
        let mut f =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(f.take(size)))
    }
    fn exists(&self, path: &str) -> bool {
        clean_member(path)
            .map(|p| self.members.contains_key(p))
            .unwrap_or(false)
    }
}

/// Open an image archive or directory (`shown` in messages: its path, or
/// "standard input" for a copy of it). A compressed archive (`docker save
/// | gzip`) is unpacked to `scratch` first, since tar members cannot be
/// read in place through a compressor.
pub fn open_any(path: &Path, shown: &str, scratch: &Path) -> Result<Box<dyn Source>> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {shown}"))?;
    if meta.is_dir() {
        return Ok(Box::new(DirSource {
            root: path.to_owned(),
            label: format!("image directory {shown}"),
        }));
    }
    let mut head =
        std::io::BufReader::new(File::open(path).with_context(|| format!("opening {shown}"))?);
    let kind = Compression::sniff(&mut head).with_context(|| format!("reading {shown}"))?;
    // What is not a tar at all is said so, rather than whatever the tar
    // reader makes of its bytes.
    let start = match kind {
        Compression::None => read_head(head, BLOCK),
        _ => compression::decompress(head).and_then(|(_, r)| read_head(r, BLOCK)),
    }
    .map_err(escaped)
    .with_context(|| {
        format!(
            "{shown} is not an image archive: reading it as {} data failed",
            kind.name()
        )
    })?;
    if !is_tar_start(&start) {
        bail!(
            "{shown} is not an image archive: {}; `hutch load` takes an OCI archive, an OCI \
             layout directory or a docker-archive (from `hutch save`, `podman save` or \
             `docker save`), plain or gzip/zstd compressed",
            not_tar(kind)
        );
    }
    match kind {
        Compression::None => Ok(Box::new(TarSource::open(path, format!("archive {shown}"))?)),
        kind => {
            let (_, reader) = compression::decompress(File::open(path)?)?;
            std::fs::create_dir_all(scratch)?;
            let mut archive = tar::Archive::new(reader);
            for entry in archive
                .entries()
                .with_context(|| format!("{shown}: not a {} tar archive", kind.name()))?
            {
                let mut entry = entry.map_err(escaped).with_context(|| {
                    format!(
                        "{shown}: the {} archive is corrupt or truncated",
                        kind.name()
                    )
                })?;
                if entry.header().entry_type().is_file() || entry.header().entry_type().is_dir() {
                    // unpack_in refuses members that would land outside `scratch`.
                    entry
                        .unpack_in(scratch)
                        .map_err(escaped)
                        .with_context(|| format!("{shown}: extracting a member"))?;
                }
            }
            Ok(Box::new(DirSource {
                root: scratch.to_owned(),
                label: format!("archive {shown}"),
            }))
        }
    }
}
