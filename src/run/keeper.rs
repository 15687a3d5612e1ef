//! Detached containers without a daemon: `hutch run -d` hands the
//! container it created to a keeper, hutch itself re-executed as
//! `hutch __keep ID`, in its own session with no terminal. The keeper
//! takes the container's running lock, binds its `-p` ports, serves its
//! overlay and network (sandbox::launch), copies its stdout and stderr
//! into `ctr.log` (logs.rs), records the exit and ends with the
//! container. Nothing else runs in the background.
//!
//! The handshake: the keeper's stdout is a pipe to the `hutch run -d`
//! that started it. It writes `port CONTAINER/PROTO HOST` for each port
//! the kernel chose, then `ready` once the command runs (or `error: ...`
//! if it could not start it) and closes the pipe; its own stderr goes
//! to `keeper.log` in the container's directory.

use super::logs::{DEFAULT_CAP, LogWriter, Stream};
use crate::sandbox::launch::{self, Detached};
use crate::sandbox::{etc_files, network};
use crate::store::Store;
use crate::store::containers::{ContainerState, Status, now_rfc3339};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

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
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting the keeper of container {}", state.name))?;
    // The keeper waits for this lock: from here on it is the keeper's.
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
        if self.out.take().is_some()
            && let Ok(null) = std::fs::File::options().write(true).open("/dev/null")
        {
            let _ = rustix::stdio::dup2_stdout(&null);
        }
    }
}

/// `hutch __keep ID [--rm]`: serve container `id` until it ends. Returns
/// the command's exit status (the keeper's own, which nobody waits for).
pub(crate) fn keep(store: &Store, id: &str, remove: bool) -> Result<i32> {
    let mut hs = Handshake {
        out: Some(std::io::stdout()),
    };
    // No terminal, no job control of the shell that ran `hutch run -d`.
    let _ = rustix::process::setsid();
    let lock = match store.take_running_lock(id) {
        Ok(l) => l,
        Err(e) => {
            hs.finish(&format!("error: {e:#}"));
            return Err(e);
        }
    };
    let mut st = store.read_container(id)?;
    let served = serve(store, &mut st, &mut hs);
    if let Err(e) = &served {
        hs.finish(&format!("error: {e:#}"));
    }
    let exit_code = served.as_ref().ok().copied();
    if let Err(e) = store.update_container(id, |s| {
        s.status = Status::Exited;
        s.pid = None;
        s.finished = Some(now_rfc3339());
        s.exit_code = exit_code;
    }) {
        eprintln!(
            "hutch keeper: recording that container {} exited: {e:#}",
            st.name
        );
    }
    drop(lock);
    if remove && let Err(e) = store.remove_container(id, false) {
        eprintln!("hutch keeper: --rm: removing container {}: {e:#}", st.name);
    }
    served
}

/// Bind, start, copy the output and wait: the keeper's life.
fn serve(store: &Store, st: &mut ContainerState, hs: &mut Handshake) -> Result<i32> {
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
    for (ctr, host) in super::container::chosen_ports(&spec, listeners.as_ref()) {
        hs.say(&format!("port {ctr} {host}"));
    }
    etc_files::write(&spec)?;
    let log = LogWriter::open(&dir.join("ctr.log"), DEFAULT_CAP)?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let null: OwnedFd = std::fs::File::open("/dev/null")
        .context("opening /dev/null for the container's stdin")?
        .into();
    // The copier threads start once the container runs: the launcher
    // enters a new user namespace first, which a process with threads
    // cannot do. Until then the pipes hold what the command writes.
    let copiers = std::cell::RefCell::new(Vec::new());
    let start_copiers = || {
        for (fd, stream) in [(out_r, Stream::Stdout), (err_r, Stream::Stderr)] {
            match log.copy_from(fd, stream) {
                Ok(h) => copiers.borrow_mut().push(h),
                Err(e) => eprintln!("hutch keeper: {e:#}"),
            }
        }
    };
    let ports = st.ports.clone();
    *st = store.update_container(&st.id, |s| {
        s.status = Status::Running;
        s.pid = Some(std::process::id() as i32);
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
            stdio: [null, out_w, err_w],
            started: Box::new(|| {
                start_copiers();
                hs.finish("ready");
            }),
        }),
    );
    for c in copiers.take() {
        let _ = c.join();
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
