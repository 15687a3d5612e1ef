//! `hutch pull` and `hutch push`.

use crate::cli::flags::{PlatformFlag, QuietFlag, TlsVerify};
use crate::cli::output::outln;
use crate::image::progress::Progress;
use crate::registry::pull;
use crate::store::Store;
use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct PullArgs {
    /// NAME[:TAG] or NAME@sha256:DIGEST (`debian` is docker.io/library/debian:latest)
    #[arg(value_name = "IMAGE")]
    image: String,
    #[command(flatten)]
    platform: PlatformFlag,
    #[command(flatten)]
    tls: TlsVerify,
    #[command(flatten)]
    quiet: QuietFlag,
}

pub fn run(a: PullArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let platform = a.platform.resolve()?;
    let progress = Progress::for_stderr(a.quiet.on());
    let pulled = pull::pull(&store, &a.image, &platform, a.tls.tls_verify, &progress)?;
    if a.quiet.on() {
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
    #[command(flatten)]
    quiet: QuietFlag,
}

pub fn push(a: PushArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let progress = Progress::for_stderr(a.quiet.on());
    let p = crate::registry::push::push(
        &store,
        &a.image,
        a.dest.as_deref(),
        a.tls.tls_verify,
        &progress,
    )?;
    if a.quiet.on() {
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
