//! A run's container, from creation to removal: the store's record of it
//! (created → running → exited), the `-p` ports bound before it exists,
//! the launch, the notices a run prints, and `--rm`.

use super::dry_run::with_cgroup_fallback;
use super::locks::check_locks;
use super::plan::{RunRequest, resolve, resolve_with_origin, volume_names};
use super::pull_policy::{PullPolicy, pull_first};
use crate::profile::Profile;
use crate::sandbox::{etc_files, launch, network};
use crate::store::Store;
use crate::store::containers::{ContainerState, RunningLock, Status, new_id, now_rfc3339};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

/// How a run gets its image: `--pull` and `--tls-verify`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PullOptions {
    pub(crate) policy: PullPolicy,
    pub(crate) tls_verify: Option<bool>,
}

/// `-t` relays hutch's stdin to the container's terminal: without a
/// terminal there, nothing could ever send it end-of-file (the command
/// would wait forever), so it is refused, as Docker does.
pub(crate) fn check_tty_stdin(tty: bool, dry_run: bool) -> Result<()> {
    if tty && !dry_run && !rustix::termios::isatty(rustix::stdio::stdin()) {
        bail!(
            "the input device is not a TTY: -t needs a terminal on hutch's stdin; \
             drop -t (and keep -i to pipe input to the command)"
        );
    }
    Ok(())
}

/// `hutch run --dry-run`: the checks and the pull of a run, then its spec
/// (as JSON, see [`with_cgroup_fallback`]); nothing is created.
pub(crate) fn dry_run(
    store: &Store,
    req: &RunRequest,
    profile: &Profile,
    pull: PullOptions,
) -> Result<serde_json::Value> {
    check_locks(store, req, profile)?;
    pull_first(store, &req.image, pull.policy, pull.tls_verify)?;
    let id = new_id()?;
    let name = req.name.clone().unwrap_or_else(|| "(generated)".into());
    let spec = resolve(store, req, profile, &id, &name, &store.container_dir(&id))?;
    with_cgroup_fallback(&spec)
}

/// A container just created for a run: its record, final spec, the
/// ports bound for it and its running lock.
struct Created {
    id: String,
    dir: PathBuf,
    state: ContainerState,
    spec: crate::sandbox::spec::SandboxSpec,
    listeners: Option<crate::net::Listeners>,
    running: RunningLock,
}

/// `hutch run`: check the profile's locks, pull as asked, create the
/// container with its spec, launch it, record how it ended and remove it
/// with `--rm`. Returns the command's exit status.
pub(crate) fn run(
    store: &Store,
    req: &RunRequest,
    profile: &Profile,
    pull: PullOptions,
) -> Result<i32> {
    let created = create(store, req, profile, pull)?;
    // Ports the kernel chose: said once, at the start (`hutch ps` shows
    // them too).
    for (ctr, host) in super::net::chosen_ports(&created.spec, created.listeners.as_ref()) {
        eprintln!("hutch: port {ctr} is published on {host}");
    }
    foreground(store, req, created)
}

/// `hutch run -d`: create the container as [`run`] does, hand it to its
/// keeper (keeper.rs) and return its ID once the command runs.
pub(crate) fn run_detached(
    store: &Store,
    req: &RunRequest,
    profile: &Profile,
    pull: PullOptions,
) -> Result<String> {
    if req.preserve_fds > 0 {
        bail!(
            "-d with --preserve-fds: a detached container is served by a keeper process, \
             which does not have hutch's descriptors to pass; drop one of them"
        );
    }
    let created = create(store, req, profile, pull)?;
    // The keeper binds the ports again, as its own.
    drop(created.listeners);
    let ports = super::keeper::hand_over(store, &created.state, req.remove, created.running)?;
    for (ctr, host) in ports {
        eprintln!("hutch: port {ctr} is published on {host}");
    }
    Ok(created.id)
}

