//! Containers in the store: `containers/<id>/`.
//!
//! ```text
//! containers/<id>/state.json   ContainerState (written atomically)
//! containers/<id>/running.lock held (flock) by the hutch process that runs
//!                              the container and by the container's init,
//!                              so a killed hutch is noticed without pids
//! containers/<id>/upper/       the overlay's writable layer
//! containers/<id>/work/        its scratch dir
//! containers/<id>/rootfs/      mount point (the mount exists only inside
//!                              the container's own mount namespace)
//! containers/<id>/etc/         hosts, hostname, resolv.conf given to it
//! containers/<id>/spec.json    its SandboxSpec, written at creation (a
//!                              keeper starts it from this: run -d, start)
//! containers/<id>/ctr.log      a detached container's stdout and stderr
//!                              (see run/logs.rs), ctr.log.1 the one before
//! containers/<id>/keeper.log   what its keeper itself had to say
//! containers/<id>/attach.sock  with -t or -i, while a run lasts: where
//!                              `hutch attach` reaches it (run/attach.rs)
//! ```
//!
//! Names are unique; creating and removing take `locks/containers.lock`.
//! The image a container was made from stays in the store (`prune` keeps
//! the layers of every container's image) until the container is removed.

use super::remove::remove_tree;
use super::{Store, write_replace_nosync};
use crate::human::human_duration_since;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Why a command could not act on a container: the cases callers decide
/// on (`downcast_ref`), each with what to do next in its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerError {
    /// No container has this name, ID or ID prefix.
    NotFound { key: String },
    /// An ID prefix that matches several containers.
    Ambiguous { key: String, count: usize },
    /// `--name` is not a valid container name.
    BadName { name: String },
    /// `--name` is taken.
    NameInUse { name: String },
    /// The container runs and the command needs it stopped.
    Running { name: String },
    /// SIGKILL was sent but the container's processes did not end.
    DidNotStop { name: String },
    /// The command needs the container running, and it is not.
    NotRunning { name: String },
}

impl std::fmt::Display for ContainerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainerError::NotFound { key } => {
                write!(f, "no container {key:?}; `hutch ps -a` lists them")
            }
            ContainerError::Ambiguous { key, count } => {
                write!(f, "{key:?} matches {count} containers; give more of the ID")
            }
            ContainerError::BadName { name } => write!(
                f,
                "--name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
            ),
            ContainerError::NameInUse { name } => write!(
                f,
                "the name {name:?} is in use by a container; `hutch rm {name}` removes it, or pick another --name"
            ),
            ContainerError::Running { name } => write!(
                f,
                "container {name} is running; `hutch rm -f {name}` stops it (SIGKILL) and removes it"
            ),
            ContainerError::NotRunning { name } => write!(
                f,
                "container {name} is not running; `hutch start {name}` starts it again"
            ),
            ContainerError::DidNotStop { name } => write!(
                f,
                "container {name} did not stop within 10 s of SIGKILL; `hutch ps` shows whether it is still there"
            ),
        }
    }
}

impl std::error::Error for ContainerError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// `run --restart`: when a container's keeper starts its command again
/// after it exits (Podman's names). Never after `hutch stop` or `kill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RestartPolicy {
    /// Never (the default).
    #[default]
    No,
    /// When it exits with a status other than 0 (or could not start), at
    /// most `max` times when given.
    OnFailure { max: Option<u32> },
    /// Whatever its status.
    Always,
    /// As `Always`: in Docker they differ only when the daemon starts,
    /// and hutch has none.
    UnlessStopped,
}

impl RestartPolicy {
    /// Whether a command that ended with `exit_code` (None: it could not
    /// start, or its status is unknown) is started again, after
    /// `restarts` restarts so far.
    pub fn restarts(self, exit_code: Option<i32>, restarts: u32) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max } => {
                exit_code != Some(0) && max.is_none_or(|m| restarts < m)
            }
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

