//! `hutch verify --image IMAGE [--expect DIGEST]`: an image's rootfs digest
//! (`image::rootfs_digest`), printed or checked. (`hutch verify` of a
//! project's environment against its lock will take no `--image`.)

use crate::image::resolve::{Resolved, resolve};
use crate::image::rootfs_digest::{
    ROOTFS_DIGEST_VERSION, RootfsDigest, first_difference, image_rootfs_digest,
};
use crate::oci::Digest;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args, Debug)]
#[command(after_help = format!(
    "The rootfs digest (version {ROOTFS_DIGEST_VERSION}) is the sha256 of a canonical tar of the \
     image's merged root filesystem: names sorted, true owners, modes, xattrs and contents, \
     modification times left out. It is the same in any store, on any file system."
))]
pub struct VerifyArgs {
    /// Image (name, ID or digest) whose merged root filesystem to digest
    #[arg(long, value_name = "IMAGE", required = true)]
    image: Option<String>,
    /// The rootfs digest the image must have (sha256:...): exit 1 when it differs
    #[arg(long, value_name = "DIGEST")]
    expect: Option<String>,
    /// Another image: print the first path where the two root filesystems differ (exit 1 if they do)
    #[arg(long, value_name = "IMAGE", conflicts_with = "expect")]
    compare: Option<String>,
}

pub fn verify(a: VerifyArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let Some(name) = a.image else {
        bail!("give the image to digest with --image IMAGE");
    };
    let expect = match &a.expect {
        Some(e) => Some(Digest::parse(e).with_context(|| {
            format!("--expect {e:?}: expected a digest of the form sha256:<64 hex digits>")
        })?),
        None => None,
    };
    let _lock = store.lock_shared()?;
    let got = digest_of(&store, &name)?;
    println!("{}", got.digest);
    if let Some(other) = &a.compare {
        let theirs = digest_of(&store, other)?;
        println!("{}", theirs.digest);
        return Ok(match first_difference(&got.entries, &theirs.entries) {
            None => 0,
            Some(how) => {
                eprintln!("hutch: {name} and {other} differ first at {how}");
                1
            }
        });
    }
    match expect {
        Some(want) if want != got.digest => {
            eprintln!(
                "hutch: the rootfs digest of {name} is {}, not the expected {want}",
                got.digest
            );
            Ok(1)
        }
        _ => Ok(0),
    }
}

fn digest_of(store: &Store, name: &str) -> Result<RootfsDigest> {
    match resolve(store, name)? {
        Resolved::Stored { image, .. } => image_rootfs_digest(store, &image),
        Resolved::Host => bail!(
            "the built-in image `host` is the host's own filesystem: it has no layers to digest"
        ),
    }
}
