//! COPY and ADD of local files: the sources and flags after substitution,
//! the files they take (with the facts the cache key hashes), and the
//! layer they make.
//!
//! Sources come from the build context (minus what the ignore file
//! excludes) or, with `--from`, from the merged tree of a built stage or
//! an image (`stage_tree`), or are here-documents or URLs (`add_source`).
//! ADD of a local file is a COPY of it, ADD of a local tar archive unpacks
//! it.

use super::cache_key::{FileFact, FileHasher};
use super::containerfile::instruction::{Copy, Source};
use super::context::ignore::Ignore;
use super::context::walk::{Context, Kind, Selection};
use super::copy_layer::{CopyOptions, open_file, write_copy_layer};
use super::image_state::ImageState;
use super::metadata::{Scope, quote};
use crate::oci::Digest;
use crate::run::users::Accounts;
use anyhow::{Context as _, Result, anyhow, bail};
use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A COPY/ADD with its words substituted and its owner resolved.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) sources: Vec<String>,
    pub(crate) dest: String,
    pub(crate) chown: Option<(u32, u32)>,
    pub(crate) chmod: Option<u32>,
    /// `--from` after substitution.
    pub(crate) from: Option<String>,
    /// Here-document sources (`COPY <<EOF`): name and body, as written.
    pub(crate) heredocs: Vec<(String, String)>,
    /// ADD's URL sources.
    pub(crate) urls: Vec<String>,
    /// ADD `--checksum`.
    pub(crate) checksum: Option<Digest>,
    /// The variables used.
    pub(crate) used: BTreeSet<String>,
}

/// Substitute the words of `copy` (`keyword` is COPY or ADD) and check
/// what hutch does not do.
pub(crate) fn resolve(
    keyword: &str,
    copy: &Copy,
    scope: &Scope,
    state: &ImageState,
    store: &crate::store::Store,
) -> Result<Resolved> {
    let mut used = BTreeSet::new();
    let word = |w: &str, used: &mut BTreeSet<String>| {
        scope.word(w, used).map_err(|e| anyhow!("{keyword}: {e}"))
    };
    if copy.parents || !copy.excludes.is_empty() {
        bail!("{keyword} --parents and --exclude are not supported by hutch yet");
    }
    let (mut sources, mut heredocs, mut urls) = (Vec::new(), Vec::new(), Vec::new());
    for s in &copy.sources {
        match s {
            Source::Path(p) => {
                let p = word(p, &mut used)?;
                if p.starts_with("git@") || p.starts_with("git://") || p.ends_with(".git") {
                    bail!("{keyword} {p}: git sources are not supported by hutch");
                }
                if p.contains("://") {
                    if keyword != "ADD" {
                        bail!("COPY {p}: COPY takes no URLs (ADD fetches them)");
                    }
                    urls.push(p);
                } else {
                    sources.push(p);
                }
            }
            Source::Heredoc(h) => {
                let body = if h.expand {
                    scope
                        .heredoc(&h.body, &mut used)
                        .map_err(|e| anyhow!("{keyword} <<{}: {e}", h.name))?
                } else {
                    h.body.clone()
                };
                heredocs.push((h.name.clone(), body));
            }
        }
    }
    let kinds = [!sources.is_empty(), !heredocs.is_empty(), !urls.is_empty()];
    if kinds.iter().filter(|k| **k).count() > 1 {
        bail!(
            "{keyword}: context files, here-documents and URLs in one instruction are not \
             supported by hutch; use one {keyword} for each kind"
        );
    }
    if copy.from.is_some() && (!heredocs.is_empty() || !urls.is_empty()) {
        bail!("{keyword} --from takes paths of the stage or image only");
    }
    let checksum = match &copy.checksum {
        Some(c) => {
            if urls.is_empty() {
                bail!("ADD --checksum is for URL sources");
            }
            Some(super::add_source::parse_checksum(&word(c, &mut used)?)?)
        }
        None => None,
    };
    let dest = word(&copy.dest, &mut used)?;
    if dest.is_empty() {
        bail!("{keyword}: no destination");
    }
    let chown = match &copy.chown {
        None => None,
        Some(c) => {
            let c = word(c, &mut used)?;
            Some(owner(&c, state, store).with_context(|| format!("{keyword} --chown={c}"))?)
        }
    };
    let chmod = match &copy.chmod {
        None => None,
        Some(m) => {
            let m = word(m, &mut used)?;
            Some(
                u32::from_str_radix(&m, 8)
                    .ok()
                    .filter(|n| *n <= 0o7777)
                    .with_context(|| {
                        format!("{keyword} --chmod={m}: give octal permission bits (like 755)")
                    })?,
            )
        }
    };
    let from = match &copy.from {
        Some(f) => Some(word(f, &mut used)?),
        None => None,
    };
    Ok(Resolved {
        sources,
        dest,
        chown,
        chmod,
        from,
        heredocs,
        urls,
        checksum,
        used,
    })
}

