//! Blobs: manifests, configs and layer archives, stored under their sha256.
//!
//! A blob is written to `tmp/`, hashed while it streams in, checked against
//! the digest it was announced with, and only then renamed into
//! `blobs/sha256/<hex>`. A blob file in `blobs/` is therefore always complete
//! and correct (unless the disk itself lies, which `hutch check --store` finds).

use super::Store;
use crate::oci::Digest;
use crate::oci::digest::Hasher;
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
        let put = || -> Result<Digest> {
            let mut w = self.blob_writer()?;
            w.write_all(data).context("writing a blob to the store")?;
            w.commit(None)
        };
        put().map_err(|e| self.explain_no_space(e, "a blob (manifest or config)"))
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
            failed: None,
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
                failed: None,
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
///
/// A write that fails (a full disk) breaks the writer for good: later
/// writes, `check` and `commit` fail with the same error. Otherwise bytes
/// written after space came back would make a file that no longer matches
/// what was hashed, and a full disk would read as a damaged blob.
pub struct BlobWriter {
    store: Store,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
    hasher: Hasher,
    /// The first write error: its kind and text.
    failed: Option<(io::ErrorKind, String)>,
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

    /// Whether what was written hashes to `expected`, without publishing
    /// it (the file goes away with the writer).
    pub fn check(mut self, expected: &Digest) -> Result<()> {
        self.flush().context("flushing a blob")?;
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
        self.flush().context("flushing a blob")?;
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

impl BlobWriter {
    /// The error of an earlier failed write, again.
    fn earlier_failure(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, text)) => Err(io::Error::new(
                *kind,
                format!("an earlier write to the blob failed: {text}"),
            )),
            None => Ok(()),
        }
    }

    /// Remember the first failure.
    fn note<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r
            && e.kind() != io::ErrorKind::Interrupted
            && self.failed.is_none()
        {
            self.failed = Some((e.kind(), e.to_string()));
        }
        r
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.earlier_failure()?;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob already committed"))?;
        let n = file.write(buf);
        let n = self.note(n)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.earlier_failure()?;
        let r = match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        };
        self.note(r)
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

    #[test]
    fn a_full_disk_breaks_the_writer_and_is_not_a_digest_mismatch() {
        use crate::store::space::is_no_space;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // /dev/full answers every write with ENOSPC. The writer's file is a
        // symlink to it, so removing "the temporary file" removes the link.
        let link = store.tmp_path("blob");
        std::os::unix::fs::symlink("/dev/full", &link).unwrap();
        let writer = || BlobWriter {
            store: store.clone(),
            tmp: link.clone(),
            file: Some(BufWriter::with_capacity(
                1024,
                std::fs::OpenOptions::new().write(true).open(&link).unwrap(),
            )),
            hasher: Hasher::default(),
            failed: None,
        };
        let data = vec![1u8; 4096];
        let expected = Digest::of(&data);
        let mut w = writer();
        let first = w.write_all(&data).unwrap_err();
        assert_eq!(first.kind(), io::ErrorKind::StorageFull);
        // Sticky: a later small write that would fit in the buffer fails too.
        assert_eq!(
            w.write(b"x").unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
        let err = w.check(&expected).unwrap_err();
        assert!(is_no_space(&err), "{err:#}");
        assert!(!format!("{err:#}").contains("mismatch"), "{err:#}");
        // Buffered bytes that fail only when flushed at commit: the same.
        std::os::unix::fs::symlink("/dev/full", &link).unwrap();
        let mut w = writer();
        w.write_all(b"small").unwrap();
        let err = w.commit(Some(&expected)).unwrap_err();
        assert!(is_no_space(&err), "{err:#}");
        assert!(!format!("{err:#}").contains("mismatch"), "{err:#}");
        assert!(
            !link.exists() && std::fs::symlink_metadata(&link).is_err(),
            "the link is gone"
        );
        assert!(std::path::Path::new("/dev/full").exists());
        assert!(store.list_blobs().unwrap().is_empty());
    }
}
