//! `hutch profile list` and `hutch profile show`.

use super::flags::FormatFlag;
use super::output;
use crate::profile;
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(subcommand)]
    command: ProfileCommand,
}

#[derive(Subcommand, Debug)]
enum ProfileCommand {
    /// List the built-in profiles and yours, with where each comes from
    List(ListArgs),
    /// Print a profile with `extends` resolved and every key filled in
    Show(ShowArgs),
}

#[derive(Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    format: FormatFlag,
}

/// `show` prints a profile file by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
enum ShowFormat {
    #[default]
    Toml,
    Json,
}

#[derive(Args, Debug)]
struct ShowArgs {
    /// A profile name, or a path to a profile file (contains `/` or ends in .toml)
    #[arg(value_name = "NAME|PATH")]
    profile: String,
    #[arg(long, value_enum, default_value = "toml")]
    format: ShowFormat,
}

pub fn run(a: ProfileArgs) -> Result<i32> {
    match a.command {
        ProfileCommand::List(a) => list(a),
        ProfileCommand::Show(a) => show(a),
    }
}

fn list(a: ListArgs) -> Result<i32> {
    let profiles = profile::list()?;
    if a.format.json() {
        output::print_json(&profiles)?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = profiles
        .iter()
        .map(|p| {
            let mut source = profile::display_source(&p.source);
            if p.overrides_builtin {
                source.push_str(" (overrides built-in)");
            }
            let description = match &p.error {
                Some(e) => format!("(cannot be loaded: {e})"),
                None => p.description.clone(),
            };
            vec![p.name.clone(), source, description]
        })
        .collect();
    output::print(&output::table(&["NAME", "SOURCE", "DESCRIPTION"], &rows));
    Ok(0)
}

fn show(a: ShowArgs) -> Result<i32> {
    let p = profile::load(&a.profile)?;
    match a.format {
        ShowFormat::Json => output::print_json(&p)?,
        ShowFormat::Toml => output::print(&p.to_toml()?),
    }
    Ok(0)
}
