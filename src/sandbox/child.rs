//! The processes below hutch, each a forked child that never returns:
//!
//! ```text
//! hutch (user+mount ns: serves the overlay, relays signals and the pty)
//!  └─ relay   unshares mount, UTS, IPC, PID, cgroup (and network) ns;
//!     │       forwards signals to init, exits with init's status
//!     └─ init PID 1: builds the filesystem view (rootfs.rs), pivot_root,
//!        │    becomes not dumpable, zeroes its environment block, forks
//!        │    the command, closes every descriptor; then only reaps
//!        │    zombies, forwards signals to the command and exits with its
//!        │    status (which ends every other process)
//!        └─ command: session, tty, cwd, descriptors beyond 0-2 (and
//!                    --preserve-fds) marked close-on-exec, user, limits,
//!                    capabilities, no_new_privs, Landlock, seccomp, execve
//! ```
//!
//! Children of a multi-threaded parent (hutch serves FUSE from threads)
//! use only syscalls, glibc malloc and raw writes: no std stdio locks, no
//! tracing. A failure before the command starts is written to the error
//! pipe (the launcher prints it and exits 125); a command that cannot be
//! found or executed exits 127 or 126 with a message, as Docker does.

use super::rootfs;
use super::security::Security;
use super::spec::{ProcessSpec, SandboxSpec};
use crate::error::{EXIT_FAILED, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND};
use crate::sys::{self, Forked, SigSet};
use rustix::io::Errno;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What the command process needs (for `run` and for `exec`), prepared
/// before forking.
pub struct CommandPlan<'a> {
    /// args, env, cwd, user, stdin, preserve_fds.
    pub process: &'a ProcessSpec,
    /// Write end of the error pipe (close-on-exec).
    pub err_fd: RawFd,
    /// Pipes for the command's 0, 1, 2 when it does not share hutch's
    /// terminal (stdio.rs); None leaves that descriptor as hutch has it.
    pub stdio: [Option<OwnedFd>; 3],
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// The container's PATH, for looking up a bare command name.
    pub path: Vec<String>,
    pub security: Security,
    /// Where a command that cannot be run (126, 127) also reports its
    /// status and message, `CODE message` (`exec --detach`, whose stderr
    /// is /dev/null; a detached run, whose `run -d` exits with that
    /// status); None: only on stderr.
    pub exec_error_fd: Option<RawFd>,
}

/// Everything the children need, prepared by the launcher before forking.
pub struct ChildPlan<'a> {
    pub spec: &'a SandboxSpec,
    pub cmd: CommandPlan<'a>,
    /// The overlay mount point (hutch's view).
    pub root: PathBuf,
    /// Generated hosts, hostname, resolv.conf.
    pub etc_dir: PathBuf,
    /// The container gets its own network namespace.
    pub own_netns: bool,
    /// With `-t`: the socket on which init sends the controller side of
    /// the container's pty (see pty.rs), and the window size to give it.
    pub console_sock: Option<OwnedFd>,
    pub window: rustix::termios::Winsize,
    /// pid of hutch (the relay dies if it is gone).
    pub launcher_pid: i32,
    /// `cgroup.procs` of the container's cgroup, when it has limits.
    pub cgroup_procs: Option<CString>,
    /// With `--network slirp`: the socket on which init sends the TAP fd.
    pub net_sock: Option<OwnedFd>,
    /// `--network container:NAME`: that container's network namespace,
    /// which the relay enters instead of making one.
    pub join_net: Option<OwnedFd>,
    /// When others may join the container (namespaces.rs): the socket on
    /// which init sends its namespaces once the container's root is set up.
    pub ns_sock: Option<OwnedFd>,
}

/// Signals hutch and the relay forward to the container.
pub const FORWARDED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCONT,
    libc::SIGWINCH,
];

fn fail(plan: &ChildPlan, msg: &str) -> ! {
    fail_on(plan.cmd.err_fd, msg)
}

