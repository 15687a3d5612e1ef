//! `--pull`: whether the image is pulled before a run, and what a failed
//! pull says.

use crate::image::resolve::{HOST_IMAGE, ResolveError, resolve};
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
            // Only a missing image is pulled for, not a damaged store or
            // a bad name.
            if !ResolveError::is_not_found(&e) {
                return Err(e);
            }
            true
        }
        Err(_) => true,
    };
    if policy == PullPolicy::Missing && !missing {
        return Ok(());
    }
    let platform = crate::oci::platform::Platform::host();
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
