//! Unpacked layers: one directory per DiffID, shared by every image using it.
//!
//! `layers/sha256/<diffid hex>/` holds `root/` (the layer's files in the
//! overlay format of `overlay::format`) and `meta.json`. A layer is unpacked
//! in `tmp/`, its DiffID verified, and renamed into place whole; a layer
//! directory without `meta.json` cannot exist outside `tmp/`.
//!
//! Layers are keyed by DiffID rather than ChainID: each layer is unpacked on
//! its own (the overlay stacks them), so its files do not depend on its parents.

use super::space::{is_no_space, is_no_space_io};
use super::{Store, StoreLock, pipe, unpack};
use crate::oci::Digest;
use crate::oci::compression::{self, Compression};
use crate::oci::digest::{HashingReader, TeeReader};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::PathBuf;

/// gzip level for the blob of an imported uncompressed tar. Measured on
/// the 128 MB Debian root filesystem tar (2-core VM, zlib-rs): storing it
/// plain took 2.2 s; level 1 makes a 63 MB blob, level 2 53 MB in 2.7 s,
/// level 6 50 MB in 3.2 s, level 9 49 MB in 7 s.
const IMPORT_GZIP_LEVEL: flate2::Compression = flate2::Compression::new(2);

/// What the store knows about an unpacked layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerMeta {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar in bytes.
    pub tar_size: u64,
    /// Number of tar entries unpacked.
    pub entries: u64,
    /// Bytes of regular file contents.
    pub file_bytes: u64,
}

