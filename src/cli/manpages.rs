//! `hutch man DIR`: the manual pages (`hutch.1`, `hutch-run.1`, one per
//! command) generated from the clap definitions. install.sh writes them to
//! PREFIX/share/man/man1, where `man hutch-run` finds them.

use super::output::outln;
use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing), e.g. ~/.local/share/man/man1
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

pub fn run(a: ManArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir).with_context(|| {
        format!(
            "creating {} for the manual pages (choose a directory you can write)",
            a.dir.display()
        )
    })?;
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    write_pages(&cmd, &a.dir)?;
    outln!("{}", a.dir.join("hutch.1").display());
    Ok(0)
}

/// One page for `cmd` and one for each visible subcommand, recursively
/// (`hutch-profile-show.1`), each titled with hutch's version.
fn write_pages(cmd: &clap::Command, dir: &std::path::Path) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir)?;
    }
    let page = clap_mangen::Man::new(cmd.clone())
        .source(format!("hutch {}", env!("CARGO_PKG_VERSION")))
        .manual("hutch manual");
    page.generate_to(dir)
        .with_context(|| format!("writing {} into {}", page.get_filename(), dir.display()))?;
    Ok(())
}
