//! Locked keys: the confinement keys of a profile that command-line flags
//! may not weaken.
//!
//! A profile names them at its top level, `locked = ["network",
//! "filesystem.mounts"]`: a dotted key from [`LOCKABLE`], or a section
//! name standing for every lockable key of that section. `locked` is a list
//! like any other: a file that extends another keeps its parent's locks
//! unless it writes its own `locked`, which replaces them.
//!
//! A lock binds flags only. A profile's own file may set a locked key to
//! anything (writing the file is the user's explicit choice) and the lock
//! then holds the new value against flags: `install` extends `untrusted`,
//! turns the network on in its file, and `--network host` is still refused.
//!
//! Flags that weaken a key of a profile without its lock are allowed with
//! a one-line warning; flags that tighten are always allowed silently.
//! Which flag weakens what is decided by the run planner
//! (`run::locks::weakenings`, src/run/locks.rs); this module decides what to
//! do about it.

use super::{Profile, display_path, user_dir};

/// The keys a profile may lock: those that confine the sandbox.
pub const LOCKABLE: [&str; 9] = [
    "filesystem.read_only",
    "filesystem.mounts",
    "filesystem.home",
    "user.keep_id",
    "network.mode",
    "network.allow_host_loopback",
    "security.seccomp",
    "security.capabilities",
    "security.landlock",
];

/// Sections that stand for all their lockable keys.
const SECTIONS: [&str; 4] = ["filesystem", "user", "network", "security"];

/// Check one entry of `locked`: a lockable key or a section name.
pub fn check_lock_name(s: &str) -> Result<String, String> {
    if SECTIONS.contains(&s) || LOCKABLE.contains(&s) {
        return Ok(s.to_owned());
    }
    let hint = if s == "limits" || s == "env" || s.starts_with("limits.") || s.starts_with("env.") {
        " (no flag changes it)".to_owned()
    } else {
        String::new()
    };
    Err(format!(
        "`{s}` cannot be locked{hint}: write a section ({}) or one of the keys {}",
        SECTIONS.join(", "),
        LOCKABLE.join(", ")
    ))
}

/// The lockable keys `locked` covers, in [`LOCKABLE`] order.
pub fn locked_keys(locked: &[String]) -> Vec<&'static str> {
    LOCKABLE
        .iter()
        .copied()
        .filter(|k| {
            let section = k.split('.').next().unwrap_or(k);
            locked.iter().any(|l| l == k || l == section)
        })
        .collect()
}

/// `keys` written as briefly as possible: a section whose every lockable
/// key is present becomes the section's name.
fn compress(keys: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        let section = k.split('.').next().unwrap_or(k);
        let whole = LOCKABLE
            .iter()
            .filter(|l| l.starts_with(&format!("{section}.")))
            .all(|l| keys.contains(l));
        let entry = if whole { section } else { k };
        if !out.iter().any(|o| o == entry) {
            out.push(entry.to_owned());
        }
    }
    out
}

/// One command-line flag that weakens one key of the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakening {
    /// The flag as typed, e.g. `--network host`.
    pub flag: String,
    /// The key it weakens, from [`LOCKABLE`].
    pub key: &'static str,
    /// The profile's value of `key`, as TOML (`"none"`, `[]`).
    pub profile_value: String,
    /// The TOML line that grants in a profile file what the flag asks for,
    /// in `key`'s section (`mode = "host"`).
    pub grant: String,
}

/// What the flags may do under `profile`: `Ok` with the warnings to print
/// (one line each, for flags that weaken unlocked keys), or `Err` with a
/// message for the flags that weaken locked keys.
pub fn enforce(profile: &Profile, weakenings: &[Weakening]) -> Result<Vec<String>, String> {
    let locked = locked_keys(&profile.locked);
    let (refused, allowed): (Vec<&Weakening>, Vec<&Weakening>) =
        weakenings.iter().partition(|w| locked.contains(&w.key));
    if refused.is_empty() {
        return Ok(allowed
            .iter()
            .map(|w| {
                format!(
                    "hutch: warning: {} weakens profile {} ({} = {})",
                    w.flag, profile.name, w.key, w.profile_value
                )
            })
            .collect());
    }
    Err(refusal(profile, &refused, &locked))
}

