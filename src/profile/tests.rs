//! Tests of loading, extending, listing and showing profiles.

use super::catalog::Catalog;
use super::*;
use std::path::Path;

fn catalog(files: &[(&str, &str)]) -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    }
    let c = Catalog::new(Some(dir.path().to_owned()));
    (dir, c)
}

#[test]
fn every_builtin_parses_and_documents_itself() {
    let c = Catalog::new(None);
    for (name, text) in BUILTINS {
        let p = c.load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.name, *name);
        assert_eq!(p.source, "built-in");
        assert!(!p.description.is_empty(), "{name} has no description");
        assert!(
            text.lines()
                .filter(|l| l.trim_start().starts_with('#'))
                .count()
                > 3
        );
        // show's output loads back to the same profile.
        let shown = p.to_toml().unwrap();
        let back = file::parse(&shown, "shown")
            .unwrap()
            .resolve(name, "built-in");
        assert_eq!(back, p, "{name}:\n{shown}");
    }
}

#[test]
fn default_toml_documents_every_key() {
    let text = BUILTINS[0].1;
    let keys = [
        "description",
        "extends",
        "locked",
        "[filesystem]",
        "read_only",
        "mounts",
        "tmpfs",
        "workdir",
        "home",
        "[user]",
        "keep_id",
        "[network]",
        "mode",
        "allow_host_loopback",
        "mtu",
        "block_private",
        "[security]",
        "seccomp",
        "capabilities",
        "landlock",
        "landlock_read",
        "landlock_write",
        "hostname",
        "share_terminal",
        "[limits]",
        "nofile",
        "nproc",
        "core",
        "memory",
        "pids",
        "cpus",
        "[env]",
    ];
    for k in keys {
        assert!(text.contains(k), "default.toml does not mention {k}");
    }
}

#[test]
fn builtin_values() {
    let c = Catalog::new(None);
    let d = c.load(DEFAULT_PROFILE).unwrap();
    assert_eq!(d.network.mode, NetworkMode::Slirp);
    assert!(!d.network.allow_host_loopback);
    assert!(!d.network.block_private);
    assert_eq!(d.security.seccomp, SeccompMode::Default);
    assert_eq!(d.security.capabilities, CapabilityPolicy::Default);
    assert!(!d.filesystem.read_only && !d.user.keep_id && !d.security.landlock);
    assert_eq!(d.limits, Limits::default());

    let dev = c.load("dev").unwrap();
    assert_eq!(dev.filesystem.mounts, ["${CWD}:${CWD}"]);
    assert_eq!(dev.filesystem.workdir, "${CWD}");
    assert!(dev.user.keep_id && !dev.filesystem.home);

    let u = c.load("untrusted").unwrap();
    assert!(u.filesystem.read_only && !u.filesystem.home);
    assert_eq!(u.filesystem.tmpfs, ["/tmp"]);
    assert_eq!(u.security.seccomp, SeccompMode::Strict);
    assert_eq!(u.security.capabilities, CapabilityPolicy::None);
    assert!(u.security.landlock);
    assert_eq!(u.security.landlock_read, ["/"]);
    for p in ["/tmp", "${CWD}", "/dev/null", "/dev/pts"] {
        assert!(u.security.landlock_write.iter().any(|w| w == p), "{p}");
    }
    assert_eq!(u.network.mode, NetworkMode::None);
    let i = c.load("install").unwrap();
    assert_eq!(i.network.mode, NetworkMode::Slirp);
    assert!(!i.network.allow_host_loopback);
    assert!(i.network.block_private);
    assert_eq!(
        (i.filesystem.clone(), i.security.clone(), i.limits.clone()),
        (u.filesystem.clone(), u.security.clone(), u.limits.clone())
    );
    assert_eq!(
        u.limits,
        Limits {
            nofile: Some(1024),
            nproc: Some(512),
            core: Some(0),
            memory: Some(2 << 30),
            pids: Some(512),
            cpus: None,
            log_size_max: Some(crate::profile::DEFAULT_LOG_SIZE_MAX),
        }
    );
}

#[test]
fn extends_chain_user_over_builtin() {
    let (_d, c) = catalog(&[
        ("mine", "extends = \"dev\"\n[network]\nmode = \"host\"\n"),
        (
            "leaf",
            "extends = \"mine\"\ndescription = \"leaf\"\n[filesystem]\nhome = true\n",
        ),
    ]);
    let p = c.load("leaf").unwrap();
    assert_eq!(p.description, "leaf");
    assert_eq!(p.network.mode, NetworkMode::Host); // from mine
    assert!(p.user.keep_id); // from dev
    assert!(p.filesystem.home); // own
    assert_eq!(p.filesystem.mounts, ["${CWD}:${CWD}"]); // dev's, not replaced
    assert!(p.source.ends_with("leaf.toml"));
}

