//! Blobs: manifests, configs and layer archives, stored under their sha256.
//!
//! A blob is written to `tmp/`, hashed while it streams in, checked against
//! the digest it was announced with, and only then renamed into
//! `blobs/sha256/<hex>`. A blob file in `blobs/` is therefore always complete
//! and correct (unless the disk itself lies, which `hutch check --store` finds).

use super::Store;
use crate::image::Digest;
use crate::image::digest::Hasher;
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

impl Store {
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root().join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).with_context(|| {
            format!(
                "opening blob {digest} ({}); run `hutch check --store` if the store is damaged",
                path.display()
            )
        })
    }

    /// Read a small blob (manifest, config) whole.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        std::fs::read(&path).with_context(|| {
            format!(
                "reading blob {digest} ({}); run `hutch check --store` if the store is damaged",
                path.display()
            )
        })
    }

    /// Store `data` as a blob and return its digest.
    pub fn put_blob(&self, data: &[u8]) -> Result<Digest> {
        let mut w = self.blob_writer()?;
        w.write_all(data).context("writing a blob to the store")?;
        w.commit(None)
    }

    /// Start writing a blob whose digest is checked on commit.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let path = self.tmp_path("blob");
        let file = File::create(&path)
            .with_context(|| format!("creating a temporary blob file {}", path.display()))?;
        Ok(BlobWriter {
            store: self.clone(),
            tmp: path,
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
            hasher: Hasher::default(),
        })
    }

    /// Start or continue the download of blob `expected`: the bytes go to
    /// `tmp/download-<hex>`, a name the next pull finds again if this hutch
    /// is killed, so it can ask the registry for the rest only. Returns the
    /// writer (positioned at the end, the bytes already there hashed) and
    /// how many bytes it holds. The caller holds the layer's lock, so one
    /// process at a time writes the file. Dropped without `commit` (a
    /// failed pull), the file is removed like any other.
    pub fn resume_blob_writer(&self, expected: &Digest) -> Result<(BlobWriter, u64)> {
        let path = self.download_path(expected);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("opening the download file {}", path.display()))?;
        let mut hasher = Hasher::default();
        let have = io::copy(&mut file, &mut hasher)
            .with_context(|| format!("reading the download file {}", path.display()))?;
        Ok((
            BlobWriter {
                store: self.clone(),
                tmp: path,
                file: Some(BufWriter::with_capacity(256 * 1024, file)),
                hasher,
            },
            have,
        ))
    }

    /// Where a download of `digest` is kept until it is complete.
    pub fn download_path(&self, digest: &Digest) -> PathBuf {
        self.tmp_dir().join(format!("download-{}", digest.hex()))
    }

    /// Every blob digest present in the store.
    pub fn list_blobs(&self) -> Result<Vec<Digest>> {
        let dir = self.root().join("blobs/sha256");
        let mut out = Vec::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let entry = entry?;
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        Ok(out)
    }
}

/// A blob being written. Dropped without `commit`, it leaves nothing behind.
pub struct BlobWriter {
    store: Store,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
    hasher: Hasher,
}

impl BlobWriter {
    /// The file the blob is written to until it is committed.
    pub fn tmp_path(&self) -> &std::path::Path {
        &self.tmp
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Whether what was written hashes to `expected`, without publishing
    /// it (the file goes away with the writer).
    pub fn check(mut self, expected: &Digest) -> Result<()> {
        if let Some(file) = self.file.as_mut() {
            file.flush().context("flushing a blob")?;
        }
        let len = self.len();
        let digest = std::mem::take(&mut self.hasher).finish();
        if digest != *expected {
            bail!(
                "digest mismatch: expected {expected}, the data hashes to {digest} ({len} bytes)"
            );
        }
        Ok(())
    }

    /// Finish the blob: check it against `expected` (when given) and publish it.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<Digest> {
        let result = self.publish(expected);
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }

    fn publish(&mut self, expected: Option<&Digest>) -> Result<Digest> {
        let file = self.file.take().context("a blob was committed twice")?;
        // No fsync: a killed process loses nothing that reached the page
        // cache; after a power loss `hutch check --store` finds torn blobs.
        file.into_inner()
            .map_err(|e| e.into_error())
            .context("flushing a blob")?;
        let len = self.len();
        let digest = std::mem::take(&mut self.hasher).finish();
        if let Some(expected) = expected
            && *expected != digest
        {
            bail!(
                "digest mismatch: expected {expected}, the data hashes to {digest} ({len} bytes)"
            );
        }
        let dest = self.store.blob_path(&digest);
        std::fs::rename(&self.tmp, &dest)
            .with_context(|| format!("publishing blob {digest} at {}", dest.display()))?;
        Ok(digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob already committed"))?;
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_round_trip_and_mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store.put_blob(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");

        let mut w = store.blob_writer().unwrap();
        w.write_all(b"other").unwrap();
        let err = w.commit(Some(&d)).unwrap_err().to_string();
        assert!(err.contains("digest mismatch"), "{err}");
        assert!(!store.has_blob(&Digest::of(b"other")));
        assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        assert_eq!(store.list_blobs().unwrap(), vec![d]);
    }
}
