//! `hutch check`: host prerequisites for rootless sandboxes, diagnosed.
//!
//! Every check looks only at a [`HostView`]: the facts about the host that
//! matter (kernel release, who we are, which sysctl files say what, whether
//! the devices open, what the id-map helpers look like, where our cgroup
//! is), gathered by src/host. Tests build fake views with tempdir-backed
//! files and injected probe results. The checks themselves are pure
//! functions of the view, so each failure mode can be reproduced without
//! root and without touching the host.
//!
//! Each [`Finding`] says what was checked, what was found and, when something
//! is wrong, a `fix`: commands a user can paste, one per line, with short
//! `# Debian/Ubuntu`, `# Fedora`, `# Arch` notes where distributions differ.
//!
//! * `kernel`: the version and user namespaces.
//! * `devices`: /dev/fuse and /dev/net/tun.
//! * `ids`: newuidmap/newgidmap and the subordinate id ranges.
//! * `cgroup`: cgroup v2 delegation for the profiles' limits.
//! * `fix`: shell quoting and sysctl fixes shared by the checks.

mod cgroup;
mod devices;
mod fix;
mod ids;
mod kernel;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;

use crate::host::HostView;

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

/// Runs every check on the real host.
pub fn check_host() -> Vec<Finding> {
    check_host_at(&HostView::real())
}

/// Runs every check on `host`, in the order of [`CHECKS`].
pub(crate) fn check_host_at(host: &HostView) -> Vec<Finding> {
    vec![
        kernel::check_kernel(host),
        kernel::check_userns(host),
        devices::check_fuse(host),
        devices::check_tun(host),
        ids::check_uidmap(host),
        ids::check_subids(host),
        cgroup::check_cgroup(host),
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