#[test]
fn user_file_overrides_builtin_and_can_extend_it() {
    let (_d, c) = catalog(&[(
        "dev",
        "extends = \"dev\"\ndescription = \"my dev\"\n[filesystem]\nhome = true\n",
    )]);
    let p = c.load("dev").unwrap();
    assert_eq!(p.description, "my dev");
    assert!(p.filesystem.home && p.user.keep_id);
    assert!(p.source.ends_with("dev.toml"));
    // and a built-in that extends `default` sees a user `default`:
    let (_d, c) = catalog(&[("default", "[security]\nhostname = \"box\"\n")]);
    assert_eq!(c.load("dev").unwrap().security.hostname, "box");
    assert_eq!(c.load("untrusted").unwrap().security.hostname, "box");
}

#[test]
fn cycles_are_errors() {
    let (_d, c) = catalog(&[
        ("a", "description = \"a\"\nextends = \"b\"\n"),
        ("b", "\n\nextends = \"a\"\n"),
        ("self", "extends = \"self\"\n"),
    ]);
    let e = c.load("a").unwrap_err().to_string();
    assert!(
        e.contains("b.toml, line 3, key `extends`: `extends = \"a\"` makes a cycle: a ("),
        "{e}"
    );
    assert!(e.contains("extends b (") && e.contains("remove one"), "{e}");
    let e = c.load("self").unwrap_err().to_string();
    assert!(
        e.contains("line 1, key `extends`") && e.contains("cycle"),
        "{e}"
    );
}

#[test]
fn locks_follow_extends_chains() {
    let c = Catalog::new(None);
    assert!(c.load("default").unwrap().locked.is_empty());
    assert!(c.load("dev").unwrap().locked.is_empty());
    let all = ["filesystem", "user", "network", "security"];
    assert_eq!(c.load("untrusted").unwrap().locked, all);
    assert_eq!(c.load("install").unwrap().locked, all);
    let (_d, c) = catalog(&[
        // Inherits untrusted's locks and changes a locked key in its file.
        (
            "web",
            "extends = \"untrusted\"\n[network]\nmode = \"slirp\"\n",
        ),
        // Replaces them.
        (
            "open",
            "extends = \"web\"\nlocked = [\"security\", \"network.allow_host_loopback\", \"security\"]\n",
        ),
        // Inherits the replaced list through one more link.
        ("leaf", "extends = \"open\"\ndescription = \"leaf\"\n"),
        ("none", "extends = \"untrusted\"\nlocked = []\n"),
    ]);
    let web = c.load("web").unwrap();
    assert_eq!(web.locked, all);
    assert_eq!(web.network.mode, NetworkMode::Slirp);
    let open = c.load("open").unwrap();
    assert_eq!(open.locked, ["security", "network.allow_host_loopback"]);
    assert_eq!(
        locks::locked_keys(&open.locked),
        [
            "network.allow_host_loopback",
            "security.seccomp",
            "security.capabilities",
            "security.landlock"
        ]
    );
    assert_eq!(c.load("leaf").unwrap().locked, open.locked);
    assert!(c.load("none").unwrap().locked.is_empty());
    // show's output keeps the locks.
    let shown = open.to_toml().unwrap();
    assert!(
        shown.contains("locked = [\"security\", \"network.allow_host_loopback\"]"),
        "{shown}"
    );
}

#[test]
fn bad_locks_name_file_line_and_key() {
    let (_d, c) = catalog(&[
        ("child", "extends = \"parent\"\n"),
        ("parent", "# locks\n\nlocked = [\"network\", \"netwrk\"]\n"),
        ("limits", "locked = [\"limits.memory\"]\n"),
        ("notalist", "locked = \"network\"\n"),
        (
            "late",
            "[network]\nmode = \"none\"\nlocked = [\"network\"]\n",
        ),
    ]);
    let e = c.load("child").unwrap_err().to_string();
    assert!(
        e.contains("parent.toml, line 3, key `locked`: `netwrk` cannot be locked"),
        "{e}"
    );
    assert!(
        e.contains("network.allow_host_loopback"),
        "lists what can be: {e}"
    );
    let e = c.load("limits").unwrap_err().to_string();
    assert!(
        e.contains("line 1, key `locked`: `limits.memory` cannot be locked (no flag"),
        "{e}"
    );
    let e = c.load("notalist").unwrap_err().to_string();
    assert!(
        e.contains("line 1, key `locked`") && e.contains("expected an array"),
        "{e}"
    );
    // Written below a table, `locked` is a key of that table.
    let e = c.load("late").unwrap_err().to_string();
    assert!(
        e.contains("line 3: unknown key `locked` in [network]"),
        "{e}"
    );
}

