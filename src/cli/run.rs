//! `hutch run`: start a container from an image (see src/sandbox/).

use crate::cli::flags::TlsVerify;
use crate::profile::{self, NetworkMode};
use crate::sandbox::launch;
use crate::sandbox::plan::{RunRequest, plan, write_etc_files};
use crate::store::Store;
use crate::store::containers::{ContainerState, Status, new_id, now_rfc3339};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    disable_help_flag = true,
    after_long_help = "\
Runs COMMAND (or the image's Entrypoint/Cmd) in new user, mount, PID, UTS,
IPC, cgroup and network namespaces, on hutch's FUSE overlay over the image's
layers: changes go to the container's own upper dir and never touch the
image. The container is kept until `hutch rm` (or --rm).

IMAGE is a name from `hutch images`, an ID or digest, or `host` (the host's
own root filesystem, read-only, with /home, /root, /run and /tmp hidden).

Exit status: the command's; 125 when hutch fails, 126 when the command
cannot be executed, 127 when it is not found, 128+N when it dies of signal N.

Examples:
  hutch run host -- uname -a
  hutch run --rm -it debian bash
  hutch run --profile dev debian make test
  hutch run --profile untrusted -v $PWD/dl:/work node npm install"
)]
pub struct RunArgs {
    /// Print help (-h is --hostname, as in Docker)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Name the container (default: a generated name)
    #[arg(long)]
    name: Option<String>,
    /// Keep stdin open (without it, the command reads /dev/null)
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a pseudo-terminal (hutch's stdin must be a terminal)
    #[arg(short, long)]
    tty: bool,
    /// Pass descriptors 3 to 3+N-1 of hutch's caller to the command (all
    /// others above 2 are closed)
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,
    /// Set an environment variable (KEY=VALUE, or KEY to pass hutch's own)
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines)
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container (created if missing)
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// Run as USER[:GROUP], names or numbers from the image
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Replace the image's Entrypoint ("" to clear it)
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Bind-mount a host path: HOST:CONTAINER[:ro|rw]
    #[arg(short, long = "volume", value_name = "HOST:CTR[:ro]")]
    volume: Vec<String>,
    /// Mount a fresh tmpfs: PATH[:OPTIONS]
    #[arg(long, value_name = "PATH[:OPTS]")]
    tmpfs: Vec<String>,
    /// Make the root filesystem read-only (/tmp, /var/tmp and /run stay
    /// writable, as fresh tmpfs mounts, unless --read-only-tmpfs=false)
    #[arg(long)]
    read_only: bool,
    /// With --read-only: mount fresh tmpfs on /tmp, /var/tmp and /run
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    read_only_tmpfs: bool,
    /// The container's hostname (default: its name)
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Network mode: slirp (userspace network), none (loopback only) or host;
    /// slirp takes options as Podman's slirp4netns does:
    /// slirp:allow_host_loopback=true,mtu=1500
    #[arg(long, value_name = "MODE[:OPT=VAL,...]")]
    network: Option<String>,
    /// Publish a container port: [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp] (slirp);
    /// CTRPORT alone (or HOSTIP::CTRPORT) takes a free host port
    #[arg(short, long = "publish", value_name = "[[IP:]HOST:]CTR")]
    publish: Vec<String>,
    /// MTU of the container's eth0 with --network slirp [default: 65520]
    #[arg(long, value_name = "BYTES")]
    mtu: Option<u32>,
    /// Profile: a name (built-in or ~/.config/hutch/profiles/NAME.toml) or a path
    #[arg(long, default_value = profile::DEFAULT_PROFILE)]
    profile: String,
    /// Print the resolved run (the SandboxSpec) as JSON and start nothing
    #[arg(long)]
    dry_run: bool,
    /// Pull the image first: missing (when it is not in the store), always, never
    #[arg(long, value_name = "POLICY", default_value = "missing")]
    pull: PullPolicy,
    #[command(flatten)]
    tls: TlsVerify,
    /// The image to run
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The command and its arguments (default: the image's)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PullPolicy {
    Missing,
    Always,
    Never,
}

/// Pull `image` before the run as `policy` says (never the `host` image).
/// A pull that was only tried because the image is missing reports both
/// facts when it fails.
fn pull_first(
    store: &Store,
    image: &str,
    policy: PullPolicy,
    tls_verify: Option<bool>,
) -> Result<()> {
    use crate::image::resolve::{HOST_IMAGE, ResolveError, resolve};
    if image == HOST_IMAGE || policy == PullPolicy::Never {
        return Ok(());
    }
    let missing = match resolve(store, image) {
        Ok(_) => false,
        Err(e) if policy == PullPolicy::Missing => {
            if !ResolveError::is_not_found(&e) {
                return Err(e);
            }
            true
        }
        Err(_) => true,
    };
    if policy == PullPolicy::Missing && !missing {
        return Ok(());
    }
    let platform = crate::oci::platform::Platform::host();
    let progress = crate::image::progress::Progress::for_stderr(false);
    match crate::registry::pull::pull(store, image, &platform, tls_verify, &progress) {
        Ok(p) => {
            eprintln!("Pulled {} ({})", p.tag.as_deref().unwrap_or(image), p.manifest);
            Ok(())
        }
        Err(e) if missing => Err(e.context(format!(
            "{image} is not in the store and pulling it failed (`--pull never` runs only what the store has)"
        ))),
        Err(e) => Err(e),
    }
}

/// `--network MODE[:OPT=VAL,...]`: the mode, then slirp's options
/// (`allow_host_loopback=true|false`, `mtu=N`).
struct NetworkArg {
    mode: NetworkMode,
    allow_host_loopback: Option<bool>,
    mtu: Option<u32>,
}

fn network(s: &str) -> Result<NetworkArg> {
    let (mode, opts) = s.split_once(':').unwrap_or((s, ""));
    let mode = match mode {
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        "slirp" | "slirp4netns" | "pasta" => NetworkMode::Slirp,
        _ => bail!("--network {s:?}: use slirp, none or host"),
    };
    let mut arg = NetworkArg {
        mode,
        allow_host_loopback: None,
        mtu: None,
    };
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        if mode != NetworkMode::Slirp {
            bail!("--network {s:?}: options are for slirp only");
        }
        let (k, v) = opt.split_once('=').unwrap_or((opt, "true"));
        match k {
            "allow_host_loopback" => {
                arg.allow_host_loopback = Some(match v {
                    "true" => true,
                    "false" => false,
                    _ => bail!("--network {s:?}: allow_host_loopback is true or false"),
                })
            }
            "mtu" => {
                arg.mtu =
                    Some(v.parse().map_err(|_| {
                        anyhow::anyhow!("--network {s:?}: mtu {v:?} is not a number")
                    })?)
            }
            _ => bail!(
                "--network {s:?}: unknown option {k:?} (slirp knows allow_host_loopback and mtu)"
            ),
        }
    }
    Ok(arg)
}

