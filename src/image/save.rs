//! `hutch save`: write a stored image as an OCI archive, an OCI layout
//! directory or a docker-archive. OCI outputs carry the stored blobs byte for
//! byte, so the manifest digest is the one `hutch inspect` shows; a
//! docker-archive has no manifest, and carries the same config (image ID)
//! and uncompressed layers with the same DiffIDs.
//!
//! Output appears atomically: it is written beside the target under a
//! temporary name and renamed into place when complete.

use crate::image::oci_layout::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};
use crate::oci::{Digest, media};
use crate::store::Store;
use crate::store::StoredImage;
use crate::store::layers::open_decompressed;
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    OciArchive,
    DockerArchive,
    OciDir,
}

/// Where output goes while it is written.
fn temp_beside(target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .with_context(|| format!("{} has no file name", target.display()))?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok(parent.join(format!(
        ".{}.{}",
        name.to_string_lossy(),
        crate::store::unique_name("hutch-tmp")
    )))
}

pub fn save(
    store: &Store,
    image: &StoredImage,
    names: &[String],
    target: &Path,
    format: Format,
) -> Result<()> {
    let tmp = temp_beside(target)?;
    let result = match format {
        Format::OciDir => write_oci_dir(store, image, names, target, &tmp),
        Format::OciArchive => {
            write_archive(&tmp, target, |b| write_oci_tar(store, image, names, b))
        }
        Format::DockerArchive => {
            write_archive(&tmp, target, |b| write_docker_tar(store, image, names, b))
        }
    };
    if result.is_err() && tmp.exists() {
        let _ = if tmp.is_dir() {
            std::fs::remove_dir_all(&tmp)
        } else {
            std::fs::remove_file(&tmp)
        };
    }
    result.with_context(|| {
        format!(
            "saving image {} to {}",
            image.manifest_digest,
            target.display()
        )
    })
}

/// Write the image as an archive to `out` (standard output): it streams,
/// so a failure half-way leaves the reader a truncated archive, and the
/// error says so (without the end-of-archive marker that would make it
/// look complete). An OCI layout directory cannot be streamed.
pub fn save_to_writer(
    store: &Store,
    image: &StoredImage,
    names: &[String],
    out: impl Write,
    format: Format,
) -> Result<()> {
    if format == Format::OciDir {
        bail!("--format oci-dir writes a directory: give it with -o DIR");
    }
    let gate = Gate {
        inner: BufWriter::with_capacity(1 << 20, out),
        open: true,
    };
    let mut builder = tar::Builder::new(gate);
    let written = match format {
        Format::OciArchive => write_oci_tar(store, image, names, &mut builder),
        _ => write_docker_tar(store, image, names, &mut builder),
    };
    let result = match written {
        Ok(()) => builder
            .into_inner()
            .and_then(|mut g| g.inner.flush())
            .map_err(anyhow::Error::from),
        Err(e) => {
            // Dropping the builder would end the archive properly.
            builder.get_mut().open = false;
            Err(e)
        }
    };
    result.with_context(|| {
        format!(
            "saving image {} to standard output (what was written is incomplete)",
            image.manifest_digest
        )
    })
}

/// A writer that can be shut, so nothing more reaches the output.
struct Gate<W: Write> {
    inner: W,
    open: bool,
}

impl<W: Write> Write for Gate<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.open {
            true => self.inner.write(buf),
            false => Err(std::io::Error::other("the output was abandoned")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.open {
            true => self.inner.flush(),
            false => Ok(()),
        }
    }
}

fn write_archive(
    tmp: &Path,
    target: &Path,
    fill: impl FnOnce(&mut tar::Builder<BufWriter<File>>) -> Result<()>,
) -> Result<()> {
    let file = File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut builder = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
    fill(&mut builder)?;
    let out = builder.into_inner()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(tmp, target)
        .with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))
}

fn index_json(image: &StoredImage, names: &[String]) -> Result<Vec<u8>> {
    let mt = image
        .manifest
        .media_type()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_else(|| media::OCI_MANIFEST.to_owned());
    let mut entries = Vec::new();
    let base = serde_json::json!({
        "mediaType": mt, "digest": image.manifest_digest, "size": image.manifest_bytes.len(),
    });
    if names.is_empty() {
        entries.push(base.clone());
    }
    for name in names {
        let mut e = base.clone();
        e["annotations"] =
            serde_json::json!({ANNOTATION_REF_NAME: name, ANNOTATION_CONTAINERD_NAME: name});
        entries.push(e);
    }
    Ok(serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": entries,
    }))?)
}

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn all_blobs(image: &StoredImage) -> Vec<Digest> {
    let mut blobs = vec![image.manifest_digest.clone(), image.config_digest.clone()];
    for l in &image.layers {
        if !blobs.contains(&l.blob) {
            blobs.push(l.blob.clone());
        }
    }
    blobs
}

