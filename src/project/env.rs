//! The project's environment: one container (`PROJECT-env`) that runs no
//! command of its own (its init only waits, `ProcessSpec::pause`) and
//! holds the project's namespaces. `hutch shell` joins it with `exec`;
//! the services join its network namespace (Podman's pod), so it is
//! started by `hutch up` too, and it publishes the ports of the whole
//! project.
//!
//! It is made once from the lock (pulled by its pins, built, set up) and
//! kept with its own upper dir, as a distrobox or a dev container is:
//! started again when it stopped, made again only when the project's key
//! (`Opened::key`: the lock and the Containerfiles) changed. What it was
//! made from is kept in the store's `projects/NAME/env.json`.
//!
//! Shells hold `projects/NAME/shells.lock` shared while they run. The
//! last one to leave gets it exclusive and stops the environment, unless
//! a service of the project runs or the project was brought up with
//! `hutch up` (`projects/NAME/up`, until `hutch down`).

use super::images::{Fetch, env_image};
use super::manifest::{Manifest, Mount};
use super::naming::Project;
use super::open::Opened;
use crate::run::{ExecRequest, PullOptions, PullPolicy, RunRequest};
use crate::store::Store;
use crate::store::lock::StoreLock;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the environment's container was made from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct EnvRecord {
    /// The container's ID.
    pub(crate) container: String,
    /// The project's key when it was made.
    pub(crate) key: String,
    /// The shell `hutch shell` starts.
    pub(crate) shell: String,
}

const ENV_RECORD: &str = "env.json";
const SHELLS_LOCK: &str = "shells.lock";
const ENV_LOCK: &str = "env.lock";
/// Present from `hutch up` until `hutch down` (or a foreground `up`
/// ends): the environment stays up when the last shell leaves.
const UP_MARK: &str = "up";

fn state_dir(store: &Store, project: &Project) -> Result<PathBuf> {
    let dir = project.state_dir(store);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the project's directory {}", dir.display()))?;
    Ok(dir)
}

fn read_record(dir: &Path) -> Option<EnvRecord> {
    let bytes = std::fs::read(dir.join(ENV_RECORD)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_record(dir: &Path, record: &EnvRecord) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(record).context("encoding env.json")?;
    let tmp = dir.join(format!(".{ENV_RECORD}.tmp"));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(ENV_RECORD))
        .with_context(|| format!("writing {}", dir.join(ENV_RECORD).display()))
}

/// `hutch run -v` of a hutch.toml mount (named volumes are the project's).
pub(crate) fn volume_flag(project: &Project, m: &Mount) -> String {
    let (source, container, read_only) = match m {
        Mount::Bind {
            host,
            container,
            read_only,
        } => (host.display().to_string(), container, *read_only),
        Mount::Volume {
            name,
            container,
            read_only,
        } => (project.volume(name), container, *read_only),
    };
    let ro = if read_only { ":ro" } else { "" };
    format!("{source}:{container}{ro}")
}

/// `hutch run -p` of a port of hutch.toml.
pub(crate) fn publish_flag(p: &crate::net::PortForward) -> String {
    let proto = p.proto.as_str();
    let ip = match p.host.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("{ip}:{}:{}/{proto}", p.host.port(), p.container_port)
}

/// Every service's name as 127.0.0.1 (they share the network namespace),
/// as `--add-host` values.
pub(crate) fn service_hosts(o: &Opened) -> Vec<String> {
    o.manifest
        .services
        .keys()
        .map(|name| format!("{name}:127.0.0.1"))
        .collect()
}

fn env_request(o: &Opened, image: String) -> RunRequest {
    let m = &o.manifest;
    let mut publish: Vec<String> = m.env.ports.iter().map(publish_flag).collect();
    for s in m.services.values() {
        publish.extend(s.ports.iter().map(publish_flag));
    }
    RunRequest {
        image,
        name: Some(o.project.env_container()),
        detach: true,
        pause: true,
        env: m.env.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        volumes: m
            .env
            .mounts
            .iter()
            .map(|v| volume_flag(&o.project, v))
            .collect(),
        publish,
        add_hosts: service_hosts(o),
        read_only_tmpfs: true,
        from_manifest: true,
        ..Default::default()
    }
}

