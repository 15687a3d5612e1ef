//! Image names as users type them, normalised with Docker's rules:
//! `busybox` is `docker.io/library/busybox:latest`.
//!
//! The grammar is distribution/reference's, checked by hand: oci-spec's
//! `Reference` compiles a large regex on first use (about 60 ms and 18 MB,
//! more than everything else `hutch run` does before it starts).

use crate::oci::Digest;
use anyhow::{Result, bail};

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

    /// Parse a name given to an image here (`hutch import`, `hutch tag`, a
    /// short name in an OCI layout's `ref.name`): as Podman does, a name
    /// without a registry goes to `localhost/` rather than pretending to
    /// come from Docker Hub. Lookups of existing names try both (see
    /// [`TagRef::candidates`]).
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
    let bad = |why: &str| -> anyhow::Error {
        anyhow::anyhow!(
            "invalid image reference {input:?}: {why}; expected NAME[:TAG] or NAME@sha256:DIGEST (lowercase name)"
        )
    };
    let (rest, digest) = match input.split_once('@') {
        Some((n, d)) => (
            n,
            Some(Digest::parse(d).map_err(|e| bad(&format!("bad digest: {e}")))?),
        ),
        None => (input, None),
    };
    // A tag is after the last ':' that follows the last '/'.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag
        && !valid_tag(t)
    {
        return Err(bad(&format!("bad tag {t:?}")));
    }
    if name.is_empty() {
        return Err(bad("no name"));
    }
    if name.len() > 255 {
        return Err(bad("the name is longer than 255 characters"));
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, p)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            if !valid_domain(first) {
                return Err(bad(&format!("bad registry {first:?}")));
            }
            (first.to_owned(), p.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    let repository = if registry == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if !repository.split('/').all(valid_path_component) {
        return Err(bad(
            "a name has lowercase letters, digits and separators (. _ __ -) between them",
        ));
    }
    let tag = match (tag, &digest) {
        (Some(t), _) => Some(t.to_owned()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_owned()),
    };
    let tagref = tag.map(|tag| TagRef {
        registry,
        repository,
        tag,
    });
    Ok((tagref, digest))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || b"_.-".contains(&x))
}

/// A host name or IP (v4, or v6 in brackets), with an optional port.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip6, p)) => {
                if ip6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (
                    None,
                    p.strip_prefix(':').map(Some).unwrap_or(if p.is_empty() {
                        None
                    } else {
                        Some("")
                    }),
                )
            }
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|x| x.is_ascii_digit()))
    {
        return false;
    }
    host.is_none_or(|h| {
        !h.is_empty()
            && h.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    })
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

    #[test]
    fn grammar() {
        let ok = |s: &str| TagRef::parse(s).map(|t| t.to_string());
        assert_eq!(
            ok("ubuntu:22.04").unwrap(),
            "docker.io/library/ubuntu:22.04"
        );
        assert_eq!(
            ok("a__b/c.d-e---f_g").unwrap(),
            "docker.io/a__b/c.d-e---f_g:latest"
        );
        assert_eq!(ok("[::1]:5000/x:t").unwrap(), "[::1]:5000/x:t");
        assert_eq!(ok("127.0.0.1:5000/x").unwrap(), "127.0.0.1:5000/x:latest");
        assert_eq!(
            ok("reg.example.com/a/b/c:v_1").unwrap(),
            "reg.example.com/a/b/c:v_1"
        );
        // Docker reads `localhost:5000` as the image `localhost`, tag 5000.
        assert_eq!(
            ok("localhost:5000").unwrap(),
            "docker.io/library/localhost:5000"
        );
        for bad in [
            "a..b",
            "a-",
            "-a",
            "a/",
            "/a",
            "a//b",
            "a___b",
            "reg.io:port/x",
            "x:",
            "x:-t",
            "[zz]:1/x",
            "a:b:c",
            "é",
        ] {
            assert!(TagRef::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(TagRef::parse(&format!("a:{}", "t".repeat(129))).is_err());
        assert!(TagRef::parse(&"a".repeat(256)).is_err());
        let d = format!("sha256:{}", "b".repeat(64));
        let (t, dg) = parse_any(&format!("reg.io/x:1@{d}")).unwrap();
        assert_eq!(t.unwrap().to_string(), "reg.io/x:1");
        assert!(dg.is_some());
        assert!(parse_any("x@sha256:zz").is_err());
    }
}
