//! `hutch lock`: the project's image references (the environment's and
//! the services' images, and the base images of their builds, as their
//! Containerfiles name them with the manifest's build args) resolved to a
//! manifest digest for the host's platform and every platform of
//! `platforms = [...]`, written to `hutch.lock` with the hashes of what
//! the lock was made from.
//!
//! A reference is resolved on its registry, fetching manifests only. A
//! `localhost/...` image exists only in the local store (built or
//! committed here): it is pinned to its stored digest for the host's
//! platform, with a warning that others cannot pull it.

use super::lock::{EnvRootfs, Inputs, Lock, Mode, resolve};
use super::manifest::{BuildSpec, ImageSource, Manifest, ProfileChoice};
use crate::build::containerfile;
use crate::build::stages::{Base, FromRef, Stages, from_flags};
use crate::image::rootfs_digest::{Difference, RootfsDigest, first_difference_of};
use crate::oci::Digest;
use crate::oci::platform::Platform;
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};

/// What `hutch lock` was asked for.
#[derive(Debug, Clone)]
pub(crate) struct LockRequest {
    pub(crate) root: PathBuf,
    pub(crate) mode: Mode,
    pub(crate) tls_verify: Option<bool>,
}

/// What `hutch lock` did.
#[derive(Debug, Clone)]
pub(crate) struct Locked {
    pub(crate) lock: Lock,
    /// Whether hutch.lock was (re)written.
    pub(crate) written: bool,
}

/// The image references of a build: every FROM image and `--from` image
/// of its Containerfile.
pub(crate) fn build_references(root: &Path, b: &BuildSpec) -> Result<Vec<String>> {
    let path = root.join(&b.containerfile);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the Containerfile {}", path.display()))?;
    let shown = path.display().to_string();
    let file = containerfile::parse(&text).map_err(|e| anyhow!("{shown}:{e}"))?;
    let stages = Stages::new(&file, &b.args).map_err(|e| anyhow!("{shown}:{e}"))?;
    let mut out = Vec::new();
    for stage in &stages.stages {
        if let Base::Image(name) = &stage.base {
            out.push(name.clone());
        }
        for step in &stage.steps {
            for from in from_flags(&step.instruction) {
                if let FromRef::Image(name) = stages
                    .resolve_from(from, stage.index, step.line)
                    .map_err(|e| anyhow!("{shown}:{e}"))?
                {
                    out.push(name);
                }
            }
        }
    }
    Ok(out)
}

