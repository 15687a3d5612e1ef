//! cgroup v2 limits (memory, pids, cpu) for a rootless container.
//!
//! An unprivileged user can only create cgroups inside a subtree that was
//! delegated to it: with systemd, the user's own manager
//! (`user@UID.service`) and the units it starts with `Delegate=yes`. hutch
//! looks up its own cgroup (`/proc/self/cgroup`), checks that it may
//! write there and that the needed controllers are available, enables
//! them for the children, and creates a leaf `hutch-<name>` with the
//! limits. cgroup v2 allows processes only in leaves once controllers are
//! enabled, so when hutch's own cgroup holds hutch alone, hutch first
//! moves itself into a leaf `hutch-supervisor` beside it.
//!
//! The usual way to get such a cgroup is to start hutch in a scope of its
//! own: `systemd-run --user --scope -p Delegate=yes hutch run ...`.
//!
//! Everything here runs in the parent (it allocates and writes files):
//! [`create`] before fork, [`CgroupHandle::add_pid`] once the child
//! exists (before it execs), and dropping the handle after the container
//! is gone removes the leaf.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the unified hierarchy is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Period of `cpu.max`, in microseconds (the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// The smallest quota the kernel accepts, in microseconds.
const CPU_MIN_QUOTA_US: u64 = 1_000;

/// Name of the leaf hutch moves itself into when its cgroup must become
/// an inner node.
const SUPERVISOR_LEAF: &str = "hutch-supervisor";

const HOW_TO: &str = "start hutch in a delegated cgroup of its own from a systemd user session, \
                      e.g. `systemd-run --user --scope -p Delegate=yes hutch run ...`, or run \
                      with a profile that sets no memory/pids/cpus [limits]";

/// Limits for the container's cgroup; `None` leaves a resource alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupLimits {
    /// `memory.max`, in bytes.
    pub memory: Option<u64>,
    /// `pids.max`: processes and threads of the container.
    pub pids: Option<u64>,
    /// `cpu.max` as a number of CPUs (1.5 = one and a half).
    pub cpus: Option<f64>,
}

impl CgroupLimits {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.pids.is_none() && self.cpus.is_none()
    }

    /// The controllers these limits need, in the order they are enabled.
    pub fn controllers(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if self.cpus.is_some() {
            c.push("cpu");
        }
        if self.memory.is_some() {
            c.push("memory");
        }
        if self.pids.is_some() {
            c.push("pids");
        }
        c
    }
}

/// Why no cgroup could be set up (each message says what to do).
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "cgroup limits need the unified cgroup v2 hierarchy, and this system uses cgroup v1 \
         ({reason}); boot with systemd.unified_cgroup_hierarchy=1 (the default of current \
         distributions), or run with a profile that sets no memory/pids/cpus [limits]"
    )]
    NotV2 { reason: String },
    #[error(
        "cgroup limits need a cgroup delegated to you, and {dir} (hutch's cgroup) is not \
         writable by you; {HOW_TO}"
    )]
    NotDelegated { dir: PathBuf },
    #[error(
        "cgroup controller {controller} is not delegated to {dir} (available: {available}); \
         systemd delegates cpu, memory and pids to user sessions only when configured: add \
         `Delegate=cpu cpuset io memory pids` in a drop-in for user@.service, or run without \
         the limit that needs {controller}"
    )]
    ControllerMissing {
        controller: String,
        dir: PathBuf,
        available: String,
    },
    #[error(
        "cgroup {dir} also holds other processes ({pids}), so hutch cannot create cgroups \
         with limits below it; {HOW_TO}"
    )]
    Shared { dir: PathBuf, pids: String },
    #[error("invalid cgroup limit: {0}")]
    InvalidLimit(String),
}

/// The cgroup v2 path in the contents of `/proc/<pid>/cgroup` (the
/// `0::/path` line), or `None` when there is none (pure cgroup v1).
pub fn parse_proc_cgroup(content: &str) -> Option<&str> {
    content.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("0"), Some(""), Some(path)) if path.starts_with('/') => Some(path),
            _ => None,
        }
    })
}

/// `cpu.max` contents for a number of CPUs: quota and period in µs.
pub fn cpu_max(cpus: f64) -> Result<String, CgroupError> {
    if !cpus.is_finite() || cpus <= 0.0 {
        return Err(CgroupError::InvalidLimit(format!(
            "cpus must be a positive number, not {cpus}"
        )));
    }
    let quota = (cpus * CPU_PERIOD_US as f64).round();
    if quota > u64::MAX as f64 / 2.0 {
        return Err(CgroupError::InvalidLimit(format!(
            "cpus {cpus} is too large"
        )));
    }
    let quota = (quota as u64).max(CPU_MIN_QUOTA_US);
    Ok(format!("{quota} {CPU_PERIOD_US}"))
}

