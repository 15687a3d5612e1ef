//! The kernel checks: its version, and whether unprivileged user
//! namespaces work (sysctls, AppArmor's restriction, the probe).

use std::fmt::Write as _;
use std::path::Path;

use super::fix::{sh_quote, sysctl_fix};
use super::{Finding, Status};
use crate::host::HostView;
use crate::host::probes::UsernsProbe;

/// Oldest kernel hutch supports: openat2, unprivileged whiteouts (overlay
/// semantics with user xattrs) and friends all arrived by 5.11.
pub(crate) const MIN_KERNEL: (u32, u32) = (5, 11);

pub(super) fn check_kernel(h: &HostView) -> Finding {
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

pub(super) fn check_userns(h: &HostView) -> Finding {
    const C: &str = "userns";
    let mut problems: Vec<String> = Vec::new();
    let mut fixes: Vec<String> = Vec::new();

    let max = h.sysctl("user/max_user_namespaces");
    if max == Some(0) {
        problems.push("user.max_user_namespaces is 0 (user namespaces are disabled)".into());
        fixes.push(sysctl_fix("user.max_user_namespaces", "28633"));
    }
    if h.sysctl("kernel/unprivileged_userns_clone") == Some(0) {
        problems.push(
            "kernel.unprivileged_userns_clone is 0 (Debian/older Ubuntu switch: \
             only root may create user namespaces)"
                .into(),
        );
        fixes.push(sysctl_fix("kernel.unprivileged_userns_clone", "1"));
    }
    let apparmor = h
        .sysctl("kernel/apparmor_restrict_unprivileged_userns")
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

/// `(major, minor)` from a release like `6.8.0-45-generic` or `5.15.167.4-microsoft`.
pub(super) fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// An AppArmor profile that lets the hutch binary at `exe` create user
/// namespaces, as shell commands.
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