/// Refuse the flags that weaken keys the profile locks (before anything
/// is pulled or started); print a warning for those that weaken keys it
/// does not lock. Which flags can weaken is listed in `FLAG_EFFECTS` in
/// this file's tests.
fn check_locks(req: &RunRequest, profile: &profile::Profile) -> Result<()> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let found = crate::sandbox::plan::weakenings(req, profile, &cwd, &home);
    match profile::locks::enforce(profile, &found) {
        Ok(warnings) => {
            for w in warnings {
                eprintln!("{w}");
            }
            Ok(())
        }
        Err(refused) => bail!("{refused}"),
    }
}

/// The spec as `--dry-run` prints it: where the cgroup limits could not be
/// applied (as far as can be told without creating the cgroup), a
/// `cgroup_fallback` object says why and which rlimits stand in for them,
/// and the launcher's warning is printed.
fn with_cgroup_fallback(spec: &crate::sandbox::spec::SandboxSpec) -> Result<serde_json::Value> {
    use crate::sandbox::{cgroup, rlimits};
    let mut value = serde_json::to_value(spec)?;
    let l = &spec.limits;
    let limits = cgroup::CgroupLimits {
        memory: l.memory,
        pids: l.pids,
        cpus: l.cpus,
    };
    if let Err(e) = cgroup::probe(&limits) {
        let fallback = rlimits::cgroup_fallback(l.memory, l.pids, l.cpus, l.nproc);
        eprintln!(
            "hutch: warning: memory/pids/cpu limits would not be applied: {e:#}{}",
            fallback.describe()
        );
        value["cgroup_fallback"] = serde_json::json!({
            "reason": format!("{e:#}"),
            "rlimits": fallback,
        });
    }
    Ok(value)
}

