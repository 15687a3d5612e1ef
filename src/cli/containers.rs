//! `hutch ps` and `hutch rm`.

use super::{OutputFormat, output};
use crate::cli::output::outln;
use crate::store::Store;
use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show every container, not only running ones
    #[arg(short, long)]
    all: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Print IDs only
    #[arg(short, long)]
    quiet: bool,
}

#[derive(serde::Serialize)]
struct PsRow {
    id: String,
    name: String,
    image: String,
    image_id: String,
    command: Vec<String>,
    created: String,
    status: String,
    exit_code: Option<i32>,
    profile: String,
}

pub fn ps(a: PsArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let rows: Vec<PsRow> = store
        .list_containers()?
        .into_iter()
        .filter(|c| a.all || c.alive)
        .map(|c| PsRow {
            status: c.status_text(),
            id: c.state.id,
            name: c.state.name,
            image: c.state.image,
            image_id: c.state.image_id,
            command: c.state.command,
            created: c.state.created,
            exit_code: c.state.exit_code,
            profile: c.state.profile,
        })
        .collect();
    if a.quiet {
        for r in &rows {
            outln!("{}", r.id.get(..12).unwrap_or(&r.id));
        }
        return Ok(0);
    }
    match a.format {
        OutputFormat::Json => output::print_json(&rows)?,
        OutputFormat::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut cmd = r.command.join(" ");
                    if cmd.chars().count() > 30 {
                        cmd = cmd.chars().take(27).collect::<String>() + "...";
                    }
                    vec![
                        r.id.get(..12).unwrap_or(&r.id).to_string(),
                        r.image.clone(),
                        cmd,
                        output::human_age(Some(&r.created)),
                        r.status.clone(),
                        r.name.clone(),
                    ]
                })
                .collect();
            output::print(&output::table(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "NAME",
                ],
                &table,
            ));
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Stop (SIGKILL) running containers first
    #[arg(short, long)]
    force: bool,
    /// Containers to remove: names, IDs or ID prefixes
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub fn rm(a: RmArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let mut failed = false;
    for c in &a.containers {
        match store.remove_container(c, a.force) {
            Ok(st) => outln!("{}", st.name),
            Err(e) => {
                eprintln!("hutch: error: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { crate::error::EXIT_FAILED } else { 0 })
}
