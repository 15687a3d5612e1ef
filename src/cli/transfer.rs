//! `hutch load`, `hutch import`, `hutch save`.

use crate::cli::flags::{PlatformFlag, QuietFlag};
use crate::cli::output::outln;
use crate::error::printable_message;
use crate::image::input::Input;
use crate::image::resolve::{Resolved, resolve};
use crate::image::save::Format;
use crate::image::{load, save};
use crate::oci::TagRef;
use crate::store::Store;
use anyhow::{Result, bail};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// OCI layout directory, OCI archive or docker-archive (optionally gzip/zstd compressed); without one, or `-`, the archive is read from standard input
    #[arg(value_name = "FILE|DIR", conflicts_with = "input_opt")]
    input: Option<PathBuf>,
    /// The same as FILE|DIR (Podman's and Docker's form)
    #[arg(short = 'i', long = "input", value_name = "FILE|DIR")]
    input_opt: Option<PathBuf>,
    #[command(flatten)]
    platform: PlatformFlag,
    #[command(flatten)]
    quiet: QuietFlag,
}

pub fn load(a: LoadArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let platform = a.platform.resolve()?;
    let input = Input::from_arg(a.input.or(a.input_opt));
    input.refuse_terminal("`hutch load FILE`, `hutch load -i FILE` or `hutch load < FILE`")?;
    let loaded = load::load(&store, &input, &platform).map_err(printable_error)?;
    for img in loaded {
        if a.quiet.on() {
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
    /// Root filesystem tarball: plain, .gz or .zst; `-` reads it from standard input
    #[arg(value_name = "ROOTFS.tar|-")]
    tarball: PathBuf,
    /// Name for the new image (without a registry, it goes under localhost/)
    #[arg(value_name = "NAME[:TAG]")]
    name: String,
}

pub fn import(a: ImportArgs, store: Result<Store>) -> Result<i32> {
    let name = TagRef::parse_local(&a.name)?;
    let input = Input::from_arg(Some(a.tarball));
    input.refuse_terminal("`hutch import FILE NAME` or `hutch import - NAME < FILE`")?;
    let digest = load::import(&store?, &input, &name).map_err(printable_error)?;
    outln!("{digest}");
    Ok(0)
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Image to save
    image: String,
    /// Output file (or directory for oci-dir) [default: standard output, when it is not a terminal]
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
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
    match &a.output {
        Some(path) if path.as_os_str() != "-" => {
            save::save(&store, &image, &names, path, a.format)?
        }
        _ => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!(
                    "refusing to write an image archive to a terminal; give a file with \
                     -o FILE or redirect standard output (`hutch save {} > FILE`)",
                    a.image
                );
            }
            if let Err(e) = save::save_to_writer(&store, &image, &names, stdout.lock(), a.format) {
                // A reader that went away (`| head`): quiet, as for other output.
                if broken_pipe(&e) {
                    return Ok(141);
                }
                return Err(e);
            }
        }
    }
    Ok(0)
}

/// Whether the error is a closed pipe on the reading side.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error with anything unprintable in its text escaped: load and
/// import read files of any content, and a message quoting a piece of one
/// must not send control sequences to the terminal.
fn printable_error(e: anyhow::Error) -> anyhow::Error {
    anyhow::anyhow!(printable_message(&format!("{e:#}")))
}