/// `-t` relays hutch's stdin to the container's terminal: without a
/// terminal there, nothing could ever send it end-of-file (the command
/// would wait forever), so it is refused, as Docker does.
fn check_tty_stdin(tty: bool, dry_run: bool) -> Result<()> {
    if tty && !dry_run && !rustix::termios::isatty(rustix::stdio::stdin()) {
        bail!(
            "the input device is not a TTY: -t needs a terminal on hutch's stdin; \
             drop -t (and keep -i to pipe input to the command)"
        );
    }
    Ok(())
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

/// The warning when `--rm` could not remove the container after the
/// command ran (the command's exit status stands): what is left, and how
/// to remove it.
fn removal_warning(name: &str, dir: &std::path::Path, e: &anyhow::Error, listed: bool) -> String {
    if listed {
        format!(
            "hutch: warning: --rm: removing container {name} failed: {e:#}; it is left in {} \
             (`hutch rm {name}` removes it)",
            dir.display()
        )
    } else {
        format!("hutch: warning: --rm: removing container {name}: {e:#}")
    }
}

pub fn run(a: RunArgs, store: Result<Store>) -> Result<i32> {
    check_tty_stdin(a.tty, a.dry_run)?;
    let store = store?;
    let profile = profile::load(&a.profile)?;
    let mut command = a.command;
    if command.first().map(String::as_str) == Some("--") {
        command.remove(0);
    }
    let net = a.network.as_deref().map(network).transpose()?;
    crate::sandbox::inherited::check_preserved(a.preserve_fds)?;
    let req = RunRequest {
        image: a.image,
        command,
        name: a.name,
        remove: a.rm,
        interactive: a.interactive || a.tty,
        tty: a.tty,
        env: a.env,
        env_files: a.env_file,
        workdir: a.workdir,
        user: a.user,
        entrypoint: a.entrypoint,
        volumes: a.volume,
        tmpfs: a.tmpfs,
        read_only: a.read_only,
        read_only_tmpfs: a.read_only_tmpfs,
        hostname: a.hostname,
        network: net.as_ref().map(|n| n.mode),
        allow_host_loopback: net.as_ref().and_then(|n| n.allow_host_loopback),
        publish: a.publish,
        mtu: a.mtu.or(net.as_ref().and_then(|n| n.mtu)),
        profile: Some(a.profile),
        preserve_fds: a.preserve_fds,
    };
    check_locks(&req, &profile)?;
    pull_first(&store, &req.image, a.pull, a.tls.tls_verify)?;
    let id = new_id()?;
    if a.dry_run {
        let name = req.name.clone().unwrap_or_else(|| "(generated)".into());
        let spec = plan(
            &store,
            &req,
            &profile,
            &id,
            &name,
            &store.container_dir(&id),
        )?;
        super::output::print_json(&with_cgroup_fallback(&spec)?)?;
        return Ok(0);
    }
    // Hold the store lock until the container's state pins its layers.
    let lock = store.lock_shared()?;
    let dir = store.container_dir(&id);
    let mut planned = None;
    let mut listeners = None;
    let (state, running) = store.create_container(&id, req.name.as_deref(), |name| {
        let spec = plan(&store, &req, &profile, &id, name, &dir)?;
        // -p binds now: a port that cannot be had leaves no container.
        let bound = if spec.net.publish.is_empty() {
            None
        } else {
            Some(crate::sandbox::network::bind_published(&spec)?)
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
            profile: profile.name.clone(),
            created: now_rfc3339(),
            status: Status::Created,
            pid: None,
            exit_code: None,
            finished: None,
            ports,
        };
        planned = Some(spec);
        Ok(state)
    })?;
    drop(lock);
    let spec = planned.context("internal error: the container was created without a plan")?;
    // Ports the kernel chose: said once, at the start (`hutch ps` shows
    // them too).
    if let Some(l) = &listeners {
        for (asked, bound) in spec.net.publish.iter().zip(l.published()) {
            if crate::net::parse_publish(asked).is_ok_and(|f| f.host.port() == 0) {
                eprintln!(
                    "hutch: port {}/{} is published on {}",
                    bound.container_port,
                    bound.proto.as_str(),
                    bound.host
                );
            }
        }
    }
    let result = (|| {
        write_etc_files(&spec, &dir.join("etc"))?;
        let mut st = state.clone();
        st.status = Status::Running;
        st.pid = Some(std::process::id() as i32);
        store.save_container(&st)?;
        let code = launch::run(&spec, &dir.join("etc"), listeners, &|text| {
            show_once(&store, "cgroup-fallback", text)
        });
        st.status = Status::Exited;
        st.pid = None;
        st.finished = Some(now_rfc3339());
        st.exit_code = code.as_ref().ok().copied();
        // The command has run: failing to record it (a full disk) must not
        // replace its exit status. With --rm the record goes anyway.
        if let Err(e) = store.save_container(&st)
            && !req.remove
        {
            eprintln!(
                "hutch: warning: recording that container {} exited: {e:#} (`hutch ps -a` shows it as killed)",
                st.name
            );
        }
        code
    })();
    drop(running);
    if req.remove
        && let Err(e) = store.remove_container(&id, false)
    {
        let listed = matches!(store.lookup_container(&id), Ok(Some(_)));
        eprintln!("{}", removal_warning(&state.name, &dir, &e, listed));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a `hutch run` flag does to the profile's confinement (see
    /// src/profile/locks.rs). Every flag of [`RunArgs`] is listed in
    /// [`FLAG_EFFECTS`] (`every_flag_is_classified` checks it): a new flag
    /// must be classified here, and one that can weaken must be checked in
    /// `plan::weakenings`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum FlagEffect {
        /// Can give the sandbox more than the profile: checked against the
        /// profile's locks (these keys).
        Weakens(&'static [&'static str]),
        /// Only ever takes something away.
        Tightens,
        /// Not confinement: what runs, how it is named, shown or fed.
        Neutral,
    }

    /// Every flag of `hutch run` (clap argument ids) and its effect. There are
    /// no flags for capabilities, seccomp, Landlock, devices or privileged
    /// mode; when one is added it weakens `security.*` and must be checked.
    const FLAG_EFFECTS: &[(&str, FlagEffect)] = &[
        (
            "network",
            FlagEffect::Weakens(&["network.mode", "network.allow_host_loopback"]),
        ),
        ("volume", FlagEffect::Weakens(&["filesystem.mounts"])),
        ("read_only", FlagEffect::Tightens),
        // Fresh memory inside a read-only container, nothing of the host;
        // `false` only takes the writable tmpfs away.
        ("read_only_tmpfs", FlagEffect::Neutral),
        // -u picks a user of the image, never the host's identity (and turns
        // off a profile's keep_id); capabilities stay the profile's.
        ("user", FlagEffect::Tightens),
        // A tmpfs is fresh memory inside the container, nothing of the host.
        ("tmpfs", FlagEffect::Neutral),
        // -p lets the host reach the container; the container reaches nothing
        // more (and -p needs slirp, which only --network can turn on).
        ("publish", FlagEffect::Neutral),
        ("mtu", FlagEffect::Neutral),
        ("hostname", FlagEffect::Neutral),
        ("workdir", FlagEffect::Neutral),
        ("env", FlagEffect::Neutral),
        ("env_file", FlagEffect::Neutral),
        ("entrypoint", FlagEffect::Neutral),
        ("interactive", FlagEffect::Neutral),
        ("tty", FlagEffect::Neutral),
        // Descriptors the caller opened on purpose; nothing else passes.
        ("preserve_fds", FlagEffect::Neutral),
        ("name", FlagEffect::Neutral),
        ("rm", FlagEffect::Neutral),
        ("profile", FlagEffect::Neutral),
        ("dry_run", FlagEffect::Neutral),
        ("pull", FlagEffect::Neutral),
        ("tls_verify", FlagEffect::Neutral),
        ("help", FlagEffect::Neutral),
        ("image", FlagEffect::Neutral),
        ("command", FlagEffect::Neutral),
    ];

    #[test]
    fn every_flag_is_classified() {
        use clap::Args;
        let cmd = RunArgs::augment_args(clap::Command::new("run"));
        let ids: Vec<String> = cmd
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        for id in &ids {
            assert!(
                FLAG_EFFECTS.iter().any(|(f, _)| f == id),
                "hutch run flag `{id}` is not classified in FLAG_EFFECTS"
            );
        }
        for (f, _) in FLAG_EFFECTS {
            assert!(
                ids.iter().any(|i| i == f),
                "FLAG_EFFECTS lists `{f}`, which is no flag"
            );
        }
        // The keys named are lockable ones.
        for (_, e) in FLAG_EFFECTS {
            if let FlagEffect::Weakens(keys) = e {
                for k in *keys {
                    assert!(profile::locks::LOCKABLE.contains(k), "{k}");
                }
            }
        }
    }

    #[test]
    fn network_modes_and_slirp_options() {
        let n = network("slirp").unwrap();
        assert_eq!(
            (n.mode, n.allow_host_loopback, n.mtu),
            (NetworkMode::Slirp, None, None)
        );
        let n = network("slirp4netns:allow_host_loopback=true,mtu=1500").unwrap();
        assert_eq!(
            (n.mode, n.allow_host_loopback, n.mtu),
            (NetworkMode::Slirp, Some(true), Some(1500))
        );
        let n = network("slirp:allow_host_loopback=false").unwrap();
        assert_eq!(n.allow_host_loopback, Some(false));
        assert_eq!(network("none").unwrap().mode, NetworkMode::None);
        for bad in [
            "bridge",
            "none:mtu=1500",
            "slirp:mtu=big",
            "slirp:allow_host_loopback=yes",
            "slirp:port_handler=rootlesskit",
        ] {
            let e = network(bad).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains(bad)),
                "{bad}: {e:?}"
            );
        }
    }
}
