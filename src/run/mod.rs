//! Running a container: everything that decides, before the launcher.
//!
//! A run is a [`RunRequest`] (what the user asked), resolved with the
//! image's config, the profile and the host's facts (src/host) into one
//! final [`SandboxSpec`](crate::sandbox::spec::SandboxSpec) by
//! [`resolve`]; the launcher (src/sandbox) executes that spec and decides
//! nothing. `hutch run` goes through [`run`] (or [`dry_run`]), which adds
//! the container's lifecycle around it; `exec`, `start` and `build`'s RUN
//! steps are meant to start from the same spec.
//!
//! * `plan`: request + image + profile + host → spec ([`resolve`]).
//! * `users`: `-u` names from the image's /etc/passwd and /etc/group.
//! * `idmap`: which uid/gid maps (a subordinate range or one id).
//! * `net`: `--network MODE[:OPTS]` and the DNS upstreams.
//! * `locks`: the flags that weaken the profile, refused or warned about.
//! * `pull_policy`: `--pull`, and when an image counts as missing.
//! * `container`: create, launch, record, `--rm`; the run's notices.
//! * `dry_run`: the spec as `--dry-run` prints it.
//! * `spec_file`: every container's spec.json, written at creation and
//!   read by its keeper at each start.
//! * `keeper`: `run -d`: the keeper process that serves a detached
//!   container (and the handshake with the `hutch run -d` that starts it).
//! * `exec`: `hutch exec`: the container's spec with another command, in
//!   its namespaces.
//! * `attach`: `hutch attach` and the keeper's attach socket (-t, -i).
//! * `logs`: a detached container's log file (Podman's k8s-file format).
//! * `inspect`: `hutch container inspect`, in Podman's shape.
//! * `top`: `hutch top`: a running container's processes from /proc.
//! * `container_tree`, `copy`, `export`, `tree_tar`: `hutch cp` and
//!   `hutch export`: a container's files (running or stopped) reached by
//!   a child in its namespaces, carried as tar streams.
//! * `lifecycle`: `start`, `stop`, `restart`, `kill`, `wait`, `logs` of
//!   containers.

mod attach;
mod container;
mod container_tree;
mod copy;
mod dry_run;
mod exec;
mod export;
pub(crate) mod idmap;
mod inspect;
mod keeper;
mod lifecycle;
mod locks;
mod logs;
pub(crate) mod net;
mod plan;
pub(crate) mod pull_policy;
pub(crate) mod spec_file;
pub(crate) mod top;
mod tree_tar;
pub(crate) mod users;

pub(crate) use attach::{AttachOptions, attach, parse_detach_keys};
pub(crate) use container::{PullOptions, check_tty_stdin, dry_run, run, run_detached};
pub(crate) use copy::{CopyRequest, copy};
pub(crate) use exec::{ExecRequest, exec};
pub(crate) use export::export;
pub(crate) use inspect::{Inspected, inspect, inspect_info};
pub(crate) use keeper::keep;
pub(crate) use lifecycle::{
    LogOptions, is_stdout, kill, logs, parse_signal, parse_since, restart, start, start_attached,
    start_interactive, stop, stop_signal, wait,
};
pub(crate) use logs::Record;
pub(crate) use net::NetworkArg;
pub use plan::RunRequest;
pub(crate) use pull_policy::PullPolicy;
