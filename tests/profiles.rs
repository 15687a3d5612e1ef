//! Profiles through the CLI: `hutch profile list` and `hutch profile show`
//! with the built-in profiles, user profiles in
//! `$XDG_CONFIG_HOME/hutch/profiles` (and `~/.config/hutch/profiles` when
//! XDG_CONFIG_HOME is unset), and errors that name file, line and key. Runs
//! as the unprivileged test user; needs no fixtures.

mod common;

use common::TestStore;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The directory the hutch processes of `st` read user profiles from.
fn profile_dir(st: &TestStore) -> PathBuf {
    let dir = st.home().join(".config/hutch/profiles");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn show_json(st: &TestStore, name: &str) -> Value {
    serde_json::from_str(&st.run_ok(["profile", "show", name, "--format", "json"]))
        .expect("profile show --format json prints JSON")
}

#[test]
fn list_shows_the_builtins() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let out = st.run_ok(["profile", "list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("SOURCE")
            && lines[0].contains("DESCRIPTION"),
        "{out}"
    );
    for name in ["default", "dev", "install", "untrusted"] {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing from\n{out}"));
        assert!(line.contains("built-in"), "{line}");
    }
    let json: Value =
        serde_json::from_str(&st.run_ok(["profile", "list", "--format", "json"])).unwrap();
    let names: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "dev", "install", "untrusted"]);
    for p in json.as_array().unwrap() {
        assert_eq!(p["source"], "built-in");
        assert_eq!(p["overrides_builtin"], false);
        assert!(!p["description"].as_str().unwrap().is_empty());
    }
}

#[test]
fn show_untrusted_resolves_every_key() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let p = show_json(&st, "untrusted");
    assert_eq!(p["name"], "untrusted");
    assert_eq!(p["source"], "built-in");
    assert_eq!(p["filesystem"]["read_only"], true);
    assert_eq!(p["filesystem"]["home"], false);
    assert_eq!(p["filesystem"]["tmpfs"], serde_json::json!(["/tmp"]));
    assert_eq!(
        p["filesystem"]["mounts"],
        serde_json::json!(["${CWD}:${CWD}"])
    );
    assert_eq!(p["filesystem"]["workdir"], "${CWD}");
    assert_eq!(p["network"]["mode"], "none");
    assert_eq!(p["security"]["seccomp"], "strict");
    assert_eq!(p["security"]["capabilities"], "none");
    assert_eq!(p["security"]["landlock"], true);
    assert_eq!(p["security"]["landlock_read"], serde_json::json!(["/"]));
    let writable: Vec<&str> = p["security"]["landlock_write"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for path in ["/tmp", "${CWD}", "/dev/null", "/dev/tty", "/dev/pts"] {
        assert!(
            writable.contains(&path),
            "{path} not writable: {writable:?}"
        );
    }
    assert_eq!(p["limits"]["nofile"], 1024);
    assert_eq!(p["limits"]["nproc"], 512);
    assert_eq!(p["limits"]["core"], 0);
    assert_eq!(p["limits"]["memory"], 2u64 << 30);
    assert_eq!(p["limits"]["pids"], 512);
    assert_eq!(p["limits"]["cpus"], Value::Null);
    // Inherited from `default`.
    assert_eq!(p["user"]["keep_id"], false);
    assert_eq!(p["security"]["hostname"], "");

    // The TOML form is a profile file that loads back to the same values.
    let toml = st.run_ok(["profile", "show", "untrusted"]);
    assert!(
        toml.contains("seccomp = \"strict\"") && toml.contains("memory = \"2G\""),
        "{toml}"
    );
    let dir = st.tmp().join("shown");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = write(&dir, "copy.toml", &toml);
    let mut again = show_json(&st, copy.to_str().unwrap());
    assert_eq!(again["name"], "copy");
    assert_eq!(again["source"], copy.to_str().unwrap());
    again["name"] = p["name"].clone();
    again["source"] = p["source"].clone();
    assert_eq!(again, p);
}