impl std::str::FromStr for RestartPolicy {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<RestartPolicy> {
        let bad = || {
            anyhow::anyhow!(
                "--restart {s:?}: use no, on-failure[:MAX_RETRIES], always or unless-stopped"
            )
        };
        Ok(match s.split_once(':') {
            None => match s {
                "" | "no" => RestartPolicy::No,
                "on-failure" => RestartPolicy::OnFailure { max: None },
                "always" => RestartPolicy::Always,
                "unless-stopped" => RestartPolicy::UnlessStopped,
                _ => return Err(bad()),
            },
            Some(("on-failure", n)) => RestartPolicy::OnFailure {
                max: Some(n.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "--restart {s:?}: the maximum number of retries is a whole number \
                         (on-failure:3)"
                    )
                })?),
            },
            Some(_) => return Err(bad()),
        })
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartPolicy::No => write!(f, "no"),
            RestartPolicy::OnFailure { max: None } => write!(f, "on-failure"),
            RestartPolicy::OnFailure { max: Some(n) } => write!(f, "on-failure:{n}"),
            RestartPolicy::Always => write!(f, "always"),
            RestartPolicy::UnlessStopped => write!(f, "unless-stopped"),
        }
    }
}

impl TryFrom<String> for RestartPolicy {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<RestartPolicy> {
        s.parse()
    }
}

impl From<RestartPolicy> for String {
    fn from(p: RestartPolicy) -> String {
        p.to_string()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    /// The image as named, and its manifest digest (or `host`).
    pub image: String,
    pub image_id: String,
    /// DiffIDs of the image's layers (kept by `prune`).
    pub layers: Vec<String>,
    pub command: Vec<String>,
    /// The Entrypoint part of `command` (the rest is Cmd), as resolved
    /// when it was created (`inspect`'s Config.Entrypoint and Cmd).
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// The user as asked: `-u` as given, else the image's User, else ""
    /// (`inspect`'s Config.User).
    #[serde(default)]
    pub user: String,
    pub profile: String,
    /// RFC 3339.
    pub created: String,
    pub status: Status,
    /// The hutch process serving the container, while it runs.
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub finished: Option<String>,
    /// Published ports as bound (`127.0.0.1:41234->8080/tcp`).
    #[serde(default)]
    pub ports: Vec<String>,
    /// When the command started (RFC 3339).
    #[serde(default)]
    pub started: Option<String>,
    /// Served by a keeper process (`run -d`), with its output in ctr.log.
    #[serde(default)]
    pub detached: bool,
    /// Named volumes it mounts (kept from `volume rm` while it exists).
    #[serde(default)]
    pub volumes: Vec<String>,
    /// `run --restart`, kept by its keeper.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// How often its keeper started it again since it was last started
    /// by `run` or `start`.
    #[serde(default)]
    pub restart_count: u32,
    /// `hutch stop` or `kill` was asked for since it was last started
    /// (written before the signal is sent): its keeper does not restart it.
    #[serde(default)]
    pub stopped_by_user: bool,
}

/// A container as `ps` shows it: its state, corrected by whether anyone
/// still holds its lock.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub state: ContainerState,
    pub alive: bool,
}

impl ContainerInfo {
    /// Its lock is held by something that does not serve it: no process
    /// is recorded and the record does not say running (a keeper waiting
    /// to restart it is recorded as its `pid`).
    pub fn busy(&self) -> bool {
        self.alive && self.state.pid.is_none() && self.state.status != Status::Running
    }

