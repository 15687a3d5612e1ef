//! The launcher: executes a [`SandboxSpec`], reading nothing else to
//! decide (the spec is final: src/run resolved it).
//!
//! 0. Before: [`super::etc_files::write`] writes the container's hosts,
//!    hostname and resolv.conf, and [`super::network::bind_published`]
//!    binds the `-p` ports (both from the spec).
//! 1. Fork a map helper, then `unshare(CLONE_NEWUSER | CLONE_NEWNS)`; the
//!    helper, still outside, writes our uid/gid maps (`newuidmap` with a
//!    subordinate range, or one id each). hutch is now root of its user
//!    namespace, with a private mount namespace.
//! 2. Mount the overlay (image layers + the container's upper dir) and
//!    serve it from threads of this process.
//! 3. Fork the relay → init → command chain (child.rs), which builds the
//!    container's view and runs the command.
//! 4. Forward signals (and with `-t` the terminal) until the relay exits,
//!    then unmount and return the command's exit status.
//!
//! If hutch is killed, the kernel aborts the FUSE connection, the relay
//! and init die with their parent (PDEATHSIG), and the PID namespace takes
//! every container process with it: nothing is left behind.

use super::child::{self, ChildPlan, CommandPlan, FORWARDED};
use super::namespaces::{JoinInfo, JoinListener, JoinServer, Namespaces};
use super::pty;
use super::security::Security;
use super::spec::SandboxSpec;
use super::stdio;
use crate::overlay::{OverlayConfig, mount_overlay};
use crate::profile::NetworkMode;
use crate::sys::{self, Forked, SigSet};
use anyhow::{Context, Result, bail};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

fn cstrings(v: &[String], what: &str) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes()).with_context(|| format!("{what} {s:?} contains a NUL byte"))
        })
        .collect()
}

fn read_all(fd: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = rustix::io::read(fd, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Enter a new user + mount namespace, with maps written by a helper
/// process that stays outside; with `--network container:NAME`, that
/// container's user namespace and a new mount namespace, returning its
/// network namespace for the relay to enter.
fn enter_namespaces(spec: &SandboxSpec) -> Result<Option<OwnedFd>> {
    let n = crate::overlay::thread_count().unwrap_or(1);
    if n > 1 {
        bail!(
            "internal error: the launcher must be single-threaded before unsharing (it runs {n} threads)"
        );
    }
    if let Some(join) = &spec.net.join {
        return join_network_owner(join).map(Some);
    }
    super::idmap::unshare_mapped(&spec.id_maps)?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::DOWNSTREAM
            | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(std::io::Error::from)
    .context("making hutch's mounts private")?;
    Ok(None)
}

/// `--network container:NAME`: enter that container's user namespace
/// (which owns its network namespace; the maps are its, checked equal to
/// ours when the run was planned) and a new mount namespace of our own.
fn join_network_owner(join: &super::spec::NetJoin) -> Result<OwnedFd> {
    let name = &join.container;
    let (mut ns, _) = super::namespaces::request(&join.dir).map_err(|e| {
        anyhow::anyhow!("joining the network of container {name}: {e}; is it running? (`hutch ps`)")
    })?;
    let net = ns.take_network().with_context(|| {
        format!("container {name} has no network namespace of its own to share")
    })?;
    ns.enter_user()
        .map_err(std::io::Error::from)
        .with_context(|| format!("joining the user namespace of container {name}"))?;
    sys::unshare(rustix::thread::UnshareFlags::NEWNS)
        .map_err(std::io::Error::from)
        .context("creating a mount namespace")?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::DOWNSTREAM
            | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(std::io::Error::from)
    .context("making hutch's mounts private")?;
    Ok(net)
}

/// How a detached container is connected: the descriptors for the
/// command's 0, 1 and 2 (None: its pty's, with -t), what to call with
/// its pty, and what to call once its command runs or could not be run.
pub struct Detached<'a> {
    pub stdio: [Option<OwnedFd>; 3],
    /// With -t: given the controller side of the container's pty (before
    /// `started`), which is then not relayed to hutch's own stdio.
    pub terminal: Option<Box<dyn FnOnce(OwnedFd) + 'a>>,
    /// Called once the command has called execve, or has failed to (not
    /// called when the container failed before its command: `run`
    /// returns that error).
    pub started: Box<dyn FnOnce(Started) + 'a>,
}

/// What became of a detached container's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// It runs (execve succeeded).
    Running,
    /// It could not be run: 127 (not found) or 126 (not executable), and
    /// the message it printed.
    NotRun { code: i32, message: String },
}

