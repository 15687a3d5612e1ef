//! `hutch exec`: run a command in a running container, with exactly the
//! confinement of its own command.
//!
//! ```text
//! hutch exec (stays outside: relays signals, the terminal, the status)
//!  └─ joiner  enters the container's cgroup and namespaces (namespaces.rs),
//!     │       opens the pty in the container's devpts with -t, forwards
//!     │       signals, exits with the command's status
//!     └─ command  in the container's PID namespace: the same steps as a
//!                 run's command (child.rs), with the same Security
//!                 (rlimits, capabilities, user, no_new_privs, Landlock,
//!                 seccomp) prepared from the container's spec
//! ```
//!
//! The joiner and the command before execve are not dumpable (as the
//! run's init is), so nothing in the container can read them while they
//! still hold hutch's state. The command's parent is outside the PID
//! namespace; when it ends before its children, they are the container
//! init's to reap, and everything goes when the container ends.

use super::child::{self, CommandPlan, FORWARDED};
use super::namespaces::{JoinInfo, Namespaces};
use super::pty;
use super::security::Security;
use super::spec::SandboxSpec;
use super::stdio;
use crate::error::EXIT_FAILED;
use crate::sys::{self, Forked, SigSet};
use anyhow::{Context, Result, bail};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// What the joiner needs, prepared before forking.
struct JoinPlan<'a> {
    cmd: CommandPlan<'a>,
    ns: Namespaces,
    /// `cgroup.procs` of the container's cgroup, if it has one.
    cgroup_procs: Option<CString>,
    /// With -t: where the joiner sends the pty's controller side.
    console_sock: Option<OwnedFd>,
    window: rustix::termios::Winsize,
    /// The uid that owns the pty's terminal side (the command's user).
    tty_owner: u32,
    /// pid of `hutch exec` (the joiner dies with it unless detached).
    parent_pid: i32,
    detach: bool,
}

fn pipe(what: &str) -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .with_context(|| format!("creating a pipe for {what}"))
}

fn cstrings(v: &[String], what: &str) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes()).with_context(|| format!("{what} {s:?} contains a NUL byte"))
        })
        .collect()
}

/// Read `fd` to its end (every writer closed).
fn read_to_end(fd: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Run `spec.process` in the container whose namespaces are `ns`; its exit
/// status (128+N for a signal, 126/127 when it cannot be run). `spec` is
/// the container's own spec with the process replaced (src/run/exec.rs);
/// `detach`: return once the command runs, its stdio /dev/null.
pub fn run(spec: &SandboxSpec, ns: Namespaces, info: &JoinInfo, detach: bool) -> Result<i32> {
    if detach && spec.process.terminal {
        bail!("--detach with -t: a detached command has no terminal to attach to; drop -t");
    }
    let _terminal = stdio::TerminalGuard::save();
    let security = Security::prepare(spec, &info.fallback)?;
    let (err_r, err_w) = pipe("errors")?;
    let (status_r, status_w) = pipe("the command's start")?;
    let console_pair = if spec.process.terminal {
        Some(
            rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::SEQPACKET,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )
            .map_err(std::io::Error::from)
            .context("creating a socket pair for the terminal")?,
        )
    } else {
        None
    };
    let mut relayed = if !detach && !spec.process.terminal && !spec.security.share_terminal {
        Some(stdio::relay(spec.process.stdin)?)
    } else {
        None
    };
    let stdio: [Option<OwnedFd>; 3] = if detach {
        let null = || -> Result<Option<OwnedFd>> {
            Ok(Some(
                std::fs::File::options()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .context("opening /dev/null")?
                    .into(),
            ))
        };
        [null()?, null()?, null()?]
    } else {
        relayed
            .as_mut()
            .map(|r| std::mem::take(&mut r.child))
            .unwrap_or_default()
    };
    let cgroup_procs = match &info.cgroup {
        Some(c) => Some(
            CString::new(c.join("cgroup.procs").as_os_str().as_encoded_bytes())
                .context("cgroup path")?,
        ),
        None => None,
    };
    let plan = JoinPlan {
        cmd: CommandPlan {
            process: &spec.process,
            err_fd: err_w.as_raw_fd(),
            stdio,
            argv: cstrings(&spec.process.args, "argument")?,
            envp: cstrings(&spec.process.env, "environment variable")?,
            path: spec.process.search_path(),
            security,
            exec_error_fd: Some(status_w.as_raw_fd()),
        },
        ns,
        cgroup_procs,
        console_sock: console_pair
            .as_ref()
            .map(|(_, child_end)| child_end.try_clone())
            .transpose()
            .context("duplicating the terminal socket")?,
        window: pty::window_size(),
        tty_owner: spec.process.user.uid,
        parent_pid: rustix::process::getpid().as_raw_nonzero().get(),
        detach,
    };
    let forwarded = SigSet::of(FORWARDED);
    sys::block(&forwarded);
    let joiner = match sys::fork()
        .map_err(std::io::Error::from)
        .context("starting the command")?
    {
        Forked::Child => join(&plan),
        Forked::Parent(p) => p,
    };
    drop(plan);
    drop(err_w);
    drop(status_w);
    let resize_target = pty::forward_signals(joiner, forwarded)?;
    let attached = match console_pair {
        Some((parent_end, child_end)) => {
            drop(child_end);
            match super::fd_passing::recv_fd(parent_end.as_fd()) {
                Ok(Some(controller)) => Some(pty::attach(controller, &resize_target)?),
                _ => None,
            }
        }
        None => None,
    };
    let status = sys::wait(joiner, false)
        .map_err(std::io::Error::from)
        .context("waiting for the command")?
        .map(|(_, s)| s)
        .unwrap_or(0);
    if let Some(a) = attached {
        a.finish();
    }
    if let Some(r) = relayed {
        r.finish();
    }
    // Every writer of the two pipes is gone once the command has called
    // execve or exited (detached: the joiner exits right after the fork).
    let msg = read_to_end(&err_r);
    if !msg.is_empty() {
        bail!("{}", msg.trim());
    }
    let code = sys::exit_code(status);
    if detach {
        // The command's status before it could run: `127 hutch: x: command
        // not found`; nothing when it runs.
        if let super::launch::Started::NotRun { code, message } =
            super::launch::Started::from_status(&read_to_end(&status_r))
        {
            eprintln!("{message}");
            return Ok(code);
        }
        if code != 0 {
            return Ok(EXIT_FAILED);
        }
        return Ok(0);
    }
    Ok(code)
}