fn validate(limits: &CgroupLimits) -> Result<(), CgroupError> {
    if let Some(cpus) = limits.cpus {
        cpu_max(cpus)?;
    }
    if limits.memory == Some(0) {
        return Err(CgroupError::InvalidLimit(
            "memory must be above 0 bytes".into(),
        ));
    }
    if limits.pids == Some(0) {
        return Err(CgroupError::InvalidLimit(
            "pids must be at least 1 (the container's first process)".into(),
        ));
    }
    Ok(())
}

/// A name usable as one path component: `[A-Za-z0-9_.-]`, others
/// replaced by `_`, never `.` or `..`.
fn leaf_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("hutch-{clean}")
}

/// Whether the calling process may write `path` (access(2), which
/// answers for the real uid, as the kernel's cgroup checks do).
fn writable(path: &Path) -> bool {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_ok()
}

fn read_trimmed(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .with_context(|| format!("reading {}", path.display()))
}

/// Create the container's cgroup with `limits`, below hutch's own
/// cgroup. `Ok(None)` when no limit is asked for. The errors that mean
/// "no usable cgroup" are [`CgroupError`]s.
pub fn create(name: &str, limits: &CgroupLimits) -> Result<Option<CgroupHandle>> {
    if limits.is_empty() {
        return Ok(None);
    }
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .context("reading /proc/self/cgroup to find hutch's cgroup")?;
    create_in(
        Path::new(CGROUP_ROOT),
        &own,
        std::process::id(),
        name,
        limits,
        &writable,
    )
}

/// [`create`] with its inputs spelled out (for tests): the hierarchy's
/// mount point, the contents of `/proc/self/cgroup`, our pid, and the
/// writability check.
fn create_in(
    root: &Path,
    proc_self_cgroup: &str,
    self_pid: u32,
    name: &str,
    limits: &CgroupLimits,
    writable: &dyn Fn(&Path) -> bool,
) -> Result<Option<CgroupHandle>> {
    if limits.is_empty() {
        return Ok(None);
    }
    let dir = usable_dir(root, proc_self_cgroup, limits, writable)?;
    let needed = limits.controllers();
    enable_controllers(&dir, &needed, self_pid)?;
    let leaf = dir.join(leaf_name(name));
    make_leaf(&leaf)?;
    let handle = CgroupHandle { path: leaf };
    handle.write_limits(limits)?;
    Ok(Some(handle))
}

/// Whether [`create`] can work, without changing anything (for
/// `--dry-run`): the checks it makes before it writes. `Ok` does not
/// promise success (hutch's cgroup may still hold other processes).
pub fn probe(limits: &CgroupLimits) -> Result<()> {
    if limits.is_empty() {
        return Ok(());
    }
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .context("reading /proc/self/cgroup to find hutch's cgroup")?;
    usable_dir(Path::new(CGROUP_ROOT), &own, limits, &writable).map(|_| ())
}

/// hutch's own cgroup directory, checked: cgroup v2, writable, with the
/// controllers `limits` need.
fn usable_dir(
    root: &Path,
    proc_self_cgroup: &str,
    limits: &CgroupLimits,
    writable: &dyn Fn(&Path) -> bool,
) -> Result<PathBuf> {
    validate(limits)?;
    let Some(own) = parse_proc_cgroup(proc_self_cgroup) else {
        return Err(CgroupError::NotV2 {
            reason: "/proc/self/cgroup has no cgroup v2 entry".into(),
        }
        .into());
    };
    if !root.join("cgroup.controllers").exists() {
        return Err(CgroupError::NotV2 {
            reason: format!("{} is not a cgroup v2 mount", root.display()),
        }
        .into());
    }
    let dir = root.join(own.trim_start_matches('/'));
    for f in ["", "cgroup.procs", "cgroup.subtree_control"] {
        let p = if f.is_empty() {
            dir.clone()
        } else {
            dir.join(f)
        };
        if !writable(&p) {
            return Err(CgroupError::NotDelegated { dir }.into());
        }
    }
    let available = read_trimmed(&dir.join("cgroup.controllers"))?;
    let needed = limits.controllers();
    for c in &needed {
        if !available.split_whitespace().any(|a| a == *c) {
            return Err(CgroupError::ControllerMissing {
                controller: (*c).to_string(),
                dir,
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available
                },
            }
            .into());
        }
    }
    Ok(dir)
}

/// Enable `needed` in `dir`'s `cgroup.subtree_control`; when `dir` holds
/// processes (the kernel answers EBUSY), move hutch into a leaf first,
/// provided hutch is alone there.
fn enable_controllers(dir: &Path, needed: &[&str], self_pid: u32) -> Result<()> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = read_trimmed(&control)?;
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let line = missing
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    match std::fs::write(&control, &line) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "enabling the {} controllers in {}",
                    missing.join(", "),
                    control.display()
                )
            });
        }
    }
    move_self_aside(dir, self_pid)?;
    std::fs::write(&control, &line).with_context(|| {
        format!(
            "enabling the {} controllers in {} (after moving hutch into {SUPERVISOR_LEAF})",
            missing.join(", "),
            control.display()
        )
    })
}

