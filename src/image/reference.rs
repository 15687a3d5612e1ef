//! Image names as users type them, normalised with Docker's rules:
//! `busybox` is `docker.io/library/busybox:latest`.

use crate::image::Digest;
use anyhow::{Result, bail};
use oci_spec::distribution::Reference;

/// A normalised `registry/repository:tag` (the key of a tag in the store).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagRef {
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl TagRef {
    /// Parse a user-typed name; a missing tag means `latest`. A digest in
    /// the name is refused here: tags name versions, digests name content.
    pub fn parse(input: &str) -> Result<TagRef> {
        let (tag, digest) = parse_any(input)?;
        if digest.is_some() {
            bail!("{input:?} names a digest; a tag (NAME[:TAG]) is needed here");
        }
        tag.ok_or_else(|| anyhow::anyhow!("{input:?} has no name"))
    }

    /// Parse the name of an image made here (`hutch import`, `hutch build`):
    /// as Podman does, a name without a registry goes to `localhost/`
    /// rather than pretending to come from Docker Hub.
    pub fn parse_local(input: &str) -> Result<TagRef> {
        let first = input.split('/').next().unwrap_or_default();
        let has_domain = input.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        if has_domain {
            TagRef::parse(input)
        } else {
            TagRef::parse(&format!("localhost/{input}"))
        }
    }

    /// The tags a short name may mean, in lookup order: Docker's
    /// normalisation first (`docker.io/library/app`), then images made here
    /// (`localhost/app`).
    pub fn candidates(input: &str) -> Result<Vec<TagRef>> {
        let mut out = vec![TagRef::parse(input)?];
        if let Ok(local) = TagRef::parse_local(input)
            && local != out[0]
        {
            out.push(local);
        }
        Ok(out)
    }

    /// The first of `candidates(input)` that `exists`, else the first.
    pub fn find(input: &str, exists: impl Fn(&str) -> bool) -> Result<TagRef> {
        let all = TagRef::candidates(input)?;
        let hit = all.iter().find(|t| exists(&t.to_string())).cloned();
        Ok(hit.unwrap_or_else(|| all[0].clone()))
    }

    /// The repository without the tag, as `hutch images` shows it.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl std::fmt::Display for TagRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// Parse `name[:tag][@digest]`. Returns the tag reference (when a name is
/// given) and the digest (when one is given).
pub fn parse_any(input: &str) -> Result<(Option<TagRef>, Option<Digest>)> {
    if let Ok(d) = Digest::parse(input) {
        return Ok((None, Some(d)));
    }
    let r: Reference = match input.parse() {
        Ok(r) => r,
        Err(e) => bail!(
            "invalid image reference {input:?}: {e}; expected NAME[:TAG] or NAME@sha256:DIGEST (lowercase name)"
        ),
    };
    let digest = match r.digest() {
        Some(d) => Some(Digest::parse(d)?),
        None => None,
    };
    let tag = match (r.tag(), &digest) {
        (Some(t), _) => Some(t.to_owned()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_owned()),
    };
    let tagref = tag.map(|tag| TagRef {
        registry: r.registry().to_owned(),
        repository: r.repository().to_owned(),
        tag,
    });
    Ok((tagref, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_normalisation() {
        assert_eq!(
            TagRef::parse("busybox").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            TagRef::parse("me/app:1.2").unwrap().to_string(),
            "docker.io/me/app:1.2"
        );
        assert_eq!(
            TagRef::parse("localhost:5000/a/b:x").unwrap().to_string(),
            "localhost:5000/a/b:x"
        );
        assert_eq!(
            TagRef::parse("localhost/img").unwrap().to_string(),
            "localhost/img:latest"
        );
        assert!(TagRef::parse("UPPER").is_err());
        assert_eq!(
            TagRef::parse_local("app").unwrap().to_string(),
            "localhost/app:latest"
        );
        assert_eq!(
            TagRef::parse_local("me/app:2").unwrap().to_string(),
            "localhost/me/app:2"
        );
        assert_eq!(
            TagRef::parse_local("quay.io/me/app").unwrap().to_string(),
            "quay.io/me/app:latest"
        );
        assert!(TagRef::parse("").is_err());
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(TagRef::parse(&format!("busybox@{d}")).is_err());
        let (t, dg) = parse_any(&format!("busybox@{d}")).unwrap();
        assert!(t.is_none());
        assert_eq!(dg.unwrap().as_str(), d);
    }
}
