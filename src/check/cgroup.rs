//! The cgroup check: cgroup v2, a cgroup the user owns, and the
//! controllers the profiles' limits need delegated to it.

use super::fix::sh_quote;
use super::{Finding, Status};
use crate::host::HostView;

/// Cgroup controllers the memory/pids/cpus limits of profiles use.
pub(crate) const LIMIT_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

pub(super) fn check_cgroup(h: &HostView) -> Finding {
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
