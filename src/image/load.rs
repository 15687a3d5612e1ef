//! `hutch load`: recognise an image archive or directory and bring every
//! image in it into the store; tags move only once all data is in.

use crate::image::docker_archive::{self, claimed_digest};
use crate::image::ingest::ingest_image;
use crate::image::input::{Input, Spool};
use crate::image::oci_layout::read_layout;
use crate::image::source::open_any;
use crate::oci::platform::Platform;
use crate::oci::{Digest, TagRef};
use crate::store::Store;
use crate::store::image::{digest_of, parse_manifest};
use anyhow::{Context, Result, bail};
use std::path::Path;

/// One image brought in by a load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Loaded {
    pub manifest: Digest,
    pub names: Vec<String>,
}

/// The repository name an unnamed image gets from its file name
/// (`busybox-oci.tar` -> `busybox-oci`).
pub fn repo_from_path(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let stem = [".tar.gz", ".tgz", ".tar.zst", ".tar", ".oci"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(&name);
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned();
    if clean.is_empty() {
        "image".into()
    } else {
        clean
    }
}

pub fn load(store: &Store, input: &Input, platform: &Platform) -> Result<Vec<Loaded>> {
    store.all_or_nothing(|| {
        // An archive on standard input is copied first: reading one in
        // place needs seeking. The copy goes when `spool` does.
        let spool = match input {
            Input::Stdin => Some(Spool::stdin(store)?),
            Input::Path(_) => None,
        };
        let (path, fallback) = match (input, &spool) {
            (Input::Path(p), _) => (p.as_path(), repo_from_path(p)),
            (Input::Stdin, Some(s)) => (s.path(), repo_from_path(Path::new(""))),
            (Input::Stdin, None) => bail!("standard input was not read"),
        };
        let label = input.describe();
        let scratch = store.tmp_path("load");
        let result = load_inner(store, path, &label, &fallback, platform, &scratch);
        if let Err(e) = crate::store::remove::remove_tree(&scratch) {
            tracing::debug!("{e:#}");
        }
        drop(spool);
        let loaded = result?;
        let reason = format!("load {label}");
        store.update_refs(|refs| {
            for img in &loaded {
                if img.names.is_empty() {
                    refs.add_untagged(&img.manifest, &reason);
                }
                for name in &img.names {
                    refs.set_tag(name, &img.manifest, &reason);
                }
            }
            Ok(())
        })?;
        Ok(loaded)
    })
}

/// Load the archive or directory at `path`, called `label` in messages;
/// images named only by a tag get the repository `fallback`.
fn load_inner(
    store: &Store,
    path: &Path,
    label: &str,
    fallback: &str,
    platform: &Platform,
    scratch: &Path,
) -> Result<Vec<Loaded>> {
    let src = open_any(path, label, scratch)
        .map_err(|e| store.explain_no_space(e, "an unpacked copy of the archive"))?;
    let src = src.as_ref();
    let mut loaded = Vec::new();
    if src.exists("oci-layout") {
        let docker_entries = if src.exists("manifest.json") {
            docker_archive::read_manifest_json(src)?
        } else {
            Vec::new()
        };
        for found in read_layout(src, fallback, platform)? {
            let digest = ingest_image(
                store,
                src,
                &found.manifest_bytes,
                Some(&found.manifest),
                &crate::image::progress::Progress::hidden(),
            )?;
            let mut names: Vec<TagRef> = found.names;
            // Docker 25+ archives name their images in manifest.json.
            let manifest = parse_manifest(&found.manifest_bytes, &src.describe())?;
            let config = digest_of(manifest.config().digest())?;
            for e in &docker_entries {
                if claimed_digest(&e.config).as_ref() == Some(&config) {
                    names.extend(e.names());
                }
            }
            names.sort();
            names.dedup();
            loaded.push(Loaded {
                manifest: digest,
                names: names.iter().map(|n| n.to_string()).collect(),
            });
        }
    } else if src.exists("manifest.json") {
        for entry in docker_archive::read_manifest_json(src)? {
            let digest = docker_archive::ingest_legacy(store, src, &entry)?;
            loaded.push(Loaded {
                manifest: digest,
                names: entry.names().iter().map(|n| n.to_string()).collect(),
            });
        }
    } else {
        bail!(
            "{label} is not an image archive: it has neither oci-layout nor manifest.json; \
             for a root filesystem tarball use `hutch import FILE NAME`"
        );
    }
    Ok(loaded)
}

/// `hutch import`: one rootfs tarball (a file, or standard input, read
/// as a stream) becomes `name`.
pub fn import(store: &Store, tarball: &Input, name: &TagRef) -> Result<Digest> {
    store.all_or_nothing(|| {
        let digest = match tarball {
            Input::Path(p) => crate::image::rootfs::import_file(store, p)?,
            Input::Stdin => {
                crate::image::rootfs::import_rootfs(store, std::io::stdin(), "standard input", "-")?
            }
        };
        let reason = format!("import {}", tarball.describe());
        store
            .update_refs(|refs| Ok(refs.set_tag(&name.to_string(), &digest, &reason)))
            .context("tagging the imported image")?;
        Ok(digest)
    })
}