impl Store {
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root().join("layers/sha256").join(diff_id.hex())
    }

    /// The directory holding the layer's files (a lower dir of the overlay).
    pub fn layer_root(&self, diff_id: &Digest) -> PathBuf {
        self.layer_dir(diff_id).join("root")
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).join("meta.json").is_file()
    }

    pub fn layer_meta(&self, diff_id: &Digest) -> Result<LayerMeta> {
        let path = self.layer_dir(diff_id).join("meta.json");
        let data = std::fs::read(&path).with_context(|| {
            format!(
                "reading layer {diff_id} metadata ({}); run `hutch check --store`",
                path.display()
            )
        })?;
        serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))
    }

    /// Every unpacked layer's DiffID.
    pub fn list_layers(&self) -> Result<Vec<Digest>> {
        let dir = self.root().join("layers/sha256");
        let mut out = Vec::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            if let Some(d) = entry?
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok())
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Hold this while unpacking `diff_id`, so two hutch processes loading
    /// the same image unpack each layer once. The locks are striped over 16
    /// fixed files: two different layers rarely share one, and when they do
    /// they are merely unpacked one after the other.
    fn lock_layer(&self, diff_id: &Digest) -> Result<StoreLock> {
        StoreLock::exclusive(&self.lock_path(&format!("layer-{}", &diff_id.hex()[..1])))
    }

    /// Store a layer whose blob `open_at(offset)` reads (as published,
    /// possibly compressed, from byte `offset` on): the blob goes to
    /// `blobs/` (checked against `blob`), and the layer is unpacked in the
    /// same pass (checked against `diff_id`). Work already done (blob
    /// present, layer present) is skipped. With `resumable`, the blob is
    /// written where a killed hutch's half download is found again, and
    /// only the rest is asked of `open_at`.
    pub fn ingest_layer<'r>(
        &self,
        open_at: impl FnOnce(u64) -> Result<Box<dyn Read + Send + 'r>>,
        resumable: bool,
        blob: &Digest,
        diff_id: &Digest,
    ) -> Result<LayerMeta> {
        self.ingest_layer_locked(open_at, resumable, blob, diff_id)
            .map_err(|e| self.explain_no_space(e, &format!("layer {diff_id} (blob {blob})")))
    }

    fn ingest_layer_locked<'r>(
        &self,
        open_at: impl FnOnce(u64) -> Result<Box<dyn Read + Send + 'r>>,
        resumable: bool,
        blob: &Digest,
        diff_id: &Digest,
    ) -> Result<LayerMeta> {
        let _guard = self.lock_layer(diff_id)?;
        let have_blob = self.has_blob(blob);
        if have_blob && self.has_layer(diff_id) {
            return self.layer_meta(diff_id);
        }
        if have_blob {
            let file = self.open_blob(blob)?;
            return self
                .unpack_verified(file, diff_id)
                .with_context(|| format!("unpacking layer blob {blob}"));
        }
        let (mut writer, have) = if resumable {
            self.resume_blob_writer(blob)?
        } else {
            (self.blob_writer()?, 0)
        };
        if have > 0 {
            tracing::info!("blob {blob}: resuming a download at byte {have}");
        }
        // The bytes a killed hutch already downloaded, then the rest.
        let done: Box<dyn Read + Send> = if have > 0 {
            let path = writer.tmp_path().to_owned();
            let f = std::fs::File::open(&path)
                .with_context(|| format!("reading the download file {}", path.display()))?;
            Box::new(f.take(have))
        } else {
            Box::new(std::io::empty())
        };
        let rest = open_at(have)?;
        if self.has_layer(diff_id) {
            let mut source = done.chain(rest);
            std::io::copy(&mut source, &mut writer)
                .with_context(|| format!("reading layer blob {blob}"))?;
            writer
                .commit(Some(blob))
                .with_context(|| format!("storing layer blob {blob}"))?;
            return self.layer_meta(diff_id);
        }
        let unpacked = {
            let mut source = done.chain(TeeReader::new(rest, &mut writer));
            let result = self.unpack_to_tmp(&mut source, Some(diff_id), Some(blob));
            // After a failed unpack, read the rest: if the whole blob can
            // be read, its digest says whether the data was damaged (then
            // that is the error, not the tar that could not be unpacked).
            let complete =
                result.is_err() && std::io::copy(&mut source, &mut std::io::sink()).is_ok();
            (result, complete)
        };
        let meta = match unpacked {
            (Ok(meta), _) => meta,
            (Err(e), false) => return Err(e),
            (Err(e), true) => return Err(failed_unpack(blob, e, writer.check(blob))),
        };
        writer
            .commit(Some(blob))
            .with_context(|| format!("storing layer blob {blob}"))?;
        // Publish the layer only once its blob is safely in place.
        self.publish_layer(meta)
    }

    fn unpack_verified(&self, blob: impl Read + Send, diff_id: &Digest) -> Result<LayerMeta> {
        let staged = self.unpack_to_tmp(blob, Some(diff_id), None)?;
        self.publish_layer(staged)
    }

    /// Store a layer whose digests are not known in advance (`hutch import`,
    /// `hutch build`): returns the blob digest and the layer's metadata.
    ///
    /// With `compress` (for an uncompressed tar), the blob is stored
    /// gzip-compressed, in the same pass: the unpacked layer already holds
    /// the content, and the blob is kept only for `save`, `push` and
    /// `check --store --repair` (which re-unpacks from it), so a second
    /// uncompressed copy would nearly double what an import costs on disk.
    pub fn ingest_layer_unknown(
        &self,
        source: impl Read + Send,
        compress: bool,
    ) -> Result<(Digest, LayerMeta)> {
        let ingest = || -> Result<(Digest, LayerMeta)> {
            let mut writer = self.blob_writer()?;
            let staged = if compress {
                let mut gz = flate2::write::GzEncoder::new(&mut writer, IMPORT_GZIP_LEVEL);
                let staged = self.unpack_to_tmp(TeeReader::new(source, &mut gz), None, None)?;
                gz.finish().context("compressing the layer blob")?;
                staged
            } else {
                self.unpack_to_tmp(TeeReader::new(source, &mut writer), None, None)?
            };
            let blob = writer.commit(None)?;
            Ok((blob, self.publish_layer(staged)?))
        };
        ingest().map_err(|e| self.explain_no_space(e, "the imported layer"))
    }

    /// Decompress and unpack `source` into a tmp dir; verify the DiffID
    /// when it is known.
    fn unpack_to_tmp(
        &self,
        source: impl Read + Send,
        diff_id: Option<&Digest>,
        blob: Option<&Digest>,
    ) -> Result<StagedLayer> {
        let what = match (diff_id, blob) {
            (Some(d), Some(b)) => format!("layer {d} (blob {b})"),
            (Some(d), None) => format!("layer {d}"),
            _ => "the layer".to_owned(),
        };
        let dir = self.tmp_path("layer");
        let root = dir.join("root");
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let mut staged = StagedLayer { dir, meta: None };
        // This thread creates the files; another reads, hashes and
        // decompresses (see `pipe`).
        let (tx, mut rx) = pipe::pipe();
        let (read, unpacked) = std::thread::scope(|scope| {
            let what = &what;
            let reader = scope.spawn(move || -> Result<_> {
                let (kind, decompressed) =
                    compression::decompress(source).with_context(|| format!("reading {what}"))?;
                let mut hashing = HashingReader::new(decompressed);
                // A failed read is a corrupt stream, unless it failed
                // storing the bytes (the blob is written as they are read).
                let why = |e: std::io::Error| {
                    let corrupt = !is_no_space_io(&e);
                    let e = anyhow::Error::new(e);
                    match corrupt {
                        true => e.context(format!(
                            "reading {what}: the {} stream is corrupt",
                            kind.name()
                        )),
                        false => e.context(format!("storing {what}")),
                    }
                };
                if !tx.pump(&mut hashing).map_err(why)? {
                    return Ok(None);
                }
                let (digest, len, _) = hashing.finish().map_err(why)?;
                Ok(Some((digest, len)))
            });
            let unpacked = unpack::unpack_layer(&mut rx, &root).and_then(|stats| {
                // The end of the tar is not the end of the stream (padding).
                std::io::copy(&mut rx, &mut std::io::sink())
                    .map(|_| stats)
                    .map_err(|e| unpack::UnpackError::Tar {
                        position: "at its end".into(),
                        cause: e,
                    })
            });
            drop(rx);
            let read = reader.join().unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "reading {what}: the reader thread panicked"
                ))
            });
            (read, unpacked)
        });
        // A broken stream explains a failed unpack better than the tar does.
        let read = read?;
        let stats = unpacked.with_context(|| format!("unpacking {what}"))?;
        let Some((actual, tar_size)) = read else {
            bail!("unpacking {what}: the unpack stopped before the end of the stream");
        };
        if let Some(diff_id) = diff_id
            && actual != *diff_id
        {
            bail!(
                "{what}: DiffID mismatch: the image config says {diff_id}, the uncompressed layer hashes to {actual}"
            );
        }
        let meta = LayerMeta {
            diff_id: actual,
            tar_size,
            entries: stats.entries,
            file_bytes: stats.file_bytes,
        };
        staged.meta = Some(meta);
        Ok(staged)
    }

    fn publish_layer(&self, mut staged: StagedLayer) -> Result<LayerMeta> {
        let meta = staged
            .meta
            .take()
            .context("publishing a layer that was not unpacked")?;
        let json = serde_json::to_vec_pretty(&meta)?;
        std::fs::write(staged.dir.join("meta.json"), json)
            .with_context(|| format!("writing metadata of layer {}", meta.diff_id))?;
        let dest = self.layer_dir(&meta.diff_id);
        match std::fs::rename(&staged.dir, &dest) {
            Ok(()) => {}
            // Someone else published it first: ours is redundant.
            Err(_) if self.has_layer(&meta.diff_id) => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("publishing layer {} at {}", meta.diff_id, dest.display())
                });
            }
        }
        Ok(meta)
    }
}

