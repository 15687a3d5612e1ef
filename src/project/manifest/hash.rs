//! The manifest's hashes, which `hutch.lock` records to tell when the lock
//! or the setup layer is stale.
//!
//! Both hash a canonical serialisation: JSON of fixed structs (keys in a
//! fixed order, maps sorted), of the manifest *as resolved*, so comments,
//! formatting, key order, and writing a default out or leaving it out change
//! nothing. Paths inside the project are taken relative to its root, so the
//! same project checked out in two directories, or by two users, has the
//! same hashes; paths outside it stay absolute. A change of format is a
//! change of the `format` number, which changes every hash.

use super::{Env, ImageSource, Manifest, Mount, ProfileChoice, ReadyCheck, Service};
use crate::net::PortForward;
use crate::oci::Digest;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The version of the canonical form.
const FORMAT: u32 = 1;

impl Manifest {
    /// sha256 of the `setup` commands: each command line exactly as written,
    /// in order (a JSON array of strings). Only the setup commands: the
    /// setup layer is made again when they change, or when the image under
    /// them changes (which the lock tells by its digest, not by this hash).
    pub fn setup_hash(&self) -> Digest {
        Digest::of(&serde_json::to_vec(&self.env.setup).expect("strings serialise"))
    }

    /// sha256 of everything the manifest says: platforms, the environment
    /// (image reference or build with its paths, args and target, profile,
    /// mounts, env, ports, shell, setup, workdir) and every service (image
    /// or build, env, command, volumes, ready with its timeout, depends_on,
    /// ports). Not the content of the files it names (a Containerfile, a
    /// profile file): the lock records what it builds and resolves. A lock
    /// made with another hash is stale.
    pub fn hash(&self) -> Digest {
        Digest::of(&self.canonical())
    }

    /// The canonical serialisation [`Manifest::hash`] hashes.
    pub fn canonical(&self) -> Vec<u8> {
        let platforms = self.platforms.iter().map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        });
        let form = Canonical {
            format: FORMAT,
            platforms: platforms.collect(),
            env: CanonicalEnv::new(&self.env, &self.root),
            services: self
                .services
                .iter()
                .map(|(k, s)| (k.as_str(), CanonicalService::new(s, &self.root)))
                .collect(),
        };
        serde_json::to_vec(&form).expect("the canonical form serialises")
    }
}

#[derive(Serialize)]
struct Canonical<'a> {
    format: u32,
    platforms: Vec<String>,
    env: CanonicalEnv<'a>,
    services: BTreeMap<&'a str, CanonicalService<'a>>,
}

#[derive(Serialize)]
struct CanonicalEnv<'a> {
    source: CanonicalSource<'a>,
    profile: String,
    mounts: Vec<String>,
    env: &'a BTreeMap<String, String>,
    ports: Vec<String>,
    shell: &'a Option<String>,
    setup: &'a [String],
    workdir: &'a Option<String>,
}

impl<'a> CanonicalEnv<'a> {
    fn new(env: &'a Env, root: &Path) -> Self {
        CanonicalEnv {
            source: CanonicalSource::new(&env.source, root),
            profile: match &env.profile {
                ProfileChoice::Name(n) => format!("name:{n}"),
                ProfileChoice::File(p) => format!("file:{}", relative(p, root)),
            },
            mounts: env.mounts.iter().map(|m| mount(m, root)).collect(),
            env: &env.env,
            ports: ports(&env.ports),
            shell: &env.shell,
            setup: &env.setup,
            workdir: &env.workdir,
        }
    }
}

#[derive(Serialize)]
struct CanonicalService<'a> {
    source: CanonicalSource<'a>,
    env: &'a BTreeMap<String, String>,
    command: &'a Option<Vec<String>>,
    volumes: Vec<String>,
    /// "command:CHECK" or "tcp:PORT", then the timeout in seconds.
    ready: Option<(String, u64)>,
    depends_on: &'a [String],
    ports: Vec<String>,
}

impl<'a> CanonicalService<'a> {
    fn new(s: &'a Service, root: &Path) -> Self {
        CanonicalService {
            source: CanonicalSource::new(&s.source, root),
            env: &s.env,
            command: &s.command,
            volumes: s.volumes.iter().map(|m| mount(m, root)).collect(),
            ready: s.ready.as_ref().map(|r| {
                let check = match &r.check {
                    ReadyCheck::Command(c) => format!("command:{c}"),
                    ReadyCheck::Tcp(p) => format!("tcp:{p}"),
                };
                (check, r.timeout.as_secs())
            }),
            depends_on: &s.depends_on,
            ports: ports(&s.ports),
        }
    }
}

#[derive(Serialize)]
enum CanonicalSource<'a> {
    Image(&'a str),
    Build {
        containerfile: String,
        context: String,
        args: &'a BTreeMap<String, String>,
        target: &'a Option<String>,
    },
}

impl<'a> CanonicalSource<'a> {
    fn new(source: &'a ImageSource, root: &Path) -> Self {
        match source {
            ImageSource::Image(r) => CanonicalSource::Image(r),
            ImageSource::Build(b) => CanonicalSource::Build {
                containerfile: relative(&b.containerfile, root),
                context: relative(&b.context, root),
                args: &b.args,
                target: &b.target,
            },
        }
    }
}

/// A path inside the project relative to its root ("." for the root),
/// else absolute.
fn relative(path: &Path, root: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
        Ok(rel) => format!("./{}", rel.display()),
        Err(_) => path.display().to_string(),
    }
}

fn mount(m: &Mount, root: &Path) -> String {
    let (source, container, read_only) = match m {
        Mount::Bind {
            host,
            container,
            read_only,
        } => (relative(host, root), container, read_only),
        Mount::Volume {
            name,
            container,
            read_only,
        } => (name.clone(), container, read_only),
    };
    format!(
        "{source}:{container}:{}",
        if *read_only { "ro" } else { "rw" }
    )
}

fn ports(ports: &[PortForward]) -> Vec<String> {
    ports.iter().map(PortForward::describe).collect()
}
