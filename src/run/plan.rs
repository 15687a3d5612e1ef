//! From what the user asked (`hutch run` flags), the image's config, the
//! profile and the host's facts to one final [`SandboxSpec`]. Nothing here
//! touches the system beyond reading the store, the image's /etc/passwd,
//! the host's files named by mounts and the host facts (src/host).
//!
//! Precedence, lowest first: the image config, the profile, the command
//! line. Entrypoint/Cmd follow Docker: arguments after the image replace
//! Cmd; `--entrypoint` replaces Entrypoint and drops the image's Cmd.

use super::idmap;
use super::net;
use super::users::{Accounts, host_group_name};
use crate::image::resolve::{Resolved, resolve as resolve_image};
use crate::profile::{
    CapabilityPolicy, NetworkMode, Profile, RunMount, SeccompMode, parse_mount_flag, parse_tmpfs,
    parse_volume_flag,
};
use crate::sandbox::caps::CapLevel;
use crate::sandbox::seccomp::SeccompLevel;
use crate::sandbox::spec::*;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// PATH when the image sets none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `--read-only` keeps writable, as Podman's `--read-only-tmpfs`
/// does (`/dev` and `/dev/shm` are tmpfs mounts anyway), with the modes
/// of a usual system.
const READ_ONLY_TMPFS: &[(&str, &str)] = &[
    ("/tmp", "mode=1777"),
    ("/var/tmp", "mode=1777"),
    ("/run", "mode=755"),
];

/// `hutch run` as typed.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub image: String,
    pub command: Vec<String>,
    pub name: Option<String>,
    pub remove: bool,
    /// `-d`: start the container under a keeper process and return.
    pub detach: bool,
    pub interactive: bool,
    pub tty: bool,
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub entrypoint: Option<String>,
    /// `-v HOST:CTR[:ro]` and `-v NAME:CTR[:ro]`, as typed.
    pub volumes: Vec<String>,
    /// `--mount type=...,...`, as typed.
    pub mounts: Vec<String>,
    pub tmpfs: Vec<String>,
    pub read_only: bool,
    /// With `--read-only`: fresh tmpfs mounts on `READ_ONLY_TMPFS`
    /// (`--read-only-tmpfs`, true unless the user says false; Podman's
    /// default). A profile's `read_only` lists its own `tmpfs`.
    pub read_only_tmpfs: bool,
    pub hostname: Option<String>,
    pub network: Option<NetworkMode>,
    /// `--network container:NAME`: the network of that running container
    /// (`network` is then what the profile's locks count it as).
    pub network_container: Option<String>,
    /// `--network slirp:allow_host_loopback=...`; the profile's otherwise.
    pub allow_host_loopback: Option<bool>,
    pub publish: Vec<String>,
    pub mtu: Option<u32>,
    /// `--preserve-fds N`.
    pub preserve_fds: u32,
    /// `--restart` (with `-d` only: its keeper restarts it).
    pub restart: crate::store::containers::RestartPolicy,
    /// `--stop-signal` (checked by the caller) and `--stop-timeout`.
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<u64>,
    /// `--add-host NAME:IP`: lines added to the container's /etc/hosts.
    pub add_hosts: Vec<String>,
    /// No command: the container only holds its namespaces for `exec`
    /// (see `ProcessSpec::pause`); `command`, `entrypoint`, `-t`, `-i` are
    /// ignored.
    pub pause: bool,
    /// The request comes from a project's hutch.toml, which names its
    /// volumes: a named volume going beyond an unlocked profile is not
    /// warned about (a host path is; a locked key is refused as ever).
    pub from_manifest: bool,
}

/// The image part of a plan.
struct ImagePart {
    image_id: String,
    /// Top first.
    lowers: Vec<PathBuf>,
    diff_ids: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<String>,
    workdir: String,
    user: String,
    /// The image's StopSignal.
    stop_signal: Option<String>,
    host: bool,
}

