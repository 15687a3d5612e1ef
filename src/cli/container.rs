//! `hutch container inspect|top|ls|diff|commit`, `hutch top`, and the
//! output of `hutch inspect` (a JSON array, or a template per object).

use super::commit::{CommitArgs, DiffArgs};
use super::containers::PsArgs;
use super::flags::FormatFlag;
use super::output;
use super::template::Template;
use crate::error::printable;
use crate::run::top::{Process, go_duration};
use crate::store::Store;
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// `hutch container ...`.
#[derive(Args, Debug)]
pub struct ContainerArgs {
    #[command(subcommand)]
    command: ContainerCommand,
}

#[derive(Subcommand, Debug)]
enum ContainerCommand {
    /// Show containers' state, configuration, mounts and ports as JSON (as podman container inspect)
    Inspect(InspectArgs),
    /// Show the processes of a running container
    Top(TopArgs),
    /// List containers
    #[command(name = "ls", visible_aliases = ["list", "ps"])]
    Ls(PsArgs),
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
        ContainerCommand::Inspect(i) => inspect(i, store),
        ContainerCommand::Top(t) => top(t, store),
        ContainerCommand::Ls(p) => super::containers::ps(p, store),
        ContainerCommand::Diff(d) => super::commit::diff(d, store),
        ContainerCommand::Commit(c) => super::commit::commit(c, store),
        ContainerCommand::Cp(c) => super::copy::cp(c, store),
        ContainerCommand::Export(e) => super::copy::export(e, store),
    }
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Output: json (the default: an array, one object each), or a Go
    /// template applied to each, e.g. '{{.State.Status}}' or '{{json .Config}}'
    #[arg(short, long, value_name = "json|TEMPLATE")]
    format: Option<String>,
    /// Containers (names, IDs or ID prefixes)
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// `hutch container inspect NAME...`.
fn inspect(a: InspectArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let template = parse_format(a.format.as_deref())?;
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for key in &a.containers {
        match crate::run::inspect(&store, key) {
            Ok(i) => found.push(Inspected::Container(Box::new(i))),
            Err(e) => failed.push(e),
        }
    }
    print_inspected(&found, template.as_ref(), failed)
}

/// `--format`: None for JSON (absent, or `json`), else the template.
pub(super) fn parse_format(format: Option<&str>) -> Result<Option<Template>> {
    match format {
        None | Some("json") => Ok(None),
        Some(t) => Ok(Some(Template::parse(t)?)),
    }
}

/// `hutch inspect KEY` when no image is KEY (`image_error` says why):
/// the container named KEY (or with that ID or ID prefix).
pub(super) fn inspect_fallback(
    store: &Store,
    key: &str,
    image_error: anyhow::Error,
) -> Result<Inspected> {
    let c = match store.lookup_container(key) {
        Ok(Some(c)) => c,
        Ok(None) => {
            bail!("{image_error:#}; no container is {key:?} either (`hutch ps -a` lists them)")
        }
        Err(e) => return Err(e.context(format!("no image is {key:?}; looking for a container"))),
    };
    Ok(Inspected::Container(Box::new(crate::run::inspect_info(
        store, &c,
    )?)))
}

/// One object of `inspect`'s output. (A container is printed from its
/// struct, so its keys keep their order: Id, Created, ..., State, ...)
#[derive(serde::Serialize)]
#[serde(untagged)]
pub(super) enum Inspected {
    Image(Value),
    Container(Box<crate::run::Inspected>),
}

/// Print what was found (one JSON array, or the template once per object,
/// each on its line), then the names that were not, as Podman does: the
/// status is 125 when any failed.
pub(super) fn print_inspected(
    found: &[Inspected],
    template: Option<&Template>,
    failed: Vec<anyhow::Error>,
) -> Result<i32> {
    match template {
        None => output::print_json(&found)?,
        Some(t) => {
            let mut out = String::new();
            for v in found {
                out.push_str(&t.render(&serde_json::to_value(v)?)?);
                out.push('\n');
            }
            output::print(&out);
        }
    }
    for e in &failed {
        eprintln!("hutch: error: {e:#}");
    }
    Ok(if failed.is_empty() {
        0
    } else {
        crate::error::EXIT_FAILED
    })
}

#[derive(Args, Debug)]
#[command(
    after_help = "DESCRIPTORS (Podman's, or its AIX codes): user (%U), pid (%p), ppid (%P),\n\
    pcpu (%C), etime (%t), tty (%y), time (%x), args (%a), comm (%c), hpid, huser;\n\
    by default user pid ppid pcpu etime tty time args. pid and ppid are as the\n\
    container sees them, user from its own /etc/passwd; hpid and huser are the host's."
)]
pub struct TopArgs {
    #[command(flatten)]
    format: FormatFlag,
    /// Container (name, ID or ID prefix), running
    container: String,
    /// Columns to show, as separate words or separated by commas
    #[arg(value_name = "DESCRIPTOR")]
    descriptors: Vec<String>,
}

/// One column of `hutch top`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    User,
    Pid,
    Ppid,
    Pcpu,
    Etime,
    Tty,
    Time,
    Args,
    Comm,
    Hpid,
    Huser,
}