fn write_oci_dir(
    store: &Store,
    image: &StoredImage,
    names: &[String],
    target: &Path,
    tmp: &Path,
) -> Result<()> {
    if target.exists()
        && std::fs::read_dir(target)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not an empty directory; choose a new path",
            target.display()
        );
    }
    let blob_dir = tmp.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir)
        .with_context(|| format!("creating {}", blob_dir.display()))?;
    for d in all_blobs(image) {
        // copy, not link: editing the output must never change the store.
        std::fs::copy(store.blob_path(&d), blob_dir.join(d.hex()))
            .with_context(|| format!("copying blob {d}"))?;
    }
    std::fs::write(tmp.join("oci-layout"), OCI_LAYOUT)?;
    std::fs::write(tmp.join("index.json"), index_json(image, names)?)?;
    if target.exists() {
        std::fs::remove_dir(target)?;
    }
    std::fs::rename(tmp, target)
        .with_context(|| format!("renaming {} to {}", tmp.display(), target.display()))
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn append_bytes<W: Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8]) -> Result<()> {
    b.append_data(&mut header(data.len() as u64, 0o644), path, data)?;
    Ok(())
}

fn append_dir<W: Write>(b: &mut tar::Builder<W>, path: &str) -> Result<()> {
    let mut h = header(0, 0o755);
    h.set_entry_type(tar::EntryType::Directory);
    b.append_data(&mut h, path, std::io::empty())?;
    Ok(())
}

fn write_oci_tar<W: Write>(
    store: &Store,
    image: &StoredImage,
    names: &[String],
    b: &mut tar::Builder<W>,
) -> Result<()> {
    append_bytes(b, "oci-layout", OCI_LAYOUT)?;
    append_bytes(b, "index.json", &index_json(image, names)?)?;
    append_dir(b, "blobs/")?;
    append_dir(b, "blobs/sha256/")?;
    for d in all_blobs(image) {
        let file = store.open_blob(&d)?;
        let len = file.metadata()?.len();
        b.append_data(
            &mut header(len, 0o644),
            format!("blobs/sha256/{}", d.hex()),
            file,
        )
        .with_context(|| format!("writing blob {d}"))?;
    }
    Ok(())
}

fn write_docker_tar<W: Write>(
    store: &Store,
    image: &StoredImage,
    names: &[String],
    b: &mut tar::Builder<W>,
) -> Result<()> {
    let config_name = format!("{}.json", image.config_digest.hex());
    append_bytes(b, &config_name, &image.config_bytes)?;
    let mut layer_names = Vec::new();
    for l in &image.layers {
        let name = format!("{}.tar", l.diff_id.hex());
        if layer_names.contains(&name) {
            layer_names.push(name);
            continue;
        }
        let meta = store.layer_meta(&l.diff_id)?;
        let (_, reader) = open_decompressed(store, &l.blob)?;
        // The header needs the size up front; a store whose blob no longer
        // decompresses to that size is damaged, and the tar would be corrupt.
        let mut exact = ExactSize {
            inner: reader,
            left: meta.tar_size,
            what: l.diff_id.clone(),
        };
        b.append_data(&mut header(meta.tar_size, 0o644), &name, &mut exact)
            .with_context(|| format!("writing layer {}", l.diff_id))?;
        exact.check_end()?;
        layer_names.push(name);
    }
    let manifest =
        serde_json::json!([{"Config": config_name, "RepoTags": names, "Layers": layer_names}]);
    append_bytes(b, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    Ok(())
}

/// A reader that must yield exactly `left` bytes.
struct ExactSize<R> {
    inner: R,
    left: u64,
    what: Digest,
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let max = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 && self.left > 0 {
            return Err(std::io::Error::other(format!(
                "layer {} is {} bytes shorter than recorded; run `hutch check --store`",
                self.what, self.left
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl<R: Read> ExactSize<R> {
    fn check_end(&mut self) -> Result<()> {
        let mut probe = [0u8; 1];
        if self.inner.read(&mut probe)? != 0 {
            bail!(
                "layer {} is longer than recorded; run `hutch check --store`",
                self.what
            );
        }
        Ok(())
    }
}
