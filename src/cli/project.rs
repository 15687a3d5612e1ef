//! Project environments (issue 17): `hutch init`, `hutch lock`.

use crate::cli::flags::TlsVerify;
use crate::project::lock::Mode;
use crate::project::locking::{LockRequest, lock as run_lock};
use crate::project::manifest;
use crate::store::Store;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The environment's image [default: debian:stable]
    #[arg(long, value_name = "REF")]
    image: Option<String>,
    /// The project's root directory, made if missing [default: the current directory]
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn init(a: InitArgs) -> Result<i32> {
    let dir = a.dir.unwrap_or_else(|| PathBuf::from("."));
    let path = manifest::write_template(&dir, a.image.as_deref())?;
    println!(
        "wrote {}: edit it to describe the project's environment and services",
        path.display()
    );
    Ok(0)
}

#[derive(Args, Debug)]
pub struct LockArgs {
    /// Resolve these image references again (all of them without a name), as the registries have them now
    #[arg(long, value_name = "REF", num_args = 0.., conflicts_with = "frozen")]
    update: Option<Vec<String>>,
    /// Resolve nothing: fail unless hutch.lock is current and pins every image (for CI)
    #[arg(long)]
    frozen: bool,
    #[command(flatten)]
    tls: TlsVerify,
    /// The project's root directory (with hutch.toml)
    #[arg(long = "dir", value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

pub fn lock(a: LockArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let mode = match (a.update, a.frozen) {
        (Some(names), _) => Mode::Update(names),
        (None, true) => Mode::Frozen,
        (None, false) => Mode::Keep,
    };
    let frozen = mode == Mode::Frozen;
    let done = run_lock(
        &store,
        &LockRequest {
            root: a.dir.clone(),
            mode,
            tls_verify: a.tls.tls_verify,
        },
    )?;
    for (reference, pins) in &done.lock.images {
        for (platform, digest) in pins {
            println!("{reference}\t{platform}\t{digest}");
        }
    }
    let file = a.dir.join(crate::project::lock::LOCK_FILE);
    match (frozen, done.written) {
        (true, _) => eprintln!("{} is current", file.display()),
        (false, true) => eprintln!("wrote {}", file.display()),
        (false, false) => eprintln!("{} is unchanged", file.display()),
    }
    Ok(0)
}
