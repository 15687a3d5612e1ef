//! From what the user asked (`hutch run` flags), the image's config and the
//! profile to one [`SandboxSpec`]. Nothing here touches the system beyond
//! reading the store, the image's /etc/passwd and the host's files named
//! by mounts.
//!
//! Precedence, lowest first: the image config, the profile, the command
//! line. Entrypoint/Cmd follow Docker: arguments after the image replace
//! Cmd; `--entrypoint` replaces Entrypoint and drops the image's Cmd.

use super::idmap;
use super::spec::*;
use super::users::Accounts;
use crate::image::resolve::{Resolved, resolve};
use crate::profile::locks::Weakening;
use crate::profile::{CapabilityPolicy, NetworkMode, Profile, parse_mount, parse_tmpfs};
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// PATH when the image sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set.
pub const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// What `--read-only` keeps writable, as Podman's `--read-only-tmpfs`
/// does (`/dev` and `/dev/shm` are tmpfs mounts anyway), with the modes
/// of a usual system.
pub const READ_ONLY_TMPFS: &[(&str, &str)] = &[
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
    pub interactive: bool,
    pub tty: bool,
    pub env: Vec<String>,
    pub env_files: Vec<PathBuf>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub entrypoint: Option<String>,
    pub volumes: Vec<String>,
    pub tmpfs: Vec<String>,
    pub read_only: bool,
    /// With `--read-only`: fresh tmpfs mounts on [`READ_ONLY_TMPFS`]
    /// (`--read-only-tmpfs`, true unless the user says false; Podman's
    /// default). A profile's `read_only` lists its own `tmpfs`.
    pub read_only_tmpfs: bool,
    pub hostname: Option<String>,
    pub network: Option<NetworkMode>,
    /// `--network slirp:allow_host_loopback=...`; the profile's otherwise.
    pub allow_host_loopback: Option<bool>,
    pub publish: Vec<String>,
    pub mtu: Option<u32>,
    pub profile: Option<String>,
    /// `--preserve-fds N`.
    pub preserve_fds: u32,
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
    host: bool,
}

fn image_part(store: &Store, name: &str) -> Result<ImagePart> {
    match resolve(store, name)? {
        Resolved::Host => Ok(ImagePart {
            image_id: "host".into(),
            lowers: vec![PathBuf::from("/")],
            diff_ids: Vec::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            workdir: String::new(),
            user: String::new(),
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
                host: false,
            })
        }
    }
}

fn set_env(env: &mut Vec<String>, kv: String) {
    let key = kv.split('=').next().unwrap_or("").to_string();
    env.retain(|e| e.split('=').next() != Some(key.as_str()));
    env.push(kv);
}

fn has_env(env: &[String], key: &str) -> bool {
    env.iter().any(|e| e.split('=').next() == Some(key))
}

/// `-e KEY=VALUE`, or `-e KEY` to pass hutch's own value (skipped when
/// unset, as Docker does).
fn env_flag(s: &str) -> Result<Option<String>> {
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

/// The name of group `gid` in the host's /etc/group.
fn host_group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    super::users::parse_group(&text)
        .into_iter()
        .find(|g| g.gid == gid)
        .map(|g| g.name)
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
    })
}

/// Build the spec of a run. `id`, `name` and `dir` (the container's
/// directory in the store, which need not exist yet) come from the caller.
pub fn plan(
    store: &Store,
    req: &RunRequest,
    profile: &Profile,
    id: &str,
    name: &str,
    dir: &Path,
) -> Result<SandboxSpec> {
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
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        bail!(
            "no command to run: image {} has no Entrypoint or Cmd; give one after the image name (`hutch run {} -- sh`)",
            req.image,
            req.image
        );
    }

    // User.
    let id_maps = idmap::plan(profile.user.keep_id && req.user.is_none());
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
    for v in &req.volumes {
        let m = parse_mount(v).map_err(|e| anyhow::anyhow!("-v {v}: {e}"))?;
        mounts.push(bind_mount(
            &m.host,
            &m.container,
            m.read_only,
            &format!("-v {v}"),
        )?);
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

    let network = req.network.unwrap_or(profile.network.mode);
    // A bad -p fails here, before anything is created (--dry-run too).
    for p in &req.publish {
        crate::net::parse_publish(p)?;
    }
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
    let capabilities = match &profile.security.capabilities {
        CapabilityPolicy::Default => DOCKER_DEFAULT_CAPS.iter().map(|s| s.to_string()).collect(),
        CapabilityPolicy::None => Vec::new(),
        CapabilityPolicy::List(v) => v.clone(),
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

    Ok(SandboxSpec {
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
            publish: req.publish.clone(),
        },
        security: SecuritySpec {
            seccomp: profile.security.seccomp.as_str().to_string(),
            capabilities,
            no_new_privs: true,
            landlock,
            share_terminal: profile.security.share_terminal,
        },
        limits: profile.limits.clone(),
        remove: req.remove,
    })
}

