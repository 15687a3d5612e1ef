//! `hutch images`, `inspect`, `tag`, `rmi`, `history`, `rollback`, `prune`.

use super::flags::FormatFlag;
use super::output;
use crate::cli::output::outln;
use crate::human::{human_age, human_size};
use crate::image::resolve::{HOST_IMAGE, Resolved, resolve};
use crate::oci::TagRef;
use crate::store::Store;
use crate::store::StoredImage;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

#[derive(Args, Debug)]
pub struct ImagesArgs {
    #[command(flatten)]
    format: FormatFlag,
    /// Show manifest digests
    #[arg(long)]
    digests: bool,
}

/// One row of `hutch images`.
#[derive(serde::Serialize)]
struct ImageRow {
    repository: String,
    tag: String,
    id: String,
    digest: String,
    created: Option<String>,
    size: u64,
}

fn split_tag(full: &str) -> (String, String) {
    match TagRef::parse(full) {
        Ok(t) => (t.name(), t.tag),
        Err(_) => (full.to_owned(), String::new()),
    }
}

pub fn images(a: ImagesArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let refs = store.refs()?;
    let mut rows = Vec::new();
    let mut push = |repo: String, tag: String, digest: &crate::oci::Digest| match StoredImage::load(
        &store, digest,
    ) {
        Ok(img) => rows.push(ImageRow {
            repository: repo,
            tag,
            id: img.id().to_string(),
            digest: digest.to_string(),
            created: img.created(),
            size: img.size(&store),
        }),
        Err(e) => tracing::warn!("image {digest} cannot be read: {e:#}"),
    };
    for (name, hist) in &refs.tags {
        if let Some(v) = hist.current() {
            let (repo, tag) = split_tag(name);
            push(repo, tag, &v.digest);
        }
    }
    for d in refs.untagged.keys() {
        push("<none>".into(), "<none>".into(), d);
    }
    if a.format.json() {
        output::print_json(&rows)?;
        return Ok(0);
    }
    let mut header = vec!["REPOSITORY", "TAG"];
    if a.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![r.repository.clone(), r.tag.clone()];
            if a.digests {
                row.push(r.digest.clone());
            }
            row.push(r.id[7..19].to_owned());
            row.push(human_age(r.created.as_deref()));
            row.push(human_size(r.size));
            row
        })
        .collect();
    output::print(&output::table(&header, &table));
    Ok(0)
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Output: json (the default: an array, one object each), or a Go
    /// template applied to each, e.g. '{{.State.Status}}' or '{{json .Config}}'
    #[arg(short, long, value_name = "json|TEMPLATE")]
    format: Option<String>,
    /// Images (name, ID or digest), else containers (name, ID or ID prefix)
    #[arg(required = true, value_name = "IMAGE|CONTAINER")]
    names: Vec<String>,
}

/// `hutch inspect NAME...`: each an image, else a container, as Podman
/// looks for images first; printed as one JSON array (or the template for
/// each). A name that is neither is reported after the others are printed.
pub fn inspect(a: InspectArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let template = super::container::parse_format(a.format.as_deref())?;
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for name in &a.names {
        let v = match resolve(&store, name) {
            Ok(r) => image_json(&store, r).map(super::container::Inspected::Image),
            // Images first, then containers, as Podman.
            Err(e) => super::container::inspect_fallback(&store, name, e),
        };
        match v {
            Ok(v) => found.push(v),
            Err(e) => failed.push(e),
        }
    }
    super::container::print_inspected(&found, template.as_ref(), failed)
}