#[test]
fn user_profile_extends_dev() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let dir = profile_dir(&st);
    let path = write(
        &dir,
        "mydev.toml",
        "description = \"dev with my home\"\nextends = \"dev\"\n\n[filesystem]\nhome = true\n",
    );
    let p = show_json(&st, "mydev");
    assert_eq!(p["description"], "dev with my home");
    assert_eq!(p["source"], path.to_str().unwrap());
    assert_eq!(p["filesystem"]["home"], true); // overridden
    assert_eq!(p["user"]["keep_id"], true); // from dev
    assert_eq!(
        p["filesystem"]["mounts"],
        serde_json::json!(["${CWD}:${CWD}"])
    ); // from dev
    assert_eq!(p["filesystem"]["workdir"], "${CWD}"); // from dev
    assert_eq!(p["security"]["seccomp"], "default"); // from default

    let out = st.run_ok(["profile", "list"]);
    let line = out.lines().find(|l| l.starts_with("mydev ")).expect(&out);
    assert!(
        line.contains("mydev.toml") && line.contains("dev with my home"),
        "{line}"
    );
    assert!(!line.contains("overrides"), "{line}");
}

#[test]
fn user_profile_overrides_a_builtin() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let dir = profile_dir(&st);
    // A whole replacement, not extending anything.
    write(
        &dir,
        "untrusted.toml",
        "description = \"my own untrusted\"\n[network]\nmode = \"none\"\n[limits]\nmemory = \"1G\"\n",
    );
    let p = show_json(&st, "untrusted");
    assert_eq!(p["description"], "my own untrusted");
    assert!(p["source"].as_str().unwrap().ends_with("/untrusted.toml"));
    assert_eq!(p["limits"]["memory"], 1u64 << 30);
    assert_eq!(p["security"]["landlock"], false); // nothing of the built-in is left
    assert_eq!(p["filesystem"]["read_only"], false);

    let out = st.run_ok(["profile", "list"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("untrusted "))
        .expect(&out);
    assert!(
        line.contains("(overrides built-in)") && line.contains("my own untrusted"),
        "{line}"
    );
    let json: Value =
        serde_json::from_str(&st.run_ok(["profile", "list", "--format", "json"])).unwrap();
    let u = json
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "untrusted")
        .unwrap();
    assert_eq!(u["overrides_builtin"], true);
    assert_eq!(
        json.as_array().unwrap().len(),
        4,
        "the four built-ins, one overridden"
    );
}

