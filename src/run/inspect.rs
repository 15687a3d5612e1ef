//! `hutch container inspect`: a container as `podman container inspect`
//! shows one, with Podman's key names where Podman has the thing
//! (`State.Status`, `Config.Cmd`, `HostConfig.RestartPolicy`, `Mounts`,
//! `NetworkSettings.Ports`, ...) and a `Hutch` section for what it has
//! no key for (profile, directory, seccomp level, the state as `ps`
//! shows it).
//!
//! Sources: the record (state.json, store/containers.rs), the spec it was
//! created with (spec.json, run/spec_file.rs; a container made by an older
//! hutch has none, and shows what its record has), its log file
//! (run/logs.rs), and while it runs, its init's host pid (run/top.rs).

use super::logs::LOG_FILE;
use crate::image::resolve::{Resolved, resolve};
use crate::sandbox::spec::{MountSpec, SandboxSpec};
use crate::store::Store;
use crate::store::containers::{ContainerInfo, RestartPolicy, Status};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// Go's zero time, which Podman shows for "never".
const NEVER: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Inspected {
    id: String,
    created: String,
    /// The command's program, and its arguments.
    path: String,
    args: Vec<String>,
    state: State,
    /// The image's ID (as `hutch inspect IMAGE` shows it), its manifest
    /// digest, and the name it was run by.
    image: String,
    image_digest: String,
    image_name: String,
    resolv_conf_path: String,
    hostname_path: String,
    hosts_path: String,
    name: String,
    restart_count: u32,
    /// Always "overlay": hutch's FUSE overlay over the image's layers.
    driver: &'static str,
    /// Capabilities of the command: the bounding set, and the effective
    /// set (empty for a user other than root).
    effective_caps: Vec<String>,
    bounding_caps: Vec<String>,
    graph_driver: GraphDriver,
    mounts: Vec<Mount>,
    network_settings: NetworkSettings,
    /// ctr.log for a detached container, "" for a foreground one.
    log_path: String,
    config: Config,
    host_config: HostConfig,
    hutch: HutchSection,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct State {
    /// created, running, restarting (its keeper waits to start it again)
    /// or exited.
    status: &'static str,
    running: bool,
    paused: bool,
    restarting: bool,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
    dead: bool,
    /// Host pid of the container's PID 1 while its command runs, else 0.
    pid: i32,
    /// Host pid of the hutch process serving it (its keeper, or the
    /// foreground `hutch run`), Podman's conmon; 0 when none.
    conmon_pid: i32,
    /// -1 when it ended without a recorded status (its keeper was killed).
    exit_code: i32,
    error: String,
    started_at: String,
    finished_at: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GraphDriver {
    name: &'static str,
    data: GraphData,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct GraphData {
    /// The image's layers, top first, joined by ':'.
    lower_dir: String,
    upper_dir: String,
    work_dir: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Mount {
    /// bind, volume or tmpfs.
    #[serde(rename = "Type")]
    kind: &'static str,
    /// The volume's name ("" for others).
    name: String,
    source: String,
    destination: String,
    driver: &'static str,
    mode: String,
    options: Vec<String>,
    #[serde(rename = "RW")]
    rw: bool,
    propagation: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkSettings {
    /// 10.0.2.100 with the userspace network (slirp), else "".
    #[serde(rename = "IPAddress")]
    ip_address: String,
    gateway: String,
    ports: BTreeMap<String, Vec<PortBinding>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct PortBinding {
    host_ip: String,
    host_port: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Config {
    hostname: String,
    user: String,
    env: Vec<String>,
    cmd: Vec<String>,
    /// null when the command has none.
    entrypoint: Option<Vec<String>>,
    working_dir: String,
    image: String,
    tty: bool,
    open_stdin: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostConfig {
    restart_policy: RestartPolicyJson,
    port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// hutch's names: slirp, none, host, or container:NAME.
    network_mode: String,
    readonly_rootfs: bool,
    auto_remove: bool,
    /// tmpfs mounts: destination → options.
    tmpfs: BTreeMap<String, String>,
    log_config: LogConfig,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RestartPolicyJson {
    /// no, on-failure, always or unless-stopped.
    name: &'static str,
    maximum_retry_count: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LogConfig {
    /// "k8s-file" for a detached container, "" for a foreground one.
    #[serde(rename = "Type")]
    kind: &'static str,
    path: String,
}

/// What Podman has no key for.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HutchSection {
    profile: String,
    /// The container's directory in the store.
    dir: String,
    /// As `ps` shows it: one word (running, exited, created, killed) and
    /// the STATUS column (`Up 3 minutes`, `Exited (0) 2 seconds ago`).
    state: &'static str,
    status: String,
    detached: bool,
    /// `hutch stop` or `kill` was asked for since it was last started:
    /// its keeper does not restart it.
    stopped_by_user: bool,
    /// Named volumes it mounts.
    volumes: Vec<String>,
    /// default, strict or unconfined.
    seccomp: String,
    landlock: bool,
    /// Ports as bound (`127.0.0.1:8080->80/tcp`).
    ports: Vec<String>,
}

/// Container `key` (name, ID or unique ID prefix) inspected.
pub(crate) fn inspect(store: &Store, key: &str) -> Result<Inspected> {
    let c = store.find_container(key)?;
    inspect_info(store, &c)
}

/// `c` inspected.
pub(crate) fn inspect_info(store: &Store, c: &ContainerInfo) -> Result<Inspected> {
    let st = &c.state;
    let dir = store.container_dir(&st.id);
    let spec: Option<SandboxSpec> = super::spec_file::load(&dir, &st.name).ok();
    let word = c.state_word();
    let restarting = c.alive && st.status == Status::Exited;
    let running = c.alive && st.status == Status::Running;
    let status = match (c.alive, st.status) {
        (true, Status::Running) => "running",
        (true, Status::Exited) => "restarting",
        (_, Status::Created) => "created",
        (false, _) => "exited",
    };
    let killed = word == "killed";
    let (image_id, image_digest) = match resolve(store, &st.image_id) {
        Ok(Resolved::Stored { image, .. }) => (image.id().to_string(), st.image_id.clone()),
        // The host's root, or an image removed since.
        _ => (st.image_id.clone(), st.image_id.clone()),
    };
    let cmd_len = if st.command.starts_with(&st.entrypoint) {
        st.entrypoint.len()
    } else {
        0
    };
    let detached = st.detached;
    let log_path = if detached {
        dir.join(LOG_FILE).to_string_lossy().into_owned()
    } else {
        String::new()
    };
    let ports = port_map(&st.ports, spec.as_ref());
    let text = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let etc = spec
        .as_ref()
        .map(|s| s.rootfs.etc.clone())
        .unwrap_or_else(|| dir.join("etc"));
    let (max_retries, policy) = match st.restart_policy {
        RestartPolicy::No => (0, "no"),
        RestartPolicy::OnFailure { max } => (max.unwrap_or(0), "on-failure"),
        RestartPolicy::Always => (0, "always"),
        RestartPolicy::UnlessStopped => (0, "unless-stopped"),
    };
    let network_mode = spec
        .as_ref()
        .map(|s| match &s.net.join {
            Some(j) => format!("container:{}", j.container),
            None => s.network.as_str().to_string(),
        })
        .unwrap_or_default();
    let slirp = spec
        .as_ref()
        .is_some_and(|s| s.net.join.is_none() && s.network.as_str() == "slirp");
    let caps = spec
        .as_ref()
        .map(|s| s.security.capabilities.names())
        .unwrap_or_default();
    let root = spec.as_ref().is_some_and(|s| s.process.user.uid == 0);
    Ok(Inspected {
        id: st.id.clone(),
        created: st.created.clone(),
        path: st.command.first().cloned().unwrap_or_default(),
        args: st.command.iter().skip(1).cloned().collect(),
        state: State {
            status,
            running,
            paused: false,
            restarting,
            oom_killed: false,
            dead: false,
            pid: if running {
                super::top::init_pid(c).unwrap_or(0)
            } else {
                0
            },
            conmon_pid: if c.alive { st.pid.unwrap_or(0) } else { 0 },
            exit_code: match st.exit_code {
                Some(code) => code,
                None if killed => -1,
                None => 0,
            },
            error: if killed {
                "the hutch process serving it was killed; no exit status was recorded".into()
            } else {
                String::new()
            },
            started_at: st.started.clone().unwrap_or_else(|| NEVER.into()),
            finished_at: st.finished.clone().unwrap_or_else(|| NEVER.into()),
        },
        image: image_id,
        image_digest,
        image_name: st.image.clone(),
        resolv_conf_path: text(&etc.join("resolv.conf")),
        hostname_path: text(&etc.join("hostname")),
        hosts_path: text(&etc.join("hosts")),
        name: st.name.clone(),
        restart_count: st.restart_count,
        driver: "overlay",
        effective_caps: if root { caps.clone() } else { Vec::new() },
        bounding_caps: caps,
        graph_driver: GraphDriver {
            name: "overlay",
            data: GraphData {
                lower_dir: spec
                    .as_ref()
                    .map(|s| {
                        s.rootfs
                            .lowers
                            .iter()
                            .map(|l| text(l))
                            .collect::<Vec<_>>()
                            .join(":")
                    })
                    .unwrap_or_default(),
                upper_dir: text(&dir.join("upper")),
                work_dir: text(&dir.join("work")),
            },
        },
        mounts: spec
            .as_ref()
            .map(|s| mounts(store, &st.volumes, &s.mounts))
            .unwrap_or_default(),
        network_settings: NetworkSettings {
            ip_address: if slirp {
                crate::net::CONTAINER_ADDR.to_string()
            } else {
                String::new()
            },
            gateway: if slirp {
                crate::net::GATEWAY_ADDR.to_string()
            } else {
                String::new()
            },
            ports: ports.clone(),
        },
        log_path: log_path.clone(),
        config: Config {
            hostname: spec
                .as_ref()
                .map(|s| s.hostname.clone())
                .unwrap_or_default(),
            user: st.user.clone(),
            env: spec
                .as_ref()
                .map(|s| s.process.env.clone())
                .unwrap_or_default(),
            cmd: st.command[cmd_len..].to_vec(),
            entrypoint: (cmd_len > 0).then(|| st.entrypoint.clone()),
            working_dir: spec
                .as_ref()
                .map(|s| s.process.cwd.clone())
                .unwrap_or_default(),
            image: st.image.clone(),
            tty: spec.as_ref().is_some_and(|s| s.process.terminal),
            open_stdin: spec.as_ref().is_some_and(|s| s.process.stdin),
        },
        host_config: HostConfig {
            restart_policy: RestartPolicyJson {
                name: policy,
                maximum_retry_count: max_retries,
            },
            port_bindings: ports,
            network_mode,
            readonly_rootfs: spec.as_ref().is_some_and(|s| s.rootfs.read_only),
            auto_remove: spec.as_ref().is_some_and(|s| s.remove),
            tmpfs: spec
                .as_ref()
                .map(|s| {
                    s.mounts
                        .iter()
                        .filter_map(|m| match m {
                            MountSpec::Tmpfs {
                                destination,
                                options,
                            } => Some((destination.clone(), options.clone())),
                            MountSpec::Bind { .. } => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            log_config: LogConfig {
                kind: if detached { "k8s-file" } else { "" },
                path: log_path,
            },
        },
        hutch: HutchSection {
            profile: st.profile.clone(),
            dir: text(&dir),
            state: word,
            status: c.status_text(),
            detached,
            stopped_by_user: st.stopped_by_user,
            volumes: st.volumes.clone(),
            seccomp: spec
                .as_ref()
                .map(|s| {
                    serde_json::to_value(s.security.seccomp)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                })
                .unwrap_or_default(),
            landlock: spec.as_ref().is_some_and(|s| s.security.landlock.is_some()),
            ports: st.ports.clone(),
        },
    })
}

/// The spec's mounts as Podman lists them; a bind of a named volume's
/// `_data` is that volume.
fn mounts(store: &Store, volumes: &[String], specs: &[MountSpec]) -> Vec<Mount> {
    let volume_of = |source: &std::path::Path| {
        volumes
            .iter()
            .find(|v| store.volume_data(v).is_ok_and(|d| d == source))
            .cloned()
    };
    specs
        .iter()
        .map(|m| match m {
            MountSpec::Bind {
                source,
                destination,
                read_only,
                ..
            } => {
                let volume = volume_of(source);
                let mut options = vec!["rbind".to_string()];
                if *read_only {
                    options.insert(0, "ro".into());
                }
                Mount {
                    kind: if volume.is_some() { "volume" } else { "bind" },
                    driver: if volume.is_some() { "local" } else { "" },
                    name: volume.unwrap_or_default(),
                    source: source.to_string_lossy().into_owned(),
                    destination: destination.clone(),
                    mode: String::new(),
                    options,
                    rw: !read_only,
                    propagation: "rprivate",
                }
            }
            MountSpec::Tmpfs {
                destination,
                options,
            } => Mount {
                kind: "tmpfs",
                name: String::new(),
                source: "tmpfs".into(),
                destination: destination.clone(),
                driver: "",
                mode: String::new(),
                options: options.split(',').map(String::from).collect(),
                rw: true,
                propagation: "",
            },
        })
        .collect()
}

/// `8080/tcp` → where it is published: the ports as bound (the record's
/// `127.0.0.1:41234->8080/tcp`), else as asked (the spec; port 0 is a
/// free one chosen when bound).
fn port_map(bound: &[String], spec: Option<&SandboxSpec>) -> BTreeMap<String, Vec<PortBinding>> {
    let mut out: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    let mut add = |host: std::net::SocketAddr, ctr: String| {
        out.entry(ctr).or_default().push(PortBinding {
            host_ip: host.ip().to_string(),
            host_port: host.port().to_string(),
        });
    };
    if !bound.is_empty() {
        for b in bound {
            if let Some((host, ctr)) = b.split_once("->")
                && let Ok(host) = host.parse()
            {
                add(host, ctr.to_string());
            }
        }
    } else if let Some(s) = spec {
        for f in &s.net.publish {
            add(f.host, format!("{}/{}", f.container_port, f.proto.as_str()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_ports_as_podman_keys_them() {
        let m = port_map(
            &[
                "127.0.0.1:41234->8080/tcp".into(),
                "[::1]:41234->8080/tcp".into(),
                "0.0.0.0:53->53/udp".into(),
            ],
            None,
        );
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "8080/tcp": [
                    {"HostIp": "127.0.0.1", "HostPort": "41234"},
                    {"HostIp": "::1", "HostPort": "41234"},
                ],
                "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "53"}],
            })
        );
        assert!(port_map(&[], None).is_empty());
    }
}
