//! `hutch build` and the hidden `__build-run` (one RUN step's process).

use crate::build::executor::{BuildOptions, build as run_build};
use crate::cli::flags::TlsVerify;
use crate::oci::TagRef;
use crate::run::{NetworkArg, PullPolicy};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name (and tag) for the image; repeatable; without a registry it goes under localhost/
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// The Containerfile (`-` reads it from stdin) [default: CONTEXT/Containerfile, else CONTEXT/Dockerfile]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Set a build argument (ARG); KEY alone takes hutch's environment value
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    build_args: Vec<String>,
    /// Build only up to this stage (FROM ... AS STAGE)
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,
    /// Run every step again instead of taking it from the build cache
    #[arg(long)]
    no_cache: bool,
    /// Pull base images: missing (when not in the store), always, never
    #[arg(long, value_name = "POLICY", default_value = "missing")]
    pull: PullPolicy,
    #[command(flatten)]
    tls: TlsVerify,
    /// The network of RUN steps: slirp (default; slirp:allow_host_loopback=true reaches the host's 127.0.0.1 as 10.0.2.2) or none
    #[arg(long, value_name = "MODE", default_value = "slirp")]
    network: String,
    /// A secret for RUN --mount=type=secret,id=ID (never stored in the image)
    #[arg(long, value_name = "id=ID,src=PATH")]
    secret: Vec<String>,
    /// Add a label to the image
    #[arg(long, value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Write the image ID to this file
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Print only the image ID
    #[arg(short, long)]
    quiet: bool,
    /// Clamp file times and set creation times to this Unix time (default: $SOURCE_DATE_EPOCH)
    #[arg(long, value_name = "SECONDS")]
    source_date_epoch: Option<i64>,
    /// The build context directory
    #[arg(default_value = ".")]
    context: PathBuf,
}

#[derive(Args, Debug)]
pub struct BuildRunArgs {
    dir: PathBuf,
    ppid: i32,
}

fn key_value(flag: &str, s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("{flag} {s:?}: expected KEY=VALUE"),
    }
}

fn secret(s: &str) -> Result<(String, PathBuf)> {
    let (mut id, mut src) = (None, None);
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("type", "file")) => {}
            _ => bail!("--secret {s:?}: expected id=ID,src=PATH"),
        }
    }
    match (id, src) {
        (Some(id), Some(src)) if !id.is_empty() => {
            if !src.is_file() {
                bail!("--secret {s:?}: {} is not a readable file", src.display());
            }
            Ok((id, src))
        }
        _ => bail!("--secret {s:?}: expected id=ID,src=PATH"),
    }
}

pub fn build(a: BuildArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let mut build_args = BTreeMap::new();
    for b in &a.build_args {
        match b.split_once('=') {
            Some(_) => {
                let (k, v) = key_value("--build-arg", b)?;
                build_args.insert(k, v);
            }
            None => {
                if let Ok(v) = std::env::var(b) {
                    build_args.insert(b.clone(), v);
                }
            }
        }
    }
    let network = NetworkArg::parse(&a.network)?;
    if network.container.is_some() || network.mode == crate::profile::NetworkMode::Host {
        bail!(
            "--network {}: a build's RUN steps use slirp or none",
            a.network
        );
    }
    let source_date_epoch = match a.source_date_epoch {
        Some(e) => Some(e),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.is_empty() => Some(v.parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?}: expected a number of seconds")
            })?),
            _ => None,
        },
    };
    let opts = BuildOptions {
        context: a.context.clone(),
        file: a.file.clone(),
        tags: a
            .tags
            .iter()
            .map(|t| TagRef::parse_local(t))
            .collect::<Result<_>>()?,
        build_args,
        target: a.target.clone(),
        no_cache: a.no_cache,
        pull: a.pull,
        tls_verify: a.tls.tls_verify,
        network: network.mode,
        allow_host_loopback: network.allow_host_loopback.unwrap_or(false),
        secrets: a.secret.iter().map(|s| secret(s)).collect::<Result<_>>()?,
        labels: a
            .label
            .iter()
            .map(|l| key_value("--label", l))
            .collect::<Result<_>>()?,
        quiet: a.quiet,
        source_date_epoch,
        pins: Default::default(),
        text: None,
    };
    let started = std::time::Instant::now();
    let built = run_build(&store, &opts)?;
    if let Some(f) = &a.iidfile {
        std::fs::write(f, built.id.to_string())
            .with_context(|| format!("writing the image ID to {}", f.display()))?;
    }
    if !a.quiet {
        let names: Vec<String> = opts.tags.iter().map(|t| t.to_string()).collect();
        eprintln!(
            "Built {} in {:.2}s ({} steps ran, {} cached, {} context files read){}",
            &built.id.hex()[..12],
            started.elapsed().as_secs_f64(),
            built.ran,
            built.cached,
            built.files_read,
            if names.is_empty() {
                String::new()
            } else {
                format!(", tagged {}", names.join(", "))
            }
        );
    }
    println!("{}", built.id.hex());
    Ok(0)
}

pub fn build_run(a: BuildRunArgs) -> Result<i32> {
    crate::build::run_step::serve(&a.dir, a.ppid)
}