/// Why storing a layer failed, once its unpack stopped with `unpacked` and
/// the rest of the blob could be read: `check` says whether the blob's
/// bytes match its digest. A mismatch means the data arrived damaged,
/// unless either failure is a full disk (then the stored copy is short,
/// not the data bad).
fn failed_unpack(blob: &Digest, unpacked: anyhow::Error, check: Result<()>) -> anyhow::Error {
    match check {
        Err(c) if is_no_space(&c) => c,
        _ if is_no_space(&unpacked) => unpacked,
        Err(mismatch) => mismatch.context(format!(
            "layer blob {blob} arrived damaged (unpacking it stopped with: {})",
            unpacked.root_cause()
        )),
        Ok(()) => unpacked,
    }
}

/// A layer unpacked in tmp/; removed on drop unless it was renamed away.
struct StagedLayer {
    dir: PathBuf,
    meta: Option<LayerMeta>,
}

impl Drop for StagedLayer {
    fn drop(&mut self) {
        if let Err(e) = super::remove::remove_tree(&self.dir) {
            tracing::debug!("{e:#}");
        }
    }
}

/// Decompress a stored layer blob (used by save to write uncompressed layers).
pub fn open_decompressed(store: &Store, blob: &Digest) -> Result<(Compression, Box<dyn Read>)> {
    let file = store.open_blob(blob)?;
    compression::decompress(file).with_context(|| format!("reading layer blob {blob}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A gzip layer with one file, as (blob bytes, diff_id).
    fn layer() -> (Vec<u8>, Digest) {
        let mut tar = tar::Builder::new(Vec::new());
        let data = vec![7u8; 200_000];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "f", &data[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let diff_id = Digest::of(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        (gz.finish().unwrap(), diff_id)
    }

    #[test]
    fn a_full_disk_is_not_a_damaged_blob() {
        let blob = Digest::of(b"x");
        let full = || anyhow::Error::new(std::io::Error::from_raw_os_error(libc::ENOSPC));
        let mismatch = || anyhow::anyhow!("digest mismatch: expected a, the data hashes to b");
        let bad_tar = || anyhow::anyhow!("layer tar is malformed");
        // The unpack ran out of space; the blob copy lost bytes on the way.
        let e = failed_unpack(&blob, full().context("unpacking"), Err(mismatch()));
        assert!(is_no_space(&e), "{e:#}");
        assert!(!format!("{e:#}").contains("damaged"), "{e:#}");
        // The blob copy could not be flushed.
        let e = failed_unpack(&blob, bad_tar(), Err(full().context("flushing a blob")));
        assert!(is_no_space(&e), "{e:#}");
        assert!(!format!("{e:#}").contains("damaged"), "{e:#}");
        // Control: a real mismatch after a failed unpack is damaged data.
        let e = failed_unpack(&blob, bad_tar(), Err(mismatch()));
        assert!(format!("{e:#}").contains("arrived damaged"), "{e:#}");
        let e = failed_unpack(&blob, bad_tar(), Ok(()));
        assert_eq!(format!("{e:#}"), "layer tar is malformed");
    }

    #[test]
    fn a_half_download_left_by_a_killed_process_is_continued() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (blob_bytes, diff_id) = layer();
        let blob = Digest::of(&blob_bytes);
        let half = blob_bytes.len() / 2;
        std::fs::write(store.download_path(&blob), &blob_bytes[..half]).unwrap();
        let asked = std::sync::Mutex::new(None);
        let meta = store
            .ingest_layer(
                |offset| {
                    *asked.lock().unwrap() = Some(offset);
                    Ok(Box::new(std::io::Cursor::new(
                        blob_bytes[offset as usize..].to_vec(),
                    )))
                },
                true,
                &blob,
                &diff_id,
            )
            .unwrap();
        assert_eq!(*asked.lock().unwrap(), Some(half as u64));
        assert_eq!(meta.diff_id, diff_id);
        assert_eq!(store.read_blob(&blob).unwrap(), blob_bytes);
        assert!(store.has_layer(&diff_id));
        assert!(!store.download_path(&blob).exists());
    }

    #[test]
    fn a_corrupt_half_download_fails_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (blob_bytes, diff_id) = layer();
        let blob = Digest::of(&blob_bytes);
        let half = blob_bytes.len() / 2;
        let mut bad = blob_bytes[..half].to_vec();
        bad[half / 2] ^= 0xff;
        std::fs::write(store.download_path(&blob), &bad).unwrap();
        let open = |offset: u64| -> Result<Box<dyn Read + Send>> {
            Ok(Box::new(std::io::Cursor::new(
                blob_bytes[offset as usize..].to_vec(),
            )))
        };
        assert!(store.ingest_layer(open, true, &blob, &diff_id).is_err());
        assert!(!store.has_blob(&blob));
        assert!(!store.has_layer(&diff_id));
        assert_eq!(std::fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
        // The next attempt starts from the beginning and succeeds.
        store.ingest_layer(open, true, &blob, &diff_id).unwrap();
        assert!(store.has_layer(&diff_id));
    }
}
