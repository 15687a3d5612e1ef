//! `hutch logs`, `start`, `stop`, `kill`, `wait`, and the hidden
//! `__keep` that `run -d` and `start` start (src/run/keeper.rs).

use crate::cli::output::outln;
use crate::error::EXIT_FAILED;
use crate::run::LogOptions;
use crate::store::Store;
use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing what the container writes until it ends
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
    /// Only lines written since a time (RFC 3339) or for a duration (10m, 1h30m)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Start each line with the time it was written
    #[arg(short, long)]
    timestamps: bool,
    /// Container name, ID or unique ID prefix; or a service of the project
    /// here (hutch.toml at or above the current directory)
    container: String,
}

pub fn logs(a: LogsArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let opts = LogOptions {
        follow: a.follow,
        tail: a.tail,
        since: a
            .since
            .as_deref()
            .map(crate::run::parse_since)
            .transpose()?,
        timestamps: a.timestamps,
    };
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    // At the start of a line of each stream (for --timestamps).
    let mut line_start = [true, true];
    let key = match store.lookup_container(&a.container)? {
        Some(_) => a.container.clone(),
        None => {
            crate::project::services::service_container(std::path::Path::new("."), &a.container)
                .unwrap_or_else(|| a.container.clone())
        }
    };
    crate::run::logs(&store, &key, &opts, &mut |r, stamps| {
        let to_out = crate::run::is_stdout(r);
        let w: &mut dyn Write = if to_out { &mut out } else { &mut err };
        let slot = usize::from(!to_out);
        if stamps && line_start[slot] {
            write!(w, "{} ", r.time)?;
        }
        line_start[slot] = r.bytes.last() == Some(&b'\n');
        w.write_all(&r.bytes)?;
        if opts.follow {
            w.flush()?;
        }
        Ok(())
    })
    .or_else(ignore_closed_pipe)?;
    Ok(0)
}

/// `hutch logs | head` closing the pipe is not an error.
fn ignore_closed_pipe(e: anyhow::Error) -> Result<()> {
    match e.downcast_ref::<std::io::Error>() {
        Some(io) if io.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e),
    }
}

#[derive(Args, Debug)]
#[command(after_long_help = "\
Runs each created or exited container again with the options it was
created with, on its own upper dir (its changes kept), served in the
background by a keeper as `hutch run -d` does: its -p ports are bound
again and its output is appended to its log (`hutch logs`). A container
that is already running is left as it is. Prints each name once its
command runs.

With -a, hutch stays in the foreground printing what the container
writes on stdout and stderr until it exits, and exits with its status.
With -a -i (for a container created with -i or -t) hutch's stdin, or its
terminal, is relayed as `hutch attach` does; what the command writes
before hutch is attached is only in its log.")]
pub struct StartArgs {
    /// Attach: print the container's stdout and stderr until it exits, and
    /// exit with its status (one container only)
    #[arg(short, long)]
    attach: bool,
    /// With -a: pass hutch's stdin (or terminal) to the container, which
    /// was created with -i or -t
    #[arg(short, long, requires = "attach")]
    interactive: bool,
    /// With -a -i: the keys that detach from a container's terminal
    /// (Docker's format: ctrl-X or characters, comma-separated; "" for none)
    #[arg(long, value_name = "KEYS", default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    /// Containers (name, ID or unique ID prefix)
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `hutch start`: each container's name once it runs; with -a, its
/// output and exit status.
pub fn start(a: StartArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let detach_keys = crate::run::parse_detach_keys(&a.detach_keys)?;
    if !a.attach {
        let results = a
            .containers
            .iter()
            .map(|c| crate::run::start(&store, c))
            .collect();
        return report(results);
    }
    let [key] = a.containers.as_slice() else {
        anyhow::bail!(
            "start -a takes one container ({} given): attach to one, or drop -a to start them all",
            a.containers.len()
        );
    };
    if a.interactive {
        let opts = crate::run::AttachOptions {
            detach_keys,
            stdin: true,
        };
        return crate::run::start_interactive(&store, key, &opts);
    }
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let code = crate::run::start_attached(&store, key, &mut |r| {
        let w: &mut dyn Write = if crate::run::is_stdout(r) {
            &mut out
        } else {
            &mut err
        };
        w.write_all(&r.bytes)?;
        w.flush()?;
        Ok(())
    })
    .or_else(|e| ignore_closed_pipe(e).map(|()| 0))?;
    if code < 0 {
        anyhow::bail!(
            "container {key} ended without an exit status (its keeper was killed); \
             `hutch ps -a` shows it"
        );
    }
    Ok(code)
}

#[derive(Args, Debug)]
#[command(after_long_help = "\
Relays hutch's terminal to a running container created with -t (raw
mode, window size changes passed on), or hutch's stdin, stdout and
stderr to one created with -i. Detaching (ctrl-p ctrl-q by default, with
-t) leaves it running; otherwise hutch exits with the container's status
once it ends. The end of hutch's stdin closes the command's stdin (-i).
What the command writes still goes to its log too.")]
pub struct AttachArgs {
    /// The keys that detach from the container's terminal (Docker's
    /// format: ctrl-X or characters, comma-separated; \"\" for none)
    #[arg(long, value_name = "KEYS", default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    /// Do not pass hutch's stdin (only show the output)
    #[arg(long)]
    no_stdin: bool,
    /// Container (name, ID or unique ID prefix)
    container: String,
}

