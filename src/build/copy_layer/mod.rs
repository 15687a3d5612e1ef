//! The layer a `COPY` (or an `ADD` of context files) produces: an
//! uncompressed OCI layer tar, byte-for-byte reproducible, and its DiffID.
//!
//! `plan` maps the selected context entries ([`Context::select`]) to
//! layer paths by Docker's `COPY` rules (directory sources copy their
//! contents, a destination ending in `/` is a directory, several sources
//! need one, missing parents are created with mode 0755, sockets are
//! skipped, devices refused). `write` turns the plan into tar entries,
//! reading files through descriptors opened below the context root
//! without following symlinks.
//!
//! The bytes depend only on the selected entries and the options: entries
//! come sorted by the bytes of their path (so parents before children),
//! owners are the `--chown` numbers (0:0 by default) without names, modes
//! the files' own or the `--chmod` bits (files, directories and FIFOs;
//! symlinks are 0777; created parents 0755), times the files' whole-second
//! mtimes clamped to `SOURCE_DATE_EPOCH` when it is set (created parents
//! get the epoch, or 0), with no access or change times.
//!
//! Left to the executor: resolving `--chown` names to numbers, whether the
//! destination already is a directory in the image (Docker then copies a
//! single file into it: pass the destination with a trailing `/`), and
//! compressing the tar. Hard links between context files are written as
//! separate files.

mod plan;
mod write;

pub(crate) use write::open_file;

#[cfg(test)]
mod tests;

use crate::build::context::walk::{Context, Selection};
use crate::oci::digest::{Digest, Hasher};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The `COPY` flags that shape the layer, already resolved.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CopyOptions {
    /// `--chown`, as numbers; 0:0 when absent.
    pub(crate) chown: Option<(u32, u32)>,
    /// `--chmod`: the permission bits of every copied file and directory.
    pub(crate) chmod: Option<u32>,
    /// `SOURCE_DATE_EPOCH`: no entry's time is later than this.
    pub(crate) source_date_epoch: Option<i64>,
    /// Without `--chown`: the entries' own owners, not 0:0 (`COPY
    /// --from`, whose entries carry the stage's true owners).
    pub(crate) keep_owners: bool,
}

/// What a written COPY layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopyLayer {
    /// sha256 of the uncompressed tar.
    pub(crate) diff_id: Digest,
    /// The paths in the layer, relative to the image root, in tar order.
    pub(crate) paths: Vec<PathBuf>,
}

/// A writer that hashes what goes through it.
pub(crate) struct Hashing<W> {
    pub(crate) inner: W,
    pub(crate) hasher: Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the layer of `sources` copied to `dest` (as written, after
/// substitution; relative to `workdir` unless absolute) to `out`.
pub(crate) fn write_copy_layer<W: Write>(
    context: &Context,
    sources: &[Selection],
    dest: &str,
    workdir: &str,
    options: &CopyOptions,
    out: W,
) -> Result<(W, CopyLayer), String> {
    let plan = plan::plan(sources, dest, workdir)?;
    let (uid, gid) = options.chown.unwrap_or((0, 0));
    let stamp = write::Stamp {
        uid,
        gid,
        keep_owners: options.keep_owners && options.chown.is_none(),
        chmod: options.chmod,
        source_date_epoch: options.source_date_epoch,
    };
    let mut tar = tar::Builder::new(Hashing {
        inner: out,
        hasher: Hasher::default(),
    });
    write::write_plan(&mut tar, &plan, context.root(), &stamp)
        .map_err(|e| format!("COPY/ADD to `{dest}`: {e}"))?;
    let hashing = tar
        .into_inner()
        .map_err(|e| format!("COPY/ADD to `{dest}`: finishing the layer tar: {e}"))?;
    let paths = plan
        .keys()
        .map(|p| PathBuf::from(OsStr::from_bytes(p)))
        .collect();
    Ok((
        hashing.inner,
        CopyLayer {
            diff_id: hashing.hasher.finish(),
            paths,
        },
    ))
}
