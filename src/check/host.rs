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
use std::path::Path;

use crate::host::kernel::{parse_kernel_version, read_sysctl};
use crate::host::subids::read_subids;
use crate::host::{DevAccess, Helper, HostView, LandlockSupport, UsernsProbe};

/// Oldest kernel hutch supports: openat2, unprivileged whiteouts (overlay
/// semantics with user xattrs) and friends all arrived by 5.11.
pub const MIN_KERNEL: (u32, u32) = (5, 11);

/// How many subordinate ids hutch wants for a full container mapping
/// (container 1..65536 -> the range).
pub const SUBID_COUNT: u64 = 65536;

/// Cgroup controllers the memory/pids/cpus limits of profiles use.
pub const LIMIT_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

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

/// The result of one check: its name (kernel, userns, fuse, tun, uidmap,
/// subids, cgroup, landlock), the verdict, a
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

/// Runs every check on the real host.
pub fn check_host() -> Vec<Finding> {
    check_host_at(&HostView::real())
}

/// Runs every check on `host`: kernel, userns, fuse, tun, uidmap, subids,
/// cgroup, landlock, in this order.
pub fn check_host_at(host: &HostView) -> Vec<Finding> {
    vec![
        check_kernel(host),
        check_userns(host),
        check_fuse(host),
        check_tun(host),
        check_uidmap(host),
        check_subids(host),
        check_cgroup(host),
        check_landlock(host),
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

fn check_landlock(h: &HostView) -> Finding {
    const C: &str = "landlock";
    let what = "profiles with `landlock = true` (untrusted, install) run without their \
                path rules, with a warning; everything else works";
    match h.landlock {
        LandlockSupport::Abi(v) => Finding::ok(
            C,
            format!("Landlock ABI {v}: the path rules of profiles are enforced"),
        ),
        LandlockSupport::NotEnabled => Finding::bad(
            C,
            Status::Warn,
            format!("the kernel has Landlock but it is not enabled; {what}"),
            [
                "cat /sys/kernel/security/lsm   # the active modules; add landlock to them:",
                "sudo sed -i 's/^GRUB_CMDLINE_LINUX=\"/&lsm=landlock,lockdown,yama,integrity,apparmor,bpf /' /etc/default/grub && sudo update-grub   # Debian/Ubuntu; keep your list's order; then reboot",
            ]
            .join("\n"),
        ),
        LandlockSupport::Missing(errno) => Finding::bad(
            C,
            Status::Warn,
            format!(
                "the kernel has no Landlock ({}; it needs CONFIG_SECURITY_LANDLOCK, Linux 5.13+); {what}",
                std::io::Error::from_raw_os_error(errno)
            ),
            "# use a distribution kernel from 5.13 on (Debian 12, Ubuntu 22.04 and newer have it)"
                .to_string(),
        ),
    }
}

// ---------------------------------------------------------------------------
// Helpers.

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

/// Whether a subid line's owner field names this user (by name or numeric uid).
fn self_entry(h: &HostView, owner: &str) -> bool {
    h.user_name.as_deref() == Some(owner) || owner == h.uid.to_string()
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
