//! Detached containers without a daemon: `hutch run -d` and `hutch
//! start` hand the container to a keeper, hutch itself re-executed as
//! `hutch __keep ID`, in its own session with no terminal. The keeper
//! takes the container's running lock and, in a child process per run,
//! binds its `-p` ports, serves its overlay and network
//! (sandbox::launch) and copies its stdout and stderr into `ctr.log`
//! (logs.rs); it records each exit, starts the command again as its
//! `--restart` policy says (after a back-off, never after `stop` or
//! `kill`) and ends with the container. Nothing else runs in the
//! background.
//!
//! The handshake: the keeper's stdout is a pipe to the `hutch run -d`
//! (or `start`) that started it. The first run writes `port
//! CONTAINER/PROTO HOST` for each port the kernel chose, then `ready`
//! once the command runs (`exit CODE MESSAGE` if the command could not
//! be run, 126 or 127; `error: ...` if the container could not be
//! started) and closes the pipe; the keeper's own stderr goes to `keeper.log` in the
//! container's directory.

use super::attach;
use super::logs::{LogWriter, Stream};
use crate::error::ExitWith;
use crate::sandbox::launch::{self, Detached, Started};
use crate::sandbox::{etc_files, network};
use crate::store::Store;
use crate::store::containers::{ContainerState, Status, now_rfc3339};
use crate::sys::{self, Forked, SigSet};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `hutch run -d` (and `start`), once the container and its spec.json
/// exist: start its keeper and wait until the command runs. Returns the ports the kernel
/// chose (`8080/tcp`, host address: to print) once the keeper says `ready`.
pub(crate) fn hand_over(
    store: &Store,
    state: &ContainerState,
    remove: bool,
    lock: crate::store::containers::RunningLock,
) -> Result<Vec<(String, String)>> {
    let dir = store.container_dir(&state.id);
    let keeper_log = std::fs::File::create(dir.join("keeper.log"))
        .with_context(|| format!("creating {}", dir.join("keeper.log").display()))?;
    let exe = std::env::current_exe().context("finding the hutch binary to start a keeper")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(store.root())
        .arg("__keep")
        .arg(&state.id)
        // Not the caller's directory: the keeper must not keep a mount
        // point busy for the container's lifetime.
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(keeper_log));
    if remove {
        cmd.arg("--rm");
    }
    // The keeper inherits the lock itself: the container is never
    // unlocked (as if stopped) between this process and the keeper, and
    // stays locked if this one dies once the keeper runs.
    let inherited = lock.inheritable()?;
    cmd.arg("--lock-fd").arg(inherited.as_raw_fd().to_string());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting the keeper of container {}", state.name))?;
    // From here on it is the keeper's.
    drop(inherited);
    drop(lock);
    let out = child
        .stdout
        .take()
        .context("internal error: the keeper has no stdout pipe")?;
    let mut ports: Vec<(String, String)> = Vec::new();
    let mut said = None;
    for line in BufReader::new(out).lines() {
        let line = line.context("reading from the keeper")?;
        if let Some((ctr, host)) = line.strip_prefix("port ").and_then(|p| p.split_once(' ')) {
            ports.push((ctr.to_string(), host.to_string()));
        } else if line == "ready" {
            said = Some(Ok(()));
            break;
        } else if let Some(e) = line.strip_prefix("error: ") {
            said = Some(Err(e.to_string()));
            break;
        } else if let Some((code, message)) = line
            .strip_prefix("exit ")
            .and_then(|l| l.split_once(' '))
            .and_then(|(c, m)| Some((c.parse::<i32>().ok()?, m)))
        {
            // The command could not be run: the keeper records its exit
            // (and removes it with --rm) before this returns.
            let _ = child.wait();
            let message = message.strip_prefix("hutch: ").unwrap_or(message);
            return Err(ExitWith {
                code,
                message: format!("container {}: {message}", state.name),
            }
            .into());
        }
    }
    match said {
        Some(Ok(())) => Ok(ports),
        Some(Err(e)) => {
            let _ = child.wait();
            bail!("starting container {}: {e}", state.name)
        }
        None => {
            let status = child.wait().ok();
            let log = std::fs::read_to_string(dir.join("keeper.log")).unwrap_or_default();
            bail!(
                "the keeper of container {} ended before the container started ({}){}{}",
                state.name,
                status.map(|s| s.to_string()).unwrap_or_default(),
                if log.trim().is_empty() { "" } else { ": " },
                log.trim()
            )
        }
    }
}

