//! Turn what a user typed (`busybox`, `busybox:1.36`, an image ID prefix, a
//! digest, `host`) into an image.

use crate::image::reference::parse_any;
use crate::image::{Digest, StoredImage, TagRef};
use crate::store::Store;
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
                bail!("no image {input} in the store; `hutch images` lists them")
            }
            0 => {}
            n => bail!("{input} is ambiguous: {n} images match; give more digits"),
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
        bail!("no image {d} in the store; `hutch images --digests` lists them");
    }
    let Some(tag) = tag else {
        bail!("{input:?} names no image")
    };
    match refs.current(&tag.to_string()) {
        Some(d) => stored(d, Some(tag.to_string())),
        None => bail!(
            "no image {tag} in the store; `hutch images` lists them, `hutch load` or `hutch import` adds one"
        ),
    }
}