/// `USER[:GROUP]` as numbers, names looked up in the image.
fn owner(spec: &str, state: &ImageState, store: &crate::store::Store) -> Result<(u32, u32)> {
    let (u, g) = spec.split_once(':').unwrap_or((spec, ""));
    let numeric = |s: &str| s.parse::<u32>().ok();
    if let (Some(uid), Some(gid)) = (numeric(u), numeric(if g.is_empty() { u } else { g })) {
        return Ok((uid, gid));
    }
    let accounts = Accounts::of_image(&state.lowers(store)?);
    let user = accounts.resolve(spec)?;
    // `--chown=user` without a group: the user's own gid, as Docker.
    Ok((user.uid, user.gid))
}

impl Resolved {
    /// The text the history and the cache key record.
    pub(crate) fn text(&self, keyword: &str, from_key: Option<&str>) -> String {
        let mut t = keyword.to_string();
        if let Some(f) = from_key {
            t.push_str(&format!(" --from={f}"));
        }
        if let Some((u, g)) = self.chown {
            t.push_str(&format!(" --chown={u}:{g}"));
        }
        if let Some(m) = self.chmod {
            t.push_str(&format!(" --chmod={m:o}"));
        }
        if let Some(c) = &self.checksum {
            t.push_str(&format!(" --checksum={c}"));
        }
        for s in self.sources.iter().chain(&self.urls) {
            t.push(' ');
            t.push_str(&quote(s));
        }
        for (name, body) in &self.heredocs {
            t.push_str(&format!(" <<{name} {}", Digest::of(body.as_bytes())));
        }
        t.push(' ');
        t.push_str(&quote(&self.dest));
        t
    }

    /// The destination as the layer writer takes it: with a `/` when it
    /// already is a directory in the image (a single file then goes into
    /// it, as Docker does).
    pub(crate) fn layer_dest(&self, state: &ImageState, store: &crate::store::Store) -> String {
        if self.dest.ends_with('/') {
            return self.dest.clone();
        }
        let abs = super::metadata::workdir(state.field("WorkingDir"), &self.dest);
        let rel = abs.trim_start_matches('/');
        let is_dir = state.lowers(store).ok().and_then(|lowers| {
            lowers
                .iter()
                .find_map(|l| l.join(rel).symlink_metadata().ok().map(|m| m.is_dir()))
        });
        if is_dir == Some(true) {
            format!("{}/", self.dest)
        } else {
            self.dest.clone()
        }
    }
}

/// The selected entries of every source, and their facts for the key.
pub(crate) struct Taken {
    pub(crate) selections: Vec<Selection>,
    pub(crate) facts: Vec<FileFact>,
}

/// Select the sources in `context` and hash the regular files (through
/// `hasher`, which skips files whose stamp is unchanged). `host_root`
/// names the context on the host, for the hasher's index.
pub(crate) fn take(
    context: &Context,
    host_root: &Path,
    ignore: &Ignore,
    r: &Resolved,
    hasher: &mut FileHasher,
) -> Result<Taken> {
    let (uid, gid) = r.chown.unwrap_or((0, 0));
    let mut selections = Vec::new();
    let mut facts = Vec::new();
    for s in &r.sources {
        let sel = context.select(s, ignore).map_err(|e| anyhow!(e))?;
        for e in &sel.entries {
            let content = match e.kind {
                Kind::File => {
                    let fd = open_file(context.root(), e).map_err(|e| anyhow!(e))?;
                    Some(
                        hasher
                            .hash(&host_root.join(&e.path), std::os::fd::AsFd::as_fd(&fd))
                            .map_err(|e| anyhow!(e))?,
                    )
                }
                _ => None,
            };
            let mut fact = FileFact::new(e, uid, gid, content);
            if let Some(m) = r.chmod
                && !matches!(e.kind, Kind::Symlink(_))
            {
                fact.mode = m;
            }
            facts.push(fact);
        }
        selections.push(sel);
    }
    Ok(Taken { selections, facts })
}

/// Write the layer of a COPY to a file in the store's tmp/; its path and
/// DiffID.
pub(crate) fn write_layer(
    store: &crate::store::Store,
    context: &Context,
    taken: &Taken,
    dest: &str,
    workdir: &str,
    options: &CopyOptions,
) -> Result<(PathBuf, Digest)> {
    let path = store.tmp_path("build-copy");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let written = write_copy_layer(
        context,
        &taken.selections,
        dest,
        if workdir.is_empty() { "/" } else { workdir },
        options,
        BufWriter::new(file),
    );
    let (out, layer) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            bail!("{e}");
        }
    };
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|mut f| f.flush())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((path, layer.diff_id))
}

/// The paths below which `sources` may take files from a stage: each
/// source up to its first wildcard.
pub(crate) fn source_prefixes(sources: &[String]) -> Vec<String> {
    sources
        .iter()
        .map(|s| {
            let mut prefix = Vec::new();
            for part in s.split('/') {
                if part.contains(['*', '?', '[', '\\']) {
                    break;
                }
                prefix.push(part);
            }
            let p = prefix.join("/");
            if p.is_empty() { "/".to_string() } else { p }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_stop_at_wildcards() {
        assert_eq!(
            source_prefixes(&["/out/bin/app".into(), "/usr/lib/*.so".into(), "*".into()]),
            ["/out/bin/app", "/usr/lib", "/"]
        );
    }
}
