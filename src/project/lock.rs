//! `hutch.lock`: every image reference of a project pinned to a digest per
//! platform, and the hashes of what the lock was made from, so a lock made
//! from another `hutch.toml` (or another profile, or other setup commands)
//! is known to be stale.
//!
//! The file is TOML in a stable order (tables and keys sorted), so a
//! change to the lock shows as a small diff:
//!
//! ```toml
//! # hutch.lock: written by `hutch lock`; commit it, do not edit it.
//! version = 1
//! manifest = "sha256:..."   # hutch.toml (Manifest::hash)
//! profile = "sha256:..."    # the environment's resolved profile
//! setup = "sha256:..."      # the setup commands
//!
//! [images."docker.io/library/debian:bookworm"]
//! "linux/amd64" = "sha256:..."
//! "linux/arm64" = "sha256:..."
//! ```
//!
//! An image's digest per platform is the platform's image manifest (what
//! `hutch pull NAME@DIGEST` then fetches and verifies), whatever the
//! registry's tag says later.
//!
//! [`resolve`] makes a lock: it keeps the pins of a previous lock for the
//! references still used (so `hutch lock` after an edit only resolves what
//! is new), resolves again the ones `--update` names (all of them with an
//! empty list), and with `frozen` resolves nothing: a reference or platform
//! the previous lock lacks is then an error naming it.

use crate::oci::Digest;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The lock format this hutch writes and reads.
pub(crate) const LOCK_VERSION: u32 = 1;

/// The file's name in a project's root.
pub(crate) const LOCK_FILE: &str = "hutch.lock";

const HEADER: &str = "# hutch.lock: written by `hutch lock`; commit it, do not edit it.\n";

/// The whole lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Lock {
    pub(crate) version: u32,
    /// The hash of the hutch.toml it was made from.
    pub(crate) manifest: String,
    /// The hash of the environment's resolved profile.
    pub(crate) profile: String,
    /// The hash of the setup commands.
    pub(crate) setup: String,
    /// The environment's root filesystem, for `hutch verify` (an
    /// environment built from a Containerfile has none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) env: Option<EnvRootfs>,
    /// Reference as written -> platform (`os/arch[/variant]`) -> manifest
    /// digest.
    #[serde(default)]
    pub(crate) images: BTreeMap<String, BTreeMap<String, String>>,
}

/// `[env]` of the lock: the environment's image as pinned for the host's
/// platform and its rootfs digest (`image::rootfs_digest`, of that
/// version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnvRootfs {
    /// `NAME@DIGEST`.
    pub(crate) image: String,
    pub(crate) rootfs: String,
    pub(crate) rootfs_version: u32,
}

/// What the lock was made from, to compare with a lock on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inputs {
    pub(crate) manifest: Digest,
    pub(crate) profile: Digest,
    pub(crate) setup: Digest,
}

impl Lock {
    /// Read `dir/hutch.lock`; `None` when there is none.
    pub(crate) fn read(dir: &Path) -> Result<Option<Lock>> {
        let path = dir.join(LOCK_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Lock::parse(&text, &path.display().to_string()).map(Some)
    }

    /// Parse a lock's text; errors name `source` and the line.
    pub(crate) fn parse(text: &str, source: &str) -> Result<Lock> {
        let lock: Lock = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => anyhow::anyhow!(
                    "{source}:{l}: {}; `hutch lock --update` writes the lock again",
                    e.message()
                ),
                None => anyhow::anyhow!(
                    "{source}: {}; `hutch lock --update` writes the lock again",
                    e.message()
                ),
            }
        })?;
        if lock.version != LOCK_VERSION {
            bail!(
                "{source}: lock format version {} (this hutch reads version {LOCK_VERSION}); \
                 `hutch lock --update` writes it again",
                lock.version
            );
        }
        for (reference, platforms) in &lock.images {
            for (platform, digest) in platforms {
                if Digest::parse(digest).is_err() {
                    bail!("{source}: image {reference} ({platform}): {digest:?} is not a digest");
                }
            }
        }
        Ok(lock)
    }

    /// The file's text: the header comment and the lock, keys sorted.
    pub(crate) fn to_text(&self) -> Result<String> {
        let body = toml::to_string(self).context("writing the lock as TOML")?;
        Ok(format!("{HEADER}{body}"))
    }

    /// Write `dir/hutch.lock` atomically.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(LOCK_FILE);
        let tmp = dir.join(format!(".{LOCK_FILE}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, self.to_text()?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| {
            let _ = std::fs::remove_file(&tmp);
            format!("writing {}", path.display())
        })
    }

    /// `reference` pinned for `platform`: `NAME@DIGEST`.
    pub(crate) fn pinned(&self, reference: &str, platform: &str) -> Option<String> {
        let digest = self.images.get(reference)?.get(platform)?;
        let name = reference.split('@').next().unwrap_or(reference);
        Some(format!("{name}@{digest}"))
    }

    /// Why this lock does not fit `inputs` (None: it does), with the
    /// command that fixes it.
    pub(crate) fn stale(&self, inputs: &Inputs) -> Option<String> {
        let mut changed = Vec::new();
        if self.manifest != inputs.manifest.as_str() {
            changed.push("hutch.toml");
        }
        if self.profile != inputs.profile.as_str() {
            changed.push("the environment's profile");
        }
        if self.setup != inputs.setup.as_str() {
            changed.push("the setup commands");
        }
        (!changed.is_empty()).then(|| {
            format!(
                "hutch.lock is stale: {} changed since it was written; run `hutch lock` \
                 (it keeps the pinned images; `hutch lock --update` resolves them again)",
                changed.join(", ")
            )
        })
    }
}