/// What the keeper tells `hutch run -d`, on its stdout (then closed).
struct Handshake {
    out: Option<std::io::Stdout>,
    /// `ready` was said: the command ran.
    started: bool,
}

impl Handshake {
    fn say(&mut self, line: &str) {
        if let Some(o) = self.out.as_mut() {
            let _ = writeln!(o, "{line}");
            let _ = o.flush();
        }
    }

    /// Say the last line and close the pipe (stdout becomes /dev/null).
    fn finish(&mut self, line: &str) {
        self.say(line);
        self.started |= line == "ready";
        self.close();
    }

    /// Close the pipe without a word (the run's child process has it).
    fn close(&mut self) {
        if self.out.take().is_some()
            && let Ok(null) = std::fs::File::options().write(true).open("/dev/null")
        {
            let _ = rustix::stdio::dup2_stdout(&null);
        }
    }
}

/// Exit status of a run's child process whose command never ran.
const NOT_STARTED: i32 = 2;

/// The first wait before a restart; it doubles after each run shorter
/// than [`BACKOFF_RESET`], up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A run at least this long starts the back-off from the beginning.
const BACKOFF_RESET: Duration = Duration::from_secs(10);

/// How long the keeper waits before each restart (as Docker does: a
/// command that keeps failing at once is not started in a busy loop).
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
        }
    }

    /// The wait after a run that lasted `ran`.
    fn after(&mut self, ran: Duration) -> Duration {
        if ran >= BACKOFF_RESET {
            self.next = BACKOFF_FIRST;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }
}

/// Signals that ask a keeper between runs to give up: what `stop` and
/// `kill` send (they also mark the record first).
const ENDING: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP];

/// `hutch __keep ID [--rm]`: serve container `id` until it ends, and
/// with a `--restart` policy start it again each time it exits (each
/// run in a child process of its own: the launcher enters a new user
/// namespace, which a process does once). The keeper is the process
/// that holds the running lock and that `stop` and `kill` signal; it
/// forwards their signals to the current run. Returns the command's
/// last exit status (the keeper's own, which nobody waits for).
pub(crate) fn keep(store: &Store, id: &str, remove: bool, lock_fd: Option<i32>) -> Result<i32> {
    let mut hs = Handshake {
        out: Some(std::io::stdout()),
        started: false,
    };
    // No terminal, no job control of the shell that ran `hutch run -d`.
    let _ = rustix::process::setsid();
    // The lock `run -d` or `start` held, passed on (without one, as by an
    // older hutch: wait for it to be free).
    let taken = match lock_fd {
        Some(n) => match sys::take_inherited(n) {
            Some(fd) => store.adopt_running_lock(id, fd),
            None => Err(anyhow::anyhow!(
                "--lock-fd {n}: no such descriptor was passed"
            )),
        },
        None => store.take_running_lock(id),
    };
    let lock = match taken.and_then(|l| {
        store.read_container(id)?;
        Ok(l)
    }) {
        Ok(l) => l,
        Err(e) => {
            hs.finish(&format!("error: {e:#}"));
            return Err(e);
        }
    };
    // Taken with sigwait: forwarded to a run, or the end of a run.
    let mut waited: Vec<i32> = crate::sandbox::FORWARDED.to_vec();
    waited.push(libc::SIGCHLD);
    let signals = SigSet::of(&waited);
    sys::block(&signals);
    let mut backoff = Backoff::new();
    let mut first = true;
    let last = loop {
        let t0 = Instant::now();
        let started = run_once(store, id, &mut hs, &signals);
        let st = match store.update_container(id, |s| {
            // The run's process died before it could say how it ended.
            if s.status == Status::Running {
                s.status = Status::Exited;
                s.exit_code = None;
                s.finished = Some(now_rfc3339());
            }
        }) {
            Ok(st) => st,
            Err(e) => {
                eprintln!("hutch keeper: reading container {id}: {e:#}");
                break None;
            }
        };
        if let Err(e) = &started {
            eprintln!("hutch keeper: container {}: {e:#}", st.name);
        }
        // The first run that did not start was reported to `run -d` or
        // `start`, which said it failed: it is not retried behind them.
        let ran = started.unwrap_or(false);
        if (first && !ran)
            || st.stopped_by_user
            || !st.restart_policy.restarts(st.exit_code, st.restart_count)
        {
            break Some(st);
        }
        first = false;
        if !wait_unless_stopped(store, id, backoff.after(t0.elapsed()), &signals) {
            break Some(st);
        }
        if let Err(e) = store.update_container(id, |s| s.restart_count += 1) {
            eprintln!("hutch keeper: recording a restart of {}: {e:#}", st.name);
            break Some(st);
        }
    };
    if let Err(e) = store.update_container(id, |s| s.pid = None) {
        eprintln!("hutch keeper: recording that container {id} exited: {e:#}");
    }
    drop(lock);
    let name = last.as_ref().map_or(id, |s| s.name.as_str());
    if remove && let Err(e) = store.remove_container(id, false) {
        eprintln!("hutch keeper: --rm: removing container {name}: {e:#}");
    }
    Ok(last
        .and_then(|s| s.exit_code)
        .unwrap_or(crate::error::EXIT_FAILED))
}