/// Every image reference of the project, sorted, without repeats.
pub(crate) fn references(m: &Manifest) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let sources = std::iter::once(&m.env.source).chain(m.services.values().map(|s| &s.source));
    for source in sources {
        match source {
            ImageSource::Image(r) => out.push(r.clone()),
            ImageSource::Build(b) => out.extend(build_references(&m.root, b)?),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The environment's profile (`[env] profile`: a name or a file).
pub(crate) fn env_profile(m: &Manifest) -> Result<crate::profile::Profile> {
    let name = match &m.env.profile {
        ProfileChoice::Name(n) => n.clone(),
        ProfileChoice::File(p) => p.to_string_lossy().into_owned(),
    };
    crate::profile::load(&name).context("loading the environment's profile")
}

/// The hashes a lock records, for the manifest at hand.
pub(crate) fn inputs(m: &Manifest) -> Result<Inputs> {
    let profile = env_profile(m)?;
    let bytes = serde_json::to_vec(&profile).context("encoding the profile")?;
    Ok(Inputs {
        manifest: m.hash(),
        profile: Digest::of(&bytes),
        setup: m.setup_hash(),
    })
}

/// The platforms a lock pins: the host's and the manifest's, as
/// `os/arch[/variant]`.
pub(crate) fn platforms(m: &Manifest) -> Vec<String> {
    let mut out = vec![Platform::host().to_string()];
    out.extend(m.platforms.iter().map(|p| p.to_string()));
    out.sort();
    out.dedup();
    out
}

/// Run `hutch lock`.
pub(crate) fn lock(store: &crate::store::Store, req: &LockRequest) -> Result<Locked> {
    let m = Manifest::load(&req.root)?;
    let refs = references(&m)?;
    let platforms = platforms(&m);
    let inputs = inputs(&m)?;
    let previous = match Lock::read(&req.root) {
        Ok(p) => p,
        // A damaged lock is written again by --update; otherwise it stops.
        Err(e) if matches!(req.mode, Mode::Update(_)) => {
            tracing::warn!("{e:#}");
            None
        }
        Err(e) => return Err(e),
    };
    if req.mode == Mode::Frozen {
        let Some(p) = &previous else {
            bail!(
                "--frozen: {} has no hutch.lock; run `hutch lock` and commit it",
                req.root.display()
            );
        };
        if let Some(why) = p.stale(&inputs) {
            bail!("--frozen: {why}");
        }
    }
    let host = Platform::host().to_string();
    let tls = req.tls_verify;
    let mut resolver = |reference: &str, platform: &str| -> Result<Digest> {
        let p = Platform::parse(platform)?;
        match crate::registry::pull::resolve_remote(reference, &p, tls) {
            Ok(r) => Ok(r.manifest),
            Err(remote) => local_only(store, reference, platform == host).ok_or(remote),
        }
    };
    let mode = match &req.mode {
        Mode::Update(names) => Mode::Update(update_names(&m, &refs, names)?),
        other => other.clone(),
    };
    let mut lock = resolve(
        &refs,
        &platforms,
        &inputs,
        previous.as_ref(),
        &mode,
        &mut resolver,
    )?;
    lock.env = env_rootfs(store, &m, &lock, previous.as_ref(), &req.mode, tls)?;
    let written = previous.as_ref() != Some(&lock);
    if written && req.mode != Mode::Frozen {
        lock.write(&req.root)?;
    }
    Ok(Locked { lock, written })
}

/// `--update NAME...`: each NAME an image reference of the project, or
/// `env` or a service's name for the references of that section (its
/// image, or its build's base images).
fn update_names(m: &Manifest, refs: &[String], names: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for name in names {
        if refs.contains(name) {
            out.push(name.clone());
            continue;
        }
        let source = match name.as_str() {
            "env" => Some(&m.env.source),
            service => m.services.get(service).map(|s| &s.source),
        };
        match source {
            Some(ImageSource::Image(r)) => out.push(r.clone()),
            Some(ImageSource::Build(b)) => out.extend(build_references(&m.root, b)?),
            None => bail!(
                "hutch lock --update {name}: no image of this project is written {name:?} and no \
                 section is called so (its images: {}; its sections: env{})",
                refs.join(", "),
                m.services
                    .keys()
                    .map(|s| format!(", {s}"))
                    .collect::<String>()
            ),
        }
    }
    Ok(out)
}

/// A `localhost/` image of the store, for the host's platform: its stored
/// digest (others cannot pull it: warned).
fn local_only(store: &crate::store::Store, reference: &str, host: bool) -> Option<Digest> {
    let (tag, _) = crate::oci::reference::parse_any(reference).ok()?;
    if !host || tag?.registry != "localhost" {
        return None;
    }
    match crate::image::resolve::resolve(store, reference).ok()? {
        crate::image::resolve::Resolved::Stored { image, .. } => {
            eprintln!(
                "hutch: warning: {reference} is a local image (built or committed here): \
                 hutch.lock pins it, but only this store has it; push it to a registry to \
                 share the environment"
            );
            Some(image.manifest_digest.clone())
        }
        crate::image::resolve::Resolved::Host => None,
    }
}

/// The environment's image as pinned for the host, pulled by its digest
/// if the store lacks it, and its rootfs digest; the previous lock's when
/// it names the same pinned image (nothing pulled). `None` for an
/// environment built from a Containerfile (not recorded yet).
fn env_rootfs(
    store: &crate::store::Store,
    m: &Manifest,
    lock: &Lock,
    previous: Option<&Lock>,
    mode: &Mode,
    tls: Option<bool>,
) -> Result<Option<EnvRootfs>> {
    let ImageSource::Image(reference) = &m.env.source else {
        return Ok(None);
    };
    let host = Platform::host().to_string();
    let pinned = lock
        .pinned(reference, &host)
        .with_context(|| format!("internal error: {reference} is not pinned for {host}"))?;
    if let Some(prev) = previous.and_then(|p| p.env.as_ref())
        && prev.image == pinned
        && prev.rootfs_version == crate::image::rootfs_digest::ROOTFS_DIGEST_VERSION
    {
        return Ok(Some(prev.clone()));
    }
    if *mode == Mode::Frozen {
        bail!(
            "--frozen: hutch.lock has no rootfs digest of {pinned}; run `hutch lock` and commit \
             hutch.lock"
        );
    }
    // Held while the layers are read (gc removes none of them meanwhile).
    let _shared = store.lock_shared()?;
    let tree = pinned_rootfs(store, &pinned, tls)?;
    keep_index(store, &tree);
    Ok(Some(EnvRootfs {
        image: pinned,
        rootfs: tree.digest.to_string(),
        rootfs_version: crate::image::rootfs_digest::ROOTFS_DIGEST_VERSION,
    }))
}

/// Keep the entry list of `tree` (a lock's) in the store, so that a
/// `hutch verify` finding another tree can name where they differ. Not
/// kept is only warned about: the lock or the check is still right.
fn keep_index(store: &crate::store::Store, tree: &RootfsDigest) {
    if let Err(e) = crate::image::rootfs_digest::save_index(store, tree) {
        tracing::warn!(
            "keeping the entry list of {} in the store: {e:#} (`hutch verify` will not name \
             the first path that differs from it)",
            tree.digest
        );
    }
}

/// The rootfs digest of `NAME@DIGEST` and its entries, pulled (verified by
/// its digest) when the store lacks it.
pub(crate) fn pinned_rootfs(
    store: &crate::store::Store,
    pinned: &str,
    tls: Option<bool>,
) -> Result<RootfsDigest> {
    crate::run::pull_policy::pull_first(
        store,
        pinned,
        crate::run::pull_policy::PullPolicy::Missing,
        tls,
    )?;
    match crate::image::resolve::resolve(store, pinned)? {
        crate::image::resolve::Resolved::Stored { image, .. } => {
            crate::image::rootfs_digest::image_rootfs_digest(store, &image)
        }
        crate::image::resolve::Resolved::Host => bail!("{pinned} is not an image"),
    }
}

/// What `hutch verify` of a project found.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub(crate) image: String,
    pub(crate) expected: String,
    pub(crate) found: Digest,
    /// When the digests differ: where the trees do.
    pub(crate) mismatch: Option<Mismatch>,
}

/// Where the environment's tree differs from the one hutch.lock records.
#[derive(Debug, Clone)]
pub(crate) enum Mismatch {
    /// The first difference, hutch.lock's tree first (`only in hutch.lock's
    /// tree` / `only in the environment's`).
    At(Difference),
    /// The store holds no (good) entry list of hutch.lock's tree: the lock
    /// was made with another store, or this store's layers changed since.
    Unlisted,
    /// The store's entry list of hutch.lock's tree is the environment's
    /// own: it is not that tree's list (never written so; damaged in a way
    /// its checksum missed).
    ListAgrees,
}

/// Compare `found` with the tree whose rootfs digest is `expected`, as
/// far as the store's entry list of it allows.
fn mismatch(store: &crate::store::Store, expected: &str, found: &RootfsDigest) -> Mismatch {
    let Some(listed) = Digest::parse(expected)
        .ok()
        .and_then(|d| crate::image::rootfs_digest::load_index(store, &d))
    else {
        return Mismatch::Unlisted;
    };
    match first_difference_of(
        &listed,
        "hutch.lock's tree",
        &found.entries,
        "the environment's",
    ) {
        Some(d) => Mismatch::At(d),
        None => Mismatch::ListAgrees,
    }
}

/// `hutch verify` of the project at `root`: its environment's root
/// filesystem, pulled by the lock's pin if missing, digested and compared
/// with the lock's. A missing or stale lock stops it with the fix.
pub(crate) fn verify(
    store: &crate::store::Store,
    root: &Path,
    tls: Option<bool>,
) -> Result<Verified> {
    let m = Manifest::load(root)?;
    let Some(lock) = Lock::read(root)? else {
        bail!(
            "{} has no hutch.lock; run `hutch lock` first",
            root.display()
        );
    };
    if let Some(why) = lock.stale(&inputs(&m)?) {
        bail!("{why}");
    }
    let Some(env) = &lock.env else {
        bail!(
            "hutch.lock records no rootfs digest of the environment (an environment built from \
             a Containerfile is not verified yet); `hutch lock --update` records it for an image"
        );
    };
    if env.rootfs_version != crate::image::rootfs_digest::ROOTFS_DIGEST_VERSION {
        bail!(
            "hutch.lock's rootfs digest is of version {} (this hutch computes version {}); \
             `hutch lock --update` records it again",
            env.rootfs_version,
            crate::image::rootfs_digest::ROOTFS_DIGEST_VERSION
        );
    }
    let _shared = store.lock_shared()?;
    let found = pinned_rootfs(store, &env.image, tls)?;
    let mismatch = if found.digest.as_str() == env.rootfs {
        // The lock's tree: kept, for a later verify that finds another.
        keep_index(store, &found);
        None
    } else {
        Some(mismatch(store, &env.rootfs, &found))
    };
    Ok(Verified {
        image: env.image.clone(),
        expected: env.rootfs.clone(),
        found: found.digest,
        mismatch,
    })
}