/// The joiner (a child of `hutch exec`, single-threaded in the sense that
/// setns needs, since it is a fresh fork; only syscalls, glibc malloc and
/// raw writes, as `hutch exec` may have threads).
fn join(plan: &JoinPlan) -> ! {
    let err = plan.cmd.err_fd;
    if !plan.detach {
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
        let parent = rustix::process::getppid().map(|p| p.as_raw_nonzero().get());
        if parent != Some(plan.parent_pid) {
            child::fail_on(err, "hutch exited while the command was starting");
        }
    }
    if let Err(e) = sys::set_not_dumpable() {
        child::fail_on(
            err,
            &format!(
                "making hutch exec not dumpable: {}",
                std::io::Error::from(e)
            ),
        );
    }
    // Counted against the container's limits, as its own processes are.
    if let Some(procs) = &plan.cgroup_procs
        && let Err(e) = std::fs::write(std::ffi::OsStr::from_bytes(procs.as_bytes()), b"0\n")
    {
        child::fail_on(err, &format!("entering the container's cgroup: {e}"));
    }
    if let Err((what, e)) = plan.ns.enter() {
        child::fail_on(err, &format!("{what}: {}", std::io::Error::from(e)));
    }
    // Root and working directory are now the container's.
    let tty = match &plan.console_sock {
        Some(sock) => match super::rootfs::open_pty(plan.tty_owner) {
            Ok(c) => {
                let _ = rustix::termios::tcsetwinsize(&c.controller, plan.window);
                if let Err(e) = super::fd_passing::send_fd(sock.as_fd(), c.controller.as_fd()) {
                    child::fail_on(
                        err,
                        &format!(
                            "handing the command's terminal to hutch: {}",
                            std::io::Error::from(e)
                        ),
                    );
                }
                sys::close_inherited(sock.as_raw_fd());
                Some(c.terminal)
            }
            Err(msg) => child::fail_on(err, &msg),
        },
        None => None,
    };
    if plan.detach {
        // The command goes on alone, a child of the container's init: it
        // is forked by a process inside the PID namespace, which then
        // exits (an orphan goes to the init of its parent's namespace).
        match sys::fork() {
            Ok(Forked::Child) => match sys::fork() {
                Ok(Forked::Child) => child::command(&plan.cmd, tty.as_ref()),
                Ok(Forked::Parent(_)) => sys::exit_now(0),
                Err(e) => child::fail_on(
                    err,
                    &format!("starting the command: {}", std::io::Error::from(e)),
                ),
            },
            Ok(Forked::Parent(p)) => {
                let _ = sys::wait(p, false);
                sys::exit_now(0)
            }
            Err(e) => child::fail_on(
                err,
                &format!("starting the command: {}", std::io::Error::from(e)),
            ),
        }
    }
    let mut set = FORWARDED.to_vec();
    set.push(libc::SIGCHLD);
    let set = SigSet::of(&set);
    sys::block(&set);
    let cmd = match sys::fork() {
        Ok(Forked::Child) => child::command(&plan.cmd, tty.as_ref()),
        Ok(Forked::Parent(p)) => p,
        Err(e) => child::fail_on(
            err,
            &format!("starting the command: {}", std::io::Error::from(e)),
        ),
    };
    // Only waits and forwards signals from now on: it keeps no descriptor
    // (the error pipe, the terminal, the caller's).
    let _ = sys::close_fds_from(0, false);
    loop {
        let sig = sys::wait_signal(&set);
        if sig == libc::SIGCHLD {
            if let Ok(Some((_, status))) = sys::wait(cmd, true) {
                sys::exit_now(sys::exit_code(status));
            }
        } else {
            sys::kill(cmd, sig);
        }
    }
}
