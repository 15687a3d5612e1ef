//! `hutch up`, `down`, `ps` and `logs SERVICE`: the project's services,
//! each a detached container (`PROJECT-SERVICE`, served by its keeper)
//! in the environment's network namespace (`--network container:`), so
//! they reach each other and the environment on `localhost` and by name
//! (every service name is 127.0.0.1 in /etc/hosts). Services start in
//! `depends_on` order, each after the ones before are ready.

use super::env::{
    ensure_env, mark_up, service_hosts, shells_lock, stop_services, stop_unless_used, volume_flag,
};
use super::images::{Fetch, section_image};
use super::manifest::{ReadyCheck, Service};
use super::open::Opened;
use crate::run::{ExecRequest, PullOptions, PullPolicy, RunRequest};
use crate::run::{LogOptions, Record};
use crate::store::Store;
use crate::store::containers::ContainerInfo;
use crate::store::lock::StoreLock;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The profile services run with (their image decides their user).
const SERVICE_PROFILE: &str = "default";

/// How often a `ready` check is tried.
const READY_INTERVAL: Duration = Duration::from_millis(200);

fn service_request(o: &Opened, name: &str, s: &Service, image: String) -> RunRequest {
    let mut hosts = service_hosts(o);
    hosts.push("env:127.0.0.1".into());
    RunRequest {
        image,
        command: s.command.clone().unwrap_or_default(),
        name: Some(o.project.service_container(name)),
        detach: true,
        env: s.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        volumes: s
            .volumes
            .iter()
            .map(|v| volume_flag(&o.project, v))
            .collect(),
        network_container: Some(o.project.env_container()),
        add_hosts: hosts,
        read_only_tmpfs: true,
        from_manifest: true,
        hostname: Some(name.to_string()),
        ..Default::default()
    }
}

/// The service's container, running, made from the current key: left as
/// it is when it runs, made again otherwise (a stopped service starts
/// from a fresh upper dir; its volumes keep its data). Returns whether it
/// was started now.
fn ensure_service(store: &Store, o: &Opened, name: &str, fetch: Fetch) -> Result<bool> {
    let s = &o.manifest.services[name];
    let container = o.project.service_container(name);
    let key = o.key.to_string();
    let key_file = o.project.state_dir(store).join(format!("{name}.key"));
    if let Some(c) = store.lookup_container(&container)? {
        let current = std::fs::read_to_string(&key_file).is_ok_and(|k| k == key);
        if c.alive && current {
            return Ok(false);
        }
        store
            .remove_container(&container, true)
            .with_context(|| format!("removing the old container of service {name}"))?;
    }
    let image = section_image(store, &o.project, name, &s.source, &o.lock, fetch)?;
    let profile = crate::profile::load(SERVICE_PROFILE).context("loading the services' profile")?;
    let pull = PullOptions {
        policy: PullPolicy::Never,
        tls_verify: fetch.tls_verify,
    };
    crate::run::run_detached(store, &service_request(o, name, s, image), &profile, pull)
        .with_context(|| format!("starting service {name}"))?;
    std::fs::write(&key_file, &key).with_context(|| format!("writing {}", key_file.display()))?;
    Ok(true)
}

/// Wait until the service passes its `ready` check (none: at once).
fn wait_ready(store: &Store, o: &Opened, name: &str) -> Result<()> {
    let Some(ready) = &o.manifest.services[name].ready else {
        return Ok(());
    };
    let container = o.project.service_container(name);
    let env_dir = {
        let c = store.find_container(&o.project.env_container())?;
        store.container_dir(&c.state.id)
    };
    let t0 = Instant::now();
    loop {
        let ok = match &ready.check {
            ReadyCheck::Tcp(port) => crate::sandbox::namespaces::tcp_accepts(&env_dir, *port)?,
            ReadyCheck::Command(cmd) => crate::run::exec(
                store,
                &ExecRequest {
                    container: container.clone(),
                    args: vec![
                        "/bin/sh".into(),
                        "-c".into(),
                        format!("( {cmd}\n) </dev/null >/dev/null 2>&1"),
                    ],
                    ..Default::default()
                },
            )
            .is_ok_and(|status| status == 0),
        };
        if ok {
            return Ok(());
        }
        let c = store.find_container(&container)?;
        if !c.alive {
            bail!(
                "service {name} stopped before it was ready ({}); `hutch logs {name}` shows its \
                 output",
                c.status_text()
            );
        }
        if t0.elapsed() >= ready.timeout {
            let what = match &ready.check {
                ReadyCheck::Tcp(p) => format!("nothing accepts connections on port {p}"),
                ReadyCheck::Command(c) => format!("`{c}` did not exit 0"),
            };
            bail!(
                "service {name} was not ready after {} s: {what}; `hutch logs {name}` shows its \
                 output (a longer `ready.timeout` gives it more time)",
                ready.timeout.as_secs()
            );
        }
        std::thread::sleep(READY_INTERVAL);
    }
}

/// What `hutch up` was asked.
#[derive(Debug, Clone)]
pub(crate) struct UpRequest {
    pub(crate) dir: PathBuf,
    pub(crate) fetch: Fetch,
}