impl Started {
    /// From what the command wrote on its status pipe (`CODE message`, see
    /// [`CommandPlan::exec_error_fd`]); nothing: it ran.
    pub(super) fn from_status(said: &str) -> Started {
        match said.split_once(' ') {
            Some((n, text)) => match n.parse::<i32>() {
                Ok(code) => Started::NotRun {
                    code,
                    message: text.trim().to_string(),
                },
                Err(_) => Started::Running,
            },
            None => Started::Running,
        }
    }
}

/// Run the container described by `spec`; returns the command's exit
/// status (128+N for a signal; 126/127 when it cannot be run). The spec's
/// `rootfs.etc` holds the generated hosts, hostname and resolv.conf
/// ([`super::etc_files::write`]); `listeners` the host side of `-p`, bound
/// by [`super::network::bind_published`] (None: nothing published).
/// `cgroup_warning` shows the warning that the profile's cgroup limits are
/// not applied (the caller decides how often). `detached`: the command's
/// stdio (or, with -t, the hook given its pty) and the hook told when it
/// runs, for a container served by its keeper (`run -d`, `start`); None:
/// hutch's own stdio and terminal. `join`: the socket on which the
/// container's namespaces are served to `hutch exec` while it runs
/// (namespaces.rs); None: nobody may join.
pub fn run(
    spec: &SandboxSpec,
    listeners: Option<crate::net::Listeners>,
    cgroup_warning: &dyn Fn(&str),
    detached: Option<Detached<'_>>,
    join: Option<JoinListener>,
) -> Result<i32> {
    let (detached_stdio, terminal_hook, started) = match detached {
        Some(d) => (Some(d.stdio), d.terminal, Some(d.started)),
        None => (None, None, None),
    };
    // Whatever the container does to hutch's terminal, its settings are
    // back as they were when this returns.
    let _terminal = stdio::TerminalGuard::save();
    let own_netns = match spec.network {
        NetworkMode::None => true,
        NetworkMode::Host => false,
        NetworkMode::Slirp => true,
    };
    // With slirp: init sends the TAP fd of eth0 over this socket pair.
    let net_pair = if spec.network == NetworkMode::Slirp && spec.net.join.is_none() {
        Some(fd_passing_pair("network")?)
    } else {
        None
    };
    let net_config = net_pair.as_ref().map(|_| super::network::config(spec));
    let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .context("creating a pipe")?;
    // Detached: the command says on this pipe whether it could be run; it
    // reaches end-of-file at its execve (close-on-exec; init and the relay
    // close every descriptor once they have forked).
    let status_pipe = match started {
        Some(_) => Some(
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(std::io::Error::from)
                .context("creating a pipe")?,
        ),
        None => None,
    };
    // The overlay and the network hold host fds for the container's open
    // files and connections: lift hutch's own soft limit first (the
    // container gets the old one back, see rlimits.rs).
    super::rlimits::raise_own_nofile();
    // cgroup v2 limits, created while we are still outside the user
    // namespace; the relay moves itself in before it unshares its cgroup
    // namespace. Without a delegated cgroup the limits are replaced by
    // rlimits where one exists, with a warning (see rlimits.rs).
    let limits = super::cgroup::CgroupLimits {
        memory: spec.limits.memory,
        pids: spec.limits.pids,
        cpus: spec.limits.cpus,
    };
    let mut fallback = super::rlimits::CgroupFallback::default();
    let cgroup = match super::cgroup::create(
        &format!("hutch-{}", spec.id.get(..12).unwrap_or(&spec.id)),
        &limits,
    ) {
        Ok(c) => c,
        Err(e) => {
            fallback = super::rlimits::cgroup_fallback(
                limits.memory,
                limits.pids,
                limits.cpus,
                spec.limits.nproc,
            );
            cgroup_warning(&format!(
                "hutch: warning: memory/pids/cpu limits not applied: {e:#}{}",
                fallback.describe()
            ));
            None
        }
    };
    let security = Security::prepare(spec, &fallback)?;
    let cgroup_procs = match &cgroup {
        Some(c) => Some(
            CString::new(c.path().join("cgroup.procs").as_os_str().as_encoded_bytes())
                .context("cgroup path")?,
        ),
        None => None,
    };
    tracing::debug!("launch: prepared");
    let joined_net = enter_namespaces(spec)?;
    tracing::debug!("launch: in the user namespace");

    // Signals to forward are blocked in every thread (the FUSE threads
    // inherit the mask) and taken by one thread with sigwait.
    let forwarded = SigSet::of(FORWARDED);
    sys::block(&forwarded);

    let mut cfg = OverlayConfig::new(
        spec.rootfs.lowers.clone(),
        spec.rootfs.upper.clone(),
        spec.rootfs.work.clone(),
    );
    cfg.threads = None;
    let mounted = mount_overlay(cfg, &spec.rootfs.mountpoint)
        .context("mounting the container's root filesystem")?;
    tracing::debug!("launch: overlay mounted");

    // With -t: init sends the controller side of the container's pty over
    // this socket pair once it has opened it in the container's devpts.
    let console_pair = if spec.process.terminal {
        Some(fd_passing_pair("terminal")?)
    } else {
        None
    };
    // Without -t, a profile that does not share the terminal gets pipes
    // (a detached container has no terminal to share).
    let mut relayed = if detached_stdio.is_some() {
        None
    } else if !spec.process.terminal && !spec.security.share_terminal {
        Some(stdio::relay(spec.process.stdin)?)
    } else {
        None
    };
    // When others may join the container: the relay sends its namespaces
    // over this socket pair.
    let ns_pair = if join.is_some() {
        Some(fd_passing_pair("namespaces")?)
    } else {
        None
    };
    let plan = ChildPlan {
        spec,
        cmd: CommandPlan {
            process: &spec.process,
            err_fd: err_w.as_raw_fd(),
            stdio: match detached_stdio {
                Some(fds) => fds,
                None => relayed
                    .as_mut()
                    .map(|r| std::mem::take(&mut r.child))
                    .unwrap_or_default(),
            },
            argv: cstrings(&spec.process.args, "argument")?,
            envp: cstrings(&spec.process.env, "environment variable")?,
            path: spec.process.search_path(),
            security,
            exec_error_fd: status_pipe.as_ref().map(|(_, w)| w.as_raw_fd()),
        },
        root: spec.rootfs.mountpoint.clone(),
        etc_dir: spec.rootfs.etc.clone(),
        own_netns,
        console_sock: console_pair
            .as_ref()
            .map(|(_, child_end)| child_end.try_clone())
            .transpose()
            .context("duplicating the terminal socket")?,
        window: pty::window_size(),
        launcher_pid: rustix::process::getpid().as_raw_nonzero().get(),
        cgroup_procs,
        net_sock: net_pair
            .as_ref()
            .map(|(_, child_end)| child_end.try_clone())
            .transpose()
            .context("duplicating the network socket")?,
        join_net: joined_net,
        ns_sock: ns_pair
            .as_ref()
            .map(|(_, child_end)| child_end.try_clone())
            .transpose()
            .context("duplicating the namespaces socket")?,
    };
    let relay = match sys::fork()
        .map_err(std::io::Error::from)
        .context("starting the container")?
    {
        Forked::Child => child::relay(&plan),
        Forked::Parent(p) => p,
    };
    drop(plan);
    drop(err_w);
    let status_r = status_pipe.map(|(r, _w)| r);
    let net_parent = net_pair.map(|(parent_end, _child_end)| parent_end);
    let console_parent = console_pair.map(|(parent_end, _child_end)| parent_end);
    let resize_target = pty::forward_signals(relay, forwarded)?;
    // The network starts when init has made eth0 (frames sent before wait
    // in the TAP queue); no fd means the container failed before that.
    let network = match (net_parent, net_config) {
        (Some(sock), Some(cfg)) => match super::fd_passing::recv_fd(sock.as_fd()) {
            Ok(Some(tap)) => {
                if let Err(e) = super::tap::set_persist(tap.as_fd()) {
                    tracing::debug!("TUNSETPERSIST: {e}");
                }
                let listeners = match listeners {
                    Some(l) => Ok(l),
                    None => crate::net::Listeners::bind(&[]),
                };
                let started = listeners.and_then(|l| super::network::start(tap, cfg, l));
                if started.is_err() {
                    // No network, no container: stop it before it runs on.
                    sys::kill(relay, libc::SIGKILL);
                }
                Some(started)
            }
            _ => None,
        },
        _ => None,
    };
    // Init sends the pty's controller when the container's /dev is built
    // (after eth0); no fd means the container failed before that.
    let attached = match console_parent {
        Some(sock) => match super::fd_passing::recv_fd(sock.as_fd()) {
            Ok(Some(controller)) => match terminal_hook {
                // The keeper takes the pty (attach.rs): hutch's own
                // terminal is not involved.
                Some(hook) => {
                    hook(controller);
                    None
                }
                None => Some(pty::attach(controller, &resize_target)?),
            },
            _ => None,
        },
        None => None,
    };
    // Init sends its namespaces once the container's root is set up;
    // nothing (it failed before) means there is nothing to join.
    let join_server = match (ns_pair, join) {
        (Some((parent_end, child_end)), Some(listener)) => {
            drop(child_end);
            match Namespaces::receive(parent_end.as_fd()) {
                Ok(Some(ns)) => {
                    let info = JoinInfo {
                        cgroup: cgroup.as_ref().map(|c| c.path().to_path_buf()),
                        fallback,
                    };
                    match JoinServer::start(listener, ns, &info) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            tracing::warn!("`hutch exec` cannot join this container: {e:#}");
                            None
                        }
                    }
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!("`hutch exec` cannot join this container: {e:#}");
                    None
                }
            }
        }
        _ => None,
    };
    tracing::debug!("launch: container started");
    // What init or the relay reported before the command (nothing when
    // the command was forked); kept for the report at the end.
    let _ = rustix::fs::fcntl_setfl(&err_r, rustix::fs::OFlags::NONBLOCK);
    let mut early = String::new();
    if let (Some(hook), Some(status_r)) = (started, status_r) {
        // End-of-file once the command has run execve (or every process
        // that could have has exited).
        let said = read_all(&status_r);
        early = read_all(&err_r);
        if early.is_empty() {
            hook(Started::from_status(&said));
        }
    }
    let status = sys::wait(relay, false)
        .map_err(std::io::Error::from)
        .context("waiting for the container")?
        .map(|(_, s)| s)
        .unwrap_or(0);
    // No one joins a container that has ended.
    drop(join_server);
    if let Some(a) = attached {
        a.finish();
    }
    if let Some(r) = relayed {
        r.finish();
    }
    let msg = early + &read_all(&err_r);
    tracing::debug!("launch: container exited");
    let network_result = network.map(|n| n.and_then(|h| h.stop()));
    let unmounted = mounted.unmount();
    tracing::debug!("launch: overlay unmounted");
    if !msg.is_empty() {
        bail!("starting the container: {}", msg.trim());
    }
    if let Some(Err(e)) = network_result {
        return Err(e.context("starting the container's network"));
    }
    unmounted?;
    drop(cgroup);
    Ok(sys::exit_code(status))
}

/// A close-on-exec SEQPACKET socket pair over which the container's init
/// passes one fd to hutch (`what`: the network's TAP, the terminal's pty).
fn fd_passing_pair(what: &str) -> Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("creating a socket pair for the container's {what}"))
}
