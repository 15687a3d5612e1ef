//! Project environments (issue 17): `hutch init`.

use crate::project::manifest;
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
