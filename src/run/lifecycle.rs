//! Acting on containers that run (or ran): `start`, `stop`, `kill`,
//! `wait` and reading their logs. A running container is served by one hutch
//! process (its keeper for `run -d`, the foreground `hutch run`
//! otherwise), recorded as the state's `pid` while it holds the running
//! lock; signals go to it and it forwards them to the container's
//! command (sandbox/launch.rs), so they are only sent while the lock
//! shows that process is still the one serving.

use super::logs::{self, Follower, Record, Stream};
use crate::store::Store;
use crate::store::containers::{ContainerInfo, Status, now_rfc3339};
use anyhow::{Context, Result, bail};
use rustix::process::{Pid, Signal};
use std::time::Duration;

/// Exit status recorded for a container stopped with SIGKILL.
const KILLED_STATUS: i32 = 128 + 9;

/// How long `start` waits for a `cp` or `export` that holds a stopped
/// container's files.
const BUSY_WAIT: Duration = Duration::from_secs(60);

/// How long to wait for a container to go after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Send `sig` to the process serving `c`, if it still serves it (for
/// `stop` and `kill`: its `--restart` policy no longer applies).
/// How long a container whose exit is recorded may take to let go of its
/// lock before it counts as busy.
const FINISHING_WAIT: Duration = Duration::from_secs(3);

fn signal(store: &Store, c: &ContainerInfo, sig: i32) -> Result<bool> {
    if !store.container_alive(&c.state.id) {
        return Ok(false);
    }
    let Some(pid) = c.state.pid.and_then(Pid::from_raw) else {
        // Its exit is recorded and its keeper is finishing (it lets go of
        // the lock a moment later): stopped already. A lock still held
        // after that is a `cp`/`export` (or a start): busy.
        if c.state.status == Status::Exited && store.wait_stopped(&c.state.id, Some(FINISHING_WAIT))
        {
            return Ok(false);
        }
        if c.busy() {
            bail!(
                "container {} is busy: it is being started, or `hutch cp` or `hutch export` is using its files; try again once that is done",
                c.state.name
            );
        }
        bail!(
            "container {} runs but its record names no process; `hutch rm -f {}` removes it",
            c.state.name,
            c.state.name
        );
    };
    let sig = Signal::from_named_raw(sig)
        .with_context(|| format!("signal {sig} is not one hutch can send"))?;
    // Asked for by the user: its keeper must not start it again (marked
    // before the signal, which may end the command at once).
    store.update_container(&c.state.id, |st| st.stopped_by_user = true)?;
    match rustix::process::kill_process(pid, sig) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::SRCH) => Ok(false),
        Err(e) => Err(std::io::Error::from(e))
            .with_context(|| format!("sending signal {sig:?} to container {}", c.state.name)),
    }
}

/// SIGKILL: the serving process goes at once (the kernel ends the FUSE
/// mount and, through the PID namespace, every process of the
/// container); the record says 137 since nobody else will.
fn kill_now(store: &Store, c: &ContainerInfo) -> Result<()> {
    signal(store, c, libc::SIGKILL)?;
    if !store.wait_stopped(&c.state.id, Some(KILL_WAIT)) {
        bail!(
            "container {} did not stop within {} s of SIGKILL; `hutch ps` shows whether it is still there",
            c.state.name,
            KILL_WAIT.as_secs()
        );
    }
    store.update_container(&c.state.id, |st| {
        if st.status != Status::Exited {
            st.status = Status::Exited;
            st.exit_code = Some(KILLED_STATUS);
            st.finished = Some(now_rfc3339());
            st.pid = None;
        }
    })?;
    Ok(())
}

/// How long `stop` waits for a container whose spec sets no
/// `--stop-timeout`.
pub(crate) const DEFAULT_STOP_TIMEOUT: u64 = 10;

