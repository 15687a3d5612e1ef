//! The id checks: the newuidmap/newgidmap helpers and the user's
//! subordinate id ranges, without which only container root is mapped.

use super::fix::sh_quote;
use super::{Finding, Status};
use crate::host::HostView;
use crate::host::helpers::Helper;
use crate::host::subids::{SUBID_COUNT, read_subids};

pub(super) fn check_uidmap(h: &HostView) -> Finding {
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
        .filter_map(|(_, x)| x.as_ref().map(describe))
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
                .map(|w| describe(w))
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

pub(super) fn check_subids(h: &HostView) -> Finding {
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
            .filter(|e| h.owns_subid_entry(&e.owner))
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

/// `/usr/bin/newuidmap (setuid root)`: where a helper is and what gives it
/// (or fails to give it) its privileges.
fn describe(helper: &Helper) -> String {
    let how = if helper.nosuid_mount {
        "on a nosuid mount, so its privileges do not apply"
    } else if helper.mode & libc::S_ISUID != 0 && helper.owner == 0 {
        "setuid root"
    } else if helper.file_caps {
        "with file capabilities"
    } else {
        "neither setuid root nor with file capabilities"
    };
    format!("{} ({how})", helper.path.display())
}
