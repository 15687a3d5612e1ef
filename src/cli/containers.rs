//! `hutch ps`, `hutch rm` and `hutch rename`.

use super::flags::{FormatFlag, OutputFormat, QuietFlag};
use super::output;
use crate::cli::output::outln;
use crate::human::human_age;
use crate::store::Store;
use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show every container, not only running ones
    #[arg(short, long)]
    all: bool,
    /// Only containers matching KEY=VALUE: status (created, running,
    /// exited, killed), name (substring), id (prefix), ancestor (image);
    /// repeat a key for either value
    #[arg(short, long, value_name = "KEY=VALUE")]
    filter: Vec<String>,
    /// Only the containers of the project at or above DIR (default: the
    /// current directory), stopped ones too, with their service names
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = ".")]
    project: Option<std::path::PathBuf>,
    #[command(flatten)]
    format: FormatFlag,
    #[command(flatten)]
    quiet: QuietFlag,
}

#[derive(serde::Serialize)]
struct PsRow {
    /// With --project: `env` or the service's name
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    id: String,
    name: String,
    image: String,
    image_id: String,
    command: Vec<String>,
    created: String,
    /// running, exited, created or killed
    state: String,
    /// As Podman shows it: "Up 3 minutes", "Exited (0) 2 seconds ago"
    status: String,
    exit_code: Option<i32>,
    profile: String,
    ports: Vec<String>,
    /// Restarts by its keeper (`run --restart`) since it was last started
    restart_count: u32,
}

pub fn ps(a: PsArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let filter = crate::store::containers::ContainerFilter::parse(&a.filter)?;
    // A status filter looks at every container, as in Podman.
    let all = a.all || a.project.is_some() || a.filter.iter().any(|f| f.starts_with("status="));
    let listed: Vec<(Option<String>, _)> = if let Some(dir) = &a.project {
        crate::project::services::ps(&store, dir)?
            .into_iter()
            .map(|l| (Some(l.service), l.info))
            .collect()
    } else {
        store
            .list_containers()?
            .into_iter()
            .map(|c| (None, c))
            .collect()
    };
    let rows: Vec<PsRow> = listed
        .into_iter()
        .filter(|(_, c)| (all || c.state_word() == "running") && filter.matches(c))
        .map(|(service, c)| PsRow {
            service,
            status: c.status_text(),
            state: c.state_word().to_string(),
            id: c.state.id,
            name: c.state.name,
            image: c.state.image,
            image_id: c.state.image_id,
            command: c.state.command,
            created: c.state.created,
            exit_code: c.state.exit_code,
            profile: c.state.profile,
            ports: c.state.ports,
            restart_count: c.state.restart_count,
        })
        .collect();
    if a.quiet.on() {
        for r in &rows {
            outln!("{}", r.id.get(..12).unwrap_or(&r.id));
        }
        return Ok(0);
    }
    match a.format.format {
        OutputFormat::Json => output::print_json(&rows)?,
        OutputFormat::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut cmd = r.command.join(" ");
                    if cmd.chars().count() > 30 {
                        cmd = cmd.chars().take(27).collect::<String>() + "...";
                    }
                    let mut row = vec![
                        r.id.get(..12).unwrap_or(&r.id).to_string(),
                        r.image.clone(),
                        cmd,
                        human_age(Some(&r.created)),
                        r.status.clone(),
                        // Published while it runs; the record keeps them.
                        if r.state == "running" {
                            r.ports.join(", ")
                        } else {
                            String::new()
                        },
                        r.name.clone(),
                    ];
                    if let Some(s) = &r.service {
                        row.insert(0, s.clone());
                    }
                    row
                })
                .collect();
            let mut header = vec![
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAME",
            ];
            if a.project.is_some() {
                header.insert(0, "SERVICE");
            }
            output::print(&output::table(&header, &table));
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    /// Container (name, ID or unique ID prefix)
    container: String,
    /// Its new name
    name: String,
}

/// `hutch rename OLD NEW`, running or not.
pub fn rename(a: RenameArgs, store: Result<Store>) -> Result<i32> {
    store?.rename_container(&a.container, &a.name)?;
    Ok(0)
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Stop (SIGKILL) running containers first
    #[arg(short, long)]
    force: bool,
    /// Remove every stopped container (with -f, running ones too)
    #[arg(short, long, conflicts_with = "containers")]
    all: bool,
    /// Containers to remove: names, IDs or ID prefixes
    #[arg(required_unless_present = "all", value_name = "CONTAINER")]
    containers: Vec<String>,
}

pub fn rm(a: RmArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let mut failed = false;
    let keys = if a.all {
        let mut keys = Vec::new();
        for c in store.list_containers()? {
            if c.alive && !a.force {
                eprintln!(
                    "hutch: container {} is running and is kept; `hutch rm -f {}` stops and removes it",
                    c.state.name, c.state.name
                );
            } else {
                keys.push(c.state.id);
            }
        }
        keys
    } else {
        a.containers
    };
    for c in &keys {
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
