//! `hutch pull` and `hutch push`.

use crate::cli::output::outln;
use crate::image::platform::Platform;
use crate::image::progress::Progress;
use crate::registry::pull;
use crate::store::Store;
use anyhow::Result;
use clap::Args;

/// `--tls-verify[=BOOL]`, for every command that talks to a registry.
#[derive(Args, Debug)]
pub struct TlsVerify {
    /// Verify the registry's TLS certificate; false also allows plain HTTP [default: true, or `insecure` in registries.toml]
    #[arg(long, value_name = "BOOL", num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// NAME[:TAG] or NAME@sha256:DIGEST (`debian` is docker.io/library/debian:latest)
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Platform to pick from multi-platform images [default: the host's]
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,
    #[command(flatten)]
    tls: TlsVerify,
    /// No progress; print only the manifest digest
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(a: PullArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let platform = match &a.platform {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let progress = Progress::for_stderr(a.quiet);
    let pulled = pull::pull(&store, &a.image, &platform, a.tls.tls_verify, &progress)?;
    if a.quiet {
        outln!("{}", pulled.manifest);
    } else {
        match &pulled.tag {
            Some(t) => outln!("Pulled {t} ({})", pulled.manifest),
            None => outln!("Pulled {} (untagged)", pulled.manifest),
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The image in the store (name, ID or digest)
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Where to: REGISTRY/NAME[:TAG] [default: IMAGE's own name]
    #[arg(value_name = "DEST")]
    dest: Option<String>,
    #[command(flatten)]
    tls: TlsVerify,
    /// No progress; print only the manifest digest
    #[arg(short, long)]
    quiet: bool,
}

pub fn push(a: PushArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let progress = Progress::for_stderr(a.quiet);
    let p = crate::registry::push::push(
        &store,
        &a.image,
        a.dest.as_deref(),
        a.tls.tls_verify,
        &progress,
    )?;
    if a.quiet {
        outln!("{}", p.manifest);
    } else {
        outln!(
            "Pushed {} ({}): {} blobs uploaded, {} mounted, {} already there",
            p.dest,
            p.manifest,
            p.uploaded,
            p.mounted,
            p.skipped
        );
    }
    Ok(0)
}