fn image_part(store: &Store, name: &str) -> Result<ImagePart> {
    match resolve_image(store, name)? {
        Resolved::Host => Ok(ImagePart {
            image_id: "host".into(),
            lowers: vec![PathBuf::from("/")],
            diff_ids: Vec::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            workdir: String::new(),
            user: String::new(),
            stop_signal: None,
            host: true,
        }),
        Resolved::Stored { image, .. } => {
            let mut lowers = Vec::new();
            let mut diff_ids = Vec::new();
            for l in image.layers.iter().rev() {
                if !store.has_layer(&l.diff_id) {
                    bail!(
                        "image {name}: layer {} is missing from the store; `hutch check --store --repair` \
                         finds damage, then load or pull the image again",
                        l.diff_id
                    );
                }
                lowers.push(store.layer_root(&l.diff_id));
                diff_ids.push(l.diff_id.to_string());
            }
            let cfg = image.config.config().clone().unwrap_or_default();
            Ok(ImagePart {
                image_id: image.manifest_digest.to_string(),
                lowers,
                diff_ids,
                entrypoint: cfg.entrypoint().clone().unwrap_or_default(),
                cmd: cfg.cmd().clone().unwrap_or_default(),
                env: cfg.env().clone().unwrap_or_default(),
                workdir: cfg.working_dir().clone().unwrap_or_default(),
                user: cfg.user().clone().unwrap_or_default(),
                stop_signal: cfg.stop_signal().clone(),
                host: false,
            })
        }
    }
}

pub(super) fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split('=').next().unwrap_or("").to_string();
    env.retain(|e| e.split('=').next() != Some(key.as_str()));
    env.push(kv);
}

fn has_env(env: &[String], key: &str) -> bool {
    env.iter().any(|e| e.split('=').next() == Some(key))
}

/// `-e KEY=VALUE`, or `-e KEY` to pass hutch's own value (skipped when
/// unset, as Docker does).
pub(super) fn env_flag(s: &str) -> Result<Option<String>> {
    if s.is_empty() || s.starts_with('=') {
        bail!("-e {s:?}: expected KEY=VALUE or KEY");
    }
    if s.contains('=') {
        return Ok(Some(s.to_string()));
    }
    Ok(std::env::var(s).ok().map(|v| format!("{s}={v}")))
}

fn env_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the env file {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match env_flag(line) {
            Ok(Some(kv)) => out.push(kv),
            Ok(None) => {}
            Err(_) => bail!("{}, line {}: expected KEY=VALUE", path.display(), i + 1),
        }
    }
    Ok(out)
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn bind_mount(host: &str, container: &str, read_only: bool, what: &str) -> Result<MountSpec> {
    if !host.starts_with('/') {
        bail!("{what}: the host path {host:?} must be absolute");
    }
    if !container.starts_with('/') {
        bail!("{what}: the container path {container:?} must be absolute");
    }
    let source = PathBuf::from(host);
    if let Err(e) = std::fs::metadata(&source) {
        bail!("{what}: the host path {host}: {e}");
    }
    Ok(MountSpec::Bind {
        source,
        destination: container.to_string(),
        read_only,
        copy_up: false,
    })
}

/// The `-v` and `--mount` flags of a run, parsed, each with the flag as
/// typed (for messages), `-v` first.
pub(crate) fn run_mounts(req: &RunRequest) -> Result<Vec<(String, RunMount)>> {
    let vols = req.volumes.iter().map(|v| {
        parse_volume_flag(v)
            .map(|m| (format!("-v {v}"), m))
            .map_err(|e| anyhow::anyhow!("-v {v}: {e}"))
    });
    let mounts = req.mounts.iter().map(|m| {
        parse_mount_flag(m)
            .map(|p| (format!("--mount {m}"), p))
            .map_err(|e| anyhow::anyhow!("{e}"))
    });
    vols.chain(mounts).collect()
}

/// The names of the named volumes a run mounts, checked (nothing is
/// created).
pub(crate) fn volume_names(req: &RunRequest) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for (flag, m) in run_mounts(req)? {
        if let RunMount::Volume(v) = m {
            crate::store::volumes::check_volume_name(&v.name)
                .with_context(|| format!("{flag}: the volume's name"))?;
            if !names.contains(&v.name) {
                names.push(v.name);
            }
        }
    }
    Ok(names)
}

/// A named volume as a bind mount of its data directory. A volume no
/// container has used, still empty, is first filled from the container's
/// root (unless `volume-nocopy`); one that does not exist yet (only with
/// `--dry-run`: `run` creates them first) would be.
fn volume_mount(store: &Store, v: &crate::profile::VolumeMount, flag: &str) -> Result<MountSpec> {
    if !v.container.starts_with('/') {
        bail!(
            "{flag}: the container path {:?} must be absolute",
            v.container
        );
    }
    let source = store
        .volume_data(&v.name)
        .with_context(|| format!("{flag}: the volume's name"))?;
    let new = match store.volume(&v.name)? {
        Some(meta) => {
            meta.needs_copy_up
                && std::fs::read_dir(&source)
                    .with_context(|| format!("{flag}: reading {}", source.display()))?
                    .next()
                    .is_none()
        }
        None => true,
    };
    Ok(MountSpec::Bind {
        source,
        destination: v.container.clone(),
        read_only: v.read_only,
        copy_up: new && !v.no_copy,
    })
}