    /// The state in one word: `running`, `exited`, `created`, or
    /// `killed` (the hutch serving it died while it ran, so there is no
    /// exit code).
    pub fn state_word(&self) -> &'static str {
        match (self.state.status, self.alive) {
            // Locked by a `hutch cp` or `export` of a stopped container
            // (or a `start` that has not handed it over yet): not running.
            (Status::Created, true) if self.busy() => "created",
            (Status::Exited, true) if self.busy() => "exited",
            (_, true) => "running",
            (Status::Running, false) => "killed",
            (Status::Created, false) => "created",
            (Status::Exited, false) => "exited",
        }
    }

    /// The STATUS column as Podman writes it: `Up 3 minutes`, `Exited (0)
    /// 2 seconds ago`, `Created`, `Killed`.
    pub fn status_text(&self) -> String {
        match self.state_word() {
            // Served by its keeper, which waits to start it again.
            "running" if self.state.status == Status::Exited => format!(
                "Restarting ({}) {} ago",
                self.state.exit_code.unwrap_or(-1),
                human_duration_since(self.state.finished.as_deref())
            ),
            "running" => format!(
                "Up {}",
                human_duration_since(self.state.started.as_deref().or(Some(&self.state.created)))
            ),
            "exited" => {
                let code = self
                    .state
                    .exit_code
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                format!(
                    "Exited{code} {} ago",
                    human_duration_since(self.state.finished.as_deref())
                )
            }
            "killed" => "Killed".into(),
            _ => "Created".into(),
        }
    }
}

/// `ps --filter KEY=VALUE`, as Podman: filters with the same key are
/// alternatives, filters with different keys must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFilter {
    /// (key, value): `status` (created, running, exited, killed), `name`
    /// (a substring), `id` (a prefix), `ancestor` (the image as named).
    terms: Vec<(String, String)>,
}

impl ContainerFilter {
    const KEYS: [&'static str; 4] = ["status", "name", "id", "ancestor"];

    /// Parse `KEY=VALUE` filters.
    pub fn parse(filters: &[String]) -> Result<ContainerFilter> {
        let mut terms = Vec::new();
        for f in filters {
            let Some((k, v)) = f.split_once('=') else {
                anyhow::bail!(
                    "--filter {f:?}: write KEY=VALUE, with KEY one of {}",
                    Self::KEYS.join(", ")
                );
            };
            if !Self::KEYS.contains(&k) {
                anyhow::bail!(
                    "--filter {f:?}: unknown key {k:?}; use one of {}",
                    Self::KEYS.join(", ")
                );
            }
            if k == "status" && !["created", "running", "exited", "killed"].contains(&v) {
                anyhow::bail!("--filter {f:?}: a status is created, running, exited or killed");
            }
            terms.push((k.to_string(), v.to_string()));
        }
        Ok(ContainerFilter { terms })
    }

    /// Whether `c` passes every key's filters.
    pub fn matches(&self, c: &ContainerInfo) -> bool {
        Self::KEYS.iter().all(|key| {
            let mut values = self
                .terms
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .peekable();
            if values.peek().is_none() {
                return true;
            }
            values.any(|v| match *key {
                "status" => c.state_word() == v,
                "name" => c.state.name.contains(v),
                "id" => c.state.id.starts_with(v),
                _ => c.state.image == v,
            })
        })
    }
}

/// The lock a running container holds; dropping it marks it stopped.
#[derive(Debug)]
pub struct RunningLock {
    _file: File,
}

impl RunningLock {
    /// A descriptor of the same lock that a child process inherits (not
    /// close-on-exec): handed to a keeper, so the container is never
    /// unlocked between `run -d` and its keeper, whichever of them dies.
    pub fn inheritable(&self) -> Result<std::os::fd::OwnedFd> {
        rustix::io::dup(&self._file)
            .map_err(std::io::Error::from)
            .context("passing the running lock on")
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A fresh random container ID (64 hex digits).
pub fn new_id() -> Result<String> {
    let mut b = [0u8; 32];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty())
        .map_err(std::io::Error::from)
        .context("reading random bytes for a container ID")?;
    Ok(hex::encode(b))
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lively",
    "lucky", "merry", "nimble", "proud", "quick", "quiet", "sharp", "snug", "swift", "witty",
];
const ANIMALS: &[&str] = &[
    "badger", "beaver", "bunny", "ferret", "fox", "gopher", "hamster", "hare", "hedgehog",
    "lemming", "marmot", "mole", "otter", "pika", "rabbit", "squirrel", "stoat", "vole", "weasel",
    "wombat",
];

/// A readable name from the ID's bytes (`quick_otter`), with a suffix when
/// taken.
fn generated_name(id: &str, taken: &dyn Fn(&str) -> bool) -> String {
    let b = hex::decode(id.get(..8).unwrap_or("00000000")).unwrap_or_else(|_| vec![0; 4]);
    let base = format!(
        "{}_{}",
        ADJECTIVES[b[0] as usize % ADJECTIVES.len()],
        ANIMALS[b[1] as usize % ANIMALS.len()]
    );
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}{n}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

/// Container (and volume) names: letters, digits, `_.-`, starting with
/// a letter or digit, at most 128.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 128
}

impl Store {
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    fn container_lock(&self) -> Result<super::StoreLock> {
        super::StoreLock::exclusive(&self.lock_path("containers"))
    }