/// `/bin/bash` when the image has it, else `/bin/sh`.
fn default_shell(store: &Store, image: &str) -> String {
    let lowers = match crate::image::resolve::resolve(store, image) {
        Ok(crate::image::resolve::Resolved::Stored { image, .. }) => image
            .layers
            .iter()
            .rev()
            .map(|l| store.layer_root(&l.diff_id))
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    if crate::run::users::image_has_file(&lowers, "bin/bash") {
        "/bin/bash".into()
    } else {
        "/bin/sh".into()
    }
}

/// Whether any service container of the project runs.
pub(crate) fn services_running(store: &Store, project: &Project, m: &Manifest) -> bool {
    m.services.keys().any(|name| {
        store
            .lookup_container(&project.service_container(name))
            .ok()
            .flatten()
            .is_some_and(|c| c.alive)
    })
}

/// The environment's container, running: as it is when it runs and was
/// made from the current key, started again when it stopped, made (again)
/// otherwise. A running environment made from an older key is made again
/// with `restart_services` (`hutch up`, which stops its services first and
/// makes them again); a shell joins it as it is (other shells or services
/// may be in it) and it is made again once it stops.
pub(crate) fn ensure_env(
    store: &Store,
    o: &Opened,
    fetch: Fetch,
    restart_services: bool,
) -> Result<EnvRecord> {
    let dir = state_dir(store, &o.project)?;
    let _making = StoreLock::exclusive(&dir.join(ENV_LOCK))?;
    let key = o.key.to_string();
    let name = o.project.env_container();
    let record = read_record(&dir);
    if let Some(c) = store.lookup_container(&name)? {
        match &record {
            Some(r) if r.container == c.state.id && r.key == key => {
                if !c.alive {
                    crate::run::start(store, &name)
                        .with_context(|| format!("starting the environment {name} again"))?;
                }
                return Ok(r.clone());
            }
            Some(r) if c.alive && r.container == c.state.id && !restart_services => {
                // Shells (or services) are in it: joined as it is, made
                // again once it has stopped.
                eprintln!(
                    "hutch: hutch.lock (or a Containerfile) changed since the running {name} was \
                     made: joining it as it is; it is made again once it stops (when the last \
                     shell leaves, or after `hutch down`)"
                );
                return Ok(r.clone());
            }
            _ => {
                if c.alive && restart_services {
                    stop_services(store, &o.project, &o.manifest)?;
                }
                eprintln!(
                    "hutch: hutch.lock (or a Containerfile) changed since {name} was made: \
                     making it again"
                );
                store
                    .remove_container(&name, true)
                    .with_context(|| format!("removing the old environment {name}"))?;
            }
        }
    }
    let image = env_image(store, &o.project, &o.manifest, &o.lock, fetch)?;
    let shell = match &o.manifest.env.shell {
        Some(s) => s.clone(),
        None => default_shell(store, &image),
    };
    let profile = super::locking::env_profile(&o.manifest)?;
    // The profile's ${CWD} is the project's root, wherever hutch was
    // started in it.
    std::env::set_current_dir(&o.project.root)
        .with_context(|| format!("entering the project's root {}", o.project.root.display()))?;
    let req = env_request(o, image);
    let pull = PullOptions {
        policy: PullPolicy::Never,
        tls_verify: fetch.tls_verify,
    };
    let id = crate::run::run_detached(store, &req, &profile, pull)
        .with_context(|| format!("starting the environment {name}"))?;
    let r = EnvRecord {
        container: id,
        key,
        shell,
    };
    write_record(&dir, &r)?;
    Ok(r)
}

/// What `hutch shell` was asked.
#[derive(Debug, Clone)]
pub(crate) struct ShellRequest {
    /// A directory in the project (its root is found upward).
    pub(crate) dir: PathBuf,
    /// The command (empty: the environment's shell).
    pub(crate) command: Vec<String>,
    pub(crate) fetch: Fetch,
}

/// `hutch shell [-- CMD]`: the command's exit status.
pub(crate) fn shell(store: &Store, req: &ShellRequest) -> Result<i32> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let o = Opened::open(&req.dir)?;
    let inside = StoreLock::shared(&shells_lock(store, &o.project)?)?;
    let env = ensure_env(store, &o, req.fetch, false)?;
    let workdir = match &o.manifest.env.workdir {
        Some(w) => w.clone(),
        None if cwd.starts_with(&o.project.root) => cwd.display().to_string(),
        None => o.project.root.display().to_string(),
    };
    let terminal = rustix::termios::isatty(rustix::stdio::stdin())
        && rustix::termios::isatty(rustix::stdio::stdout());
    let args = if req.command.is_empty() {
        vec![env.shell.clone()]
    } else {
        req.command.clone()
    };
    let status = crate::run::exec(
        store,
        &ExecRequest {
            container: o.project.env_container(),
            args,
            tty: terminal,
            interactive: true,
            workdir: Some(workdir),
            ..Default::default()
        },
    );
    drop(inside);
    stop_unless_used(store, &o.project, &o.manifest);
    status
}