/// Report `msg` on the error pipe `err_fd` and exit 125.
pub(super) fn fail_on(err_fd: RawFd, msg: &str) -> ! {
    sys::write_fd(err_fd, msg.as_bytes());
    sys::exit_now(EXIT_FAILED)
}

/// SIGKILL when the parent dies; `expected_parent` (if the parent is in
/// our PID namespace) guards against it having died already.
fn die_with_parent(plan: &ChildPlan, expected_parent: Option<i32>) {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let parent = rustix::process::getppid().map(|p| p.as_raw_nonzero().get());
    if let Some(expected) = expected_parent
        && parent != Some(expected)
    {
        fail(plan, "hutch exited while the container was starting");
    }
}

/// The relay: new namespaces, then init below it.
pub fn relay(plan: &ChildPlan) -> ! {
    die_with_parent(plan, Some(plan.launcher_pid));
    let _ = sys::set_not_dumpable();
    if let Some(procs) = &plan.cgroup_procs
        && let Err(e) = std::fs::write(std::ffi::OsStr::from_bytes(procs.as_bytes()), b"0\n")
    {
        fail(plan, &format!("entering the container's cgroup: {e}"));
    }
    let mut flags = rustix::thread::UnshareFlags::NEWNS
        | rustix::thread::UnshareFlags::NEWUTS
        | rustix::thread::UnshareFlags::NEWIPC
        | rustix::thread::UnshareFlags::NEWPID
        | rustix::thread::UnshareFlags::NEWCGROUP;
    if plan.own_netns && plan.join_net.is_none() {
        flags |= rustix::thread::UnshareFlags::NEWNET;
    }
    if let Err(e) = sys::unshare(flags) {
        fail(
            plan,
            &format!(
                "creating the container's namespaces: {}",
                std::io::Error::from(e)
            ),
        );
    }
    if let Some(net) = &plan.join_net
        && let Err(e) = rustix::thread::move_into_link_name_space(
            net.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
    {
        fail(
            plan,
            &format!(
                "joining the network namespace of container {}: {}",
                plan.spec
                    .net
                    .join
                    .as_ref()
                    .map(|j| j.container.as_str())
                    .unwrap_or("?"),
                std::io::Error::from(e)
            ),
        );
    }
    let mut set = FORWARDED.to_vec();
    set.push(libc::SIGCHLD);
    let set = SigSet::of(&set);
    sys::block(&set);
    let init = match sys::fork() {
        Ok(Forked::Child) => init(plan),
        Ok(Forked::Parent(p)) => p,
        Err(e) => fail(
            plan,
            &format!("starting the container's init: {}", std::io::Error::from(e)),
        ),
    };
    // The relay only waits and forwards signals from now on: it keeps no
    // descriptor (the terminal, the error pipe, the caller's).
    let _ = sys::close_fds_from(0, false);
    loop {
        let sig = sys::wait_signal(&set);
        if sig == libc::SIGCHLD {
            if let Ok(Some((_, status))) = sys::wait(init, true) {
                sys::exit_now(sys::exit_code(status));
            }
        } else {
            sys::kill(init, sig);
        }
    }
}

/// PID 1 of the container.
fn init(plan: &ChildPlan) -> ! {
    // The relay is outside our PID namespace: getppid() is 0 here.
    die_with_parent(plan, None);
    sys::set_process_title("hutch-init");
    let all = SigSet::full();
    sys::block(&all);
    // eth0 is made before pivot_root, while /dev/net/tun is the host's.
    if let Some(sock) = &plan.net_sock {
        match super::tap::create(plan.spec.net.mtu) {
            Ok(tap) => {
                if let Err(e) = super::fd_passing::send_fd(sock.as_fd(), tap.as_fd()) {
                    fail(
                        plan,
                        &format!("handing eth0 to hutch: {}", std::io::Error::from(e)),
                    );
                }
            }
            Err(msg) => fail(plan, &msg),
        }
        sys::close_inherited(sock.as_raw_fd());
    }
    let console = match rootfs::setup(plan.spec, &plan.root, &plan.etc_dir, plan.own_netns) {
        Ok(c) => c,
        Err(msg) => fail(plan, &msg),
    };
    // With -t: the controller side of the container's pty goes to hutch;
    // the terminal side stays for the command.
    let tty = console.map(|c| {
        let _ = rustix::termios::tcsetwinsize(&c.controller, plan.window);
        if let Some(sock) = &plan.console_sock
            && let Err(e) = super::fd_passing::send_fd(sock.as_fd(), c.controller.as_fd())
        {
            fail(
                plan,
                &format!(
                    "handing the container's terminal to hutch: {}",
                    std::io::Error::from(e)
                ),
            );
        }
        c.terminal
    });
    if let Some(sock) = &plan.console_sock {
        sys::close_inherited(sock.as_raw_fd());
    }
    // Its namespaces, for `hutch exec`, now that the root is the
    // container's (a process joining earlier would see hutch's mounts)
    // and before anything of the image runs. If this fails the launcher
    // hears nothing and `hutch exec` says the container cannot be joined.
    if let Some(sock) = &plan.ns_sock {
        let _ = super::namespaces::send_own(sock.as_fd(), plan.own_netns);
        sys::close_inherited(sock.as_raw_fd());
    }
    // PID 1 is in the container's reach (its /proc/1, signals): from here
    // on it holds nothing of the host. Not dumpable, so its /proc files
    // and memory are closed to every process of the container, whatever
    // capabilities a profile grants; its environment block (hutch's
    // caller's) zeroed; and after the fork below, no descriptor at all.
    if let Err(e) = sys::set_not_dumpable() {
        fail(
            plan,
            &format!(
                "making the container's init not dumpable: {}",
                std::io::Error::from(e)
            ),
        );
    }
    sys::scrub_environment();
    if plan.cmd.process.pause {
        pause(plan);
    }
    let cmd = match sys::fork() {
        Ok(Forked::Child) => command(&plan.cmd, tty.as_ref()),
        Ok(Forked::Parent(p)) => p,
        Err(e) => fail(
            plan,
            &format!("starting the command: {}", std::io::Error::from(e)),
        ),
    };
    // Every descriptor goes: the overlay's and store's, the error pipe, the
    // pty's terminal side (so the launcher sees EOF when the command's
    // side closes),
    // and whatever hutch's caller passed. The command has its own copies.
    if let Err(e) = sys::close_fds_from(0, false) {
        sys::kill(cmd, libc::SIGKILL);
        fail(
            plan,
            &format!(
                "closing the init's descriptors: {}",
                std::io::Error::from(e)
            ),
        );
    }
    loop {
        let sig = sys::wait_signal(&all);
        if sig == libc::SIGCHLD {
            while let Ok(Some((pid, status))) = sys::wait(-1, true) {
                if pid == cmd {
                    sys::exit_now(sys::exit_code(status));
                }
            }
        } else {
            sys::kill(cmd, sig);
        }
    }
}

/// Init with no command (`ProcessSpec::pause`): it closes every
/// descriptor (so a detached launcher hears that it started), then reaps
/// what `exec` starts until it is told to stop, and exits 0.
fn pause(plan: &ChildPlan) -> ! {
    if let Err(e) = sys::close_fds_from(0, false) {
        fail(
            plan,
            &format!(
                "closing the init's descriptors: {}",
                std::io::Error::from(e)
            ),
        );
    }
    let all = SigSet::full();
    loop {
        match sys::wait_signal(&all) {
            libc::SIGCHLD => while let Ok(Some(_)) = sys::wait(-1, true) {},
            libc::SIGTERM | libc::SIGINT | libc::SIGHUP | libc::SIGQUIT => sys::exit_now(0),
            _ => {}
        }
    }
}

/// The container's command: final process setup, then execve.
pub(super) fn command(plan: &CommandPlan, tty: Option<&OwnedFd>) -> ! {
    sys::reset_signal_dispositions();
    sys::set_mask(&SigSet::empty());
    let _ = rustix::process::setsid();
    if let Some(tty) = tty {
        if let Err(e) = rustix::process::ioctl_tiocsctty(tty) {
            fail_on(
                plan.err_fd,
                &format!(
                    "making the pty the controlling terminal: {}",
                    std::io::Error::from(e)
                ),
            );
        }
        for fd in 0..3 {
            let _ = sys::dup_onto(tty.as_fd(), fd);
        }
    } else if !plan.process.stdin {
        match rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDONLY,
            rustix::fs::Mode::empty(),
        ) {
            Ok(null) => {
                let _ = sys::dup_onto(null.as_fd(), 0);
            }
            Err(e) => fail_on(
                plan.err_fd,
                &format!("opening /dev/null: {}", std::io::Error::from(e)),
            ),
        }
    }
    for (target, pipe) in plan.stdio.iter().enumerate() {
        if let Some(pipe) = pipe {
            let _ = sys::dup_onto(pipe.as_fd(), target as i32);
        }
    }
    let cwd = &plan.process.cwd;
    if let Err(msg) = rootfs::ensure_dir(cwd) {
        fail_on(plan.err_fd, &msg);
    }
    if let Err(e) = rustix::process::chdir(cwd.as_str()) {
        fail_on(
            plan.err_fd,
            &format!(
                "entering the working directory {cwd}: {}",
                std::io::Error::from(e)
            ),
        );
    }
    // Only 0, 1, 2 and the descriptors passed on purpose (--preserve-fds)
    // reach the command: everything else hutch or its caller held is closed
    // at execve (close-on-exec, so the error pipe works until then).
    let keep = plan.process.preserve_fds;
    for fd in 3..3 + keep {
        if let Err(e) = sys::keep_on_exec(fd as i32) {
            fail_on(
                plan.err_fd,
                &format!("passing descriptor {fd}: {}", std::io::Error::from(e)),
            );
        }
    }
    if let Err(e) = sys::close_fds_from(3 + keep, true) {
        fail_on(
            plan.err_fd,
            &format!("closing inherited descriptors: {}", std::io::Error::from(e)),
        );
    }
    if let Err(msg) = plan.security.apply(&plan.process.user) {
        fail_on(plan.err_fd, &msg);
    }
    exec(plan)
}