/// Move hutch from `dir` into `dir/hutch-supervisor`, if no other
/// process lives in `dir`.
fn move_self_aside(dir: &Path, self_pid: u32) -> Result<()> {
    let procs = read_trimmed(&dir.join("cgroup.procs"))?;
    let others: Vec<&str> = procs
        .split_whitespace()
        .filter(|p| p.parse::<u32>().ok() != Some(self_pid))
        .collect();
    if !others.is_empty() {
        let mut pids = others
            .iter()
            .take(8)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        if others.len() > 8 {
            pids.push_str(", ...");
        }
        return Err(CgroupError::Shared {
            dir: dir.to_path_buf(),
            pids,
        }
        .into());
    }
    let leaf = dir.join(SUPERVISOR_LEAF);
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e).with_context(|| format!("creating cgroup {}", leaf.display()));
        }
    }
    std::fs::write(leaf.join("cgroup.procs"), format!("{self_pid}\n"))
        .with_context(|| format!("moving hutch into cgroup {}", leaf.display()))
}

/// Create the container's leaf; a leftover empty one (from a killed
/// hutch) is replaced.
fn make_leaf(leaf: &Path) -> Result<()> {
    match std::fs::create_dir(leaf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            std::fs::remove_dir(leaf).with_context(|| {
                format!(
                    "cgroup {} already exists and is in use: is a container of that name \
                     still running? (`hutch ps`)",
                    leaf.display()
                )
            })?;
            std::fs::create_dir(leaf).with_context(|| format!("creating cgroup {}", leaf.display()))
        }
        Err(e) => Err(e).with_context(|| format!("creating cgroup {}", leaf.display())),
    }
}

/// The container's cgroup. Dropping it removes the cgroup (killing what
/// is left in it).
#[derive(Debug)]
pub struct CgroupHandle {
    path: PathBuf,
}

impl CgroupHandle {
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_limits(&self, limits: &CgroupLimits) -> Result<()> {
        let mut files: Vec<(&str, String)> = Vec::new();
        if let Some(m) = limits.memory {
            files.push(("memory.max", m.to_string()));
        }
        if let Some(p) = limits.pids {
            files.push(("pids.max", p.to_string()));
        }
        if let Some(c) = limits.cpus {
            files.push(("cpu.max", cpu_max(c)?));
        }
        for (file, value) in files {
            let path = self.path.join(file);
            std::fs::write(&path, &value)
                .with_context(|| format!("setting {} to {value}", path.display()))?;
        }
        Ok(())
    }
}

impl Drop for CgroupHandle {
    fn drop(&mut self) {
        if let Err(e) = remove_cgroup(&self.path) {
            tracing::debug!("{e:#}");
        }
    }
}