/// An image as `hutch inspect` shows it.
fn image_json(store: &Store, resolved: Resolved) -> Result<serde_json::Value> {
    let image = match resolved {
        Resolved::Host => {
            return Ok(json!({
                "Id": HOST_IMAGE,
                "Builtin": true,
                "Description": "the host's own root filesystem, mounted read-only as the only lower layer",
                "Layers": [{"Path": "/"}],
                "Config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
            }));
        }
        Resolved::Stored { image, .. } => image,
    };
    let refs = store.refs()?;
    let layers: Vec<_> = image
        .layers
        .iter()
        .map(|l| {
            let meta = store.layer_meta(&l.diff_id).ok();
            json!({
                "Digest": l.blob, "DiffID": l.diff_id, "MediaType": l.media_type, "Size": l.size,
                "UnpackedSize": meta.as_ref().map(|m| m.tar_size),
                "Path": store.layer_root(&l.diff_id),
            })
        })
        .collect();
    let config: serde_json::Value = serde_json::from_slice(&image.config_bytes)?;
    let manifest: serde_json::Value = serde_json::from_slice(&image.manifest_bytes)?;
    Ok(json!({
        "Id": image.id(),
        "Digest": image.manifest_digest,
        "RepoTags": refs.tags_for(&image.manifest_digest),
        "Created": image.created(),
        "Architecture": config.get("architecture"),
        "Os": config.get("os"),
        "Size": image.size(store),
        "Config": config.get("config"),
        "RootFS": config.get("rootfs"),
        "History": config.get("history"),
        "Layers": layers,
        "Manifest": manifest,
    }))
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// Existing image (name, ID or digest)
    source: String,
    /// New name (without a registry, it goes under localhost/, as in Podman)
    #[arg(value_name = "TARGET[:TAG]")]
    target: String,
}

