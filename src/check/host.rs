//! Host prerequisite checks behind `hutch check`.
//!
//! Every check looks only at a [`HostView`]: the facts about the host that
//! matter (kernel release, who we are, which sysctl files say what, whether
//! the devices open, what the id-map helpers look like, where our cgroup is).
//! [`HostView::real`] gathers them from the running system; tests build fake
//! views with tempdir-backed files and injected probe results. The checks
//! themselves are pure functions of the view, so each failure mode can be
//! reproduced without root and without touching the host.
//!
//! Each [`Finding`] says what was checked, what was found and, when something
//! is wrong, a `fix`: commands a user can paste, one per line, with short
//! `# Debian/Ubuntu`, `# Fedora`, `# Arch` notes where distributions differ.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{Access, StatVfsMountFlags};

/// Oldest kernel hutch supports: openat2, unprivileged whiteouts (overlay
/// semantics with user xattrs) and friends all arrived by 5.11.
pub const MIN_KERNEL: (u32, u32) = (5, 11);

/// How many subordinate ids hutch wants for a full container mapping
/// (container 1..65536 -> the range).
pub const SUBID_COUNT: u64 = 65536;

/// Cgroup controllers the memory/pids/cpus limits of profiles use.
pub const LIMIT_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// The names of the checks, in the order [`check_host_at`] reports them.
pub const CHECKS: [&str; 7] = [
    "kernel", "userns", "fuse", "tun", "uidmap", "subids", "cgroup",
];

/// Outcome of one check. `Fail` means hutch cannot run containers here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        })
    }
}

/// The result of one check: its name (one of [`CHECKS`]), the verdict, a
/// sentence on what was found, and shell commands that fix it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Finding {
            check,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn bad(check: &'static str, status: Status, detail: impl Into<String>, fix: String) -> Self {
        Finding {
            check,
            status,
            detail: detail.into(),
            fix: Some(fix),
        }
    }
}

/// What happened when we opened a device node `O_RDWR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevAccess {
    /// Opened fine.
    Ok,
    /// No such file.
    Missing,
    /// The node exists but no driver answers (ENODEV/ENXIO): module not loaded.
    NoDriver(String),
    /// EACCES/EPERM: the node's permissions (or a device cgroup) keep us out.
    Denied(String),
    /// Anything else, with the error text.
    Error(String),
}

impl DevAccess {
    /// Opens `path` read-write and closes it again at once. Opening
    /// `/dev/fuse` or `/dev/net/tun` without further ioctls has no effect.
    pub fn probe(path: &Path) -> Self {
        match fs::OpenOptions::new().read(true).write(true).open(path) {
            Ok(_) => DevAccess::Ok,
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT) => DevAccess::Missing,
                Some(libc::ENODEV | libc::ENXIO) => DevAccess::NoDriver(e.to_string()),
                Some(libc::EACCES | libc::EPERM) => DevAccess::Denied(e.to_string()),
                _ => DevAccess::Error(e.to_string()),
            },
        }
    }
}

/// Result of actually trying to create a user namespace in a child process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernsProbe {
    /// `unshare(CLONE_NEWUSER)` and then `unshare(CLONE_NEWNS)` inside it worked.
    Works,
    /// The step that failed (`fork`, `unshare(CLONE_NEWUSER)`, ...) and why.
    Failed { step: &'static str, error: String },
}

/// Facts about a `newuidmap`/`newgidmap` binary found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    pub path: PathBuf,
    /// `st_mode` (permission and setuid bits included).
    pub mode: u32,
    /// Owner uid.
    pub owner: u32,
    /// A `security.capability` xattr is present (file capabilities, Fedora/Arch style).
    pub file_caps: bool,
    /// The file lives on a `nosuid` mount, where neither setuid nor file caps apply.
    pub nosuid_mount: bool,
}

impl Helper {
    /// Looks for `name` in `dirs` (first regular file wins) and records its facts.
    pub fn find(name: &str, dirs: &[PathBuf]) -> Option<Helper> {
        use std::os::unix::fs::MetadataExt;
        dirs.iter().map(|d| d.join(name)).find_map(|path| {
            let meta = fs::metadata(&path).ok().filter(|m| m.is_file())?;
            let file_caps = rustix::fs::getxattr_query(&path, "security.capability").is_ok();
            let nosuid_mount = rustix::fs::statvfs(&path)
                .map(|s| s.f_flag.contains(StatVfsMountFlags::NOSUID))
                .unwrap_or(false);
            Some(Helper {
                mode: meta.mode(),
                owner: meta.uid(),
                file_caps,
                nosuid_mount,
                path,
            })
        })
    }

    /// Whether the helper can actually write other ids into a uid/gid map.
    pub fn privileged(&self) -> bool {
        let setuid_root = self.mode & libc::S_ISUID != 0 && self.owner == 0;
        !self.nosuid_mount && (setuid_root || self.file_caps)
    }

    fn describe(&self) -> String {
        let how = if self.nosuid_mount {
            "on a nosuid mount, so its privileges do not apply"
        } else if self.mode & libc::S_ISUID != 0 && self.owner == 0 {
            "setuid root"
        } else if self.file_caps {
            "with file capabilities"
        } else {
            "neither setuid root nor with file capabilities"
        };
        format!("{} ({how})", self.path.display())
    }
}

/// Facts about cgroup v2 and the cgroup this process sits in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CgroupView {
    /// `/sys/fs/cgroup/cgroup.controllers` exists: the unified (v2) hierarchy is mounted there.
    pub unified: bool,
    /// Our cgroup, from the `0::` line of `/proc/self/cgroup`.
    pub own_path: Option<String>,
    /// We may write to our cgroup's directory (so we can create sub-cgroups).
    pub own_writable: bool,
    /// Controllers available in our cgroup (its `cgroup.controllers`).
    pub controllers: Vec<String>,
    /// systemd's delegated `user@UID.service` cgroup exists and is writable by us.
    pub user_service_writable: bool,
}