/// The message for flags refused by locks: each flag and key, then the
/// profile file that would allow them.
fn refusal(profile: &Profile, refused: &[&Weakening], locked: &[&'static str]) -> String {
    let mut msg = String::new();
    for w in refused {
        msg.push_str(&format!(
            "profile {} locks {}; {} is refused (the profile has {} = {}).\n",
            profile.name, w.key, w.flag, w.key, w.profile_value
        ));
    }
    let dir = user_dir()
        .map(|d| display_path(&d))
        .unwrap_or_else(|| "~/.config/hutch/profiles".into());
    let parent = if profile.source == super::BUILTIN_SOURCE
        || user_dir().is_some_and(|d| std::path::Path::new(&profile.source).starts_with(d))
    {
        profile.name.clone()
    } else {
        profile.source.clone()
    };
    // The grants, grouped by section, in LOCKABLE order.
    let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
    for w in refused {
        let section = w.key.split('.').next().unwrap_or(w.key);
        match sections.iter_mut().find(|(s, _)| *s == section) {
            Some((_, lines)) if !lines.contains(&w.grant.as_str()) => lines.push(&w.grant),
            Some(_) => {}
            None => sections.push((section, vec![&w.grant])),
        }
    }
    let body: Vec<String> = sections
        .iter()
        .map(|(s, lines)| format!("[{s}] {}", lines.join(", ")))
        .collect();
    let remaining: Vec<&str> = locked
        .iter()
        .copied()
        .filter(|k| !refused.iter().any(|w| w.key == *k))
        .collect();
    let remaining: Vec<String> = compress(&remaining)
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect();
    msg.push_str(&format!(
        "To allow it, write {dir}/NAME.toml with extends = \"{parent}\" and {} (a profile's own \
         file may change its locked keys), then run with --profile NAME; to let the flag itself \
         through instead, put locked = [{}] in that file.",
        body.join(" and "),
        remaining.join(", ")
    ));
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(locked: &[&str]) -> Profile {
        Profile {
            name: "p".into(),
            source: super::super::BUILTIN_SOURCE.into(),
            locked: locked.iter().map(|s| s.to_string()).collect(),
            ..Profile::default()
        }
    }

    fn net_host() -> Weakening {
        Weakening {
            flag: "--network host".into(),
            key: "network.mode",
            profile_value: "\"none\"".into(),
            grant: "mode = \"host\"".into(),
        }
    }

    #[test]
    fn names_and_sections() {
        assert_eq!(check_lock_name("network").unwrap(), "network");
        assert_eq!(
            check_lock_name("filesystem.mounts").unwrap(),
            "filesystem.mounts"
        );
        let e = check_lock_name("netwrk").unwrap_err();
        assert!(
            e.contains("`netwrk` cannot be locked") && e.contains("network.mode"),
            "{e}"
        );
        assert!(
            check_lock_name("limits.memory")
                .unwrap_err()
                .contains("no flag changes it")
        );
        assert!(check_lock_name("network.mtu").is_err());
        assert_eq!(
            locked_keys(&["network".into(), "security.seccomp".into()]),
            [
                "network.mode",
                "network.allow_host_loopback",
                "security.seccomp"
            ]
        );
        assert_eq!(
            compress(&[
                "network.mode",
                "network.allow_host_loopback",
                "user.keep_id"
            ]),
            ["network", "user"]
        );
        assert_eq!(
            compress(&["network.allow_host_loopback"]),
            ["network.allow_host_loopback"]
        );
    }

    #[test]
    fn unlocked_weakenings_warn() {
        let w = enforce(&profile(&[]), &[net_host()]).unwrap();
        assert_eq!(
            w,
            ["hutch: warning: --network host weakens profile p (network.mode = \"none\")"]
        );
        assert!(enforce(&profile(&["network"]), &[]).unwrap().is_empty());
        // A lock on another key does not stop this flag.
        assert_eq!(
            enforce(&profile(&["filesystem"]), &[net_host()])
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn locked_weakenings_are_refused_with_a_way_out() {
        let e = enforce(&profile(&["network", "security"]), &[net_host()]).unwrap_err();
        assert!(
            e.starts_with(
                "profile p locks network.mode; --network host is refused (the profile has \
                 network.mode = \"none\")."
            ),
            "{e}"
        );
        assert!(
            e.contains("NAME.toml with extends = \"p\" and [network] mode = \"host\""),
            "{e}"
        );
        assert!(
            e.contains("locked = [\"network.allow_host_loopback\", \"security\"]"),
            "{e}"
        );
        // Locked by key rather than by section.
        let e = enforce(&profile(&["network.mode"]), &[net_host()]).unwrap_err();
        assert!(e.contains("locked = []"), "{e}");
    }
}
