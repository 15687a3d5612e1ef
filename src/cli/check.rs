//! `hutch check`: host prerequisites, and with `--store`, store integrity.

use super::flags::FormatFlag;
use super::{open_store, output};
use crate::cli::output::outln;
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Verify every blob, unpacked layer and tag in the store instead
    #[arg(long)]
    store: bool,
    /// With --store: remove damaged data, unpack missing layers again, drop tags whose data is gone
    #[arg(long, requires = "store")]
    repair: bool,
    #[command(flatten)]
    format: FormatFlag,
}

pub fn run(a: CheckArgs, root: &Option<PathBuf>) -> Result<i32> {
    if a.store {
        let store = open_store(root)?;
        let report = store.verify(a.repair)?;
        if a.format.json() {
            output::print_json(&report)?;
        } else {
            outln!(
                "checked {} blobs, {} layers, {} images in {}",
                report.blobs_checked,
                report.layers_checked,
                report.images_checked,
                store.root().display()
            );
            for p in &report.problems {
                outln!("problem: {p}");
            }
            for r in &report.repaired {
                outln!("repaired: {r}");
            }
            if report.problems.is_empty() {
                outln!("store is consistent");
            } else if !report.clean() {
                outln!("run `hutch check --store --repair` to fix what can be fixed");
            }
        }
        return Ok(if report.clean() { 0 } else { 1 });
    }
    if a.repair {
        bail!("--repair goes with --store");
    }
    let findings = crate::check::host::check_host();
    if a.format.json() {
        output::print_json(&findings)?;
    } else {
        output::print(&crate::check::host::render(&findings));
    }
    Ok(if crate::check::host::can_run(&findings) {
        0
    } else {
        1
    })
}
