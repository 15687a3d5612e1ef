//! `hutch diff`, `hutch commit` and their `hutch container ...` spellings
//! (the group also holds `cp` and `export`, from copy.rs).

use super::flags::FormatFlag;
use super::output;
use crate::cli::output::outln;
use crate::error::printable;
use crate::image::commit::{CommitOptions, commit as commit_container};
use crate::image::diff::{ChangeKind, container_changes};
use crate::image::instructions::SUPPORTED;
use crate::oci::TagRef;
use crate::store::Store;
use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Container (name, ID or ID prefix), running or stopped
    container: String,
    #[command(flatten)]
    format: FormatFlag,
}

#[derive(Args, Debug)]
#[command(after_help = format!(
    "-c takes these Dockerfile instructions: {SUPPORTED}. CMD and ENTRYPOINT take a JSON \
     array or a shell command; ENTRYPOINT clears the image's CMD unless a CMD comes before it.\n\n\
     A running container may be committed (it is not paused, as with podman commit \
     --pause=false): files it writes meanwhile may be caught half-written."
))]
pub struct CommitArgs {
    /// Commit message (the comment of the new history entry)
    #[arg(short, long, value_name = "MSG")]
    message: Option<String>,
    /// Apply a Dockerfile instruction to the new image's config, e.g. -c 'CMD ["echo","hi"]' (repeatable)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// Author of the new image
    #[arg(short, long, value_name = "AUTHOR")]
    author: Option<String>,
    /// Container (name, ID or ID prefix), running or stopped
    container: String,
    /// Name for the new image (without a registry, it goes under localhost/); none: untagged
    #[arg(value_name = "IMAGE[:TAG]")]
    image: Option<String>,
}

/// `hutch container diff|commit`.
#[derive(Args, Debug)]
pub struct ContainerArgs {
    #[command(subcommand)]
    command: ContainerCommand,
}

#[derive(Subcommand, Debug)]
enum ContainerCommand {
    /// Show the files a container added (A), changed (C) and deleted (D)
    Diff(DiffArgs),
    /// Make a new image from a container's changes
    Commit(CommitArgs),
    /// Copy files between a container (running or stopped) and the host
    Cp(super::copy::CpArgs),
    /// Write a container's root filesystem as a tar archive
    Export(super::copy::ExportArgs),
}

pub fn container(a: ContainerArgs, store: Result<Store>) -> Result<i32> {
    match a.command {
        ContainerCommand::Diff(d) => diff(d, store),
        ContainerCommand::Commit(c) => commit(c, store),
        ContainerCommand::Cp(c) => super::copy::cp(c, store),
        ContainerCommand::Export(e) => super::copy::export(e, store),
    }
}

#[derive(serde::Serialize)]
struct DiffJson {
    added: Vec<String>,
    changed: Vec<String>,
    deleted: Vec<String>,
}

pub fn diff(a: DiffArgs, store: Result<Store>) -> Result<i32> {
    let changes = container_changes(&store?, &a.container)?;
    if a.format.json() {
        let mut out = DiffJson {
            added: Vec::new(),
            changed: Vec::new(),
            deleted: Vec::new(),
        };
        for c in changes {
            let list = match c.kind {
                ChangeKind::Added => &mut out.added,
                ChangeKind::Changed => &mut out.changed,
                ChangeKind::Deleted => &mut out.deleted,
            };
            list.push(c.path_lossy());
        }
        output::print_json(&out)?;
        return Ok(0);
    }
    for c in changes {
        // The names come from the container: no terminal escapes.
        outln!(
            "{} {}",
            c.kind.letter(),
            printable(&c.path_lossy(), usize::MAX)
        );
    }
    Ok(0)
}

pub fn commit(a: CommitArgs, store: Result<Store>) -> Result<i32> {
    let tag = a.image.as_deref().map(TagRef::parse_local).transpose()?;
    let opts = CommitOptions {
        message: a.message,
        author: a.author,
        changes: a.changes,
        tag,
    };
    let done = commit_container(&store?, &a.container, &opts)?;
    outln!("{}", done.id.hex());
    Ok(0)
}
