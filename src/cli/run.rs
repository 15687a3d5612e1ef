//! `hutch run`: its flags, turned into a [`RunRequest`] for src/run
//! (which resolves the spec and runs the container; see src/sandbox for
//! the launcher).

use crate::cli::flags::TlsVerify;
use crate::profile;
use crate::run::{NetworkArg, PullOptions, PullPolicy, RunRequest};
use crate::store::Store;
use crate::store::containers::RestartPolicy;
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
  hutch run --profile untrusted -v $PWD/dl:/work node npm install
  hutch run -v pgdata:/var/lib/postgresql/data postgres"
)]
pub struct RunArgs {
    /// Print help (-h is --hostname, as in Docker)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Run in the background: print the container's ID once the command
    /// runs; a keeper process serves it and keeps its output (`hutch logs`)
    #[arg(short, long, conflicts_with = "dry_run")]
    detach: bool,
    /// Start the command again when it exits (needs -d; not with --rm):
    /// no, on-failure[:MAX_RETRIES] (status not 0), always, unless-stopped
    /// (as always); never after `hutch stop` or `kill`
    #[arg(long, value_name = "POLICY", default_value = "no")]
    restart: RestartPolicy,
    /// Signal `hutch stop` sends first (default: the image's StopSignal,
    /// else TERM)
    #[arg(long, value_name = "SIGNAL")]
    stop_signal: Option<String>,
    /// Seconds `hutch stop` waits before SIGKILL when not given -t (default 10)
    #[arg(long, value_name = "SECONDS")]
    stop_timeout: Option<u64>,
    /// Name the container (default: a generated name)
    #[arg(long)]
    name: Option<String>,
    /// Keep stdin open (without it, the command reads /dev/null; with -d,
    /// `hutch attach` feeds it)
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a pseudo-terminal (hutch's stdin must be a
    /// terminal; with -d, `hutch attach` relays one)
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
    /// Bind-mount a host path (HOST:CONTAINER[:ro|rw], HOST absolute) or a
    /// named volume (NAME:CONTAINER[:ro|rw], created on first use)
    #[arg(short, long = "volume", value_name = "HOST|NAME:CTR[:ro]")]
    volume: Vec<String>,
    /// Mount as Docker writes it: type=volume,source=NAME,target=PATH[,readonly],
    /// type=bind,source=HOST,target=PATH[,readonly] or
    /// type=tmpfs,target=PATH[,tmpfs-size=N][,tmpfs-mode=OCTAL]
    #[arg(long, value_name = "type=TYPE,...")]
    mount: Vec<String>,
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
    /// Add a line to the container's /etc/hosts (NAME:IP)
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,
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

pub fn run(a: RunArgs, store: Result<Store>) -> Result<i32> {
    // -d -t: the terminal is the one `hutch attach` brings.
    crate::run::check_tty_stdin(a.tty && !a.detach, a.dry_run)?;
    if a.restart != RestartPolicy::No {
        if a.rm {
            bail!(
                "--restart {} conflicts with --rm: a container that is removed when it exits \
                 cannot be started again; drop one of them",
                a.restart
            );
        }
        if !a.detach && !a.dry_run {
            bail!(
                "--restart {} needs -d: a detached container's keeper starts it again, a \
                 foreground run ends with its command",
                a.restart
            );
        }
    }
    let store = store?;
    let profile = profile::load(&a.profile)?;
    let mut command = a.command;
    if command.first().map(String::as_str) == Some("--") {
        command.remove(0);
    }
    let net = a.network.as_deref().map(NetworkArg::parse).transpose()?;
    if let Some(s) = &a.stop_signal {
        crate::run::stop_signal(s).context("--stop-signal")?;
    }
    crate::sandbox::inherited::check_preserved(a.preserve_fds)?;
    let req = RunRequest {
        image: a.image,
        command,
        name: a.name,
        remove: a.rm,
        detach: a.detach,
        interactive: a.interactive || a.tty,
        tty: a.tty,
        env: a.env,
        env_files: a.env_file,
        workdir: a.workdir,
        user: a.user,
        entrypoint: a.entrypoint,
        volumes: a.volume,
        mounts: a.mount,
        tmpfs: a.tmpfs,
        read_only: a.read_only,
        read_only_tmpfs: a.read_only_tmpfs,
        hostname: a.hostname,
        network: net.as_ref().map(|n| n.mode),
        network_container: net.as_ref().and_then(|n| n.container.clone()),
        allow_host_loopback: net.as_ref().and_then(|n| n.allow_host_loopback),
        publish: a.publish,
        mtu: a.mtu.or(net.as_ref().and_then(|n| n.mtu)),
        preserve_fds: a.preserve_fds,
        restart: a.restart,
        stop_signal: a.stop_signal,
        stop_timeout: a.stop_timeout,
        add_hosts: a.add_host,
        pause: false,
        from_manifest: false,
    };
    let pull = PullOptions {
        policy: a.pull,
        tls_verify: a.tls.tls_verify,
    };
    if a.dry_run {
        super::output::print_json(&crate::run::dry_run(&store, &req, &profile, pull)?)?;
        return Ok(0);
    }
    if a.detach {
        let id = crate::run::run_detached(&store, &req, &profile, pull)?;
        super::output::outln!("{id}");
        return Ok(0);
    }
    crate::run::run(&store, &req, &profile, pull)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a `hutch run` flag does to the profile's confinement (see
    /// src/profile/locks.rs). Every flag of [`RunArgs`] is listed in
    /// [`FLAG_EFFECTS`] (`every_flag_is_classified` checks it): a new flag
    /// must be classified here, and one that can weaken must be checked in
    /// `run::locks::weakenings` (src/run/locks.rs).
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
        // type=bind and type=volume as -v; type=tmpfs as --tmpfs.
        ("mount", FlagEffect::Weakens(&["filesystem.mounts"])),
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
        // A name the container resolves itself; it reaches nothing more.
        ("add_host", FlagEffect::Neutral),
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
        // When the same sandbox starts again, not what it may do.
        ("restart", FlagEffect::Neutral),
        // How `hutch stop` ends it, not what it may do.
        ("stop_signal", FlagEffect::Neutral),
        ("stop_timeout", FlagEffect::Neutral),
        // Where the output goes and who waits: the sandbox is the same.
        ("detach", FlagEffect::Neutral),
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
}
