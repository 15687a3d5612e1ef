//! `hutch verify`: the project's environment against the rootfs digest
//! its hutch.lock records; `hutch verify --image IMAGE [--expect DIGEST]
//! [--compare IMAGE2]`: an image's rootfs digest (`image::rootfs_digest`),
//! printed or checked.

use crate::image::resolve::{Resolved, resolve};
use crate::image::rootfs_digest::{
    ROOTFS_DIGEST_VERSION, RootfsDigest, first_difference, image_rootfs_digest,
};
use crate::oci::Digest;
use crate::project::locking::Mismatch;
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
    /// Image (name, ID or digest) whose merged root filesystem to digest (without it: the project's environment, against hutch.lock)
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// The project's root directory (with hutch.toml and hutch.lock), without --image
    #[arg(
        long = "dir",
        value_name = "DIR",
        default_value = ".",
        conflicts_with = "image"
    )]
    dir: std::path::PathBuf,
    #[command(flatten)]
    tls: crate::cli::flags::TlsVerify,
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
        if a.expect.is_some() || a.compare.is_some() {
            bail!("--expect and --compare go with --image IMAGE");
        }
        let v = crate::project::locking::verify(
            &store,
            &crate::project::naming::find_root(&a.dir),
            a.tls.tls_verify,
        )?;
        println!("{}", v.found);
        let Some(mismatch) = &v.mismatch else {
            eprintln!(
                "the environment's root filesystem ({}) is the one hutch.lock records",
                v.image
            );
            return Ok(0);
        };
        eprintln!(
            "hutch: the environment's root filesystem ({}) has rootfs digest {}, but hutch.lock \
             records {}",
            v.image, v.found, v.expected
        );
        eprintln!("hutch: {}", explain(mismatch));
        return Ok(1);
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
            Some(diff) => {
                eprintln!("hutch: {name} and {other} differ first at {diff}");
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

/// Where the environment's tree differs from hutch.lock's, as far as the
/// store knows: a path only from the entry list of the locked tree.
fn explain(m: &Mismatch) -> String {
    match m {
        Mismatch::At(d) if d.in_both => format!(
            "the environment's root filesystem differs from hutch.lock's first at {} ({}, \
             hutch.lock's vs the environment's)",
            d.path, d.how
        ),
        Mismatch::At(d) => format!(
            "the environment's root filesystem differs from hutch.lock's first at {} ({})",
            d.path, d.how
        ),
        Mismatch::Unlisted => "the list of hutch.lock's tree is not in this store (the lock was \
             made with another store, or this store's layers changed since), so no path can be \
             named; `hutch check --store` verifies the store's layers"
            .to_string(),
        Mismatch::ListAgrees => "this store's list of hutch.lock's tree is not that tree's (it \
             shows no difference), so no path can be named; `hutch check --store` verifies the \
             store's layers"
            .to_string(),
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
