//! `hutch cp` and `hutch export` (and their `hutch container ...` spellings).

use crate::sandbox::visit::ReaderGone;
use crate::store::Store;
use anyhow::Result;
use clap::Args;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_long_help = "\
One of SRC and DEST is CONTAINER:PATH (a name, ID or unique ID prefix; the container
may be running or stopped), the other a host path, or - for a tar archive on stdin
(extracted into a directory of the container) or stdout.

  hutch cp ./config.yml web:/etc/app/      a file into a directory
  hutch cp web:/var/log/app ./logs         a directory out (./logs is created)
  hutch cp ./site/. web:/srv/www           a directory's contents
  tar -c . | hutch cp - web:/src           a tar archive into a directory

A file copied onto an existing directory goes inside it, onto a missing path it
becomes that path (whose parent must exist). A relative container PATH is relative
to the container's working directory. Files copied into a container belong to its
root (uid and gid 0 there) unless -a keeps their owner's numbers; files copied out
belong to you, with their modes and times kept. Symlinks are copied as symlinks.
A stopped container's volumes are not mounted: copy into them while it runs.")]
pub struct CpArgs {
    /// Keep the source's uid and gid (into a container; out of one, files are yours)
    #[arg(short, long)]
    archive: bool,
    /// Follow a symlink given as SRC (below it, symlinks are always copied as symlinks)
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// What to copy: CONTAINER:PATH, a host path, or - (a tar archive on stdin)
    #[arg(value_name = "SRC")]
    src: OsString,
    /// Where to: CONTAINER:PATH, a host path, or - (a tar archive on stdout)
    #[arg(value_name = "DEST")]
    dest: OsString,
}

#[derive(Args, Debug)]
#[command(after_long_help = "\
The tar holds the container's root filesystem: its image's files with its changes
(what `hutch diff` lists), not its volumes or other mounts. Names are relative to
the root and owners are the container's (0 for root's files), as in `podman export`.
With -o the archive replaces FILE only once it is complete.")]
pub struct ExportArgs {
    /// Write the tar to FILE instead of stdout
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Container name, ID or unique ID prefix (running or stopped)
    container: String,
}

/// A tar written to stdout whose reader went away (`| head`): the
/// status a shell gives SIGPIPE, quietly, as other commands' output.
fn quiet_on_closed_stdout(r: Result<()>) -> Result<i32> {
    match r {
        Ok(()) => Ok(0),
        Err(e) if e.downcast_ref::<ReaderGone>().is_some() => Ok(141),
        Err(e) => Err(e),
    }
}

/// `hutch cp`.
pub fn cp(a: CpArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    quiet_on_closed_stdout(crate::run::copy(
        &store,
        &crate::run::CopyRequest {
            src: a.src.as_bytes().to_vec(),
            dest: a.dest.as_bytes().to_vec(),
            archive: a.archive,
            follow: a.follow_link,
        },
    ))
}

/// `hutch export`.
pub fn export(a: ExportArgs, store: Result<Store>) -> Result<i32> {
    quiet_on_closed_stdout(crate::run::export(
        &store?,
        &a.container,
        a.output.as_deref(),
    ))
}
