//! `hutch volume create|ls|inspect|rm|prune`: named volumes in the store
//! (src/store/volumes.rs), as Podman's `volume` commands.

use super::flags::{FormatFlag, OutputFormat, QuietFlag};
use super::output::{self, outln};
use crate::human::human_age;
use crate::store::Store;
use crate::store::volumes::{VolumeError, VolumeInfo};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;

#[derive(Args, Debug)]
pub struct VolumeArgs {
    #[command(subcommand)]
    command: VolumeCommand,
}

#[derive(Subcommand, Debug)]
enum VolumeCommand {
    /// Create a volume (and print its name)
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show volumes: name, directory on the host, creation, labels, containers using them
    Inspect(InspectArgs),
    /// Remove volumes (refused while a container uses one, unless -f)
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove every volume no container uses
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// Set a label (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Succeed without a change when the volume exists
    #[arg(long)]
    ignore: bool,
    /// The volume's name (default: 64 random hex digits)
    #[arg(value_name = "NAME")]
    name: Option<String>,
}

#[derive(Args, Debug)]
struct LsArgs {
    #[command(flatten)]
    format: FormatFlag,
    /// Print only the names, one per line
    #[command(flatten)]
    quiet: QuietFlag,
}

#[derive(Args, Debug)]
struct InspectArgs {
    #[command(flatten)]
    format: FormatFlag,
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
struct RmArgs {
    /// Remove the containers that use the volumes first (running ones are
    /// stopped with SIGKILL), as Podman does
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
struct PruneArgs {
    /// Do not ask for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn run(a: VolumeArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    match a.command {
        VolumeCommand::Create(a) => create(a, &store),
        VolumeCommand::Ls(a) => ls(a, &store),
        VolumeCommand::Inspect(a) => inspect(a, &store),
        VolumeCommand::Rm(a) => rm(a, &store),
        VolumeCommand::Prune(a) => prune(a, &store),
    }
}

fn create(a: CreateArgs, store: &Store) -> Result<i32> {
    let mut labels = BTreeMap::new();
    for l in &a.label {
        match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => labels.insert(k.to_string(), v.to_string()),
            _ => bail!("--label {l:?}: write KEY=VALUE (e.g. --label app=web)"),
        };
    }
    match store.create_volume(a.name.as_deref(), labels) {
        Ok(meta) => outln!("{}", meta.name),
        Err(e) if a.ignore && matches!(e.downcast_ref(), Some(VolumeError::Exists { .. })) => {
            outln!("{}", a.name.unwrap_or_default())
        }
        Err(e) => return Err(e),
    }
    Ok(0)
}

/// A volume as `ls` and `inspect` print it in JSON.
#[derive(serde::Serialize)]
struct VolumeRow {
    name: String,
    mountpoint: String,
    created: String,
    labels: BTreeMap<String, String>,
    containers: Vec<String>,
}

fn row(v: VolumeInfo) -> VolumeRow {
    VolumeRow {
        name: v.meta.name,
        mountpoint: v.mountpoint.to_string_lossy().into_owned(),
        created: v.meta.created,
        labels: v.meta.labels,
        containers: v.containers,
    }
}

fn ls(a: LsArgs, store: &Store) -> Result<i32> {
    let rows: Vec<VolumeRow> = store.list_volumes()?.into_iter().map(row).collect();
    if a.quiet.on() {
        for r in &rows {
            outln!("{}", r.name);
        }
        return Ok(0);
    }
    match a.format.format {
        OutputFormat::Json => output::print_json(&rows)?,
        OutputFormat::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        human_age(Some(&r.created)),
                        r.containers.join(", "),
                    ]
                })
                .collect();
            output::print(&output::table(
                &["VOLUME NAME", "CREATED", "CONTAINERS"],
                &table,
            ));
        }
    }
    Ok(0)
}

fn inspect(a: InspectArgs, store: &Store) -> Result<i32> {
    let mut rows = Vec::new();
    let mut failed = false;
    for name in &a.names {
        match store.find_volume(name) {
            Ok(v) => rows.push(row(v)),
            Err(e) => {
                eprintln!("hutch: error: inspecting volume {name}: {e:#}");
                failed = true;
            }
        }
    }
    match a.format.format {
        OutputFormat::Json => output::print_json(&rows)?,
        OutputFormat::Table => {
            for (i, r) in rows.iter().enumerate() {
                if i > 0 {
                    outln!("");
                }
                let labels: Vec<String> =
                    r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                outln!("Name:        {}", r.name);
                outln!("Mountpoint:  {}", r.mountpoint);
                outln!(
                    "Created:     {} ({})",
                    r.created,
                    human_age(Some(&r.created))
                );
                outln!("Labels:      {}", labels.join(", "));
                outln!("Containers:  {}", r.containers.join(", "));
            }
        }
    }
    Ok(if failed { crate::error::EXIT_FAILED } else { 0 })
}

fn rm(a: RmArgs, store: &Store) -> Result<i32> {
    let mut failed = false;
    for name in &a.names {
        let removed = (|| -> Result<()> {
            if a.force {
                // Containers first, without the volumes lock (their removal
                // takes the containers lock, which comes after it).
                for c in store.find_volume(name)?.containers {
                    store.remove_container(&c, true)?;
                }
            }
            let lock = store.volumes_lock(true)?;
            store.remove_volume(name, &lock)
        })();
        match removed {
            Ok(()) => outln!("{name}"),
            Err(e) => {
                eprintln!("hutch: error: removing volume {name}: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { crate::error::EXIT_FAILED } else { 0 })
}

fn prune(a: PruneArgs, store: &Store) -> Result<i32> {
    if !a.force {
        eprint!(
            "WARNING! This will remove all volumes not used by at least one container. \
             The data in them will be lost.\nAre you sure you want to continue? [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("hutch: nothing removed (`hutch volume prune -f` does not ask)");
            return Ok(0);
        }
    }
    let (removed, warnings) = store.prune_volumes()?;
    for name in &removed {
        outln!("{name}");
    }
    for w in &warnings {
        eprintln!("hutch: warning: {w}");
    }
    Ok(if warnings.is_empty() {
        0
    } else {
        crate::error::EXIT_FAILED
    })
}
