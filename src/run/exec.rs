//! `hutch exec`: a command in a running container. Everything about the
//! process comes from the container's own spec (containers/ID/spec.json,
//! what it was started with) with only the command, `-u`, `-w`, `-e`,
//! `-t` and `-i` replaced, so the confinement is the container's: the
//! same seccomp filter, capabilities, Landlock rules and rlimits. The
//! namespaces come from whoever serves the container
//! (sandbox/namespaces.rs), the launch from sandbox/exec.rs.

use super::plan::{env_flag, set_env};
use super::users::Accounts;
use crate::sandbox::namespaces::{self, JoinError};
use crate::store::Store;
use crate::store::containers::ContainerError;
use anyhow::{Context, Result, bail};

/// What `hutch exec` was asked.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecRequest {
    pub(crate) container: String,
    pub(crate) args: Vec<String>,
    pub(crate) tty: bool,
    pub(crate) interactive: bool,
    pub(crate) user: Option<String>,
    pub(crate) workdir: Option<String>,
    pub(crate) env: Vec<String>,
    pub(crate) detach: bool,
}

/// Run the request; the command's exit status (125 when hutch fails,
/// 126/127 when the command cannot be run, as `run`).
pub(crate) fn exec(store: &Store, req: &ExecRequest) -> Result<i32> {
    if req.args.is_empty() {
        bail!("no command to run: give one after the container's name");
    }
    super::check_tty_stdin(req.tty, false)?;
    let c = store.find_container(&req.container)?;
    let not_running = || ContainerError::NotRunning {
        name: c.state.name.clone(),
    };
    if !c.alive {
        return Err(not_running().into());
    }
    let dir = store.container_dir(&c.state.id);
    let mut spec = super::spec_file::load(&dir, &c.state.name)?;
    let p = &mut spec.process;
    p.args = req.args.clone();
    p.terminal = req.tty;
    p.stdin = req.interactive;
    p.preserve_fds = 0;
    if let Some(w) = &req.workdir {
        if !w.starts_with('/') {
            bail!("-w {w:?}: the working directory must be an absolute path");
        }
        p.cwd = w.clone();
    }
    if let Some(u) = &req.user {
        // The container's own /etc/passwd: its upper dir over the image.
        let mut layers = vec![spec.rootfs.upper.clone()];
        layers.extend(spec.rootfs.lowers.iter().cloned());
        p.user = Accounts::of_image(&layers).resolve(u)?;
    }
    if req.tty {
        set_env(&mut p.env, "TERM=xterm".into());
    }
    for e in &req.env {
        if let Some(kv) = env_flag(e)? {
            set_env(&mut p.env, kv);
        }
    }
    let (ns, info) = match namespaces::request(&dir) {
        Ok(got) => got,
        Err(JoinError::NotServed(e)) => {
            // Stopped since, or a run from before hutch served namespaces.
            if !store.container_alive(&c.state.id) {
                return Err(not_running().into());
            }
            bail!(
                "container {} runs but cannot be joined ({e}); it may still be starting, \
                 or was started by an older hutch (`hutch restart {}`)",
                c.state.name,
                c.state.name
            );
        }
        Err(JoinError::Other(e)) => {
            return Err(e.context(format!("joining container {}", c.state.name)));
        }
    };
    crate::sandbox::exec::run(&spec, ns, &info, req.detach)
        .with_context(|| format!("running a command in container {}", c.state.name))
}
