//! The images a project runs, made from its lock: an `image = "REF"` is
//! pulled by the digest hutch.lock pins (never by its tag, which may have
//! moved); a `build` is built with every FROM and `--from` image replaced
//! by its pin; the environment's `setup` commands become one more layer,
//! built by the build machinery (so its cache makes an unchanged setup
//! instant and a changed one rebuilds that layer alone).

use super::lock::Lock;
use super::locking::build_references;
use super::manifest::{BuildSpec, ImageSource, Manifest};
use super::naming::Project;
use crate::build::executor::{BuildOptions, build};
use crate::oci::platform::Platform;
use crate::profile::NetworkMode;
use crate::run::PullPolicy;
use crate::store::Store;
use anyhow::{Context, Result};
use std::collections::BTreeMap;

/// How images are fetched.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fetch {
    pub(crate) tls_verify: Option<bool>,
}

/// `reference` as hutch.lock pins it for the host (`NAME@DIGEST`).
fn pinned(lock: &Lock, reference: &str) -> Result<String> {
    let host = Platform::host().to_string();
    lock.pinned(reference, &host).with_context(|| {
        format!(
            "hutch.lock pins no image for {reference} on {host}: run `hutch lock` (it resolves \
             the references hutch.toml and its Containerfiles name)"
        )
    })
}

/// The image of a section (`image` or `build`), present in the store:
/// what `hutch run` is given (a pinned reference or a built tag).
pub(crate) fn section_image(
    store: &Store,
    project: &Project,
    what: &str,
    source: &ImageSource,
    lock: &Lock,
    fetch: Fetch,
) -> Result<String> {
    match source {
        ImageSource::Image(reference) => {
            let pin = pinned(lock, reference)?;
            crate::run::pull_policy::pull_first(store, &pin, PullPolicy::Missing, fetch.tls_verify)
                .with_context(|| format!("pulling {pin} ({reference} as hutch.lock pins it)"))?;
            Ok(pin)
        }
        ImageSource::Build(b) => {
            let mut pins = BTreeMap::new();
            for reference in build_references(&project.root, b)? {
                let pin = pinned(lock, &reference)?;
                pins.insert(reference, pin);
            }
            let tag = project.image_tag(what);
            run_build(store, &tag, build_options(project, b, pins, fetch))?;
            Ok(tag)
        }
    }
}

fn build_options(
    project: &Project,
    b: &BuildSpec,
    pins: BTreeMap<String, String>,
    fetch: Fetch,
) -> BuildOptions {
    BuildOptions {
        context: project.root.join(&b.context),
        file: Some(project.root.join(&b.containerfile)),
        tags: Vec::new(),
        build_args: b.args.clone(),
        target: b.target.clone(),
        no_cache: false,
        pull: PullPolicy::Missing,
        tls_verify: fetch.tls_verify,
        network: NetworkMode::Slirp,
        allow_host_loopback: false,
        secrets: BTreeMap::new(),
        labels: Vec::new(),
        quiet: false,
        source_date_epoch: None,
        pins,
        text: None,
    }
}

fn run_build(store: &Store, tag: &str, mut opts: BuildOptions) -> Result<()> {
    opts.tags = vec![crate::oci::TagRef::parse_local(tag)?];
    build(store, &opts).with_context(|| format!("building {tag}"))?;
    Ok(())
}

/// The Containerfile of the setup layer: one RUN of every setup command
/// in order, by `/bin/sh -c` with `set -e` (the first failure stops it).
pub(crate) fn setup_containerfile(base: &str, setup: &[String]) -> String {
    let mut script = String::from("set -e\n");
    for command in setup {
        script.push_str(command);
        script.push('\n');
    }
    let argv = serde_json::json!(["/bin/sh", "-c", script]);
    format!("FROM {base}\nRUN {argv}\n")
}

/// The environment's image: its `image` or `build`, then the setup layer
/// when there are setup commands (built as root in the image, with the
/// network, without the project mounted, like a Containerfile's RUN).
pub(crate) fn env_image(
    store: &Store,
    project: &Project,
    m: &Manifest,
    lock: &Lock,
    fetch: Fetch,
) -> Result<String> {
    let base = section_image(store, project, "env-base", &m.env.source, lock, fetch)?;
    if m.env.setup.is_empty() {
        return Ok(base);
    }
    let tag = project.image_tag("env");
    // The RUN takes no file of the context: the project root serves.
    let mut opts = build_options(
        project,
        &BuildSpec {
            containerfile: Default::default(),
            context: project.root.clone(),
            args: BTreeMap::new(),
            target: None,
        },
        BTreeMap::new(),
        fetch,
    );
    opts.file = None;
    opts.text = Some((
        "hutch.toml [env] setup".into(),
        setup_containerfile(&base, &m.env.setup),
    ));
    eprintln!("hutch: running the environment's setup commands (kept as a layer)");
    run_build(store, &tag, opts).context("running hutch.toml's setup commands")?;
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setup_layer_is_one_run_of_every_command() {
        let text = setup_containerfile(
            "r/debian@sha256:00",
            &["apt-get update".into(), "echo \"a b\" > /x".into()],
        );
        let parsed = crate::build::containerfile::parse(&text).unwrap();
        assert_eq!(parsed.steps.len(), 2, "{text}");
        assert!(text.starts_with("FROM r/debian@sha256:00\nRUN [\"/bin/sh\",\"-c\","));
        assert!(
            text.contains(r#"set -e\napt-get update\necho \"a b\" > /x\n"#),
            "{text}"
        );
    }
}