/// Resolve a run into its spec. `id`, `name` and `dir` (the container's
/// directory in the store, which need not exist yet) come from the caller.
/// What a run joining another container's network takes from it.
struct Joined {
    join: NetJoin,
    mode: NetworkMode,
    /// Its id maps: its user namespace is joined too (a network namespace
    /// can only be entered from the user namespace that owns it).
    id_maps: crate::sandbox::spec::IdMaps,
}

/// `--network container:TARGET`: the running container whose network
/// namespace (and stack, ports, DNS) a run shares, as Podman's pods do,
/// its network mode and its id maps.
fn joined_network(store: &Store, target: &str, publish: &[String]) -> Result<Joined> {
    let c = store.find_container(target)?;
    let name = &c.state.name;
    if !c.alive {
        return Err(
            crate::store::containers::ContainerError::NotRunning { name: name.clone() }.into(),
        );
    }
    if !publish.is_empty() {
        bail!(
            "-p with --network container:{name}: the network is {name}'s; publish the ports \
             when starting {name} (as in Podman)"
        );
    }
    let dir = store.container_dir(&c.state.id);
    let theirs = super::spec_file::load(&dir, name)?;
    if theirs.network == NetworkMode::Host {
        bail!("--network container:{name}: {name} uses the host's network; use --network host");
    }
    Ok(Joined {
        join: NetJoin {
            container: name.clone(),
            dir,
        },
        mode: theirs.network,
        id_maps: theirs.id_maps,
    })
}

/// How a container's command and user were asked for, which its spec
/// holds only resolved: kept in its record for `inspect` (Podman's
/// Config.Entrypoint, Config.Cmd and Config.User).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Origin {
    /// The Entrypoint part of the spec's argv (the rest is Cmd).
    pub(crate) entrypoint: Vec<String>,
    /// `-u` as given, else the image's User, else "" (keep_id: `UID:GID`).
    pub(crate) user: String,
}

pub fn resolve(
    store: &Store,
    req: &RunRequest,
    profile: &Profile,
    id: &str,
    name: &str,
    dir: &Path,
) -> Result<SandboxSpec> {
    resolve_with_origin(store, req, profile, id, name, dir).map(|(spec, _)| spec)
}