fn remove_cgroup(path: &Path) -> Result<()> {
    let busy = match std::fs::remove_dir(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => e,
        Err(e) => return Err(e).with_context(|| format!("removing cgroup {}", path.display())),
    };
    let kill = path.join("cgroup.kill");
    if !kill.exists() || std::fs::write(&kill, "1").is_err() {
        return Err(busy).with_context(|| {
            format!(
                "removing cgroup {}: processes are still in it",
                path.display()
            )
        });
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "removing cgroup {} after killing its processes",
                        path.display()
                    )
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/x/y\n1:cpu:/\n0::/\n";
    const V1: &str = "12:pids:/user.slice\n1:name=systemd:/user.slice/session-2.scope\n";
    const SCOPE: &str = "/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope";

    #[test]
    fn proc_self_cgroup_parsing() {
        assert_eq!(parse_proc_cgroup(&format!("0::{SCOPE}\n")), Some(SCOPE));
        assert_eq!(parse_proc_cgroup(HYBRID), Some("/"));
        assert_eq!(parse_proc_cgroup(V1), None);
        assert_eq!(parse_proc_cgroup(""), None);
        assert_eq!(parse_proc_cgroup("0::/a:b/c\n"), Some("/a:b/c"));
        assert_eq!(parse_proc_cgroup("0:cpu:/x\n"), None);
    }

    #[test]
    fn cpu_max_formatting() {
        assert_eq!(cpu_max(1.5).unwrap(), "150000 100000");
        assert_eq!(cpu_max(1.0).unwrap(), "100000 100000");
        assert_eq!(cpu_max(0.25).unwrap(), "25000 100000");
        assert_eq!(cpu_max(4.0).unwrap(), "400000 100000");
        assert_eq!(cpu_max(0.0001).unwrap(), "1000 100000");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert!(cpu_max(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_and_names() {
        let l = CgroupLimits {
            memory: Some(1 << 30),
            pids: None,
            cpus: Some(2.0),
        };
        assert_eq!(l.controllers(), vec!["cpu", "memory"]);
        assert!(CgroupLimits::default().is_empty());
        assert_eq!(leaf_name("web-1"), "hutch-web-1");
        assert_eq!(leaf_name("../x y"), "hutch-.._x_y");
        assert!(
            validate(&CgroupLimits {
                pids: Some(0),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn no_limits_no_cgroup() {
        assert!(create("x", &CgroupLimits::default()).unwrap().is_none());
    }

    /// A fake cgroup2 tree: root with cgroup.controllers, and hutch's own
    /// cgroup at SCOPE with `controllers` available.
    fn fake_tree(controllers: &str) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cgroup.controllers"), "cpu memory pids io").unwrap();
        let dir = t.path().join(SCOPE.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
        std::fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
        std::fs::write(dir.join("cgroup.procs"), "4242\n").unwrap();
        (t, dir)
    }

    fn limits() -> CgroupLimits {
        CgroupLimits {
            memory: Some(512 << 20),
            pids: Some(100),
            cpus: Some(1.5),
        }
    }

    fn err_of(r: Result<Option<CgroupHandle>>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn not_writable_says_why_and_what_to_do() {
        let (t, dir) = fake_tree("cpu memory pids");
        let r = create_in(
            t.path(),
            &format!("0::{SCOPE}\n"),
            4242,
            "web",
            &limits(),
            &|_| false,
        );
        let e = r.unwrap_err();
        assert!(matches!(
            e.downcast_ref::<CgroupError>(),
            Some(CgroupError::NotDelegated { .. })
        ));
        let msg = format!("{e:#}");
        assert!(msg.contains(&dir.display().to_string()), "{msg}");
        assert!(msg.contains("not writable"), "{msg}");
        assert!(
            msg.contains("systemd-run --user --scope -p Delegate=yes hutch run"),
            "{msg}"
        );
    }

    #[test]
    fn cgroup_v1_is_named() {
        let (t, _) = fake_tree("cpu memory pids");
        let msg = err_of(create_in(t.path(), V1, 1, "web", &limits(), &|_| true));
        assert!(
            msg.contains("cgroup v1") && msg.contains("no cgroup v2 entry"),
            "{msg}"
        );
        let plain = tempfile::tempdir().unwrap();
        let msg = err_of(create_in(
            plain.path(),
            HYBRID,
            1,
            "web",
            &limits(),
            &|_| true,
        ));
        assert!(msg.contains("not a cgroup v2 mount"), "{msg}");
    }

    #[test]
    fn missing_controller_is_named() {
        let (t, _) = fake_tree("cpu pids");
        let msg = err_of(create_in(
            t.path(),
            &format!("0::{SCOPE}\n"),
            4242,
            "web",
            &limits(),
            &|_| true,
        ));
        assert!(msg.contains("controller memory is not delegated"), "{msg}");
        assert!(msg.contains("available: cpu pids"), "{msg}");
    }

    #[test]
    fn creates_the_leaf_with_its_limits() {
        let (t, dir) = fake_tree("cpu memory pids");
        let h = create_in(
            t.path(),
            &format!("0::{SCOPE}\n"),
            4242,
            "web",
            &limits(),
            &|_| true,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.path(), dir.join("hutch-web"));
        let read = |f: &str| std::fs::read_to_string(h.path().join(f)).unwrap();
        assert_eq!(read("memory.max"), (512u64 << 20).to_string());
        assert_eq!(read("pids.max"), "100");
        assert_eq!(read("cpu.max"), "150000 100000");
        assert_eq!(
            std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids"
        );
        // A real cgroupfs removes the interface files with the directory.
        for f in ["memory.max", "pids.max", "cpu.max"] {
            std::fs::remove_file(h.path().join(f)).unwrap();
        }
        let leaf = h.path().to_path_buf();
        drop(h);
        assert!(!leaf.exists(), "dropping the handle removes the cgroup");
    }

    #[test]
    fn other_processes_block_the_move() {
        let (_t, dir) = fake_tree("cpu memory pids");
        std::fs::write(dir.join("cgroup.procs"), "4242\n17\n").unwrap();
        let msg = format!("{:#}", move_self_aside(&dir, 4242).unwrap_err());
        assert!(msg.contains("other processes (17)"), "{msg}");
        assert!(msg.contains("Delegate=yes"), "{msg}");
        std::fs::write(dir.join("cgroup.procs"), "4242\n").unwrap();
        move_self_aside(&dir, 4242).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(SUPERVISOR_LEAF).join("cgroup.procs")).unwrap(),
            "4242\n"
        );
    }
}