/// Everything the checks look at. Build it with [`HostView::real`], or by hand in tests.
#[derive(Debug, Clone)]
pub struct HostView {
    /// `uname -r`.
    pub kernel_release: String,
    /// Real uid of this process.
    pub uid: u32,
    /// Login name for `uid`, if the user database knows one.
    pub user_name: Option<String>,
    /// Path of the hutch binary (for the AppArmor profile we suggest).
    pub exe: PathBuf,
    /// Root of the sysctl tree, normally `/proc/sys`.
    pub proc_sys: PathBuf,
    /// Result of actually creating a user namespace.
    pub userns_probe: UsernsProbe,
    /// Opening `/dev/fuse` read-write.
    pub dev_fuse: DevAccess,
    /// Opening `/dev/net/tun` read-write.
    pub dev_net_tun: DevAccess,
    pub newuidmap: Option<Helper>,
    pub newgidmap: Option<Helper>,
    /// Normally `/etc/subuid` and `/etc/subgid`.
    pub subuid_file: PathBuf,
    pub subgid_file: PathBuf,
    pub cgroup: CgroupView,
}

impl HostView {
    /// Gathers the facts from the running system. Forks once (the user
    /// namespace probe) and opens `/dev/fuse` and `/dev/net/tun` briefly;
    /// changes nothing.
    pub fn real() -> Self {
        let uid = rustix::process::getuid().as_raw();
        let exe = std::env::current_exe()
            .ok()
            .map(|p| fs::canonicalize(&p).unwrap_or(p))
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                Path::new(&home).join(".local/bin/hutch")
            });
        let dirs = helper_dirs();
        HostView {
            kernel_release: rustix::system::uname()
                .release()
                .to_string_lossy()
                .into_owned(),
            uid,
            user_name: user_name(uid),
            exe,
            proc_sys: "/proc/sys".into(),
            userns_probe: probe_userns(),
            dev_fuse: DevAccess::probe(Path::new("/dev/fuse")),
            dev_net_tun: DevAccess::probe(Path::new("/dev/net/tun")),
            newuidmap: Helper::find("newuidmap", &dirs),
            newgidmap: Helper::find("newgidmap", &dirs),
            subuid_file: "/etc/subuid".into(),
            subgid_file: "/etc/subgid".into(),
            cgroup: gather_cgroup(Path::new("/sys/fs/cgroup"), uid),
        }
    }

    /// The user's name for commands, or the numeric uid.
    fn user_label(&self) -> String {
        self.user_name
            .clone()
            .unwrap_or_else(|| self.uid.to_string())
    }
}

/// Runs every check on the real host.
pub fn check_host() -> Vec<Finding> {
    check_host_at(&HostView::real())
}

/// Runs every check on `host`, in the order of [`CHECKS`].
pub fn check_host_at(host: &HostView) -> Vec<Finding> {
    vec![
        check_kernel(host),
        check_userns(host),
        check_fuse(host),
        check_tun(host),
        check_uidmap(host),
        check_subids(host),
        check_cgroup(host),
    ]
}

/// True when no check failed (warnings only limit features).
pub fn can_run(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.status != Status::Fail)
}