/// [`resolve`], with what the container's record keeps of the request.
pub(crate) fn resolve_with_origin(
    store: &Store,
    req: &RunRequest,
    profile: &Profile,
    id: &str,
    name: &str,
    dir: &Path,
) -> Result<(SandboxSpec, Origin)> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let home = home_dir();
    let img = image_part(store, &req.image)?;

    // Command.
    let entrypoint = match &req.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => img.entrypoint.clone(),
    };
    let cmd = if !req.command.is_empty() {
        req.command.clone()
    } else if req.entrypoint.is_some() {
        Vec::new()
    } else {
        img.cmd.clone()
    };
    let origin_entrypoint = entrypoint.clone();
    let args: Vec<String> = if req.pause {
        Vec::new()
    } else {
        entrypoint.into_iter().chain(cmd).collect()
    };
    if args.is_empty() && !req.pause {
        bail!(
            "no command to run: image {} has no Entrypoint or Cmd; give one after the image name (`hutch run {} -- sh`)",
            req.image,
            req.image
        );
    }

    // A container joining another's network joins its user namespace
    // (which owns that network namespace), so its ids are mapped as the
    // other's are.
    let joined = match &req.network_container {
        Some(target) => Some(joined_network(store, target, &req.publish)?),
        None => None,
    };

    // User.
    let id_maps = match &joined {
        Some(j) => j.id_maps.clone(),
        None => idmap::plan(profile.user.keep_id && req.user.is_none()),
    };
    let accounts = Accounts::of_image(&img.lowers);
    let mut add_accounts = AddAccounts::default();
    let user = if let Some(u) = &req.user {
        accounts.resolve(u)?
    } else if profile.user.keep_id {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let name = crate::host::user_name(uid).unwrap_or_else(|| uid.to_string());
        if !img.host {
            add_accounts = accounts.keep_id_additions(
                &name,
                uid,
                gid,
                &host_group_name(gid).unwrap_or_else(|| name.clone()),
                &home.to_string_lossy(),
            );
        }
        UserSpec {
            uid,
            gid,
            additional_gids: Vec::new(),
            name,
        }
    } else if !img.user.is_empty() {
        accounts
            .resolve(&img.user)
            .with_context(|| format!("the image's User {:?}", img.user))?
    } else {
        UserSpec {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            name: "root".into(),
        }
    };

    // Environment.
    let hostname = req
        .hostname
        .clone()
        .or_else(|| Some(profile.security.hostname.clone()).filter(|h| !h.is_empty()))
        .unwrap_or_else(|| name.to_string());
    let mut env = img.env.clone();
    if !has_env(&env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    set_env(&mut env, format!("HOSTNAME={hostname}"));
    if !has_env(&env, "HOME") {
        let h = if profile.user.keep_id && req.user.is_none() {
            home.to_string_lossy().into_owned()
        } else {
            accounts.home_of(user.uid).unwrap_or("/").to_string()
        };
        env.push(format!("HOME={h}"));
    }
    if req.tty {
        set_env(&mut env, "TERM=xterm".into());
    }
    for (k, v) in &profile.env {
        let v = crate::profile::expand(v, &cwd, &home);
        set_env(&mut env, format!("{k}={v}"));
    }
    for f in &req.env_files {
        for kv in env_file(f)? {
            set_env(&mut env, kv);
        }
    }
    for e in &req.env {
        if let Some(kv) = env_flag(e)? {
            set_env(&mut env, kv);
        }
    }

    // Mounts: profile first, then the command line.
    let mut mounts = Vec::new();
    if req.read_only && req.read_only_tmpfs {
        for (path, options) in READ_ONLY_TMPFS {
            mounts.push(MountSpec::Tmpfs {
                destination: path.to_string(),
                options: options.to_string(),
            });
        }
    }
    if profile.filesystem.home {
        let h = home.to_string_lossy().into_owned();
        mounts.push(bind_mount(&h, &h, false, "the profile's home = true")?);
    }
    for m in profile.mount_specs(&cwd, &home)? {
        mounts.push(bind_mount(
            &m.host,
            &m.container,
            m.read_only,
            &format!("profile {} mount", profile.name),
        )?);
    }
    for t in profile.tmpfs_specs()? {
        mounts.push(MountSpec::Tmpfs {
            destination: t.path,
            options: tmpfs_options(&t.options),
        });
    }
    for (flag, m) in run_mounts(req)? {
        mounts.push(match m {
            RunMount::Bind(m) => bind_mount(&m.host, &m.container, m.read_only, &flag)?,
            RunMount::Volume(v) => volume_mount(store, &v, &flag)?,
            RunMount::Tmpfs(t) => MountSpec::Tmpfs {
                destination: t.path,
                options: tmpfs_options(&t.options),
            },
        });
    }
    for t in &req.tmpfs {
        let t = parse_tmpfs(t).map_err(|e| anyhow::anyhow!("--tmpfs {t}: {e}"))?;
        mounts.push(MountSpec::Tmpfs {
            destination: t.path,
            options: tmpfs_options(&t.options),
        });
    }
    // A later mount of the same destination replaces an earlier one.
    let mut deduped: Vec<MountSpec> = Vec::new();
    for m in mounts {
        deduped.retain(|d| d.destination() != m.destination());
        deduped.push(m);
    }
    // Parents before children.
    deduped.sort_by_key(|m| m.destination().matches('/').count());

    let cwd_inside = req
        .workdir
        .clone()
        .or_else(|| {
            Some(crate::profile::expand(
                &profile.filesystem.workdir,
                &cwd,
                &home,
            ))
            .filter(|w| !w.is_empty())
        })
        .or_else(|| Some(img.workdir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd_inside.starts_with('/') {
        bail!("the working directory {cwd_inside:?} must be an absolute path");
    }

    if let Some(j) = &joined
        && !(id_maps.maps_uid(user.uid) && id_maps.maps_gid(user.gid))
    {
        bail!(
            "--network container:{}: the user {}:{} is not mapped in {}'s user namespace, \
             which this container joins with its network; run it as a user that is (with `-u`), \
             or start {} with a subordinate id range (`hutch check` says how)",
            j.join.container,
            user.uid,
            user.gid,
            j.join.container,
            j.join.container
        );
    }
    let network = match &joined {
        Some(j) => j.mode,
        None => req.network.unwrap_or(profile.network.mode),
    };
    // A bad -p fails here, before anything is created (--dry-run too).
    let publish = req
        .publish
        .iter()
        .map(|p| crate::net::parse_publish(p))
        .collect::<Result<Vec<_>>>()?;
    let add_hosts = req
        .add_hosts
        .iter()
        .map(|h| net::parse_add_host(h))
        .collect::<Result<Vec<_>>>()?;
    if !req.publish.is_empty() && network != NetworkMode::Slirp {
        bail!(
            "-p needs --network slirp (the network is {})",
            network.as_str()
        );
    }
    if let Some(m) = req.mtu
        && !(1280..=65520).contains(&m)
    {
        bail!("--mtu {m}: use 1280 to 65520");
    }
    let dns_upstreams = if network == NetworkMode::Slirp && joined.is_none() {
        net::dns_upstreams()?
    } else {
        Vec::new()
    };
    let capabilities = CapabilitySet::of(&match &profile.security.capabilities {
        CapabilityPolicy::Default => CapLevel::Default,
        CapabilityPolicy::None => CapLevel::None,
        CapabilityPolicy::List(v) => CapLevel::List(v.clone()),
    })
    .with_context(|| format!("profile {}: security.capabilities", profile.name))?;
    let seccomp = match profile.security.seccomp {
        SeccompMode::Default => SeccompLevel::Default,
        SeccompMode::Strict => SeccompLevel::Strict,
        SeccompMode::Unconfined => SeccompLevel::Unconfined,
    };
    let landlock = profile.security.landlock.then(|| LandlockSpec {
        read: profile
            .security
            .landlock_read
            .iter()
            .map(|p| crate::profile::expand(p, &cwd, &home))
            .collect(),
        write: profile
            .security
            .landlock_write
            .iter()
            .map(|p| crate::profile::expand(p, &cwd, &home))
            .collect(),
    });

    let origin = Origin {
        entrypoint: origin_entrypoint,
        user: match &req.user {
            Some(u) => u.clone(),
            None if profile.user.keep_id => format!("{}:{}", user.uid, user.gid),
            None => img.user.clone(),
        },
    };
    let spec = SandboxSpec {
        id: id.to_string(),
        name: name.to_string(),
        image: req.image.clone(),
        image_id: img.image_id,
        profile: profile.name.clone(),
        rootfs: RootfsSpec {
            lowers: img.lowers,
            layers: img.diff_ids,
            upper: dir.join("upper"),
            work: dir.join("work"),
            mountpoint: dir.join("rootfs"),
            etc: dir.join("etc"),
            read_only: req.read_only || profile.filesystem.read_only,
            host: img.host,
        },
        process: ProcessSpec {
            args,
            env,
            cwd: cwd_inside,
            user,
            terminal: req.tty,
            stdin: req.interactive,
            preserve_fds: req.preserve_fds,
            add_accounts,
            pause: req.pause,
        },
        hostname,
        id_maps,
        mounts: deduped,
        network,
        net: NetSpec {
            allow_host_loopback: req
                .allow_host_loopback
                .unwrap_or(profile.network.allow_host_loopback),
            mtu: req.mtu.unwrap_or(profile.network.mtu),
            block_private: profile.network.block_private,
            publish,
            dns_upstreams,
            join: joined.map(|j| j.join),
            add_hosts,
        },
        security: SecuritySpec {
            seccomp,
            capabilities,
            no_new_privs: true,
            landlock,
            share_terminal: profile.security.share_terminal,
        },
        limits: profile.limits.clone(),
        remove: req.remove,
        stop_signal: req.stop_signal.clone().or(img.stop_signal),
        stop_timeout: req.stop_timeout,
    };
    Ok((spec, origin))
}

fn tmpfs_options(opts: &str) -> String {
    let mut o = vec!["mode=1777".to_string()];
    for part in opts.split(',').filter(|p| !p.is_empty()) {
        if part.starts_with("mode=") {
            o.retain(|x| !x.starts_with("mode="));
        }
        o.push(part.to_string());
    }
    o.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_rules() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        set_env(&mut env, "A=2".into());
        assert_eq!(env, ["PATH=/bin", "A=2"]);
        assert!(has_env(&env, "PATH") && !has_env(&env, "PAT"));
        assert_eq!(env_flag("X=y=z").unwrap(), Some("X=y=z".into()));
        assert!(env_flag("=x").is_err());
        assert_eq!(env_flag("HUTCH_SURELY_UNSET_VAR").unwrap(), None);
    }

    #[test]
    fn tmpfs_option_defaults() {
        assert_eq!(tmpfs_options(""), "mode=1777");
        assert_eq!(tmpfs_options("size=64m,mode=700"), "size=64m,mode=700");
    }

    #[test]
    fn env_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("e");
        std::fs::write(&p, "# c\nA=1\n\nB=two words\n").unwrap();
        assert_eq!(env_file(&p).unwrap(), ["A=1", "B=two words"]);
        std::fs::write(&p, "=bad\n").unwrap();
        assert!(env_file(&p).unwrap_err().to_string().contains("line 1"));
    }
}