pub fn tag(a: TagArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let target = TagRef::parse_local(&a.target)?;
    let Resolved::Stored { image, .. } = resolve(&store, &a.source)? else {
        bail!("the built-in image `host` cannot be tagged");
    };
    let reason = format!("tag {}", a.source);
    store.update_refs(|r| Ok(r.set_tag(&target.to_string(), &image.manifest_digest, &reason)))?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Images to remove: a name removes that tag; an ID or digest removes every tag of the image
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn rmi(a: RmiArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    for input in &a.images {
        let Resolved::Stored { image, tag } = resolve(&store, input)? else {
            bail!("the built-in image `host` cannot be removed");
        };
        let digest = image.manifest_digest.clone();
        let removed = store.update_refs(|r| {
            let names: Vec<String> = match &tag {
                Some(t) => vec![t.clone()],
                None => r.tags_for(&digest).iter().map(|s| s.to_string()).collect(),
            };
            for n in &names {
                r.tags.remove(n);
            }
            if tag.is_none() {
                r.untagged.remove(&digest);
            }
            Ok(names)
        })?;
        for n in removed {
            outln!("Untagged: {n}");
        }
        if !store.refs()?.all_manifests().contains(&digest) {
            outln!("Deleted: {digest}");
        }
    }
    let report = store.gc(false)?;
    warn_leftovers(&report);
    tracing::info!("freed {} bytes", report.bytes_freed);
    Ok(0)
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Image whose build history to show
    #[arg(required_unless_present = "tag", conflicts_with = "tag")]
    image: Option<String>,
    /// List the versions this tag has pointed to instead
    #[arg(long, value_name = "NAME[:TAG]")]
    tag: Option<String>,
    #[command(flatten)]
    format: FormatFlag,
}

pub fn history(a: HistoryArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    if let Some(t) = &a.tag {
        let refs = store.refs()?;
        let name = TagRef::find(t, |n| refs.tags.contains_key(n))?.to_string();
        let hist = refs.tags.get(&name).with_context(|| {
            format!("no tag {name} in the store; `hutch images` lists the tags")
        })?;
        if a.format.json() {
            output::print_json(&hist.versions)?;
            return Ok(0);
        }
        let last = hist.versions.len().saturating_sub(1);
        let rows: Vec<Vec<String>> = hist
            .versions
            .iter()
            .enumerate()
            .rev()
            .map(|(i, v)| {
                let id = StoredImage::load(&store, &v.digest)
                    .map(|img| img.id().short().to_owned())
                    .unwrap_or_default();
                vec![
                    format!("{i}{}", if i == last { " (current)" } else { "" }),
                    v.digest.to_string(),
                    id,
                    v.at.clone(),
                    v.reason.clone(),
                ]
            })
            .collect();
        output::print(&output::table(
            &["VERSION", "DIGEST", "IMAGE ID", "SET AT", "BY"],
            &rows,
        ));
        return Ok(0);
    }
    let input = a.image.as_deref().unwrap_or_default();
    let Resolved::Stored { image, .. } = resolve(&store, input)? else {
        bail!("the built-in image `host` has no build history");
    };
    let config: serde_json::Value = serde_json::from_slice(&image.config_bytes)?;
    let entries = config
        .get("history")
        .and_then(|h| h.as_array())
        .cloned()
        .unwrap_or_default();
    if a.format.json() {
        output::print_json(&entries)?;
        return Ok(0);
    }
    // Pair non-empty history entries with layers, newest first as Docker shows.
    let mut layer_iter = image.layers.iter();
    let mut rows = Vec::new();
    for e in &entries {
        let empty = e
            .get("empty_layer")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let size = if empty {
            0
        } else {
            layer_iter
                .next()
                .and_then(|l| store.layer_meta(&l.diff_id).ok())
                .map(|m| m.tar_size)
                .unwrap_or(0)
        };
        let s = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
        rows.push(vec![
            human_age(e.get("created").and_then(|v| v.as_str())),
            s("created_by"),
            human_size(size),
            s("comment"),
        ]);
    }
    rows.reverse();
    output::print(&output::table(
        &["CREATED", "CREATED BY", "SIZE", "COMMENT"],
        &rows,
    ));
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    #[arg(value_name = "NAME[:TAG]")]
    name: String,
    /// Go back to this version's digest instead of the previous one
    #[arg(long, value_name = "DIGEST")]
    to: Option<String>,
}

pub fn rollback(a: RollbackArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let refs = store.refs()?;
    let name = TagRef::find(&a.name, |n| refs.tags.contains_key(n))?.to_string();
    let to = match &a.to {
        Some(d) => Some(crate::oci::Digest::parse(d)?),
        None => None,
    };
    let (from, to) = store.update_refs(|r| {
        let mut trial = r.clone();
        let (from, to) = trial.rollback(&name, to.as_ref())?;
        let img = StoredImage::load(&store, &to)
            .with_context(|| format!("the earlier version {to} of {name} is no longer in the store"))?;
        if !img.is_complete(&store) {
            bail!("the earlier version {to} of {name} is missing layers; `hutch check --store` tells more");
        }
        *r = trial;
        Ok((from, to))
    })?;
    outln!("{name}: {from} -> {to}");
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Also forget every earlier version of every tag (rollback will not reach them)
    #[arg(long)]
    history: bool,
    /// Also forget the build cache (the steps `hutch build` would reuse),
    /// freeing the layers only it kept
    #[arg(long)]
    build_cache: bool,
    #[command(flatten)]
    format: FormatFlag,
}

/// What gc could not remove, on stderr (it went on with the rest).
fn warn_leftovers(report: &crate::store::gc::GcReport) {
    for w in &report.warnings {
        eprintln!("hutch: warning: {w}");
    }
}

pub fn prune(a: PruneArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    if a.build_cache {
        let n = store.remove_build_cache()?;
        if !a.format.json() {
            outln!("forgot {n} build cache entries");
        }
    }
    let report = store.gc(a.history)?;
    warn_leftovers(&report);
    if a.format.json() {
        output::print_json(&report)?;
    } else {
        outln!(
            "removed {} blobs, {} layers, {} leftovers{}; freed {}",
            report.blobs_removed,
            report.layers_removed,
            report.tmp_removed,
            if a.history {
                format!(", {} old tag versions", report.history_versions_dropped)
            } else {
                String::new()
            },
            human_size(report.bytes_freed)
        );
    }
    Ok(0)
}
