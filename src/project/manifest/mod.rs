//! `hutch.toml`: a project's environment and services, read, checked and
//! resolved.
//!
//! * `file`: the schema as written (unknown keys are errors).
//! * `checked`: the value types, each checking its value as it is read, so
//!   that an error names the line and key of that value (the machinery of
//!   profile files, `crate::profile::parse_toml`).
//! * `resolve`: the rules between keys (exactly one of `image` and `build`,
//!   `ready`, `depends_on` names services and has no cycle, no host port
//!   published twice) and the [`Manifest`], with paths made absolute.
//! * `hash`: [`Manifest::hash`] and [`Manifest::setup_hash`].
//! * `template`: the commented file `hutch init` writes.
//!
//! Where the issue leaves a choice open, hutch.toml does what a user of
//! docker compose or of dev containers expects; each choice is written in
//! the doc comment of the type it concerns.

mod checked;
mod file;
mod hash;
mod resolve;
mod template;
#[cfg(test)]
mod tests;

pub use template::write_template;

use crate::net::PortForward;
use crate::oci::platform::Platform;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file name of a project's manifest, in the project's root.
pub const MANIFEST_FILE: &str = "hutch.toml";

/// The profile of the environment when `profile` is not given: the project
/// at the same path, the user's identity, the network.
pub const DEFAULT_PROFILE: &str = "dev";

/// How long a `ready` check may take before `hutch up` gives up on the
/// service, when `timeout` is not given (seconds).
pub const DEFAULT_READY_TIMEOUT: u32 = 60;

/// A project's `hutch.toml`, checked and resolved. Host paths are absolute
/// (relative ones were taken against [`Manifest::root`]); defaults are
/// filled in, except the shell (decided when the image is known).
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The project's root: the directory holding `hutch.toml`.
    pub root: PathBuf,
    /// `platforms`: the platforms `hutch lock` resolves every image for,
    /// besides the host's (empty when not given).
    pub platforms: Vec<Platform>,
    /// `[env]`.
    pub env: Env,
    /// `[services.NAME]`, by name.
    pub services: BTreeMap<String, Service>,
}

/// `[env]`: the container `hutch shell` enters.
#[derive(Debug, Clone, PartialEq)]
pub struct Env {
    /// `image` or `build` (exactly one).
    pub source: ImageSource,
    /// `profile` (default `dev`): a profile name, or a profile file.
    pub profile: ProfileChoice,
    /// `mounts`: beside the project directory, which the profile mounts.
    pub mounts: Vec<Mount>,
    /// `env`: variables set in the environment, over the image's.
    pub env: BTreeMap<String, String>,
    /// `ports`: published on the host, as `hutch run -p`.
    pub ports: Vec<PortForward>,
    /// `shell`: the program `hutch shell` starts; `None`: `/bin/bash` if the
    /// image has it, else `/bin/sh`.
    pub shell: Option<String>,
    /// `setup`: shell command lines run once, in order, by `/bin/sh -c` when
    /// the environment is created; their result is kept as a layer, made
    /// again when they change (see [`Manifest::setup_hash`]).
    pub setup: Vec<String>,
    /// `workdir`: the directory `hutch shell` starts in; `None`: the
    /// project's directory (the profile mounts it at the same path).
    pub workdir: Option<String>,
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `image = "REF"`, as written (`hutch lock` pins it to a digest).
    Image(String),
    /// `build = "Containerfile"` and its companions.
    Build(BuildSpec),
}

/// `build` with `context`, `args` and `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// `build`: the Containerfile, relative to the project root (as
    /// `hutch build -f` run in the project root; docker compose takes its
    /// `dockerfile` relative to the context instead).
    pub containerfile: PathBuf,
    /// `context` (default `"."`, the project root).
    pub context: PathBuf,
    /// `args`: the build arguments (`--build-arg NAME=VALUE`).
    pub args: BTreeMap<String, String>,
    /// `target`: the stage to build (`--target`); `None`: the last one.
    pub target: Option<String>,
}

/// `profile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileChoice {
    /// A profile's name, as `hutch run --profile NAME`.
    Name(String),
    /// A profile file (a value containing `/` or ending in `.toml`).
    File(PathBuf),
}

/// One of `[env] mounts` or of a service's `volumes`: `SOURCE:PATH[:ro|rw]`
/// as `hutch run -v` (and docker compose): a SOURCE without `/` that does
/// not start with `.` names a volume, anything else is a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A host directory or file (absolute here).
    Bind {
        host: PathBuf,
        container: String,
        read_only: bool,
    },
    /// A named volume of the store, kept between runs; created on first
    /// use and filled from the image, as `hutch run -v NAME:/path`.
    Volume {
        name: String,
        container: String,
        read_only: bool,
    },
}