    /// Every container, newest first.
    pub fn list_containers(&self) -> Result<Vec<ContainerInfo>> {
        let dir = self.containers_dir();
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for e in entries {
            let e = e.with_context(|| format!("listing {}", dir.display()))?;
            let path = e.path().join("state.json");
            // A directory without a state file is a container being created
            // or removed: not listed.
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let state: ContainerState = serde_json::from_slice(&bytes).with_context(|| {
                format!("reading {}: not a container state file", path.display())
            })?;
            let alive = is_locked(&e.path().join("running.lock"));
            out.push(ContainerInfo { state, alive });
        }
        out.sort_by(|a, b| b.state.created.cmp(&a.state.created));
        Ok(out)
    }

    /// A container by full ID, unique ID prefix or name.
    pub fn find_container(&self, key: &str) -> Result<ContainerInfo> {
        match self.lookup_container(key)? {
            Some(c) => Ok(c),
            None => Err(ContainerError::NotFound { key: key.into() }.into()),
        }
    }

    /// Like [`find_container`](Self::find_container), with `None` when no
    /// container matches (an ID prefix matching several is an error).
    pub fn lookup_container(&self, key: &str) -> Result<Option<ContainerInfo>> {
        let all = self.list_containers()?;
        if let Some(c) = all
            .iter()
            .find(|c| c.state.name == key || c.state.id == key)
        {
            return Ok(Some(c.clone()));
        }
        let hits: Vec<_> = all
            .iter()
            .filter(|c| key.len() >= 3 && c.state.id.starts_with(key))
            .collect();
        match hits.len() {
            0 => Ok(None),
            1 => Ok(Some(hits[0].clone())),
            count => Err(ContainerError::Ambiguous {
                key: key.into(),
                count,
            }
            .into()),
        }
    }