/// Wait `delay` before a restart; false if the container was stopped
/// meanwhile (`stop` or `kill` marked it, or an ending signal came).
fn wait_unless_stopped(store: &Store, id: &str, delay: Duration, signals: &SigSet) -> bool {
    let end = Instant::now() + delay;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match sys::wait_signal_timeout(signals, left) {
            None => return true,
            Some(libc::SIGCHLD) => {}
            Some(sig) if ENDING.contains(&sig) => return false,
            Some(_) => {}
        }
        if store.read_container(id).is_ok_and(|s| s.stopped_by_user) {
            return false;
        }
    }
}

/// One run: a child process serves the container (and records how it
/// ended) while this one forwards signals to it. Whether the command
/// started.
fn run_once(store: &Store, id: &str, hs: &mut Handshake, signals: &SigSet) -> Result<bool> {
    let keeper = rustix::process::getpid();
    // The keeper has no threads (it only waits), so the child is a whole
    // process and may use anything.
    match sys::fork()
        .map_err(std::io::Error::from)
        .context("forking the keeper's run")?
    {
        Forked::Child => {
            // Ends with the keeper (a SIGKILL of the keeper ends all).
            let _ = rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            ));
            if rustix::process::getppid() != Some(keeper) {
                sys::exit_now(NOT_STARTED);
            }
            // The launcher takes the forwarded signals with its own
            // thread; SIGCHLD is the keeper's.
            sys::set_mask(&SigSet::of(crate::sandbox::FORWARDED));
            let started = serve_and_record(store, id, hs, keeper.as_raw_nonzero().get());
            sys::exit_now(if started { 0 } else { NOT_STARTED })
        }
        Forked::Parent(pid) => {
            // The child says `ready` (or the error); the caller waits for
            // that, not for the keeper's end.
            hs.close();
            loop {
                let sig = sys::wait_signal(signals);
                if sig != libc::SIGCHLD {
                    sys::kill(pid, sig);
                    continue;
                }
                match sys::wait(pid, true) {
                    Ok(Some((_, status))) => {
                        return Ok(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Err(std::io::Error::from(e))
                            .context("waiting for the keeper's run");
                    }
                }
            }
        }
    }
}

/// A run's child process: serve the container and record its exit
/// status; whether its command started.
fn serve_and_record(store: &Store, id: &str, hs: &mut Handshake, keeper: i32) -> bool {
    let mut st = match store.read_container(id) {
        Ok(st) => st,
        Err(e) => {
            hs.finish(&format!("error: {e:#}"));
            return false;
        }
    };
    let served = serve(store, &mut st, hs, keeper);
    if let Err(e) = &served {
        hs.finish(&format!("error: {e:#}"));
    }
    let exit_code = served.as_ref().ok().copied();
    // `pid` stays the keeper's until it gives up (it may restart this).
    if let Err(e) = store.update_container(id, |s| {
        s.status = Status::Exited;
        s.finished = Some(now_rfc3339());
        s.exit_code = exit_code;
    }) {
        eprintln!(
            "hutch keeper: recording that container {} exited: {e:#}",
            st.name
        );
    }
    hs.started
}