/// execve the command, looking a bare name up in the container's PATH.
fn exec(plan: &CommandPlan) -> ! {
    let Some(arg0) = plan.argv.first() else {
        fail_on(
            plan.err_fd,
            "no command to run: the image has no Entrypoint or Cmd; give one after the image name",
        );
    };
    let name = arg0.to_string_lossy().into_owned();
    let candidates: Vec<String> = if name.contains('/') {
        vec![name.clone()]
    } else {
        plan.path
            .iter()
            .filter(|d| !d.is_empty())
            .map(|d| format!("{}/{name}", d.trim_end_matches('/')))
            .collect()
    };
    let mut worst: Option<Errno> = None;
    for c in &candidates {
        let Ok(path) = CString::new(c.as_bytes()) else {
            continue;
        };
        let e = sys::execve(&path, &plan.argv, &plan.envp);
        // Like execvp: remember that something was found but not runnable.
        if e != Errno::NOENT && e != Errno::NOTDIR {
            worst = Some(e);
        }
    }
    let (code, msg) = match worst {
        None => {
            let where_ = if name.contains('/') {
                String::new()
            } else {
                format!(" in PATH {}", plan.path.join(":"))
            };
            (
                EXIT_NOT_FOUND,
                format!("hutch: {name}: command not found{where_}\n"),
            )
        }
        Some(e) => (
            EXIT_NOT_EXECUTABLE,
            format!(
                "hutch: {name}: cannot execute: {}\n",
                std::io::Error::from(e)
            ),
        ),
    };
    sys::write_stderr(&msg);
    if let Some(fd) = plan.exec_error_fd {
        sys::write_fd(fd, format!("{code} {msg}").as_bytes());
    }
    sys::exit_now(code)
}
