//! `--pull`: whether the image is pulled before a run, and what a failed
//! pull says.

use crate::image::resolve::{HOST_IMAGE, resolve};
use crate::store::Store;
use anyhow::Result;

/// When to pull the image first (`--pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PullPolicy {
    /// When it is not in the store.
    Missing,
    Always,
    Never,
}

/// Whether `e`, from resolving an image in the store, says that the store
/// does not have it (rather than that the store is damaged or the name is
/// bad): only then does `--pull missing` pull. The one place that decides
/// it, by the message until image resolving has a typed error.
pub(crate) fn image_is_missing(e: &anyhow::Error) -> bool {
    e.to_string().starts_with("no image")
}

/// Pull `image` before the run as `policy` says (never the `host` image).
/// A pull that was only tried because the image is missing reports both
/// facts when it fails.
pub(crate) fn pull_first(
    store: &Store,
    image: &str,
    policy: PullPolicy,
    tls_verify: Option<bool>,
) -> Result<()> {
    if image == HOST_IMAGE || policy == PullPolicy::Never {
        return Ok(());
    }
    let missing = match resolve(store, image) {
        Ok(_) => false,
        Err(e) if policy == PullPolicy::Missing => {
            if !image_is_missing(&e) {
                return Err(e);
            }
            true
        }
        Err(_) => true,
    };
    if policy == PullPolicy::Missing && !missing {
        return Ok(());
    }
    let platform = crate::image::platform::Platform::host();
    let progress = crate::image::progress::Progress::for_stderr(false);
    match crate::registry::pull::pull(store, image, &platform, tls_verify, &progress) {
        Ok(p) => {
            eprintln!("Pulled {} ({})", p.tag.as_deref().unwrap_or(image), p.manifest);
            Ok(())
        }
        Err(e) if missing => Err(e.context(format!(
            "{image} is not in the store and pulling it failed (`--pull never` runs only what the store has)"
        ))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_image_is_pulled_for() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let Err(e) = resolve(&store, "surely-not-here:1") else {
            panic!("an empty store has no image");
        };
        assert!(image_is_missing(&e), "{e:#}");
        assert!(!image_is_missing(&anyhow::anyhow!(
            "reading the store: I/O error"
        )));
    }
}
