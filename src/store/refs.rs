//! Tags and their history: which manifest digest each `name:tag` points to
//! now, and every digest it pointed to before (for `hutch rollback`).
//!
//! All of it lives in one small `refs.json`, rewritten atomically under
//! `refs.lock`. Moving a tag appends a version; the history is never
//! rewritten except by `hutch prune --history` and `hutch rmi`.
//! Each version remembers which version was current before it (`prev`), so
//! repeated rollbacks walk back through the tag's past like an undo stack,
//! while the log itself stays append-only.

use super::{Store, StoreLock, write_atomic};
use crate::oci::Digest;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Refs {
    /// Full reference (`docker.io/library/busybox:latest`) -> its versions.
    #[serde(default)]
    pub tags: BTreeMap<String, TagHistory>,
    /// Images in the store that no tag points to (loaded without a name).
    #[serde(default)]
    pub untagged: BTreeMap<Digest, Version>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TagHistory {
    /// Oldest first; the last one is the current target.
    pub versions: Vec<Version>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Version {
    /// Manifest digest.
    pub digest: Digest,
    /// When the tag was moved here (RFC 3339, UTC).
    pub at: String,
    /// What moved it: `load FILE`, `import FILE`, `tag SRC`, `rollback`, ...
    pub reason: String,
    /// Index of the version that `rollback` goes back to from this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<usize>,
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

impl TagHistory {
    pub fn current(&self) -> Option<&Version> {
        self.versions.last()
    }
}

impl Refs {
    pub fn current(&self, name: &str) -> Option<&Digest> {
        self.tags
            .get(name)
            .and_then(|t| t.current())
            .map(|v| &v.digest)
    }

    /// Point `name` at `digest`. Returns false if it already pointed there.
    pub fn set_tag(&mut self, name: &str, digest: &Digest, reason: &str) -> bool {
        self.untagged.remove(digest);
        let hist = self.tags.entry(name.to_owned()).or_default();
        if hist.current().is_some_and(|v| v.digest == *digest) {
            return false;
        }
        let prev = hist.versions.len().checked_sub(1);
        hist.versions.push(Version {
            digest: digest.clone(),
            at: now_rfc3339(),
            reason: reason.into(),
            prev,
        });
        true
    }

    /// Record an image that has no name, unless a tag already points to it.
    pub fn add_untagged(&mut self, digest: &Digest, reason: &str) {
        if self.tags_for(digest).is_empty() {
            self.untagged
                .entry(digest.clone())
                .or_insert_with(|| Version {
                    digest: digest.clone(),
                    at: now_rfc3339(),
                    reason: reason.into(),
                    prev: None,
                });
        }
    }

    /// Tags whose current version is `digest`.
    pub fn tags_for(&self, digest: &Digest) -> Vec<&str> {
        self.tags
            .iter()
            .filter(|(_, h)| h.current().is_some_and(|v| v.digest == *digest))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Move `name` back to the version before the current one, or to the
    /// latest version with digest `to`. Returns (from, to).
    pub fn rollback(&mut self, name: &str, to: Option<&Digest>) -> Result<(Digest, Digest)> {
        let hist = self.tags.get_mut(name).with_context(|| {
            format!("no tag {name} in the store; `hutch images` lists the tags")
        })?;
        let cur_idx = hist
            .versions
            .len()
            .checked_sub(1)
            .context("tag has no versions")?;
        let from = hist.versions[cur_idx].digest.clone();
        let target_idx = match to {
            None => hist.versions[cur_idx].prev.with_context(|| {
                format!("{name} has no earlier version to roll back to; `hutch history --tag {name}` lists its versions")
            })?,
            Some(d) => hist
                .versions
                .iter()
                .rposition(|v| v.digest == *d)
                .with_context(|| {
                    format!("{name} never pointed to {d}; `hutch history --tag {name}` lists its versions")
                })?,
        };
        let target = hist.versions[target_idx].clone();
        if target.digest == from {
            bail!("{name} already points to {from}");
        }
        hist.versions.push(Version {
            digest: target.digest.clone(),
            at: now_rfc3339(),
            reason: format!("rollback from {}", from.short()),
            prev: target.prev,
        });
        Ok((from, target.digest))
    }

    /// Forget every version but the current one of each tag.
    pub fn drop_history(&mut self) -> usize {
        let mut dropped = 0;
        for hist in self.tags.values_mut() {
            let n = hist.versions.len();
            if n > 1 {
                dropped += n - 1;
                hist.versions.drain(..n - 1);
                if let Some(v) = hist.versions.first_mut() {
                    v.prev = None;
                }
            }
        }
        dropped
    }

    /// Every manifest digest that must be kept: current tags, history, untagged.
    pub fn all_manifests(&self) -> Vec<Digest> {
        let mut out: Vec<Digest> = self
            .tags
            .values()
            .flat_map(|h| h.versions.iter().map(|v| v.digest.clone()))
            .chain(self.untagged.keys().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

impl Store {
    fn refs_path(&self) -> std::path::PathBuf {
        self.root().join("refs.json")
    }

    /// The refs as they are now (writes are atomic, so no lock is needed).
    pub fn refs(&self) -> Result<Refs> {
        let path = self.refs_path();
        match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data).with_context(|| {
                format!(
                    "parsing {}: the file is damaged; run `hutch check --store --repair`",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Refs::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Read, change and write the refs under the refs lock.
    pub fn update_refs<T>(&self, change: impl FnOnce(&mut Refs) -> Result<T>) -> Result<T> {
        let _lock = StoreLock::exclusive(&self.lock_path("refs"))?;
        let mut refs = self.refs()?;
        let before = refs.clone();
        let out = change(&mut refs)?;
        if refs != before {
            let json = serde_json::to_vec_pretty(&refs)?;
            write_atomic(&self.refs_path(), &json)
                .map_err(|e| self.explain_no_space(e, "the tags (refs.json)"))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    #[test]
    fn rollback_walks_back_like_an_undo_stack() {
        let mut r = Refs::default();
        assert!(r.set_tag("x:1", &d('a'), "load"));
        assert!(r.set_tag("x:1", &d('b'), "load"));
        assert!(r.set_tag("x:1", &d('c'), "load"));
        assert!(
            !r.set_tag("x:1", &d('c'), "load"),
            "same digest is not a new version"
        );
        assert_eq!(r.rollback("x:1", None).unwrap(), (d('c'), d('b')));
        assert_eq!(r.rollback("x:1", None).unwrap(), (d('b'), d('a')));
        assert!(r.rollback("x:1", None).is_err());
        assert_eq!(r.current("x:1"), Some(&d('a')));
        assert_eq!(r.rollback("x:1", Some(&d('c'))).unwrap(), (d('a'), d('c')));
        assert!(r.rollback("x:1", Some(&d('e'))).is_err());
        assert_eq!(r.tags["x:1"].versions.len(), 6, "the log is append-only");
    }

    #[test]
    fn untagged_images_and_history_are_roots() {
        let mut r = Refs::default();
        r.add_untagged(&d('a'), "load");
        r.set_tag("x:1", &d('b'), "load");
        r.set_tag("x:1", &d('c'), "load");
        assert_eq!(r.all_manifests(), vec![d('a'), d('b'), d('c')]);
        r.set_tag("y:1", &d('a'), "tag");
        assert!(r.untagged.is_empty());
        assert_eq!(r.drop_history(), 1);
        assert_eq!(r.all_manifests(), vec![d('a'), d('c')]);
    }
}
