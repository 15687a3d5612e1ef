//! A full file system (or an exhausted quota) while writing to the store,
//! told as such: it must never read as a damaged download or a corrupt
//! archive, which would send the user after the wrong problem.

use super::Store;
use super::unpack::UnpackError;
use std::io;
use std::path::PathBuf;

/// The store could not be written because its file system is full.
#[derive(Debug, thiserror::Error)]
#[error(
    "no space left on device while writing {what} to the store at {}; free space on that \
     file system (`hutch prune` removes what no image uses) or put the store on a larger \
     one (--root DIR or HUTCH_ROOT)",
    root.display()
)]
pub struct NoSpace {
    pub what: String,
    pub root: PathBuf,
}

/// Whether an I/O error means "no space" (ENOSPC) or "quota exhausted" (EDQUOT).
pub fn is_no_space_io(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Whether anything in `e`'s chain is a full file system (an I/O error,
/// an errno, or an unpack error carrying one).
pub fn is_no_space(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            return is_no_space_io(io);
        }
        if let Some(errno) = c.downcast_ref::<rustix::io::Errno>() {
            return matches!(*errno, rustix::io::Errno::NOSPC | rustix::io::Errno::DQUOT);
        }
        match c.downcast_ref::<UnpackError>() {
            Some(
                UnpackError::Io { cause, .. }
                | UnpackError::Tar { cause, .. }
                | UnpackError::NotTar { cause }
                | UnpackError::Destination { cause, .. },
            ) => is_no_space_io(cause),
            _ => false,
        }
    })
}

/// Whether `e` already says the store is full.
fn is_explained(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<NoSpace>())
}

impl Store {
    /// `e` as a [`NoSpace`] error about writing `what` when it is one, else
    /// unchanged. The details (which file, which call) are left out: with
    /// a full disk they do not matter, and they would read like a fault of
    /// the input.
    pub fn explain_no_space(&self, e: anyhow::Error, what: &str) -> anyhow::Error {
        if is_no_space(&e) && !is_explained(&e) {
            tracing::debug!("{what}: {e:#}");
            anyhow::Error::new(NoSpace {
                what: what.to_owned(),
                root: self.root().to_owned(),
            })
        } else {
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_full_disk_is_recognised_through_contexts_and_unpack_errors() {
        let full = || io::Error::from_raw_os_error(libc::ENOSPC);
        let cases: Vec<anyhow::Error> = vec![
            anyhow::Error::new(full()),
            anyhow::Error::new(io::Error::from(io::ErrorKind::StorageFull)),
            anyhow::Error::new(io::Error::from_raw_os_error(libc::EDQUOT)),
            // Kind kept, text replaced (as `source::escaped` does).
            anyhow::Error::new(io::Error::new(io::ErrorKind::StorageFull, "x")),
            Err::<(), _>(full())
                .context("writing a blob")
                .context("loading")
                .unwrap_err(),
            anyhow::Error::new(UnpackError::Io {
                path: "bin/busybox".into(),
                op: "writing the file",
                cause: full(),
            })
            .context("unpacking layer"),
            anyhow::Error::new(rustix::io::Errno::NOSPC),
        ];
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for e in cases {
            assert!(is_no_space(&e), "{e:#}");
            let told = store.explain_no_space(e, "layer blob sha256:ab");
            let m = format!("{told:#}");
            assert!(
                m.starts_with(
                    "no space left on device while writing layer blob sha256:ab to the store at "
                ),
                "{m}"
            );
            assert!(m.contains(&dir.path().display().to_string()), "{m}");
            // Explained once, not twice.
            let again = format!("{:#}", store.explain_no_space(told, "other"));
            assert_eq!(again, m);
        }
        // Controls: other errors pass unchanged.
        for e in [
            anyhow::Error::new(io::Error::from(io::ErrorKind::UnexpectedEof)),
            anyhow::anyhow!("digest mismatch"),
            anyhow::Error::new(io::Error::from_raw_os_error(libc::EIO)),
        ] {
            assert!(!is_no_space(&e), "{e:#}");
            let before = format!("{e:#}");
            assert_eq!(format!("{:#}", store.explain_no_space(e, "x")), before);
        }
    }
}