/// `hutch stop`: the container's stop signal (`--stop-signal`, else the
/// image's StopSignal, else SIGTERM), then SIGKILL after `timeout` (None:
/// its `--stop-timeout`, else 10 s). A container that is not running is
/// left as it is (not an error, as in Podman).
pub(crate) fn stop(store: &Store, key: &str, timeout: Option<Duration>) -> Result<String> {
    let c = store.find_container(key)?;
    let spec = super::spec_file::load(&store.container_dir(&c.state.id), &c.state.name).ok();
    let sig = match spec.as_ref().and_then(|s| s.stop_signal.as_deref()) {
        Some(s) => stop_signal(s).unwrap_or_else(|e| {
            tracing::warn!("container {}: {e:#}; sending TERM", c.state.name);
            libc::SIGTERM
        }),
        None => libc::SIGTERM,
    };
    let timeout = timeout.unwrap_or_else(|| {
        Duration::from_secs(
            spec.as_ref()
                .and_then(|s| s.stop_timeout)
                .unwrap_or(DEFAULT_STOP_TIMEOUT),
        )
    });
    if sig == libc::SIGKILL {
        if store.container_alive(&c.state.id) {
            kill_now(store, &c)?;
        }
        return Ok(c.state.name);
    }
    if signal(store, &c, sig)? && !store.wait_stopped(&c.state.id, Some(timeout)) {
        tracing::info!(
            "container {} still runs {} s after signal {sig}: sending SIGKILL",
            c.state.name,
            timeout.as_secs()
        );
        kill_now(store, &c)?;
    }
    Ok(c.state.name)
}

/// `hutch kill -s SIG`: the signal to the container's command (SIGKILL
/// ends the container at once).
pub(crate) fn kill(store: &Store, key: &str, sig: i32) -> Result<String> {
    let c = store.find_container(key)?;
    if !store.container_alive(&c.state.id) {
        bail!(
            "container {} is not running; `hutch start {}` starts it again",
            c.state.name,
            c.state.name
        );
    }
    if sig == libc::SIGKILL {
        kill_now(store, &c)?;
    } else if crate::sandbox::FORWARDED.contains(&sig) {
        signal(store, &c, sig)?;
    } else {
        // Any other signal would end or stop the serving hutch itself.
        bail!(
            "signal {sig} cannot be passed to container {}: hutch forwards HUP, INT, QUIT, TERM, USR1, USR2, CONT and WINCH, and KILL ends it",
            c.state.name
        );
    }
    Ok(c.state.name)
}