/// How open a network mode is: none < slirp < host.
fn openness(mode: NetworkMode) -> u8 {
    match mode {
        NetworkMode::None => 0,
        NetworkMode::Slirp => 1,
        NetworkMode::Host => 2,
    }
}

/// A TOML string.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A TOML array of strings.
fn quoted_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| quoted(s)).collect();
    format!("[{}]", items.join(", "))
}

/// The host directories the profile already shows the sandbox, canonical,
/// with whether they are read-only: its mounts and, with `home = true`,
/// the home directory. Paths that cannot be resolved are left out.
fn profile_host_paths(profile: &Profile, cwd: &Path, home: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    if profile.filesystem.home
        && let Ok(h) = std::fs::canonicalize(home)
    {
        out.push((h, false));
    }
    for m in profile.mount_specs(cwd, home).unwrap_or_default() {
        if let Ok(h) = std::fs::canonicalize(&m.host) {
            out.push((h, m.read_only));
        }
    }
    out
}

/// The flags of `req` that give the sandbox more than `profile` does, one
/// [`Weakening`] per flag and key; [`crate::profile::locks::enforce`]
/// decides whether they are refused or warned about.
///
/// Every `hutch run` flag is classified in src/cli/run.rs; those that can
/// weaken are checked here:
/// - `--network MODE`: more open than the profile's mode (none < slirp <
///   host) weakens `network.mode`; `--network slirp:allow_host_loopback=true`
///   weakens `network.allow_host_loopback` where the profile's is false.
/// - `-v HOST:CTR[:ro]` weakens `filesystem.mounts` unless HOST resolves
///   (symlinks followed) to a path at or below one the profile already
///   mounts (or its home with `home = true`), read-write or, for a `:ro`
///   volume, either way: such a volume shows nothing new of the host.
pub fn weakenings(req: &RunRequest, profile: &Profile, cwd: &Path, home: &Path) -> Vec<Weakening> {
    let mut out = Vec::new();
    let net = &profile.network;
    let mode = req.network.unwrap_or(net.mode);
    if openness(mode) > openness(net.mode) {
        out.push(Weakening {
            flag: format!("--network {mode}"),
            key: "network.mode",
            profile_value: quoted(net.mode.as_str()),
            grant: format!("mode = {}", quoted(mode.as_str())),
        });
    }
    if mode == NetworkMode::Slirp
        && req.allow_host_loopback == Some(true)
        && !net.allow_host_loopback
    {
        out.push(Weakening {
            flag: "--network slirp:allow_host_loopback=true".into(),
            key: "network.allow_host_loopback",
            profile_value: "false".into(),
            grant: "allow_host_loopback = true".into(),
        });
    }
    let shown = profile_host_paths(profile, cwd, home);
    for v in &req.volumes {
        // A malformed -v is refused by `plan` with its own message.
        let Ok(m) = parse_mount(v) else { continue };
        let covered = std::fs::canonicalize(&m.host).is_ok_and(|host| {
            shown
                .iter()
                .any(|(dir, ro)| host.starts_with(dir) && (m.read_only || !ro))
        });
        if !covered {
            let mut mounts = profile.filesystem.mounts.clone();
            mounts.push(v.clone());
            out.push(Weakening {
                flag: format!("-v {v}"),
                key: "filesystem.mounts",
                profile_value: quoted_list(&profile.filesystem.mounts),
                grant: format!("mounts = {}", quoted_list(&mounts)),
            });
        }
    }
    out
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

/// The DiffIDs a spec's image uses (for the container state).
pub fn diff_ids(store: &Store, image: &str) -> Vec<String> {
    image_part(store, image)
        .map(|i| i.diff_ids)
        .unwrap_or_default()
}

/// hosts, hostname and resolv.conf for the container, in `etc_dir`.
pub fn write_etc_files(spec: &SandboxSpec, etc_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(etc_dir).with_context(|| format!("creating {}", etc_dir.display()))?;
    let h = &spec.hostname;
    let mut hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{h}\n"
    );
    if spec.network == NetworkMode::Slirp {
        hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.2.100\t{h}\n"
        );
        if spec.net.allow_host_loopback {
            hosts.push_str("10.0.2.2\thost.hutch.internal\n");
        }
    }
    let resolv = match spec.network {
        NetworkMode::Host => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        NetworkMode::None => "# no network (hutch --network none)\n".to_string(),
        NetworkMode::Slirp => "nameserver 10.0.2.3\n".to_string(),
    };
    for (f, text) in [
        ("hosts", hosts),
        ("hostname", format!("{h}\n")),
        ("resolv.conf", resolv),
    ] {
        let p = etc_dir.join(f);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
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

    fn profile(name: &str) -> Profile {
        crate::profile::load(name).unwrap()
    }

    fn keys(w: &[Weakening]) -> Vec<&str> {
        w.iter().map(|w| w.key).collect()
    }

    #[test]
    fn network_flags_that_open_more_weaken() {
        let (cwd, home) = (Path::new("/"), Path::new("/"));
        let req = |mode, lo| RunRequest {
            network: Some(mode),
            allow_host_loopback: lo,
            ..RunRequest::default()
        };
        let untrusted = profile("untrusted");
        let default = profile("default");
        let w = weakenings(&req(NetworkMode::Host, None), &untrusted, cwd, home);
        assert_eq!(keys(&w), ["network.mode"]);
        assert_eq!(w[0].flag, "--network host");
        assert_eq!(w[0].profile_value, "\"none\"");
        assert_eq!(w[0].grant, "mode = \"host\"");
        let w = weakenings(&req(NetworkMode::Slirp, Some(true)), &untrusted, cwd, home);
        assert_eq!(keys(&w), ["network.mode", "network.allow_host_loopback"]);
        let w = weakenings(&req(NetworkMode::Slirp, Some(true)), &default, cwd, home);
        assert_eq!(keys(&w), ["network.allow_host_loopback"]);
        // Tightening, or asking for what the profile has, is no weakening.
        for (mode, lo) in [
            (NetworkMode::None, None),
            (NetworkMode::Slirp, None),
            (NetworkMode::Slirp, Some(false)),
        ] {
            assert!(weakenings(&req(mode, lo), &default, cwd, home).is_empty());
        }
        assert!(weakenings(&RunRequest::default(), &untrusted, cwd, home).is_empty());
    }

    #[test]
    fn volumes_outside_the_profiles_mounts_weaken() {
        let d = tempfile::tempdir().unwrap();
        let work = d.path().join("work");
        let other = d.path().join("other");
        std::fs::create_dir_all(work.join("sub")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        // A symlink inside the work directory that leads out of it.
        std::os::unix::fs::symlink(&other, work.join("out")).unwrap();
        let vols = |v: &[String]| RunRequest {
            volumes: v.to_vec(),
            ..RunRequest::default()
        };
        let home = d.path().join("home");
        let untrusted = profile("untrusted"); // mounts ${CWD}:${CWD}
        let w = |v: String| weakenings(&vols(&[v]), &untrusted, &work, &home);
        let (wk, ot) = (work.display(), other.display());
        assert!(w(format!("{wk}:/w")).is_empty());
        assert!(w(format!("{wk}/sub:/s:ro")).is_empty());
        let found = w(format!("{ot}:/o"));
        assert_eq!(keys(&found), ["filesystem.mounts"]);
        assert_eq!(found[0].profile_value, "[\"${CWD}:${CWD}\"]");
        assert_eq!(
            found[0].grant,
            format!("mounts = [\"${{CWD}}:${{CWD}}\", \"{ot}:/o\"]")
        );
        assert_eq!(keys(&w(format!("{wk}/out:/o"))), ["filesystem.mounts"]);
        assert_eq!(keys(&w("/nonexistent-x:/x".into())), ["filesystem.mounts"]);
        // Under a read-only profile mount, only a :ro volume is covered.
        let mut ro = untrusted.clone();
        ro.filesystem.mounts = vec!["${CWD}:/w:ro".into()];
        let w = |v: String| weakenings(&vols(&[v]), &ro, &work, &home);
        assert!(w(format!("{wk}/sub:/s:ro")).is_empty());
        assert_eq!(keys(&w(format!("{wk}/sub:/s"))), ["filesystem.mounts"]);
        // home = true covers the home directory.
        std::fs::create_dir_all(home.join("x")).unwrap();
        let mut h = profile("default");
        h.filesystem.home = true;
        let v = format!("{}:/x", home.join("x").display());
        assert!(weakenings(&vols(std::slice::from_ref(&v)), &h, &work, &home).is_empty());
        let default = profile("default");
        assert_eq!(
            keys(&weakenings(&vols(&[v]), &default, &work, &home)),
            ["filesystem.mounts"]
        );
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