#[test]
fn missing_profiles() {
    let (_d, c) = catalog(&[("x", "# a comment\nextends = \"nosuch\"\n")]);
    let e = c.load("x").unwrap_err().to_string();
    assert!(
        e.contains("x.toml, line 2, key `extends`: no profile named `nosuch`"),
        "{e}"
    );
    let e = c.load("nosuch").unwrap_err().to_string();
    assert!(
        e.starts_with(
            "no profile named `nosuch`: the built-in profiles are default, dev, install, untrusted"
        ),
        "{e}"
    );
    let e = c.load("../etc").unwrap_err().to_string();
    assert!(e.contains("cannot read profile"), "{e}");
    let e = c.load("a b").unwrap_err().to_string();
    assert!(e.contains("invalid profile name"), "{e}");
}

#[test]
fn load_by_path_and_relative_extends() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.toml"), "[user]\nkeep_id = true\n").unwrap();
    let p = dir.path().join("top.toml");
    std::fs::write(&p, "extends = \"./base.toml\"\n[env]\nX = \"1\"\n").unwrap();
    let prof = Catalog::new(None).load(p.to_str().unwrap()).unwrap();
    assert_eq!(prof.name, "top");
    assert!(prof.user.keep_id);
    assert_eq!(prof.source, p.display().to_string());
}

#[test]
fn errors_in_parents_name_the_parent() {
    let (_d, c) = catalog(&[
        ("child", "extends = \"parent\"\n"),
        ("parent", "[limits]\nmemory = \"12Q\"\n"),
    ]);
    let e = c.load("child").unwrap_err().to_string();
    assert!(
        e.contains("parent.toml, line 2, key `limits.memory`: invalid size \"12Q\""),
        "{e}"
    );
}

#[test]
fn listing() {
    let (_d, c) = catalog(&[
        ("dev", "extends = \"dev\"\ndescription = \"mine\"\n"),
        ("zz", "description = \"last\"\n"),
        ("broken", "[network]\nmode = \"x\"\n"),
    ]);
    std::fs::write(_d.path().join("notes.txt"), "").unwrap();
    let l = c.list().unwrap();
    let names: Vec<_> = l.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        ["broken", "default", "dev", "install", "untrusted", "zz"]
    );
    let dev = &l[2];
    assert!(dev.overrides_builtin && dev.source.ends_with("dev.toml") && dev.description == "mine");
    assert!(!l[1].overrides_builtin && l[1].source == "built-in");
    assert!(!l[5].overrides_builtin);
    assert!(
        l[0].error
            .as_ref()
            .unwrap()
            .contains("line 2, key `network.mode`")
    );
    // No user directory at all is fine.
    assert_eq!(
        Catalog::new(Some("/nonexistent/x".into()))
            .list()
            .unwrap()
            .len(),
        BUILTINS.len()
    );
}

#[test]
fn mount_specs_expand() {
    let c = Catalog::new(None);
    let dev = c.load("dev").unwrap();
    let m = dev.mount_specs(Path::new("/w:1"), Path::new("/h")).unwrap();
    assert_eq!(
        m,
        [MountSpec {
            host: "/w:1".into(),
            container: "/w:1".into(),
            read_only: false
        }]
    );
    let mut p = dev.clone();
    p.filesystem.mounts = vec!["${HOME}/x:/x".into()];
    assert!(
        p.mount_specs(Path::new("/w"), Path::new("rel"))
            .unwrap_err()
            .to_string()
            .contains("not absolute")
    );
    assert_eq!(
        c.load("untrusted").unwrap().tmpfs_specs().unwrap()[0].path,
        "/tmp"
    );
    assert_eq!(expand("${CWD}/a", Path::new("/w"), Path::new("/h")), "/w/a");
}

#[test]
fn json_round_trip() {
    let p = Catalog::new(None).load("untrusted").unwrap();
    let j = serde_json::to_string(&p).unwrap();
    assert!(
        j.contains("\"capabilities\":\"none\"") && j.contains("\"mode\":\"none\""),
        "{j}"
    );
    assert_eq!(serde_json::from_str::<Profile>(&j).unwrap(), p);
    let caps: CapabilityPolicy = serde_json::from_str("[\"chown\",\"CAP_CHOWN\"]").unwrap();
    assert_eq!(caps, CapabilityPolicy::List(vec!["CAP_CHOWN".into()]));
}