/// `hutch attach`: the container's exit status, or 0 when detached.
pub fn attach(a: AttachArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let opts = crate::run::AttachOptions {
        detach_keys: crate::run::parse_detach_keys(&a.detach_keys)?,
        stdin: !a.no_stdin,
    };
    crate::run::attach(&store, &a.container, &opts)
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL (default: the
    /// container's --stop-timeout, else 10)
    #[arg(short, long, value_name = "SECONDS")]
    time: Option<u64>,
    /// Containers (name, ID or unique ID prefix)
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `hutch stop`: every container in parallel, each name printed once stopped.
pub fn stop(a: StopArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let timeout = a.time.map(Duration::from_secs);
    let results: Vec<Result<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = a
            .containers
            .iter()
            .map(|c| {
                let store = &store;
                s.spawn(move || crate::run::stop(store, c, timeout))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("internal error: a stop panicked")))
            })
            .collect()
    });
    report(results)
}

#[derive(Args, Debug)]
pub struct RestartArgs {
    /// Seconds to wait after the stop signal before SIGKILL (default: the
    /// container's --stop-timeout, else 10)
    #[arg(short, long, value_name = "SECONDS")]
    time: Option<u64>,
    /// Containers (name, ID or unique ID prefix)
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `hutch restart`: stop, then start, each container in turn; each name
/// printed once it runs again.
pub fn restart(a: RestartArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let timeout = a.time.map(Duration::from_secs);
    let results = a
        .containers
        .iter()
        .map(|c| crate::run::restart(&store, c, timeout))
        .collect();
    report(results)
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send (name like TERM or SIGHUP, or number)
    #[arg(short, long, value_name = "SIGNAL", default_value = "KILL")]
    signal: String,
    /// Containers (name, ID or unique ID prefix)
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn kill(a: KillArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    let sig = crate::run::parse_signal(&a.signal)?;
    let results = a
        .containers
        .iter()
        .map(|c| crate::run::kill(&store, c, sig))
        .collect();
    report(results)
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Containers (name, ID or unique ID prefix)
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `hutch wait`: each container's exit status on its own line.
pub fn wait(a: WaitArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    for c in &a.containers {
        let code = crate::run::wait(&store, c)?;
        outln!("{code}");
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct KeepArgs {
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// The container's running lock, inherited from `run -d` or `start`
    #[arg(long, value_name = "FD")]
    lock_fd: Option<i32>,
    id: String,
}

/// `hutch __keep ID`: the keeper of a detached container (started by
/// `run -d`, not by people).
pub fn keep(a: KeepArgs, store: Result<Store>) -> Result<i32> {
    let store = store?;
    crate::run::keep(&store, &a.id, a.rm, a.lock_fd)
}

/// Print each name that worked; each error on stderr; 125 if any failed.
fn report(results: Vec<Result<String>>) -> Result<i32> {
    let mut failed = false;
    for r in results {
        match r {
            Ok(name) => outln!("{name}"),
            Err(e) => {
                eprintln!("hutch: error: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { EXIT_FAILED } else { 0 })
}