const DEFAULT_COLUMNS: [Column; 8] = [
    Column::User,
    Column::Pid,
    Column::Ppid,
    Column::Pcpu,
    Column::Etime,
    Column::Tty,
    Column::Time,
    Column::Args,
];

impl Column {
    fn parse(word: &str) -> Option<Column> {
        Some(match word {
            "user" | "%U" => Column::User,
            "pid" | "%p" => Column::Pid,
            "ppid" | "%P" => Column::Ppid,
            "pcpu" | "%C" => Column::Pcpu,
            "etime" | "%t" => Column::Etime,
            "tty" | "%y" => Column::Tty,
            "time" | "%x" => Column::Time,
            "args" | "%a" => Column::Args,
            "comm" | "%c" => Column::Comm,
            "hpid" => Column::Hpid,
            "huser" => Column::Huser,
            _ => return None,
        })
    }

    /// Its descriptor: the key in `--format json`.
    fn key(self) -> &'static str {
        match self {
            Column::User => "user",
            Column::Pid => "pid",
            Column::Ppid => "ppid",
            Column::Pcpu => "pcpu",
            Column::Etime => "etime",
            Column::Tty => "tty",
            Column::Time => "time",
            Column::Args => "args",
            Column::Comm => "comm",
            Column::Hpid => "hpid",
            Column::Huser => "huser",
        }
    }

    /// Its header, as Podman writes it.
    fn header(self) -> &'static str {
        match self {
            Column::User => "USER",
            Column::Pid => "PID",
            Column::Ppid => "PPID",
            Column::Pcpu => "%CPU",
            Column::Etime => "ELAPSED",
            Column::Tty => "TTY",
            Column::Time => "TIME",
            Column::Args | Column::Comm => "COMMAND",
            Column::Hpid => "HPID",
            Column::Huser => "HUSER",
        }
    }

    fn json(self, p: &Process) -> Value {
        match self {
            Column::User => json!(p.user),
            Column::Pid => json!(p.pid),
            Column::Ppid => json!(p.ppid),
            Column::Pcpu => json!((p.pcpu() * 1000.0).round() / 1000.0),
            Column::Etime => json!(go_duration(p.elapsed_ns)),
            Column::Tty => json!(p.tty),
            Column::Time => json!(go_duration(p.cpu_ns)),
            Column::Args => json!(p.args),
            Column::Comm => json!(p.comm),
            Column::Hpid => json!(p.host_pid),
            Column::Huser => json!(host_user(p)),
        }
    }

    /// The table's cell; what comes from the container is escaped.
    fn cell(self, p: &Process) -> String {
        match self {
            Column::User => printable(&p.user, 32),
            Column::Pid => p.pid.to_string(),
            Column::Ppid => p.ppid.to_string(),
            Column::Pcpu => format!("{:.3}", p.pcpu()),
            Column::Etime => go_duration(p.elapsed_ns),
            Column::Tty => p.tty.clone(),
            Column::Time => go_duration(p.cpu_ns),
            Column::Args => printable(&p.args.join(" "), 1000),
            Column::Comm => printable(&p.comm, 64),
            Column::Hpid => p.host_pid.to_string(),
            Column::Huser => host_user(p),
        }
    }
}

fn host_user(p: &Process) -> String {
    crate::host::user_name(p.host_uid).unwrap_or_else(|| p.host_uid.to_string())
}

fn columns(words: &[String]) -> Result<Vec<Column>> {
    let mut out = Vec::new();
    for w in words
        .iter()
        .flat_map(|w| w.split(','))
        .filter(|w| !w.is_empty())
    {
        match Column::parse(w) {
            Some(c) => out.push(c),
            None => bail!(
                "top: unknown descriptor {:?}; use user, pid, ppid, pcpu, etime, tty, time, \
                 args, comm, hpid or huser (ps(1) options are not supported: `hutch exec \
                 CONTAINER ps ...` runs the container's own ps)",
                printable(w, 40)
            ),
        }
    }
    Ok(if out.is_empty() {
        DEFAULT_COLUMNS.to_vec()
    } else {
        out
    })
}

/// `hutch top CONTAINER [DESCRIPTOR...]`.
pub fn top(a: TopArgs, store: Result<Store>) -> Result<i32> {
    let cols = columns(&a.descriptors)?;
    let procs = crate::run::top::top(&store?, &a.container)?;
    if a.format.json() {
        let rows: Vec<Value> = procs
            .iter()
            .map(|p| {
                Value::Object(
                    cols.iter()
                        .map(|c| (c.key().to_string(), c.json(p)))
                        .collect(),
                )
            })
            .collect();
        output::print_json(&rows)?;
        return Ok(0);
    }
    let headers: Vec<&str> = cols.iter().map(|c| c.header()).collect();
    let rows: Vec<Vec<String>> = procs
        .iter()
        .map(|p| cols.iter().map(|c| c.cell(p)).collect())
        .collect();
    output::print(&output::table(&headers, &rows));
    Ok(0)
}