/// How `hutch lock` treats the pins of the previous lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Keep them; resolve only what the previous lock lacks.
    Keep,
    /// Resolve again these references (all with an empty list).
    Update(Vec<String>),
    /// Resolve nothing: what the previous lock lacks is an error (CI).
    Frozen,
}

/// Make the lock of `references` for `platforms`, from `previous` as
/// `mode` says; `resolver` finds a reference's manifest digest for a
/// platform on its registry.
pub(crate) fn resolve(
    references: &[String],
    platforms: &[String],
    inputs: &Inputs,
    previous: Option<&Lock>,
    mode: &Mode,
    resolver: &mut dyn FnMut(&str, &str) -> Result<Digest>,
) -> Result<Lock> {
    if let Mode::Update(names) = mode {
        for n in names {
            if !references.contains(n) {
                bail!(
                    "hutch lock --update {n}: no image of this project is written {n:?} \
                     (its images: {})",
                    references.join(", ")
                );
            }
        }
    }
    let mut images = BTreeMap::new();
    for reference in references {
        let renew = match mode {
            Mode::Update(names) => names.is_empty() || names.contains(reference),
            _ => false,
        };
        let mut pins = BTreeMap::new();
        for platform in platforms {
            let kept = previous
                .filter(|_| !renew)
                .and_then(|p| p.images.get(reference))
                .and_then(|m| m.get(platform));
            let digest = match (kept, mode) {
                (Some(d), _) => d.clone(),
                (None, Mode::Frozen) => bail!(
                    "--frozen: hutch.lock pins no digest of {reference} for {platform}; \
                     run `hutch lock` and commit hutch.lock"
                ),
                (None, _) => resolver(reference, platform)
                    .with_context(|| format!("locking {reference} for {platform}"))?
                    .to_string(),
            };
            pins.insert(platform.clone(), digest);
        }
        images.insert(reference.clone(), pins);
    }
    Ok(Lock {
        version: LOCK_VERSION,
        manifest: inputs.manifest.to_string(),
        profile: inputs.profile.to_string(),
        setup: inputs.setup.to_string(),
        env: None,
        images,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(m: &str) -> Inputs {
        Inputs {
            manifest: Digest::of(m.as_bytes()),
            profile: Digest::of(b"dev"),
            setup: Digest::of(b""),
        }
    }

    fn refs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// A resolver answering a digest of "REF PLATFORM GENERATION" and
    /// counting its calls.
    fn resolver(
        generation: u32,
        calls: &mut Vec<String>,
    ) -> impl FnMut(&str, &str) -> Result<Digest> + '_ {
        move |r, p| {
            calls.push(format!("{r} {p}"));
            Ok(Digest::of(format!("{r} {p} {generation}").as_bytes()))
        }
    }

    #[test]
    fn round_trip_in_a_stable_order() {
        let mut calls = Vec::new();
        let lock = resolve(
            &refs(&["zeta:1", "alpha:2"]),
            &refs(&["linux/arm64", "linux/amd64"]),
            &inputs("a"),
            None,
            &Mode::Keep,
            &mut resolver(1, &mut calls),
        )
        .unwrap();
        assert_eq!(calls.len(), 4);
        let text = lock.to_text().unwrap();
        assert!(text.starts_with("# hutch.lock"));
        let alpha = text.find("alpha:2").unwrap();
        let zeta = text.find("zeta:1").unwrap();
        assert!(alpha < zeta, "sorted:\n{text}");
        assert!(
            text.find("linux/amd64").unwrap() < text.find("linux/arm64").unwrap(),
            "{text}"
        );
        assert_eq!(Lock::parse(&text, "hutch.lock").unwrap(), lock);
        // The same inputs write the same bytes.
        assert_eq!(lock.clone().to_text().unwrap(), text);
        let d = Digest::of(b"alpha:2 linux/amd64 1");
        assert_eq!(
            lock.pinned("alpha:2", "linux/amd64").unwrap(),
            format!("alpha:2@{d}")
        );
    }

    #[test]
    fn keep_update_and_frozen() {
        let platforms = refs(&["linux/amd64"]);
        let mut calls = Vec::new();
        let first = resolve(
            &refs(&["a:1"]),
            &platforms,
            &inputs("x"),
            None,
            &Mode::Keep,
            &mut resolver(1, &mut calls),
        )
        .unwrap();
        // A new reference: only it is resolved; the old pin stays.
        let mut calls = Vec::new();
        let second = resolve(
            &refs(&["a:1", "b:1"]),
            &platforms,
            &inputs("y"),
            Some(&first),
            &Mode::Keep,
            &mut resolver(2, &mut calls),
        )
        .unwrap();
        assert_eq!(calls, ["b:1 linux/amd64"]);
        assert_eq!(second.images["a:1"], first.images["a:1"]);
        // --update a:1 resolves it again, not b:1.
        let mut calls = Vec::new();
        let third = resolve(
            &refs(&["a:1", "b:1"]),
            &platforms,
            &inputs("y"),
            Some(&second),
            &Mode::Update(refs(&["a:1"])),
            &mut resolver(3, &mut calls),
        )
        .unwrap();
        assert_eq!(calls, ["a:1 linux/amd64"]);
        assert_ne!(third.images["a:1"], second.images["a:1"]);
        assert_eq!(third.images["b:1"], second.images["b:1"]);
        // --update of a name the project does not use.
        let mut calls = Vec::new();
        let e = resolve(
            &refs(&["a:1"]),
            &platforms,
            &inputs("y"),
            Some(&third),
            &Mode::Update(refs(&["c:1"])),
            &mut resolver(4, &mut calls),
        )
        .unwrap_err();
        assert!(e.to_string().contains("c:1"), "{e}");
        // --frozen: nothing resolved; what is missing is an error.
        let mut calls = Vec::new();
        let e = resolve(
            &refs(&["a:1", "new:1"]),
            &platforms,
            &inputs("y"),
            Some(&third),
            &Mode::Frozen,
            &mut resolver(5, &mut calls),
        )
        .unwrap_err();
        assert!(e.to_string().contains("new:1"), "{e}");
        assert!(calls.is_empty());
    }

    #[test]
    fn stale_locks_and_bad_files() {
        let mut calls = Vec::new();
        let lock = resolve(
            &refs(&["a:1"]),
            &refs(&["linux/amd64"]),
            &inputs("x"),
            None,
            &Mode::Keep,
            &mut resolver(1, &mut calls),
        )
        .unwrap();
        assert_eq!(lock.stale(&inputs("x")), None);
        let why = lock.stale(&inputs("changed")).unwrap();
        assert!(
            why.contains("hutch.toml") && why.contains("`hutch lock`"),
            "{why}"
        );
        let e = Lock::parse("version = 1\nmanifest = 3\n", "p/hutch.lock").unwrap_err();
        assert!(e.to_string().starts_with("p/hutch.lock:2:"), "{e}");
        let e = Lock::parse(
            "version = 9\nmanifest = \"\"\nprofile = \"\"\nsetup = \"\"\n",
            "hutch.lock",
        )
        .unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
        let e = Lock::parse(
            "version = 1\nmanifest = \"\"\nprofile = \"\"\nsetup = \"\"\n[images.\"a:1\"]\n\"linux/amd64\" = \"nope\"\n",
            "hutch.lock",
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a digest"), "{e}");
        // Writing and reading a directory's lock.
        let d = tempfile::tempdir().unwrap();
        assert!(Lock::read(d.path()).unwrap().is_none());
        lock.write(d.path()).unwrap();
        assert_eq!(Lock::read(d.path()).unwrap(), Some(lock));
    }
}