/// `hutch start`: run a created or exited container again, from its
/// spec.json and on its upper dir, served by a keeper as `run -d` does
/// (its ports bound again, its output appended to ctr.log). A running
/// container is left as it is (not an error, as in Podman). Returns its
/// name once the command runs.
pub(crate) fn start(store: &Store, key: &str) -> Result<String> {
    let c = store.find_container(key)?;
    let name = c.state.name.clone();
    let dir = store.container_dir(&c.state.id);
    let spec = super::spec_file::load(&dir, &name)?;
    let t0 = std::time::Instant::now();
    let lock = loop {
        if let Some(lock) = store.try_running_lock(&c.state.id)? {
            break lock;
        }
        // Running already, or another `start` got there first: left as
        // it is. Held by a `cp` or `export` of its files (or by a start
        // that has not handed it over yet): wait for that to end.
        if !store.find_container(key)?.busy() {
            return Ok(name);
        }
        if t0.elapsed() > BUSY_WAIT {
            bail!(
                "container {name} is busy: `hutch cp` or `hutch export` is using its files; try again once that is done"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let state = store.update_container(&c.state.id, |st| {
        // Its output goes to ctr.log from now on (`hutch logs`).
        st.detached = true;
        // Its --restart policy holds again, counting from 0 (as Docker).
        st.stopped_by_user = false;
        st.restart_count = 0;
    })?;
    let ports = super::keeper::hand_over(store, &state, spec.remove, lock)
        .with_context(|| format!("starting container {name}"))?;
    for (ctr, host) in ports {
        eprintln!("hutch: port {ctr} is published on {host}");
    }
    Ok(name)
}

/// `hutch start -a`: start the container as [`start`] does (its name is
/// not printed), then give `emit` what it writes from now on until it
/// ends; its exit status (-1 when unknown: its keeper was killed).
pub(crate) fn start_attached(
    store: &Store,
    key: &str,
    emit: &mut dyn FnMut(&Record) -> Result<()>,
) -> Result<i32> {
    let c = store.find_container(key)?;
    let path = store.container_dir(&c.state.id).join(super::logs::LOG_FILE);
    // Only this run's output: the log keeps the earlier ones.
    let mut follower = Follower::at_end(&path);
    start(store, key)?;
    loop {
        let alive = store.container_alive(&c.state.id);
        for r in follower.poll()? {
            emit(&r)?;
        }
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = store.read_container(&c.state.id)?;
    Ok(st.exit_code.unwrap_or(-1))
}

/// `hutch start -a -i`: start the container as [`start`] does, then
/// attach to it (attach.rs) until it ends or is detached from.
pub(crate) fn start_interactive(
    store: &Store,
    key: &str,
    opts: &super::attach::AttachOptions,
) -> Result<i32> {
    let c = store.find_container(key)?;
    let spec = super::spec_file::load(&store.container_dir(&c.state.id), &c.state.name)?;
    if !spec.process.terminal && !spec.process.stdin {
        bail!(
            "start -i: container {} was created without -i or -t, its command reads \
             /dev/null; drop -i (-a still shows its output)",
            c.state.name
        );
    }
    start(store, key)?;
    super::attach::attach(store, key, opts)
}

/// `hutch restart`: [`stop`], then [`start`] (a container that was not
/// running is only started).
pub(crate) fn restart(store: &Store, key: &str, timeout: Option<Duration>) -> Result<String> {
    stop(store, key, timeout)?;
    start(store, key)
}

/// `hutch wait`: block until the container is not running; its exit
/// status (-1 when unknown: its keeper was killed).
pub(crate) fn wait(store: &Store, key: &str) -> Result<i32> {
    let c = store.find_container(key)?;
    store.wait_stopped(&c.state.id, None);
    let st = store.read_container(&c.state.id)?;
    Ok(st.exit_code.unwrap_or(-1))
}

/// `hutch logs` options.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogOptions {
    pub(crate) follow: bool,
    pub(crate) tail: Option<usize>,
    /// RFC 3339, from [`parse_since`].
    pub(crate) since: Option<String>,
    pub(crate) timestamps: bool,
}

pub(crate) use logs::parse_since;

/// `hutch logs`: the records of the container's log, each given to
/// `emit`; with `follow`, then what comes until the container ends.
pub(crate) fn logs(
    store: &Store,
    key: &str,
    opts: &LogOptions,
    emit: &mut dyn FnMut(&Record, bool) -> Result<()>,
) -> Result<()> {
    let c = store.find_container(key)?;
    if !c.state.detached {
        bail!(
            "container {} was not started with -d: its output went to the terminal of its `hutch run`, no log was kept",
            c.state.name
        );
    }
    let path = store.container_dir(&c.state.id).join(super::logs::LOG_FILE);
    // The current file through the follower, so that -f goes on exactly
    // where the records shown first end.
    let mut follower = Follower::from_start(&path);
    let mut recs = logs::read_rotated(&path)?;
    recs.extend(follower.poll()?);
    if let Some(since) = &opts.since {
        recs.retain(|r| r.time.as_str() >= since.as_str());
    }
    if let Some(n) = opts.tail {
        let skip = recs.len().saturating_sub(n);
        recs.drain(..skip);
    }
    for r in &recs {
        emit(r, opts.timestamps)?;
    }
    if !opts.follow {
        return Ok(());
    }
    loop {
        let alive = store.container_alive(&c.state.id);
        for r in follower.poll()? {
            emit(&r, opts.timestamps)?;
        }
        if !alive {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where a record goes: stdout records to stdout, stderr to stderr.
pub(crate) fn is_stdout(r: &Record) -> bool {
    r.stream == Stream::Stdout
}

/// `TERM`, `SIGTERM`, `sigterm` or `15`.
pub(crate) fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        anyhow::bail!("signal {n}: signals are 1 to 64");
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    const NAMES: &[(&str, i32)] = &[
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("TERM", libc::SIGTERM),
        ("CONT", libc::SIGCONT),
        ("WINCH", libc::SIGWINCH),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .with_context(|| {
            format!(
                "unknown signal {s:?}: use a number or one of {}",
                NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )
        })
}

/// A stop signal (`--stop-signal`, an image's StopSignal): one that the
/// serving hutch forwards to the container, or KILL.
pub(crate) fn stop_signal(s: &str) -> Result<i32> {
    let sig = parse_signal(s)?;
    if sig != libc::SIGKILL && !crate::sandbox::FORWARDED.contains(&sig) {
        bail!(
            "signal {s} cannot be a stop signal: hutch forwards HUP, INT, QUIT, TERM, USR1, USR2, CONT and WINCH to a container, and KILL ends it"
        );
    }
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("1").unwrap(), 1);
        assert!(parse_signal("0").is_err());
        assert!(
            parse_signal("BOGUS")
                .unwrap_err()
                .to_string()
                .contains("TERM")
        );
    }

    #[test]
    fn stop_signals_are_the_forwarded_ones_or_kill() {
        assert_eq!(stop_signal("SIGINT").unwrap(), libc::SIGINT);
        assert_eq!(stop_signal("9").unwrap(), libc::SIGKILL);
        assert!(stop_signal("SIGSTOP").is_err());
        assert!(
            stop_signal("37")
                .unwrap_err()
                .to_string()
                .contains("forwards")
        );
    }
}