/// Human-readable report: one line per check, the fix commands indented below it.
pub fn render(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        let tag = match f.status {
            Status::Ok => "[ ok ]",
            Status::Warn => "[warn]",
            Status::Fail => "[FAIL]",
        };
        let _ = writeln!(out, "{tag} {:<width$}  {}", f.check, f.detail);
        if let Some(fix) = &f.fix {
            let pad = " ".repeat(7 + width + 2);
            for (i, line) in fix.lines().enumerate() {
                let lead = if i == 0 { "fix: " } else { "     " };
                let _ = writeln!(out, "{pad}{lead}{line}");
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The checks.

fn check_kernel(h: &HostView) -> Finding {
    const C: &str = "kernel";
    let (want_major, want_minor) = MIN_KERNEL;
    let upgrade = [
        "sudo apt update && sudo apt full-upgrade   # Debian/Ubuntu (Debian stable: a backports kernel)",
        "sudo dnf upgrade --refresh kernel          # Fedora",
        "sudo pacman -Syu                           # Arch",
        "# then reboot into the new kernel",
    ]
    .join("\n");
    match parse_kernel_version(&h.kernel_release) {
        Some(v) if v >= MIN_KERNEL => Finding::ok(
            C,
            format!(
                "Linux {} (hutch needs {want_major}.{want_minor} or newer)",
                h.kernel_release
            ),
        ),
        Some(_) => Finding::bad(
            C,
            Status::Fail,
            format!(
                "Linux {} is older than {want_major}.{want_minor}; hutch needs openat2, \
                 unprivileged whiteouts and user xattrs in overlay semantics",
                h.kernel_release
            ),
            upgrade,
        ),
        None => Finding::bad(
            C,
            Status::Warn,
            format!(
                "could not read a version from kernel release {:?}; hutch needs \
                 {want_major}.{want_minor} or newer",
                h.kernel_release
            ),
            format!("uname -r   # must print {want_major}.{want_minor} or newer"),
        ),
    }
}

fn check_userns(h: &HostView) -> Finding {
    const C: &str = "userns";
    let mut problems: Vec<String> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();

    let max = read_sysctl(&h.proc_sys, "user/max_user_namespaces");
    if max == Some(0) {
        problems.push("user.max_user_namespaces is 0 (user namespaces are disabled)".into());
        fixes.push(sysctl_fix("user.max_user_namespaces", "28633"));
    }
    if read_sysctl(&h.proc_sys, "kernel/unprivileged_userns_clone") == Some(0) {
        problems.push(
            "kernel.unprivileged_userns_clone is 0 (Debian/older Ubuntu switch: \
             only root may create user namespaces)"
                .into(),
        );
        fixes.push(sysctl_fix("kernel.unprivileged_userns_clone", "1"));
    }
    let apparmor = read_sysctl(&h.proc_sys, "kernel/apparmor_restrict_unprivileged_userns")
        .is_some_and(|v| v != 0);
    let probe_ok = h.userns_probe == UsernsProbe::Works;
    if apparmor && !probe_ok {
        problems.push(
            "kernel.apparmor_restrict_unprivileged_userns is 1 (Ubuntu 23.10+) and no \
             AppArmor profile allows this binary to use user namespaces"
                .into(),
        );
        fixes.push(apparmor_fix(&h.exe));
    }
    if let UsernsProbe::Failed { step, error } = &h.userns_probe {
        problems.push(format!("probe: {step} failed: {error}"));
        if fixes.is_empty() {
            if max.is_none() {
                problems.push(
                    "/proc/sys/user/max_user_namespaces is missing: the kernel may lack \
                     CONFIG_USER_NS"
                        .into(),
                );
            }
            fixes.push(
                [
                    "unshare --user --map-root-user true   # reproduce; must succeed as your user",
                    "# inside Docker/Podman/LXC the outer runtime blocks unshare: run hutch on the host,",
                    "# or start the outer container with --security-opt seccomp=unconfined",
                    "# otherwise the kernel needs CONFIG_USER_NS=y (all stock Debian/Ubuntu/Fedora/Arch kernels have it)",
                ]
                .join("\n"),
            );
        }
    }

    let root_note = "running as root: hutch is meant to run as a normal user \
                     (its sandboxes rely on unprivileged user namespaces)";
    if !problems.is_empty() {
        let mut detail = format!(
            "unprivileged user namespaces do not work: {}",
            problems.join("; ")
        );
        if h.uid == 0 {
            detail = format!("{detail}; {root_note}");
        }
        return Finding::bad(C, Status::Fail, detail, fixes.join("\n"));
    }
    if h.uid == 0 {
        return Finding::bad(
            C,
            Status::Warn,
            format!("{root_note}; the probe as root succeeded but proves little for other users"),
            "run hutch as your normal login user, not with sudo or as root".into(),
        );
    }
    let mut detail = String::from(
        "unprivileged user namespaces work (probe: unshare(CLONE_NEWUSER) then CLONE_NEWNS)",
    );
    if let Some(max) = max {
        let _ = write!(detail, "; user.max_user_namespaces={max}");
    }
    if apparmor {
        detail.push_str("; AppArmor restricts user namespaces but allows this binary");
    }
    Finding::ok(C, detail)
}

fn check_fuse(h: &HostView) -> Finding {
    const C: &str = "fuse";
    let install = [
        "sudo modprobe fuse && echo fuse | sudo tee /etc/modules-load.d/fuse.conf",
        "sudo apt install fuse3      # Debian/Ubuntu",
        "sudo dnf install fuse3      # Fedora",
        "sudo pacman -S fuse3        # Arch",
        "# in a container: start it with --device /dev/fuse",
    ];
    let chmod = [
        "sudo chmod 0666 /dev/fuse",
        "echo 'KERNEL==\"fuse\", MODE=\"0666\"' | sudo tee /etc/udev/rules.d/60-hutch-fuse.rules   # keep it after reboot",
    ];
    let why = "hutch serves image layers through its own FUSE overlay";
    match &h.dev_fuse {
        DevAccess::Ok => Finding::ok(C, "/dev/fuse exists and opens read-write"),
        DevAccess::Missing => Finding::bad(
            C,
            Status::Fail,
            format!("/dev/fuse does not exist; {why}"),
            install.join("\n"),
        ),
        DevAccess::NoDriver(e) => Finding::bad(
            C,
            Status::Fail,
            format!(
                "/dev/fuse exists but opening it failed ({e}): the fuse module is not loaded; {why}"
            ),
            install.join("\n"),
        ),
        DevAccess::Denied(e) => Finding::bad(
            C,
            Status::Fail,
            format!("/dev/fuse cannot be opened read-write by this user ({e}); {why}"),
            chmod.join("\n"),
        ),
        DevAccess::Error(e) => Finding::bad(
            C,
            Status::Fail,
            format!("opening /dev/fuse read-write failed: {e}; {why}"),
            [&chmod[..1], &install[..]].concat().join("\n"),
        ),
    }
}

fn check_tun(h: &HostView) -> Finding {
    const C: &str = "tun";
    let why = "the default profile's network (--network slirp, also dev's and install's) \
               needs it; until it is fixed only --network none or --network host work";
    let modprobe = "sudo modprobe tun && echo tun | sudo tee /etc/modules-load.d/tun.conf";
    let chmod = "sudo chmod 0666 /dev/net/tun";
    let (detail, fix) = match &h.dev_net_tun {
        DevAccess::Ok => return Finding::ok(C, "/dev/net/tun exists and opens read-write"),
        DevAccess::Missing => (
            "/dev/net/tun does not exist".to_string(),
            modprobe.to_string(),
        ),
        DevAccess::NoDriver(e) => (
            format!("/dev/net/tun exists but the tun module is not loaded ({e})"),
            modprobe.to_string(),
        ),
        DevAccess::Denied(e) => (
            format!("/dev/net/tun cannot be opened read-write by this user ({e})"),
            chmod.to_string(),
        ),
        DevAccess::Error(e) => (
            format!("opening /dev/net/tun read-write failed: {e}"),
            format!("{modprobe}\n{chmod}"),
        ),
    };
    Finding::bad(
        C,
        Status::Fail,
        format!("{detail}; {why}"),
        format!("{fix}\n# in a container: start it with --device /dev/net/tun"),
    )
}

fn check_uidmap(h: &HostView) -> Finding {
    const C: &str = "uidmap";
    let fallback = "hutch falls back to mapping only container root to your uid \
                    (files of other owners are presented by the overlay)";
    let install = [
        "sudo apt install uidmap            # Debian/Ubuntu",
        "sudo dnf install shadow-utils      # Fedora",
        "sudo pacman -S shadow              # Arch",
    ];
    let helpers = [("newuidmap", &h.newuidmap), ("newgidmap", &h.newgidmap)];
    let missing: Vec<&str> = helpers
        .iter()
        .filter(|(_, x)| x.is_none())
        .map(|(n, _)| *n)
        .collect();
    let weak: Vec<&Helper> = helpers
        .iter()
        .filter_map(|(_, x)| x.as_ref())
        .filter(|x| !x.privileged())
        .collect();
    let found: Vec<String> = helpers
        .iter()
        .filter_map(|(_, x)| x.as_ref().map(Helper::describe))
        .collect();

    if missing.is_empty() && weak.is_empty() {
        return Finding::ok(C, format!("found {}", found.join(" and ")));
    }
    let mut detail = Vec::new();
    let mut fix: Vec<String> = Vec::new();
    if !missing.is_empty() {
        detail.push(format!(
            "{} not found in PATH or /usr/bin",
            missing.join(" and ")
        ));
        fix.extend(install.iter().map(|s| s.to_string()));
    }
    if !weak.is_empty() {
        detail.push(format!(
            "found {} but it cannot map ids",
            weak.iter()
                .map(|w| w.describe())
                .collect::<Vec<_>>()
                .join(" and ")
        ));
        if missing.is_empty() {
            fix.extend(install.iter().map(|s| format!("{s} (reinstall)")));
        }
        for w in &weak {
            let cap = if w.path.ends_with("newgidmap") {
                "cap_setgid"
            } else {
                "cap_setuid"
            };
            let p = sh_quote(&w.path.display().to_string());
            fix.push(format!(
                "sudo setcap {cap}=ep {p}   # or: sudo chown root {p} && sudo chmod u+s {p}"
            ));
        }
        if weak.iter().any(|w| w.nosuid_mount) {
            fix.push(
                "# the file system holding it is mounted nosuid: remount it without nosuid".into(),
            );
        }
    }
    Finding::bad(
        C,
        Status::Warn,
        format!("{}; {fallback}", detail.join("; ")),
        fix.join("\n"),
    )
}

fn check_subids(h: &HostView) -> Finding {
    const C: &str = "subids";
    let uid_entries = read_subids(&h.subuid_file);
    let gid_entries = read_subids(&h.subgid_file);
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for (file, entries) in [
        (&h.subuid_file, &uid_entries),
        (&h.subgid_file, &gid_entries),
    ] {
        let Some(entries) = entries else {
            problems.push(format!(
                "{} does not exist or is unreadable",
                file.display()
            ));
            continue;
        };
        let best = entries
            .iter()
            .filter(|e| self_entry(h, &e.owner))
            .max_by_key(|e| e.count);
        match best {
            Some(e) if e.count >= SUBID_COUNT => found.push(format!(
                "{} {}-{}",
                file.display(),
                e.start,
                e.start + e.count - 1
            )),
            Some(e) => problems.push(format!(
                "{} gives {} only {} ids ({SUBID_COUNT} needed)",
                file.display(),
                h.user_label(),
                e.count
            )),
            None => problems.push(format!(
                "{} has no range for {}",
                file.display(),
                h.user_label()
            )),
        }
    }
    if problems.is_empty() {
        return Finding::ok(C, format!("{} has {}", h.user_label(), found.join(", ")));
    }

    // Suggest a range after every range already handed out, so it cannot overlap.
    let end_of_used = uid_entries
        .iter()
        .chain(gid_entries.iter())
        .flatten()
        .map(|e| e.start + e.count)
        .max()
        .unwrap_or(0);
    let first = end_of_used.max(100_000);
    let last = first + SUBID_COUNT - 1;
    let fix = match &h.user_name {
        Some(name) => format!(
            "sudo usermod --add-subuids {first}-{last} --add-subgids {first}-{last} {}",
            sh_quote(name)
        ),
        None => format!(
            "echo '{}:{first}:{SUBID_COUNT}' | sudo tee -a /etc/subuid /etc/subgid   # this uid has no user name",
            h.uid
        ),
    };
    Finding::bad(
        C,
        Status::Warn,
        format!(
            "{}; without a subordinate range of {SUBID_COUNT} ids hutch maps only container \
             root to your uid",
            problems.join("; ")
        ),
        fix,
    )
}

fn check_cgroup(h: &HostView) -> Finding {
    const C: &str = "cgroup";
    let cg = &h.cgroup;
    let limits = "the memory/pids/cpus limits of profiles need it; everything else works";
    let delegate = [
        "sudo mkdir -p /etc/systemd/system/user@.service.d",
        "printf '[Service]\\nDelegate=cpu cpuset io memory pids\\n' | sudo tee /etc/systemd/system/user@.service.d/delegate.conf",
        "sudo systemctl daemon-reload   # then log out and back in",
    ]
    .join("\n");
    if !cg.unified {
        return Finding::bad(
            C,
            Status::Warn,
            format!("cgroup v2 is not mounted at /sys/fs/cgroup (cgroup v1 or hybrid); {limits}"),
            [
                "sudo sed -i 's/^GRUB_CMDLINE_LINUX=\"/&systemd.unified_cgroup_hierarchy=1 /' /etc/default/grub && sudo update-grub   # Debian/Ubuntu",
                "sudo grubby --update-kernel=ALL --args=systemd.unified_cgroup_hierarchy=1   # Fedora",
                "# Arch: add systemd.unified_cgroup_hierarchy=1 to the kernel command line; then reboot",
            ]
            .join("\n"),
        );
    }
    let own = cg.own_path.as_deref().unwrap_or("?");
    if !cg.own_writable {
        let fix = if cg.user_service_writable {
            "systemd-run --user --scope -p Delegate=yes hutch run ...   # start hutch in a delegated cgroup".to_string()
        } else {
            format!(
                "sudo loginctl enable-linger {}   # starts user@{}.service, which owns a delegated cgroup\n\
                 systemd-run --user --scope -p Delegate=yes hutch run ...",
                sh_quote(&h.user_label()),
                h.uid
            )
        };
        return Finding::bad(
            C,
            Status::Warn,
            format!(
                "cgroup v2 is mounted but this process's cgroup {own} is not writable by you; {limits}"
            ),
            fix,
        );
    }
    let missing: Vec<&str> = LIMIT_CONTROLLERS
        .iter()
        .copied()
        .filter(|c| !cg.controllers.iter().any(|x| x == c))
        .collect();
    if !missing.is_empty() {
        return Finding::bad(
            C,
            Status::Warn,
            format!(
                "you own cgroup {own}, but the controllers {} are not delegated to it; \
                 the matching limits are unavailable",
                missing.join(", ")
            ),
            delegate,
        );
    }
    Finding::ok(
        C,
        format!(
            "cgroup v2, you own {own} with controllers {}",
            cg.controllers.join(" ")
        ),
    )
}

// ---------------------------------------------------------------------------
// Helpers.

/// `(major, minor)` from a release like `6.8.0-45-generic` or `5.15.167.4-microsoft`.
fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// Integer value of a sysctl file under `root`, `None` if absent or unreadable.
fn read_sysctl(root: &Path, name: &str) -> Option<i64> {
    fs::read_to_string(root.join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn sysctl_fix(key: &str, value: &str) -> String {
    let file = format!(
        "/etc/sysctl.d/90-hutch-{}.conf",
        key.replace(['.', '_'], "-")
    );
    format!(
        "sudo sysctl -w {key}={value}\necho '{key}={value}' | sudo tee {file}   # keep it after reboot"
    )
}

fn apparmor_fix(exe: &Path) -> String {
    let exe = exe.display().to_string();
    let exe_in_profile = if exe.contains(char::is_whitespace) {
        format!("\"{exe}\"")
    } else {
        exe
    };
    let lines = [
        "abi <abi/4.0>,".to_string(),
        "include <tunables/global>".to_string(),
        format!("profile hutch {exe_in_profile} flags=(unconfined) {{"),
        "  userns,".to_string(),
        "}".to_string(),
    ];
    let quoted: Vec<String> = lines.iter().map(|l| sh_quote(l)).collect();
    format!(
        "printf '%s\\n' {} | sudo tee /etc/apparmor.d/hutch >/dev/null   # profile for this hutch binary; redo it if you move the binary\n\
         sudo apparmor_parser -r /etc/apparmor.d/hutch\n\
         # last resort, weakens the hardening for every program: {}",
        quoted.join(" "),
        sysctl_fix("kernel.apparmor_restrict_unprivileged_userns", "0").replace('\n', "; "),
    )
}

/// Single-quotes `s` for a POSIX shell when it holds anything special.
fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Where `newuidmap`/`newgidmap` are looked for: PATH, then the usual
/// system directories (check and the launcher use the same list).
pub(crate) fn helper_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        if !dirs.iter().any(|x| x == Path::new(d)) {
            dirs.push(d.into());
        }
    }
    dirs
}

/// One `owner:start:count` line of /etc/subuid or /etc/subgid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubIdRange {
    pub(crate) owner: String,
    pub(crate) start: u64,
    pub(crate) count: u64,
}

/// Parses a subordinate id file; `None` if it cannot be read. Malformed lines are skipped.
pub(crate) fn read_subids(path: &Path) -> Option<Vec<SubIdRange>> {
    let text = fs::read_to_string(path).ok()?;
    Some(parse_subids(&text))
}

fn parse_subids(text: &str) -> Vec<SubIdRange> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let owner = f.next()?.to_string();
            let start = f.next()?.trim().parse().ok()?;
            let count: u64 = f.next()?.trim().parse().ok()?;
            (count > 0).then_some(SubIdRange {
                owner,
                start,
                count,
            })
        })
        .collect()
}