/// Bind, start, copy the output and wait: the keeper's life.
fn serve(store: &Store, st: &mut ContainerState, hs: &mut Handshake, keeper: i32) -> Result<i32> {
    let dir = store.container_dir(&st.id);
    let mut spec = super::spec_file::load(&dir, &st.name)?;
    // The descriptors of whoever ran `hutch run` are not the keeper's to
    // give (its own 3, 4, ... are its lock and log files).
    spec.process.preserve_fds = 0;
    let listeners = if spec.net.publish.is_empty() {
        None
    } else {
        Some(network::bind_published(&spec)?)
    };
    if let Some(l) = &listeners {
        st.ports = l.published().iter().map(|f| f.describe()).collect();
    }
    for (ctr, host) in super::net::chosen_ports(&spec, listeners.as_ref()) {
        hs.say(&format!("port {ctr} {host}"));
    }
    etc_files::write(&spec)?;
    let log = LogWriter::open(&dir.join(super::logs::LOG_FILE), spec.limits.log_size_max)?;
    let terminal = spec.process.terminal;
    // -t or -i: `hutch attach` reaches the pty or the stdin pipe through
    // a socket in the container's directory (attach.rs).
    let attachable = terminal || spec.process.stdin;
    let listener = if attachable {
        Some(attach::Server::bind()?)
    } else {
        None
    };
    let (stdin_r, stdin_w) = if spec.process.stdin && !terminal {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        let null: OwnedFd = std::fs::File::open("/dev/null")
            .context("opening /dev/null for the container's stdin")?
            .into();
        (null, None)
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // With -t the command's 0, 1 and 2 are its pty, whose controller the
    // launcher hands over here.
    let stdio = if terminal {
        [None, None, None]
    } else {
        [Some(stdin_r), Some(out_w), Some(err_w)]
    };
    let controller = std::cell::RefCell::new(None::<OwnedFd>);
    // The copier (and attach) threads start once the container runs: the
    // launcher enters a new user namespace first, which a process with
    // threads cannot do. Until then the pipes hold what the command writes.
    let copiers = std::cell::RefCell::new(Vec::new());
    let start_threads = || -> Result<()> {
        let server = match listener {
            Some(l) => {
                let input = match controller.borrow().as_ref() {
                    Some(c) => attach::Input::Pty(c.try_clone().context("duplicating the pty")?),
                    None => attach::Input::Pipe(std::sync::Mutex::new(stdin_w)),
                };
                Some(attach::Server::start(l, input)?)
            }
            None => None,
        };
        let mut sources = vec![
            (out_r, Stream::Stdout, attach::STDOUT),
            (err_r, Stream::Stderr, attach::STDERR),
        ];
        if let Some(c) = controller.take() {
            // Nothing writes to the pipes: the pty is the output.
            sources = vec![(c, Stream::Stdout, attach::STDOUT)];
        }
        for (fd, stream, kind) in sources {
            let server = server.clone();
            let h = log.copy_from(fd, stream, move |data| {
                if let Some(s) = &server {
                    s.broadcast(kind, data);
                }
            })?;
            copiers.borrow_mut().push(h);
        }
        Ok(())
    };
    let ports = st.ports.clone();
    *st = store.update_container(&st.id, |s| {
        s.status = Status::Running;
        s.pid = Some(keeper);
        s.started = Some(now_rfc3339());
        s.exit_code = None;
        s.finished = None;
        s.ports = ports;
    })?;
    let warn_log = log.clone();
    let code = launch::run(
        &spec,
        listeners,
        &|text| {
            let _ = warn_log.write(Stream::Stderr, format!("{text}\n").as_bytes());
        },
        Some(Detached {
            stdio,
            terminal: terminal.then(|| {
                Box::new(|c: OwnedFd| *controller.borrow_mut() = Some(c))
                    as Box<dyn FnOnce(OwnedFd)>
            }),
            started: Box::new(|started| {
                if let Err(e) = start_threads() {
                    eprintln!("hutch keeper: {e:#}");
                }
                match started {
                    Started::Running => hs.finish("ready"),
                    // `run -d` exits with this status, as Podman's.
                    Started::NotRun { code, message } => {
                        hs.finish(&format!("exit {code} {}", message.replace('\n', " ")))
                    }
                }
            }),
        }),
        Some(crate::sandbox::namespaces::JoinListener::bind(&dir)?),
    );
    for c in copiers.take() {
        let _ = c.join();
    }
    if attachable {
        // Until the next run there is nothing to attach to.
        let _ = std::fs::remove_file(attach::SOCKET);
    }
    if let Err(e) = &code {
        // What the launcher could not do, where `hutch logs` shows it.
        let _ = log.write(Stream::Stderr, format!("hutch: {e:#}\n").as_bytes());
    }
    code
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .context("creating a pipe for the container's output")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_starts_over_after_a_long_run() {
        let mut b = Backoff::new();
        let quick = Duration::from_millis(5);
        let waits: Vec<u128> = (0..9).map(|_| b.after(quick).as_millis()).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        assert_eq!(b.after(BACKOFF_RESET).as_millis(), 100);
        assert_eq!(b.after(quick).as_millis(), 200);
    }
}
