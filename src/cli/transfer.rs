//! `hutch load`, `hutch import`, `hutch save`.

use crate::cli::output::outln;
use crate::image::platform::Platform;
use crate::image::resolve::{Resolved, resolve};
use crate::image::save::Format;
use crate::image::{TagRef, load, save};
use crate::store::Store;
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// OCI layout directory, OCI archive or docker-archive (optionally gzip/zstd compressed)
    #[arg(value_name = "FILE|DIR")]
    input: PathBuf,
    /// Platform to pick from multi-platform images [default: the host's]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    /// Print only the manifest digests
    #[arg(short, long)]
    quiet: bool,
}

pub fn load(a: LoadArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let platform = match &a.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    for img in load::load(&store, &a.input, &platform)? {
        if a.quiet {
            outln!("{}", img.manifest);
        } else if img.names.is_empty() {
            outln!("Loaded image: {} (untagged)", img.manifest);
        } else {
            for n in &img.names {
                outln!("Loaded image: {n} ({})", img.manifest);
            }
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Root filesystem tarball: plain, .gz or .zst
    #[arg(value_name = "ROOTFS.tar")]
    tarball: PathBuf,
    /// Name for the new image (without a registry, it goes under localhost/)
    #[arg(value_name = "NAME[:TAG]")]
    name: String,
}

pub fn import(a: ImportArgs, store: Result<Store>) -> Result<i32> {
    let name = TagRef::parse_local(&a.name)?;
    let digest = load::import(&store?, &a.tarball, &name)?;
    outln!("{digest}");
    Ok(0)
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Image to save
    image: String,
    /// Output file (or directory for oci-dir)
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
    /// Output format
    #[arg(long, value_enum, default_value = "oci-archive")]
    format: Format,
}

pub fn save(a: SaveArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let _lock = store.lock_shared()?;
    let (image, tag) = match resolve(&store, &a.image)? {
        Resolved::Stored { image, tag } => (image, tag),
        Resolved::Host => {
            bail!("the built-in image `host` is the host's own filesystem and cannot be saved")
        }
    };
    let names = match tag {
        Some(t) => vec![t],
        None => store
            .refs()?
            .tags_for(&image.manifest_digest)
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    save::save(&store, &image, &names, &a.output, a.format)?;
    Ok(0)
}