fn create(
    store: &Store,
    req: &RunRequest,
    profile: &Profile,
    pull: PullOptions,
) -> Result<Created> {
    check_locks(store, req, profile)?;
    // Bad -v/--mount values fail before anything is pulled or created.
    let volumes = volume_names(req)?;
    pull_first(store, &req.image, pull.policy, pull.tls_verify)?;
    let id = new_id()?;
    // Hold the store lock until the container's state pins its layers, and
    // the volumes lock until it names its volumes (`volume rm` waits).
    let lock = store.lock_shared()?;
    let volumes_lock = store.volumes_lock(false)?;
    let dir = store.container_dir(&id);
    let mut planned = None;
    let mut listeners = None;
    let mut new_volumes = Vec::new();
    let created = store.create_container(&id, req.name.as_deref(), |name| {
        // Named volumes are created on first use.
        for v in &volumes {
            if store.ensure_volume(v)?.1 {
                new_volumes.push(v.clone());
            }
        }
        let (spec, origin) = resolve_with_origin(store, req, profile, &id, name, &dir)?;
        // Every container keeps its spec: `hutch start` runs it again.
        super::spec_file::save(&dir, &spec)?;
        // -p binds now: a port that cannot be had leaves no container.
        let bound = if spec.net.publish.is_empty() {
            None
        } else {
            Some(network::bind_published(&spec)?)
        };
        let ports = bound
            .as_ref()
            .map(|l| l.published().iter().map(|f| f.describe()).collect())
            .unwrap_or_default();
        listeners = bound;
        let state = ContainerState {
            id: id.clone(),
            name: name.to_string(),
            image: req.image.clone(),
            image_id: spec.image_id.clone(),
            layers: spec.rootfs.layers.clone(),
            command: spec.process.args.clone(),
            entrypoint: origin.entrypoint,
            user: origin.user,
            profile: profile.name.clone(),
            created: now_rfc3339(),
            status: Status::Created,
            pid: None,
            exit_code: None,
            finished: None,
            ports,
            started: None,
            detached: req.detach,
            restart_policy: req.restart,
            restart_count: 0,
            stopped_by_user: false,
            volumes: volumes.clone(),
        };
        planned = Some(spec);
        Ok(state)
    });
    drop(volumes_lock);
    let (state, running) = match created {
        Ok(c) => c,
        Err(e) => {
            // A volume this failed run created goes again.
            if !new_volumes.is_empty()
                && let Ok(l) = store.volumes_lock(true)
            {
                for v in &new_volumes {
                    let _ = store.remove_volume(v, &l);
                }
            }
            return Err(e);
        }
    };
    drop(lock);
    // Only the first container fills a new volume from its image.
    for v in &volumes {
        if let Err(e) = store.volume_copied_up(v) {
            eprintln!("hutch: warning: volume {v}: {e:#}");
        }
    }
    let spec = planned.context("internal error: the container was created without a plan")?;
    Ok(Created {
        id,
        dir,
        state,
        spec,
        listeners,
        running,
    })
}

/// Launch a created container in this process, record how it ended and
/// remove it with `--rm`; the command's exit status.
fn foreground(store: &Store, req: &RunRequest, created: Created) -> Result<i32> {
    let Created {
        id,
        dir,
        state,
        spec,
        listeners,
        running,
    } = created;
    let result = (|| {
        etc_files::write(&spec)?;
        store.update_container(&id, |s| {
            s.status = Status::Running;
            s.pid = Some(std::process::id() as i32);
            s.started = Some(now_rfc3339());
        })?;
        let join = crate::sandbox::namespaces::JoinListener::bind(&dir)?;
        let code = launch::run(
            &spec,
            listeners,
            &|text| show_once(store, "cgroup-fallback", text),
            None,
            Some(join),
        );
        let exit_code = code.as_ref().ok().copied();
        // The command has run: failing to record it (a full disk) must not
        // replace its exit status. With --rm the record goes anyway.
        if let Err(e) = store.update_container(&id, |s| {
            s.status = Status::Exited;
            s.pid = None;
            s.finished = Some(now_rfc3339());
            s.exit_code = exit_code;
        }) && !req.remove
        {
            eprintln!(
                "hutch: warning: recording that container {} exited: {e:#} (`hutch ps -a` shows it as killed)",
                state.name
            );
        }
        code
    })();
    drop(running);
    if req.remove
        && let Err(e) = store.remove_container(&id, false)
    {
        let left = if matches!(store.lookup_container(&id), Ok(Some(_))) {
            RemovalError::Left {
                name: state.name.clone(),
                dir: dir.clone(),
                cause: e,
            }
        } else {
            RemovalError::Partly {
                name: state.name.clone(),
                cause: e,
            }
        };
        eprintln!("hutch: warning: {left}");
    }
    result
}

/// How a warning of the launcher that every run would repeat (the cgroup
/// limits a host cannot apply) is shown: the first time from this store,
/// then only with --verbose (as an info log line), until its text changes.
fn show_once(store: &Store, key: &str, text: &str) {
    if store.first_showing(key, text) {
        eprintln!("{text} (shown once; `hutch --verbose run` shows it every time)");
    } else {
        tracing::info!("{}", text.trim_start_matches("hutch: warning: "));
    }
}

/// Why `--rm` could not remove a container after its command ran (the
/// command's exit status stands): what state it is left in, and how to
/// remove the rest.
#[derive(Debug, thiserror::Error)]
enum RemovalError {
    /// Still listed: the container is left whole in its directory.
    #[error(
        "--rm: removing container {name} failed: {cause:#}; it is left in {} \
         (`hutch rm {name}` removes it)",
        dir.display()
    )]
    Left {
        name: String,
        dir: PathBuf,
        cause: anyhow::Error,
    },
    /// No longer listed, but not all of its files went.
    #[error("--rm: removing container {name}: {cause:#}")]
    Partly { name: String, cause: anyhow::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_warnings_say_what_is_left() {
        let left = RemovalError::Left {
            name: "web".into(),
            dir: PathBuf::from("/store/containers/abc"),
            cause: anyhow::anyhow!("Permission denied"),
        };
        assert_eq!(
            left.to_string(),
            "--rm: removing container web failed: Permission denied; it is left in \
             /store/containers/abc (`hutch rm web` removes it)"
        );
        let partly = RemovalError::Partly {
            name: "web".into(),
            cause: anyhow::anyhow!("container web is removed, but not all of its files"),
        };
        assert_eq!(
            partly.to_string(),
            "--rm: removing container web: container web is removed, but not all of its files"
        );
    }
}