/// `hutch up`: the environment (which holds the network), then every
/// service in dependency order, each ready before the next starts.
/// Returns the services' container names, in start order.
pub(crate) fn up(store: &Store, req: &UpRequest) -> Result<Vec<String>> {
    let o = Opened::open(&req.dir)?;
    // As a shell does: the last shell leaving must not stop the
    // environment between its start and the first service's.
    let _held = StoreLock::shared(&shells_lock(store, &o.project)?)?;
    ensure_env(store, &o, req.fetch, true)?;
    mark_up(store, &o.project, true)?;
    let mut names = Vec::new();
    for name in o.manifest.start_order() {
        let started = ensure_service(store, &o, name, req.fetch)?;
        wait_ready(store, &o, name)?;
        let word = if started { "started" } else { "running" };
        eprintln!(
            "hutch: service {name} is {word} ({})",
            o.project.service_container(name)
        );
        names.push(o.project.service_container(name));
    }
    Ok(names)
}

/// What `hutch down` did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Down {
    pub(crate) removed: Vec<String>,
    pub(crate) volumes: Vec<String>,
}

/// `hutch down [-v]`: stop and remove the services (dependents first) and
/// the environment; with `volumes`, remove the project's named volumes.
pub(crate) fn down(store: &Store, dir: &Path, volumes: bool) -> Result<Down> {
    let (project, manifest) = Opened::open_unlocked(dir)?;
    let mut order: Vec<String> = manifest
        .start_order()
        .iter()
        .map(|n| project.service_container(n))
        .collect();
    // Containers of services no longer in hutch.toml go too.
    for c in project_containers(store, &project.name)? {
        if !order.contains(&c.state.name) && c.state.name != project.env_container() {
            order.insert(0, c.state.name.clone());
        }
    }
    order.reverse();
    order.push(project.env_container());
    let mut done = Down::default();
    for name in order {
        if store.lookup_container(&name)?.is_none() {
            continue;
        }
        crate::run::stop(store, &name, None).with_context(|| format!("stopping {name}"))?;
        store
            .remove_container(&name, true)
            .with_context(|| format!("removing {name}"))?;
        done.removed.push(name);
    }
    let state = project.state_dir(store);
    if state.exists() {
        crate::store::remove::remove_tree(&state)
            .with_context(|| format!("removing {}", state.display()))?;
    }
    if volumes {
        let lock = store.volumes_lock(true)?;
        for v in store.list_volumes()? {
            let name = &v.meta.name;
            if project.owns_volume(name) {
                store
                    .remove_volume(name, &lock)
                    .with_context(|| format!("removing volume {name}"))?;
                done.volumes.push(name.clone());
            }
        }
    }
    Ok(done)
}

/// The containers whose names are the project's (`NAME-...`).
fn project_containers(store: &Store, project: &str) -> Result<Vec<ContainerInfo>> {
    let prefix = format!("{project}-");
    Ok(store
        .list_containers()?
        .into_iter()
        .filter(|c| c.state.name.starts_with(&prefix))
        .collect())
}

/// One line of `hutch ps` for a project.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// `env` or the service's name.
    pub(crate) service: String,
    pub(crate) info: ContainerInfo,
}

/// The project's containers: the environment first, then the services by
/// name.
pub(crate) fn ps(store: &Store, dir: &Path) -> Result<Vec<Listed>> {
    let (project, _) = Opened::open_unlocked(dir)?;
    let prefix = format!("{}-", project.name);
    let mut out: Vec<Listed> = project_containers(store, &project.name)?
        .into_iter()
        .map(|info| Listed {
            service: info.state.name[prefix.len()..].to_string(),
            info,
        })
        .collect();
    out.sort_by(|a, b| (a.service != "env", &a.service).cmp(&(b.service != "env", &b.service)));
    Ok(out)
}

/// The container of service `name` of the project at or above `dir`
/// (`hutch logs SERVICE`), or None when there is no such project or
/// service.
pub(crate) fn service_container(dir: &Path, name: &str) -> Option<String> {
    let (project, manifest) = Opened::open_unlocked(dir).ok()?;
    if name == "env" {
        return Some(project.env_container());
    }
    manifest
        .services
        .contains_key(name)
        .then(|| project.service_container(name))
}

/// `hutch up` without `-d`: every service's output as it comes, given to
/// `emit` with the service's name, until INT, TERM or HUP (Ctrl-C) or
/// until every service has stopped; then the services are stopped
/// (dependents first) and the environment too, unless a shell is in it.
pub(crate) fn follow(
    store: &Store,
    dir: &Path,
    emit: &(dyn Fn(&str, &Record) -> Result<()> + Sync),
) -> Result<()> {
    let (project, manifest) = Opened::open_unlocked(dir)?;
    let order: Vec<&str> = manifest.start_order();
    let stop_on = crate::sys::SigSet::of(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP]);
    crate::sys::block(&stop_on);
    let alive = |name: &str| {
        store
            .lookup_container(&project.service_container(name))
            .ok()
            .flatten()
            .is_some_and(|c| c.alive)
    };
    let result = std::thread::scope(|scope| {
        for name in &order {
            let container = project.service_container(name);
            scope.spawn(move || {
                let opts = LogOptions {
                    follow: true,
                    tail: None,
                    since: None,
                    timestamps: false,
                };
                if let Err(e) =
                    crate::run::logs(store, &container, &opts, &mut |r, _| emit(name, r))
                {
                    eprintln!("hutch: following the output of {container}: {e:#}");
                }
            });
        }
        loop {
            let signalled =
                crate::sys::wait_signal_timeout(&stop_on, Duration::from_millis(300)).is_some();
            if signalled || !order.iter().any(|n| alive(n)) {
                break;
            }
        }
        eprintln!("hutch: stopping the services");
        stop_services(store, &project, &manifest)
    });
    mark_up(store, &project, false)?;
    stop_unless_used(store, &project, &manifest);
    result
}