/// Whether a subid line's owner field names this user (by name or numeric uid).
fn self_entry(h: &HostView, owner: &str) -> bool {
    h.user_name.as_deref() == Some(owner) || owner == h.uid.to_string()
}

/// Our cgroup v2 path from the text of `/proc/self/cgroup` (the `0::` line).
fn parse_self_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

fn gather_cgroup(root: &Path, uid: u32) -> CgroupView {
    let unified = root.join("cgroup.controllers").is_file();
    if !unified {
        return CgroupView::default();
    }
    let writable = |p: &Path| rustix::fs::access(p, Access::WRITE_OK).is_ok();
    let own_path = fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| parse_self_cgroup(&t));
    let own_dir = own_path
        .as_deref()
        .map(|p| root.join(p.trim_start_matches('/')));
    let own_writable = own_dir.as_deref().is_some_and(writable);
    let controllers = own_dir
        .and_then(|d| fs::read_to_string(d.join("cgroup.controllers")).ok())
        .map(|t| t.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let service = root.join(format!("user.slice/user-{uid}.slice/user@{uid}.service"));
    CgroupView {
        unified,
        own_path,
        own_writable,
        controllers,
        user_service_writable: writable(&service),
    }
}

/// Login name of `uid` via NSS (`getpwuid_r`), so LDAP/sssd users are found too.
pub(crate) fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        let mut pwd = std::mem::MaybeUninit::<libc::passwd>::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer refers to a live buffer owned by this frame,
        // with its true length; getpwuid_r writes only within them.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                pwd.as_mut_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        // SAFETY: on success `result` points at `pwd`, whose `pw_name` is a
        // NUL-terminated string inside `buf`; both outlive this borrow, and we
        // copy the name out before returning.
        let name = unsafe { std::ffi::CStr::from_ptr((*result).pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// Exit code of the probe child: 0 = works; `e` (1..=127) = `unshare(CLONE_NEWUSER)`
/// failed with errno `e`; `128 + e` = `unshare(CLONE_NEWNS)` inside the new
/// user namespace failed with errno `e` (what Ubuntu's AppArmor restriction does:
/// the namespace is created, but without capabilities in it).
fn probe_userns() -> UsernsProbe {
    // SAFETY: fork is sound even if other threads exist (e.g. under the test
    // harness): the child only makes raw syscalls (unshare, reading errno,
    // _exit), which are async-signal-safe, takes no locks, does not allocate,
    // and leaves through _exit without running destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return UsernsProbe::Failed {
            step: "fork",
            error: io::Error::last_os_error().to_string(),
        };
    }
    if pid == 0 {
        let errno = || io::Error::last_os_error().raw_os_error().unwrap_or(1) & 0x7f;
        // SAFETY: plain syscalls in the freshly forked, single-threaded child.
        unsafe {
            let code = if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                errno().max(1)
            } else if libc::unshare(libc::CLONE_NEWNS) != 0 {
                128 | errno()
            } else {
                0
            };
            libc::_exit(code)
        }
    }
    let child = rustix::process::Pid::from_raw(pid);
    let status = loop {
        match rustix::process::waitpid(child, rustix::process::WaitOptions::empty()) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(Some((_, status))) => break status,
            Ok(None) => unreachable!("waitpid without WNOHANG always reports"),
            Err(e) => {
                return UsernsProbe::Failed {
                    step: "waitpid",
                    error: io::Error::from(e).to_string(),
                };
            }
        }
    };
    match status.exit_status() {
        Some(0) => UsernsProbe::Works,
        Some(code) if code < 128 => UsernsProbe::Failed {
            step: "unshare(CLONE_NEWUSER)",
            error: io::Error::from_raw_os_error(code).to_string(),
        },
        Some(code) => UsernsProbe::Failed {
            step: "unshare(CLONE_NEWNS) inside a new user namespace",
            error: io::Error::from_raw_os_error(code - 128).to_string(),
        },
        None => UsernsProbe::Failed {
            step: "probe child",
            error: format!("ended abnormally ({status:?})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    /// A fake host where everything is fine; tests break one thing each.
    struct Fake {
        dir: TempDir,
        view: HostView,
    }

    impl Fake {
        fn good() -> Fake {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            let helper = |name: &str| Helper {
                path: PathBuf::from("/usr/bin").join(name),
                mode: 0o104755,
                owner: 0,
                file_caps: false,
                nosuid_mount: false,
            };
            let view = HostView {
                kernel_release: "6.8.0-45-generic".into(),
                uid: 1000,
                user_name: Some("alice".into()),
                exe: "/home/alice/.local/bin/hutch".into(),
                proc_sys: root.join("sys"),
                userns_probe: UsernsProbe::Works,
                dev_fuse: DevAccess::Ok,
                dev_net_tun: DevAccess::Ok,
                newuidmap: Some(helper("newuidmap")),
                newgidmap: Some(helper("newgidmap")),
                subuid_file: root.join("subuid"),
                subgid_file: root.join("subgid"),
                cgroup: CgroupView {
                    unified: true,
                    own_path: Some(
                        "/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope".into(),
                    ),
                    own_writable: true,
                    controllers: ["cpuset", "cpu", "io", "memory", "pids"]
                        .map(String::from)
                        .to_vec(),
                    user_service_writable: true,
                },
            };
            let fake = Fake { dir, view };
            fake.sysctl("user/max_user_namespaces", "63229");
            fake.write("subuid", "alice:100000:65536\nbob:165536:65536\n");
            fake.write("subgid", "alice:100000:65536\nbob:165536:65536\n");
            fake
        }

        fn write(&self, rel: &str, text: &str) {
            let p = self.dir.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }

        fn sysctl(&self, name: &str, value: &str) {
            self.write(&format!("sys/{name}"), &format!("{value}\n"));
        }

        fn finding(&self, check: &str) -> Finding {
            let all = check_host_at(&self.view);
            all.into_iter().find(|f| f.check == check).unwrap()
        }
    }

    fn assert_fix(f: &Finding, status: Status, needle: &str) {
        assert_eq!(f.status, status, "{f:#?}");
        let fix = f.fix.as_deref().expect("a fix");
        assert!(fix.contains(needle), "fix lacks {needle:?}: {fix}");
    }

    #[test]
    fn all_good() {
        let fake = Fake::good();
        let all = check_host_at(&fake.view);
        let names: Vec<_> = all.iter().map(|f| f.check).collect();
        assert_eq!(names, CHECKS);
        for f in &all {
            assert_eq!(f.status, Status::Ok, "{f:#?}");
            assert!(f.fix.is_none());
        }
        assert!(can_run(&all));
        assert!(all[0].detail.contains("6.8.0-45-generic"));
        assert!(all[5].detail.contains("100000-165535"), "{}", all[5].detail);
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.8.0-45-generic"), Some((6, 8)));
        assert_eq!(
            parse_kernel_version("5.15.167.4-microsoft-standard-WSL2"),
            Some((5, 15))
        );
        assert_eq!(parse_kernel_version("5.11"), Some((5, 11)));
        assert_eq!(parse_kernel_version("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(parse_kernel_version("garbage"), None);

        let mut fake = Fake::good();
        fake.view.kernel_release = "5.10.0-28-amd64".into();
        let f = fake.finding("kernel");
        assert_fix(&f, Status::Fail, "sudo apt");
        assert!(f.detail.contains("5.10.0-28-amd64") && f.detail.contains("5.11"));
        assert!(!can_run(&check_host_at(&fake.view)));

        fake.view.kernel_release = "5.11.0".into();
        assert_eq!(fake.finding("kernel").status, Status::Ok);

        fake.view.kernel_release = "weird".into();
        assert_eq!(fake.finding("kernel").status, Status::Warn);
    }

    #[test]
    fn userns_max_zero() {
        let mut fake = Fake::good();
        fake.sysctl("user/max_user_namespaces", "0");
        fake.view.userns_probe = UsernsProbe::Failed {
            step: "unshare(CLONE_NEWUSER)",
            error: "No space left on device".into(),
        };
        let f = fake.finding("userns");
        assert_fix(
            &f,
            Status::Fail,
            "sudo sysctl -w user.max_user_namespaces=28633",
        );
        assert_fix(&f, Status::Fail, "/etc/sysctl.d/");
        assert!(f.detail.contains("max_user_namespaces is 0"));
    }

    #[test]
    fn userns_debian_clone_switch() {
        let fake = Fake::good();
        fake.sysctl("kernel/unprivileged_userns_clone", "0");
        let f = fake.finding("userns");
        assert_fix(
            &f,
            Status::Fail,
            "sudo sysctl -w kernel.unprivileged_userns_clone=1",
        );
        // Present and 1: fine.
        fake.sysctl("kernel/unprivileged_userns_clone", "1");
        assert_eq!(fake.finding("userns").status, Status::Ok);
    }

    #[test]
    fn userns_apparmor_restriction() {
        let mut fake = Fake::good();
        fake.sysctl("kernel/apparmor_restrict_unprivileged_userns", "1");
        // A profile already allows us: the probe works, so this is fine.
        let f = fake.finding("userns");
        assert_eq!(f.status, Status::Ok);
        assert!(f.detail.contains("AppArmor"));

        fake.view.userns_probe = UsernsProbe::Failed {
            step: "unshare(CLONE_NEWNS) inside a new user namespace",
            error: "Operation not permitted".into(),
        };
        let f = fake.finding("userns");
        assert_fix(&f, Status::Fail, "/etc/apparmor.d/hutch");
        assert_fix(
            &f,
            Status::Fail,
            "sudo apparmor_parser -r /etc/apparmor.d/hutch",
        );
        assert_fix(
            &f,
            Status::Fail,
            "profile hutch /home/alice/.local/bin/hutch flags=(unconfined)",
        );
        assert_fix(&f, Status::Fail, "userns,");
        assert_fix(&f, Status::Fail, "abi <abi/4.0>,");
        assert_fix(
            &f,
            Status::Fail,
            "kernel.apparmor_restrict_unprivileged_userns=0",
        );
        // Every fix line is one shell command (no heredoc that indentation would break).
        assert!(!f.fix.unwrap().contains("<<"));
    }

    #[test]
    fn userns_probe_fails_alone() {
        let mut fake = Fake::good();
        fake.view.userns_probe = UsernsProbe::Failed {
            step: "unshare(CLONE_NEWUSER)",
            error: "Operation not permitted".into(),
        };
        let f = fake.finding("userns");
        assert_fix(&f, Status::Fail, "unshare --user");
        assert!(f.detail.contains("Operation not permitted"));
    }

    #[test]
    fn userns_as_root_warns() {
        let mut fake = Fake::good();
        fake.view.uid = 0;
        fake.view.user_name = Some("root".into());
        let f = fake.finding("userns");
        assert_fix(&f, Status::Warn, "normal");
        assert!(f.detail.contains("root"));
    }

    #[test]
    fn fuse_failures() {
        let mut fake = Fake::good();
        fake.view.dev_fuse = DevAccess::Missing;
        let f = fake.finding("fuse");
        assert_fix(&f, Status::Fail, "sudo apt install fuse3");
        assert_fix(&f, Status::Fail, "sudo dnf install fuse3");
        assert_fix(&f, Status::Fail, "sudo modprobe fuse");

        fake.view.dev_fuse = DevAccess::NoDriver("No such device".into());
        assert_fix(&fake.finding("fuse"), Status::Fail, "sudo modprobe fuse");

        fake.view.dev_fuse = DevAccess::Denied("Permission denied".into());
        let f = fake.finding("fuse");
        assert_fix(&f, Status::Fail, "sudo chmod 0666 /dev/fuse");
        assert!(f.detail.contains("Permission denied"));
        assert!(!can_run(&check_host_at(&fake.view)));
    }

    #[test]
    fn tun_is_needed_by_the_default_profile() {
        let mut fake = Fake::good();
        assert!(can_run(&check_host_at(&fake.view)));
        fake.view.dev_net_tun = DevAccess::Missing;
        assert_fix(&fake.finding("tun"), Status::Fail, "sudo modprobe tun");
        assert!(!can_run(&check_host_at(&fake.view)));
        fake.view.dev_net_tun = DevAccess::Denied("Permission denied".into());
        let f = fake.finding("tun");
        assert_fix(&f, Status::Fail, "sudo chmod 0666 /dev/net/tun");
        assert!(f.detail.contains("--network none"), "{}", f.detail);
        assert!(!can_run(&check_host_at(&fake.view)));
    }

    #[test]
    fn uidmap_helpers() {
        let mut fake = Fake::good();
        fake.view.newuidmap = None;
        let f = fake.finding("uidmap");
        assert_fix(&f, Status::Warn, "sudo apt install uidmap");
        assert_fix(&f, Status::Warn, "sudo dnf install shadow-utils");
        assert!(f.detail.contains("newuidmap not found"));
        assert!(f.detail.contains("falls back"));

        // Fedora style: no setuid bit, file capabilities instead.
        let mut fake = Fake::good();
        for h in [&mut fake.view.newuidmap, &mut fake.view.newgidmap] {
            let h = h.as_mut().unwrap();
            h.mode = 0o100755;
            h.file_caps = true;
        }
        assert_eq!(fake.finding("uidmap").status, Status::Ok);

        // Neither setuid nor caps.
        fake.view.newgidmap.as_mut().unwrap().file_caps = false;
        let f = fake.finding("uidmap");
        assert_fix(
            &f,
            Status::Warn,
            "sudo setcap cap_setgid=ep /usr/bin/newgidmap",
        );

        // Setuid but owned by a normal user: useless.
        let mut fake = Fake::good();
        fake.view.newuidmap.as_mut().unwrap().owner = 1000;
        assert_fix(&fake.finding("uidmap"), Status::Warn, "cap_setuid=ep");

        // Setuid root on a nosuid mount: useless too.
        let mut fake = Fake::good();
        fake.view.newuidmap.as_mut().unwrap().nosuid_mount = true;
        assert_fix(&fake.finding("uidmap"), Status::Warn, "nosuid");
    }

    #[test]
    fn helper_find_in_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(b.join("newuidmap")).unwrap(); // a directory does not count
        fs::create_dir_all(&b).unwrap();
        fs::write(a.join("newuidmap"), "").unwrap();
        fs::set_permissions(a.join("newuidmap"), fs::Permissions::from_mode(0o755)).unwrap();
        let found = Helper::find("newuidmap", &[b.clone(), a.clone()]).unwrap();
        assert_eq!(found.path, a.join("newuidmap"));
        assert_eq!(found.mode & 0o7777, 0o755);
        assert!(!found.file_caps);
        assert!(Helper::find("newgidmap", &[a, b]).is_none());
    }

    #[test]
    fn subids() {
        let mut fake = Fake::good();
        fake.write("subuid", "bob:100000:65536\n");
        let f = fake.finding("subids");
        assert_fix(
            &f,
            Status::Warn,
            "sudo usermod --add-subuids 231072-296607 --add-subgids 231072-296607 alice",
        );
        assert!(f.detail.contains("no range for alice"), "{}", f.detail);

        // Too small a range.
        fake.write("subuid", "alice:100000:1000\n");
        let f = fake.finding("subids");
        assert_fix(&f, Status::Warn, "sudo usermod --add-subuids");
        assert!(f.detail.contains("only 1000 ids"));

        // Numeric uid entries count; comments and junk are skipped.
        fake.write("subuid", "# comment\njunk\n1000:300000:65536\n");
        assert_eq!(fake.finding("subids").status, Status::Ok);

        // Missing file, empty system: suggest the first conventional range.
        fs::remove_file(&fake.view.subuid_file).unwrap();
        fs::remove_file(&fake.view.subgid_file).unwrap();
        let f = fake.finding("subids");
        assert_fix(
            &f,
            Status::Warn,
            "--add-subuids 100000-165535 --add-subgids 100000-165535 alice",
        );

        // A uid without a name gets a line to append.
        fake.view.user_name = None;
        assert_fix(
            &fake.finding("subids"),
            Status::Warn,
            "echo '1000:100000:65536'",
        );
    }

    #[test]
    fn cgroup_cases() {
        assert_eq!(
            parse_self_cgroup("12:pids:/x\n0::/user.slice/a.scope\n").as_deref(),
            Some("/user.slice/a.scope")
        );
        assert_eq!(parse_self_cgroup("4:memory:/x\n"), None);

        let mut fake = Fake::good();
        fake.view.cgroup.controllers.retain(|c| c != "memory");
        let f = fake.finding("cgroup");
        assert_fix(&f, Status::Warn, "Delegate=cpu cpuset io memory pids");
        assert!(f.detail.contains("memory"));

        fake.view.cgroup.own_writable = false;
        fake.view.cgroup.own_path = Some("/user.slice/user-1000.slice/session-2.scope".into());
        assert_fix(
            &fake.finding("cgroup"),
            Status::Warn,
            "systemd-run --user --scope",
        );
        fake.view.cgroup.user_service_writable = false;
        assert_fix(
            &fake.finding("cgroup"),
            Status::Warn,
            "loginctl enable-linger alice",
        );

        fake.view.cgroup = CgroupView::default();
        let f = fake.finding("cgroup");
        assert_fix(&f, Status::Warn, "systemd.unified_cgroup_hierarchy=1");
        assert!(can_run(&check_host_at(&fake.view)));
    }

    #[test]
    fn render_lists_every_check_and_fix() {
        let mut fake = Fake::good();
        fake.view.dev_fuse = DevAccess::Denied("Permission denied".into());
        fake.view.newuidmap = None;
        let all = check_host_at(&fake.view);
        let text = render(&all);
        for name in CHECKS {
            assert!(
                text.lines().any(|l| l.contains(name)),
                "{name} missing:\n{text}"
            );
        }
        assert!(text.contains("[FAIL] fuse"));
        assert!(text.contains("[ ok ] kernel"));
        assert!(text.contains("[warn] uidmap"));
        let fix_line = text
            .lines()
            .find(|l| l.contains("fix: sudo chmod 0666 /dev/fuse"));
        assert!(fix_line.is_some_and(|l| l.starts_with("  ")), "{text}");
        assert!(!can_run(&all));
        assert_eq!(
            text.lines().filter(|l| l.starts_with('[')).count(),
            CHECKS.len()
        );
    }

    #[test]
    fn findings_serialise() {
        let f = Finding::bad("fuse", Status::Fail, "x", "y".into());
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["status"], "fail");
        assert_eq!(json["check"], "fuse");
    }

    #[test]
    fn sh_quoting() {
        assert_eq!(sh_quote("alice"), "alice");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("a b"), "'a b'");
    }

    #[test]
    fn real_host_does_not_panic() {
        let all = check_host();
        let names: Vec<_> = all.iter().map(|f| f.check).collect();
        assert_eq!(names, CHECKS);
        let text = render(&all);
        assert_eq!(
            text.lines().filter(|l| l.starts_with('[')).count(),
            CHECKS.len()
        );
        eprintln!("{text}");
    }
}