    /// Make a new container's directory and state (status `created`) and
    /// take its running lock. `name`: the user's, or generated; `fill`
    /// gets the final name and returns the state (if it fails, the
    /// directory is removed again).
    pub fn create_container(
        &self,
        id: &str,
        name: Option<&str>,
        fill: impl FnOnce(&str) -> Result<ContainerState>,
    ) -> Result<(ContainerState, RunningLock)> {
        let _guard = self.container_lock()?;
        let existing = self.list_containers()?;
        let taken = |n: &str| existing.iter().any(|c| c.state.name == n);
        let name = match name {
            Some(n) => {
                if !valid_name(n) {
                    return Err(ContainerError::BadName { name: n.into() }.into());
                }
                if taken(n) {
                    return Err(ContainerError::NameInUse { name: n.into() }.into());
                }
                n.to_string()
            }
            None => generated_name(id, &taken),
        };
        let dir = self.container_dir(id);
        for sub in ["upper", "work", "rootfs", "etc"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let made = lock_running(&dir.join("running.lock")).and_then(|lock| {
            let state = fill(&name)?;
            self.save_container(&state)?;
            Ok((state, lock))
        });
        if made.is_err() {
            let _ = remove_tree(&dir);
        }
        made
    }

    /// `hutch rename`: give container `key` the name `new`, running or
    /// not (the record is rewritten atomically; the name is unique).
    pub fn rename_container(&self, key: &str, new: &str) -> Result<ContainerState> {
        if !valid_name(new) {
            return Err(ContainerError::BadName { name: new.into() }.into());
        }
        let _guard = self.container_lock()?;
        let c = self.find_container(key)?;
        if c.state.name == new {
            return Ok(c.state);
        }
        if self.list_containers()?.iter().any(|o| o.state.name == new) {
            return Err(ContainerError::NameInUse { name: new.into() }.into());
        }
        // Re-read under the lock: the keeper may have written it since.
        let mut st = self.read_container(&c.state.id)?;
        st.name = new.to_string();
        self.save_container(&st)?;
        Ok(st)
    }

    /// Take the running lock of container `id`, waiting while another
    /// process (the `hutch run -d` handing it to a keeper) still holds it.
    pub fn take_running_lock(&self, id: &str) -> Result<RunningLock> {
        let path = self.container_dir(id).join("running.lock");
        let file = File::options()
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(RunningLock { _file: file })
    }

    /// The running lock of container `id` as inherited from the process
    /// that started this one (see [`RunningLock::inheritable`]); checked
    /// to be that container's lock file, and made close-on-exec again.
    pub fn adopt_running_lock(&self, id: &str, fd: std::os::fd::OwnedFd) -> Result<RunningLock> {
        let path = self.container_dir(id).join("running.lock");
        let ours =
            rustix::fs::stat(&path).with_context(|| format!("reading {}", path.display()))?;
        let given = rustix::fs::fstat(&fd).context("reading the inherited running lock")?;
        if (ours.st_dev, ours.st_ino) != (given.st_dev, given.st_ino) {
            anyhow::bail!(
                "the descriptor given as the running lock is not {}",
                path.display()
            );
        }
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
            .map_err(std::io::Error::from)
            .context("marking the running lock close-on-exec")?;
        let file = File::from(fd);
        // The same open file: already locked by it, unless the caller
        // passed a copy it never locked.
        match file.try_lock() {
            Ok(()) => Ok(RunningLock { _file: file }),
            Err(e) => {
                Err(anyhow::anyhow!("{e}")).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// Take the running lock of container `id` if nobody holds it (None:
    /// it runs, or another `start` is starting it).
    pub fn try_running_lock(&self, id: &str) -> Result<Option<RunningLock>> {
        let path = self.container_dir(id).join("running.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RunningLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// Whether some process still serves container `id`.
    pub fn container_alive(&self, id: &str) -> bool {
        is_locked(&self.container_dir(id).join("running.lock"))
    }

    /// Wait until no process serves container `id`, up to `timeout`;
    /// whether it stopped.
    pub fn wait_stopped(&self, id: &str, timeout: Option<std::time::Duration>) -> bool {
        let t0 = std::time::Instant::now();
        while self.container_alive(id) {
            if timeout.is_some_and(|t| t0.elapsed() >= t) {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }

    /// The state of container `id` as recorded (no lock check).
    pub fn read_container(&self, id: &str) -> Result<ContainerState> {
        let path = self.container_dir(id).join("state.json");
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("decoding {}", path.display()))
    }

    /// Change container `id`'s record with `change`, under the containers
    /// lock, from what is on disk now (so that a `rename` meanwhile, or
    /// another writer, is not undone by a stale copy).
    pub fn update_container(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerState),
    ) -> Result<ContainerState> {
        let _guard = self.container_lock()?;
        let mut st = self.read_container(id)?;
        change(&mut st);
        self.save_container(&st)?;
        Ok(st)
    }

    pub fn save_container(&self, state: &ContainerState) -> Result<()> {
        let path = self.container_dir(&state.id).join("state.json");
        let bytes = serde_json::to_vec_pretty(state).context("encoding a container state")?;
        write_replace_nosync(&path, &bytes)
    }

    /// Remove a stopped container; with `force`, stop a running one first
    /// (SIGKILL to the hutch process that serves it).
    pub fn remove_container(&self, key: &str, force: bool) -> Result<ContainerState> {
        let c = self.find_container(key)?;
        let dir = self.container_dir(&c.state.id);
        if c.alive {
            if !force {
                return Err(ContainerError::Running {
                    name: c.state.name.clone(),
                }
                .into());
            }
            if let Some(pid) = c.state.pid {
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::from_raw(pid).context("bad pid in state")?,
                    rustix::process::Signal::KILL,
                );
            }
            // Wait (up to 10 s) for the lock to be released.
            let lock = dir.join("running.lock");
            let t0 = std::time::Instant::now();
            while is_locked(&lock) {
                if t0.elapsed() > std::time::Duration::from_secs(10) {
                    return Err(ContainerError::DidNotStop {
                        name: c.state.name.clone(),
                    }
                    .into());
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _guard = self.container_lock()?;
        // Rename first so a crash midway leaves no half container listed.
        let doomed = self.tmp_path("container");
        std::fs::rename(&dir, &doomed).with_context(|| format!("removing {}", dir.display()))?;
        drop(_guard);
        remove_tree(&doomed).with_context(|| {
            format!(
                "container {} is removed, but not all of its files (`hutch prune` tries again)",
                c.state.name
            )
        })?;
        Ok(c.state)
    }

    /// DiffIDs of the layers of every container's image (kept by gc).
    pub fn container_layers(&self) -> Result<Vec<String>> {
        Ok(self
            .list_containers()?
            .into_iter()
            .flat_map(|c| c.state.layers)
            .collect())
    }
}

fn lock_running(path: &Path) -> Result<RunningLock> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.try_lock()
        .map_err(|e| anyhow::anyhow!("locking {}: {e}", path.display()))?;
    Ok(RunningLock { _file: file })
}

/// Whether some process holds the lock at `path`.
fn is_locked(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_podman() {
        let info = |name: &str, status: Status, image: &str| ContainerInfo {
            state: ContainerState {
                id: format!("ab{name}"),
                name: name.into(),
                image: image.into(),
                image_id: String::new(),
                layers: Vec::new(),
                command: Vec::new(),
                entrypoint: Vec::new(),
                user: String::new(),
                profile: "default".into(),
                created: now_rfc3339(),
                status,
                pid: None,
                exit_code: None,
                finished: None,
                ports: Vec::new(),
                volumes: Vec::new(),
                started: None,
                detached: false,
                restart_policy: RestartPolicy::No,
                restart_count: 0,
                stopped_by_user: false,
            },
            alive: false,
        };
        let web = info("web", Status::Exited, "busybox");
        let db = info("db", Status::Created, "debian");
        let f = |args: &[&str]| {
            ContainerFilter::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>()).unwrap()
        };
        assert!(f(&[]).matches(&web));
        assert!(f(&["status=exited"]).matches(&web) && !f(&["status=exited"]).matches(&db));
        // Same key: either; different keys: both.
        assert!(f(&["name=we", "name=db"]).matches(&db));
        assert!(!f(&["name=web", "ancestor=debian"]).matches(&web));
        assert!(f(&["id=abw", "ancestor=busybox"]).matches(&web));
        for bad in ["status", "colour=red", "status=paused"] {
            assert!(ContainerFilter::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn restart_policies_as_podman_writes_them() {
        for (text, want) in [
            ("no", RestartPolicy::No),
            ("on-failure", RestartPolicy::OnFailure { max: None }),
            ("on-failure:3", RestartPolicy::OnFailure { max: Some(3) }),
            ("always", RestartPolicy::Always),
            ("unless-stopped", RestartPolicy::UnlessStopped),
        ] {
            let p: RestartPolicy = text.parse().unwrap();
            assert_eq!(p, want);
            assert_eq!(p.to_string(), text);
        }
        for bad in [
            "sometimes",
            "always:3",
            "on-failure:x",
            "on-failure:-1",
            "no:1",
        ] {
            let e = bad.parse::<RestartPolicy>().unwrap_err().to_string();
            assert!(e.contains("--restart"), "{bad}: {e}");
        }
        let on3 = RestartPolicy::OnFailure { max: Some(3) };
        assert!(on3.restarts(Some(1), 2) && on3.restarts(None, 0));
        assert!(!on3.restarts(Some(1), 3) && !on3.restarts(Some(0), 0));
        assert!(RestartPolicy::Always.restarts(Some(0), 1000));
        assert!(!RestartPolicy::No.restarts(Some(1), 0));
    }

    #[test]
    fn names() {
        assert!(valid_name("web-1") && valid_name("a") && valid_name("x.y_z"));
        assert!(!valid_name("") && !valid_name("-x") && !valid_name("a/b") && !valid_name("a b"));
        let id = "00010000";
        let n = generated_name(id, &|_| false);
        assert_eq!(n, "brave_beaver");
        let n2 = generated_name(id, &|n| n == "brave_beaver");
        assert_eq!(n2, "brave_beaver2");
    }

    #[test]
    fn create_list_find_remove() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path().join("s")).unwrap();
        let id = new_id().unwrap();
        let fill = |name: &str| -> Result<ContainerState> {
            Ok(ContainerState {
                id: id.clone(),
                name: name.to_string(),
                image: "busybox".into(),
                image_id: "sha256:00".into(),
                layers: vec!["sha256:aa".into()],
                command: vec!["true".into()],
                entrypoint: Vec::new(),
                user: String::new(),
                profile: "default".into(),
                created: now_rfc3339(),
                status: Status::Created,
                pid: None,
                exit_code: None,
                finished: None,
                ports: Vec::new(),
                started: None,
                detached: false,
                volumes: Vec::new(),
                restart_policy: RestartPolicy::No,
                restart_count: 0,
                stopped_by_user: false,
            })
        };
        let (st, lock) = store.create_container(&id, Some("one"), fill).unwrap();
        assert_eq!(st.name, "one");
        let c = store.find_container("one").unwrap();
        assert!(c.alive, "the running lock is held");
        assert!(store.find_container(&id[..6]).is_ok());
        let kind = |e: anyhow::Error| e.downcast_ref::<ContainerError>().cloned();
        assert_eq!(
            store
                .create_container(&new_id().unwrap(), Some("one"), |_| unreachable!())
                .map_err(kind)
                .unwrap_err(),
            Some(ContainerError::NameInUse { name: "one".into() })
        );
        assert_eq!(
            store
                .create_container(&new_id().unwrap(), Some("-x"), |_| unreachable!())
                .map_err(kind)
                .unwrap_err(),
            Some(ContainerError::BadName { name: "-x".into() })
        );
        assert_eq!(
            store
                .remove_container("one", false)
                .map_err(kind)
                .unwrap_err(),
            Some(ContainerError::Running { name: "one".into() })
        );
        // A failing fill leaves no directory behind.
        let id2 = new_id().unwrap();
        assert!(
            store
                .create_container(&id2, Some("two"), |_| anyhow::bail!("no"))
                .is_err()
        );
        assert!(!store.container_dir(&id2).exists());
        drop(lock);
        // A child another test forks meanwhile holds a copy of the lock's
        // descriptor until it exits (flock follows the open file): wait.
        assert!(store.wait_stopped(&id, Some(std::time::Duration::from_secs(10))));
        let c = store.find_container("one").unwrap();
        assert!(!c.alive);
        assert_eq!(c.status_text(), "Created");
        std::fs::create_dir_all(store.container_dir(&id).join("upper/locked/inner")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            store.container_dir(&id).join("upper/locked"),
            std::fs::Permissions::from_mode(0o000),
        )
        .unwrap();
        // rename: checked, unique, and what find sees.
        assert_eq!(
            store
                .rename_container("one", "a b")
                .map_err(kind)
                .unwrap_err(),
            Some(ContainerError::BadName { name: "a b".into() })
        );
        assert_eq!(store.rename_container("one", "uno").unwrap().name, "uno");
        assert_eq!(store.find_container("uno").unwrap().state.id, id);
        assert!(store.find_container("one").is_err());
        store.remove_container("uno", false).unwrap();
        assert!(!store.container_dir(&id).exists());
        assert_eq!(
            store.find_container("uno").map_err(kind).unwrap_err(),
            Some(ContainerError::NotFound { key: "uno".into() })
        );
    }
}
