//! A project as `shell`, `up`, `down`, `ps` and `logs` need it: its root
//! (found upward from the directory given), its checked manifest, and a
//! lock that fits it. A missing or stale lock stops them, with the command
//! that fixes it.

use super::lock::Lock;
use super::locking::inputs;
use super::manifest::Manifest;
use super::naming::{Project, find_root};
use crate::oci::Digest;
use anyhow::{Result, bail};
use std::path::Path;

/// A project whose lock fits its manifest.
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    pub(crate) project: Project,
    pub(crate) manifest: Manifest,
    pub(crate) lock: Lock,
    /// What the project's containers are made from ([`Opened::key_of`]);
    /// a container made from another key is made again.
    pub(crate) key: Digest,
}

impl Opened {
    /// The project at or above `dir`, with a current lock.
    pub(crate) fn open(dir: &Path) -> Result<Opened> {
        let opened = Self::open_unlocked(dir)?;
        let Some(lock) = Lock::read(&opened.0.root)? else {
            bail!(
                "{} has no hutch.lock: run `hutch lock --dir {}` to pin the project's images \
                 (then commit hutch.lock, so everyone gets the same environment)",
                opened.0.root.display(),
                opened.0.root.display()
            );
        };
        if let Some(why) = lock.stale(&inputs(&opened.1)?) {
            bail!("{why} (in {})", opened.0.root.display());
        }
        let key = Self::key_of(&opened.0, &opened.1, &lock)?;
        Ok(Opened {
            project: opened.0,
            manifest: opened.1,
            lock,
            key,
        })
    }

    /// The project at or above `dir` without looking at its lock (`down`,
    /// `ps` and `logs` act on what runs, whatever the lock says now).
    pub(crate) fn open_unlocked(dir: &Path) -> Result<(Project, Manifest)> {
        let root = find_root(dir);
        let manifest = Manifest::load(&root)?;
        Ok((Project::of(&manifest.root), manifest))
    }

    /// What the project's containers are made from: the lock (pins and
    /// the hashes of hutch.toml, the profile and the setup commands) and
    /// the Containerfiles of its builds.
    fn key_of(project: &Project, manifest: &Manifest, lock: &Lock) -> Result<Digest> {
        let mut text = lock.to_text()?;
        let sources = std::iter::once(&manifest.env.source)
            .chain(manifest.services.values().map(|s| &s.source));
        for source in sources {
            if let super::manifest::ImageSource::Build(b) = source {
                let path = project.root.join(&b.containerfile);
                text.push_str(&format!("\n# {}\n", path.display()));
                text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
        Ok(Digest::of(text.as_bytes()))
    }
}