/// `[services.NAME]`: a container beside the environment. All the
/// containers of a project share one network namespace (Podman's pod), so
/// the environment reaches a service on `localhost:PORT` and by its name.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// `image` or `build` (exactly one).
    pub source: ImageSource,
    /// `env`, over the image's.
    pub env: BTreeMap<String, String>,
    /// `command`: the argv, replacing the image's CMD (a string `S` is
    /// `["/bin/sh", "-c", S]`); `None`: the image's.
    pub command: Option<Vec<String>>,
    /// `volumes`.
    pub volumes: Vec<Mount>,
    /// `ready`: when `hutch up` counts the service as started; `None`: as
    /// soon as it is started (docker compose's `service_started`).
    pub ready: Option<Ready>,
    /// `depends_on`: the services started (and ready) before this one.
    pub depends_on: Vec<String>,
    /// `ports`: published on the host (only those listed; the project's
    /// containers reach every port without them).
    pub ports: Vec<PortForward>,
}

/// `ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub check: ReadyCheck,
    /// `timeout` (default [`DEFAULT_READY_TIMEOUT`] seconds).
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyCheck {
    /// `{ command = "..." }`: ready when the command, run in the service's
    /// container by `/bin/sh -c`, exits 0 (tried again until the timeout).
    Command(String),
    /// `{ tcp = PORT }`: ready when a connection to `localhost:PORT` in
    /// the project's network namespace is accepted.
    Tcp(u16),
}

/// What is wrong with a project's manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Syntax, unknown key, bad value, or a rule between keys. `file` is
    /// the path (or name) of the manifest.
    #[error("{file}{}: {message}", location(.line, .key))]
    Invalid {
        file: String,
        line: Option<usize>,
        key: Option<String>,
        message: String,
    },
    #[error(
        "no {MANIFEST_FILE} in {dir}: run `hutch init` there to write a commented one \
         (`hutch init --image REF` to choose the image)"
    )]
    Missing { dir: String },
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
}

/// `:LINE: key `KEY``, as compilers write a place in a file.
fn location(line: &Option<usize>, key: &Option<String>) -> String {
    let mut s = String::new();
    if let Some(l) = line {
        s.push_str(&format!(":{l}"));
    }
    if let Some(k) = key {
        s.push_str(&format!(": key `{k}`"));
    }
    s
}

impl Manifest {
    /// Read and check `PROJECT_ROOT/hutch.toml`.
    pub fn load(project_root: &Path) -> Result<Manifest, ManifestError> {
        let root = std::path::absolute(project_root).map_err(|error| ManifestError::Read {
            path: project_root.display().to_string(),
            error,
        })?;
        let path = root.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ManifestError::Missing {
                    dir: root.display().to_string(),
                });
            }
            Err(error) => {
                return Err(ManifestError::Read {
                    path: path.display().to_string(),
                    error,
                });
            }
        };
        resolve::resolve(&text, &path.display().to_string(), &root)
    }

    /// Check the text of a `hutch.toml`; `source_name` names it in errors
    /// (a path, or "hutch.toml"). Relative paths are taken against the
    /// current directory, made absolute (use [`Manifest::load`] for a
    /// project's file).
    pub fn parse(text: &str, source_name: &str) -> Result<Manifest, ManifestError> {
        let root = std::path::absolute(".").map_err(|error| ManifestError::Read {
            path: ".".into(),
            error,
        })?;
        resolve::resolve(text, source_name, &root)
    }

    /// Like [`Manifest::parse`] with an explicit project root (absolute).
    pub fn parse_in(
        text: &str,
        source_name: &str,
        project_root: &Path,
    ) -> Result<Manifest, ManifestError> {
        resolve::resolve(text, source_name, project_root)
    }

    /// The services in the order `hutch up` starts them: every service
    /// after those it depends on, ties by name.
    pub fn start_order(&self) -> Vec<&str> {
        let mut done: Vec<&str> = Vec::new();
        while done.len() < self.services.len() {
            let next = self.services.iter().find(|(name, s)| {
                !done.contains(&name.as_str())
                    && s.depends_on.iter().all(|d| done.contains(&d.as_str()))
            });
            match next {
                Some((name, _)) => done.push(name),
                None => break, // a cycle: refused when resolving
            }
        }
        done
    }
}