/// Stop the project's running services, dependents first.
pub(crate) fn stop_services(store: &Store, project: &Project, m: &Manifest) -> Result<()> {
    for name in m.start_order().iter().rev() {
        let container = project.service_container(name);
        if let Some(c) = store.lookup_container(&container)?
            && c.alive
        {
            crate::run::stop(store, &container, None)
                .with_context(|| format!("stopping {container}"))?;
        }
    }
    Ok(())
}

/// Mark the project as brought up (`up = true`, by `hutch up`) or not
/// (a foreground `up` that ends): while it is, the last shell leaving
/// does not stop the environment.
pub(crate) fn mark_up(store: &Store, project: &Project, up: bool) -> Result<()> {
    let path = state_dir(store, project)?.join(UP_MARK);
    if up {
        std::fs::write(&path, b"").with_context(|| format!("writing {}", path.display()))
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

/// The lock every shell holds shared while it runs (`hutch up` too while
/// it starts the services).
pub(crate) fn shells_lock(store: &Store, project: &Project) -> Result<PathBuf> {
    Ok(state_dir(store, project)?.join(SHELLS_LOCK))
}

/// After a shell (or a foreground `hutch up`): the last one out stops
/// the environment, unless the project's services run.
pub(crate) fn stop_unless_used(store: &Store, project: &Project, m: &Manifest) {
    let Ok(shells) = shells_lock(store, project) else {
        return;
    };
    let Ok(Some(_alone)) = StoreLock::try_exclusive(&shells) else {
        return;
    };
    if services_running(store, project, m) || project.state_dir(store).join(UP_MARK).exists() {
        return;
    }
    let name = project.env_container();
    if let Ok(Some(c)) = store.lookup_container(&name)
        && c.alive
        && let Err(e) = crate::run::stop(store, &name, Some(Duration::from_secs(10)))
    {
        eprintln!("hutch: stopping the environment {name}: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_of_hutch_toml_values() {
        let p = Project::of(Path::new("/src/app"));
        let bind = Mount::Bind {
            host: "/src/app/cache".into(),
            container: "/cache".into(),
            read_only: true,
        };
        assert_eq!(volume_flag(&p, &bind), "/src/app/cache:/cache:ro");
        let vol = Mount::Volume {
            name: "data".into(),
            container: "/data".into(),
            read_only: false,
        };
        assert_eq!(volume_flag(&p, &vol), format!("{}_data:/data", p.name));
        for s in [
            "127.0.0.1:8080:80/tcp",
            "[::1]:53:53/udp",
            "0.0.0.0:5432:5432/tcp",
        ] {
            let f = crate::net::parse_publish(s).unwrap();
            assert_eq!(publish_flag(&f), s);
            assert_eq!(crate::net::parse_publish(&publish_flag(&f)).unwrap(), f);
        }
    }
}