#[test]
fn without_xdg_config_home_the_home_config_dir_is_used() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let elsewhere = st.tmp().join("xdg");
    std::fs::create_dir_all(elsewhere.join("hutch/profiles")).unwrap();
    write(
        &elsewhere.join("hutch/profiles"),
        "fromxdg.toml",
        "description = \"xdg\"\n",
    );
    write(
        &profile_dir(&st),
        "fromhome.toml",
        "description = \"home\"\n",
    );

    let names = |out: &str| -> Vec<String> {
        out.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    };
    // XDG_CONFIG_HOME set: only its directory counts.
    let out = st
        .hutch()
        .env("XDG_CONFIG_HOME", &elsewhere)
        .args(["profile", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
    let listed = names(&String::from_utf8_lossy(&out.stdout));
    assert!(
        listed.contains(&"fromxdg".into()) && !listed.contains(&"fromhome".into()),
        "{listed:?}"
    );
    // Unset (or empty): $HOME/.config.
    for cmd in [
        st.hutch()
            .env_remove("XDG_CONFIG_HOME")
            .args(["profile", "list"])
            .output(),
        st.hutch()
            .env("XDG_CONFIG_HOME", "")
            .args(["profile", "list"])
            .output(),
    ] {
        let out = cmd.unwrap();
        assert!(out.status.success(), "{}", common::describe(&out));
        let listed = names(&String::from_utf8_lossy(&out.stdout));
        assert!(
            listed.contains(&"fromhome".into()) && !listed.contains(&"fromxdg".into()),
            "{listed:?}"
        );
    }
}

#[test]
fn broken_profiles_name_file_line_and_key() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let dir = profile_dir(&st);
    let cases = [
        (
            "typo.toml",
            "description = \"x\"\n\n[network]\nnetwrk = \"none\"\n",
            "profile ~/.config/hutch/profiles/typo.toml, line 4: unknown key `netwrk` in [network]; allowed keys: `mode`, `allow_host_loopback`",
        ),
        (
            "size.toml",
            "extends = \"dev\"\n[limits]\nnofile = 10\nmemory = \"12Q\"\n",
            "profile ~/.config/hutch/profiles/size.toml, line 4, key `limits.memory`: invalid size \"12Q\"",
        ),
        (
            "syntax.toml",
            "[network]\nmode = \"none\n",
            "profile ~/.config/hutch/profiles/syntax.toml, line 2, key `network.mode`: invalid TOML",
        ),
        (
            "caps.toml",
            "[security]\ncapabilities = [\n  \"chown\",\n  \"CAP_TELEPORT\",\n]\n",
            "profile ~/.config/hutch/profiles/caps.toml, line 4, key `security.capabilities`: unknown capability `CAP_TELEPORT`",
        ),
        (
            "relative.toml",
            "[filesystem]\nmounts = [\"src:/src\"]\n",
            "profile ~/.config/hutch/profiles/relative.toml, line 2, key `filesystem.mounts`: ",
        ),
    ];
    for (file, text, expected) in cases {
        write(&dir, file, text);
        let name = file.trim_end_matches(".toml");
        let (code, stderr) = st.run_fail(["profile", "show", name]);
        assert_eq!(code, 125, "{name}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{name}: wanted\n  {expected}\ngot\n  {stderr}"
        );
    }

    // A profile that extends a broken one names the broken file.
    write(&dir, "child.toml", "extends = \"size\"\n");
    let (code, stderr) = st.run_fail(["profile", "show", "child"]);
    assert_eq!(code, 125);
    assert!(
        stderr.contains("size.toml, line 4, key `limits.memory`"),
        "{stderr}"
    );

    // A cycle names the `extends` line.
    write(&dir, "a.toml", "extends = \"b\"\n");
    write(&dir, "b.toml", "description = \"b\"\nextends = \"a\"\n");
    let (code, stderr) = st.run_fail(["profile", "show", "a"]);
    assert_eq!(code, 125);
    assert!(
        stderr.contains("b.toml, line 2, key `extends`") && stderr.contains("cycle"),
        "{stderr}"
    );

    // A file given by path is named as given.
    let path = write(st.tmp(), "bad.toml", "[user]\nkeep_id = \"yes\"\n");
    let (code, stderr) = st.run_fail(["profile", "show", path.to_str().unwrap()]);
    assert_eq!(code, 125);
    assert!(
        stderr.contains("bad.toml, line 2, key `user.keep_id`"),
        "{stderr}"
    );

    // `list` still works and shows what is broken.
    let out = st.run_ok(["profile", "list"]);
    let line = out.lines().find(|l| l.starts_with("typo ")).expect(&out);
    assert!(
        line.contains("cannot be loaded") && line.contains("line 4"),
        "{line}"
    );

    let (code, stderr) = st.run_fail(["profile", "show", "nosuch"]);
    assert_eq!(code, 125);
    assert!(stderr.contains("no profile named `nosuch`"), "{stderr}");
}

/// `${CWD}` and `${HOME}` in `[env]` values are expanded as in mounts; any
/// other `${NAME}` is refused with file, line and key (never taken
/// literally); `$NAME` without braces is left to the container.
#[test]
fn env_values_expand_the_documented_variables() {
    let st = TestStore::new();
    let dir = profile_dir(&st);
    write(
        &dir,
        "envtest.toml",
        "[env]\nX = \"${HOME}/x\"\nY = \"${CWD}\"\nZ = \"$LITERAL\"\n",
    );
    let cwd = st.tmp().join("proj");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = st
        .hutch()
        .current_dir(&cwd)
        .args(["run", "--dry-run", "--profile", "envtest", "host", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    let env: Vec<&str> = spec["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let home = st.home().display().to_string();
    assert!(env.contains(&format!("X={home}/x").as_str()), "{env:?}");
    assert!(
        env.contains(&format!("Y={}", cwd.display()).as_str()),
        "{env:?}"
    );
    assert!(env.contains(&"Z=$LITERAL"), "{env:?}");

    write(
        &dir,
        "badenv.toml",
        "[env]\nA = \"1\"\nB = \"${USER}/bin\"\n",
    );
    let (code, err) = st.run_fail(["run", "--dry-run", "--profile", "badenv", "host", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("badenv.toml") && err.contains("line 3") && err.contains("env.B"),
        "{err}"
    );
    assert!(err.contains("${USER}") && err.contains("${HOME}"), "{err}");
}
