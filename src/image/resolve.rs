//! Turn what a user typed (`busybox`, `busybox:1.36`, an image ID prefix, a
//! digest, `host`) into an image.

use crate::oci::reference::parse_any;
use crate::oci::{Digest, TagRef};
use crate::store::Store;
use crate::store::StoredImage;
use anyhow::{Result, bail};

/// The name of the built-in image standing for the host's root filesystem.
pub const HOST_IMAGE: &str = "host";

pub enum Resolved {
    /// An image in the store, and the tag it was found by (if any).
    Stored {
        image: Box<StoredImage>,
        tag: Option<String>,
    },
    /// The host's own root filesystem, as one read-only layer.
    Host,
}

/// Why a name found no image, for callers that decide on it (`run
/// --pull missing` pulls on `NotFound` only). The text is what users see.
#[derive(Debug)]
pub enum ResolveError {
    /// Nothing in the store has that tag, digest or ID prefix: a pull may
    /// bring it.
    NotFound(String),
    /// An ID prefix matches several images.
    Ambiguous(String),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::NotFound(m) | ResolveError::Ambiguous(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ResolveError {}

impl ResolveError {
    /// Whether `e` (from [`resolve`]) says the image is not in the store.
    pub fn is_not_found(e: &anyhow::Error) -> bool {
        matches!(
            e.downcast_ref::<ResolveError>(),
            Some(ResolveError::NotFound(_))
        )
    }
}

/// Find an image by name, tag, digest, or ID prefix.
pub fn resolve(store: &Store, input: &str) -> Result<Resolved> {
    if input == HOST_IMAGE {
        return Ok(Resolved::Host);
    }
    let refs = store.refs()?;
    let known = refs.all_manifests();
    let stored = |d: &Digest, tag: Option<String>| -> Result<Resolved> {
        Ok(Resolved::Stored {
            image: Box::new(StoredImage::load(store, d)?),
            tag,
        })
    };
    // A hex string: an image ID or manifest digest prefix (Docker's rule).
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    if hex.len() >= 4
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        let mut hits: Vec<Digest> = Vec::new();
        for m in &known {
            let id_match = StoredImage::load(store, m)
                .map(|i| i.id().hex().starts_with(hex))
                .unwrap_or(false);
            if m.hex().starts_with(hex) || id_match {
                hits.push(m.clone());
            }
        }
        match hits.len() {
            1 => return stored(&hits[0], None),
            0 if input.starts_with("sha256:") => {
                return Err(ResolveError::NotFound(format!(
                    "no image {input} in the store; `hutch images` lists them"
                ))
                .into());
            }
            0 => {}
            n => {
                return Err(ResolveError::Ambiguous(format!(
                    "{input} is ambiguous: {n} images match; give more digits"
                ))
                .into());
            }
        }
    }
    let (tag, digest) = parse_any(input)?;
    let tag = match tag {
        Some(_) if digest.is_none() => Some(TagRef::find(input, |n| refs.current(n).is_some())?),
        other => other,
    };
    if let Some(d) = digest {
        if known.contains(&d) {
            return stored(&d, None);
        }
        return Err(ResolveError::NotFound(format!(
            "no image {d} in the store; `hutch images --digests` lists them"
        ))
        .into());
    }
    let Some(tag) = tag else {
        bail!("{input:?} names no image")
    };
    match refs.current(&tag.to_string()) {
        Some(d) => stored(d, Some(tag.to_string())),
        None => Err(ResolveError::NotFound(format!(
            "no image {tag} in the store; `hutch images` lists them, `hutch load` or `hutch import` adds one"
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_image_is_a_typed_not_found_and_bad_names_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        for name in [
            "busybox",
            "localhost/app:1",
            "sha256:0123456789abcdef",
            &format!("busybox@sha256:{}", "a".repeat(64)),
        ] {
            let e = resolve(&store, name).err().expect(name);
            assert!(ResolveError::is_not_found(&e), "{name}: {e:#}");
            assert!(e.to_string().starts_with("no image"), "{name}: {e:#}");
        }
        // Control: a name that cannot be a reference is another error,
        // which `run --pull missing` must not answer with a pull.
        let e = resolve(&store, "Not A Name!").err().unwrap();
        assert!(!ResolveError::is_not_found(&e), "{e:#}");
        assert!(matches!(resolve(&store, HOST_IMAGE), Ok(Resolved::Host)));
    }
}
