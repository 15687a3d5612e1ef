//! Tests of reading, checking, merging and showing profile files.

use super::*;

fn err(text: &str) -> String {
    parse(text, "profile t.toml").unwrap_err().to_string()
}

#[test]
fn every_key_parses() {
    let f = parse(
        r#"
description = "all"
extends = "dev"
[filesystem]
read_only = true
mounts = ["${CWD}:/src:ro"]
tmpfs = ["/tmp:size=64m"]
workdir = "/src"
home = true
[user]
keep_id = true
[network]
mode = "slirp"
allow_host_loopback = true
[security]
seccomp = "strict"
capabilities = ["chown", "CAP_NET_BIND_SERVICE"]
landlock = true
landlock_read = ["/"]
landlock_write = ["/tmp"]
hostname = "box"
[limits]
nofile = 1024
nproc = 512
core = 0
memory = "512M"
pids = 100
cpus = 1.5
[env]
FOO = "bar"
"#,
        "t",
    )
    .unwrap();
    assert_eq!(f.extends.as_ref().unwrap().get_ref().0, "dev");
    let p = f.resolve("x", "src");
    assert_eq!(
        p.security.capabilities,
        CapabilityPolicy::List(vec!["CAP_CHOWN".into(), "CAP_NET_BIND_SERVICE".into()])
    );
    assert_eq!(p.network.mode, NetworkMode::Slirp);
    assert_eq!(p.security.seccomp, SeccompMode::Strict);
    assert_eq!(p.limits.memory, Some(512 << 20));
    assert_eq!(p.limits.cpus, Some(1.5));
    assert_eq!(p.limits.core, Some(0));
    assert_eq!(p.env["FOO"], "bar");
    assert!(p.filesystem.read_only && p.filesystem.home && p.user.keep_id);
    assert_eq!(p.security.hostname, "box");
}

#[test]
fn unknown_keys_name_line_and_section() {
    let e = err("description = \"x\"\n\n[network]\nnetwrk = \"none\"\n");
    assert_eq!(
        e,
        "profile t.toml, line 4: unknown key `netwrk` in [network]; allowed keys: `mode`, `allow_host_loopback`, `mtu`, `block_private`"
    );
    let e = err("colour = 1\n");
    assert!(e.starts_with("profile t.toml, line 1: unknown key `colour` at the top level; allowed keys: `description`"), "{e}");
    let e = err("[limit]\nnofile = 1\n");
    assert!(
        e.starts_with("profile t.toml, line 1: unknown key `limit` at the top level"),
        "{e}"
    );
    let e = err("[filesystem]\nmounts = []\n[security]\nlandlock = true\nseccmp = \"strict\"\n");
    assert!(
        e.starts_with(
            "profile t.toml, line 5: unknown key `seccmp` in [security]; allowed keys: `seccomp`"
        ),
        "{e}"
    );
}

#[test]
fn bad_values_name_line_and_key() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "[filesystem]\nread_only = \"yes\"\n",
            2,
            "filesystem.read_only",
            "expected a boolean",
        ),
        (
            "[network]\nmode = \"slip\"\n",
            2,
            "network.mode",
            "\"none\", \"host\", \"slirp\"",
        ),
        (
            "[network]\nmode = 3\n",
            2,
            "network.mode",
            "\"none\", \"host\", \"slirp\"",
        ),
        (
            "[security]\nseccomp = \"off\"\n",
            2,
            "security.seccomp",
            "\"default\", \"strict\", \"unconfined\"",
        ),
        (
            "[security]\ncapabilities = \"all\"\n",
            2,
            "security.capabilities",
            "\"default\", \"none\" or a list",
        ),
        (
            "[security]\ncapabilities = [\n  \"CAP_CHOWN\",\n  \"CAP_FLY\",\n]\n",
            4,
            "security.capabilities",
            "unknown capability `CAP_FLY`",
        ),
        (
            "[security]\ncapabilities = [1]\n",
            2,
            "security.capabilities",
            "capability name",
        ),
        (
            "\n[limits]\nmemory = \"12Q\"\n",
            3,
            "limits.memory",
            "invalid size \"12Q\"",
        ),
        ("[limits]\nmemory = 0\n", 2, "limits.memory", "at least 1"),
        (
            "[limits]\nlog_size_max = \"ten\"\n",
            2,
            "limits.log_size_max",
            "invalid size \"ten\"",
        ),
        ("[limits]\nnofile = -1\n", 2, "limits.nofile", "at least 1"),
        (
            "[network]\nmtu = 70000\n",
            2,
            "network.mtu",
            "1280 to 65520",
        ),
        (
            "\n[network]\nmtu = 576\n",
            3,
            "network.mtu",
            "1280 to 65520",
        ),
        (
            "[limits]\nnproc = \"lots\"\n",
            2,
            "limits.nproc",
            "a whole number of at least 1",
        ),
        ("[limits]\ncpus = 0\n", 2, "limits.cpus", "greater than 0"),
        ("[limits]\npids = 1.5\n", 2, "limits.pids", "a whole number"),
        (
            "[filesystem]\nmounts = [\"src:/src\"]\n",
            2,
            "filesystem.mounts",
            "not absolute",
        ),
        (
            "[filesystem]\nmounts = [\"/a:/b:rx\"]\n",
            2,
            "filesystem.mounts",
            "`ro` and `rw`",
        ),
        (
            "[filesystem]\ntmpfs = [\"tmp\"]\n",
            2,
            "filesystem.tmpfs",
            "not absolute",
        ),
        (
            "[filesystem]\nworkdir = \"src\"\n",
            2,
            "filesystem.workdir",
            "not absolute",
        ),
        (
            "[filesystem]\nworkdir = \"${PWD}/x\"\n",
            2,
            "filesystem.workdir",
            "unknown variable ${PWD}",
        ),
        (
            "[security]\nlandlock_write = [\"/tmp\", \"var\"]\n",
            2,
            "security.landlock_write",
            "not absolute",
        ),
        (
            "[security]\nhostname = \"a b\"\n",
            2,
            "security.hostname",
            "invalid hostname",
        ),
        (
            "[env]\n\"A=B\" = \"x\"\n",
            2,
            "env.A=B",
            "invalid environment variable name",
        ),
        ("[env]\nA = 1\n", 2, "env.A", "expected a string"),
        (
            "[env]\nA = \"${USER}/x\"\n",
            2,
            "env.A",
            "unknown variable ${USER}",
        ),
        ("description = \"a\\nb\"\n", 1, "description", "single line"),
        ("extends = \"a b\"\n", 1, "extends", "invalid profile name"),
        (
            "network = \"none\"\n",
            1,
            "network",
            "`network` must be a table: write [network]",
        ),
        (
            "[[filesystem]]\nread_only = true\n",
            1,
            "filesystem",
            "`filesystem` must be a table",
        ),
        (
            "[filesystem]\nmounts = \"/a:/b\"\n",
            2,
            "filesystem.mounts",
            "expected an array",
        ),
    ];
    for (text, line, key, needle) in cases {
        let e = err(text);
        let prefix = format!("profile t.toml, line {line}, key `{key}`: ");
        assert!(
            e.starts_with(&prefix),
            "{text:?}: {e}\n  wanted prefix {prefix}"
        );
        assert!(e.contains(needle), "{text:?}: {e}\n  wanted {needle}");
    }
}

#[test]
fn syntax_errors_name_line_and_key() {
    let e = err("description = \"x\"\n[network]\nmode = \"none\n");
    assert!(
        e.starts_with("profile t.toml, line 3, key `network.mode`: invalid TOML: "),
        "{e}"
    );
    assert!(e.contains("mode = \"none"), "{e}");
    let e = err("[network\nmode = \"none\"\n");
    assert!(
        e.starts_with("profile t.toml, line 1, key `network`: invalid TOML"),
        "{e}"
    );
    let e = err("[user]\nkeep_id = true\nkeep_id = false\n");
    assert!(
        e.starts_with("profile t.toml, line 3, key `user.keep_id`: invalid TOML"),
        "{e}"
    );
}

#[test]
fn unlimited_and_sizes() {
    let f = parse(
        "[limits]\nnofile = \"unlimited\"\nmemory = \"unlimited\"\ncpus = 2\ncore = \"1M\"\n",
        "t",
    )
    .unwrap();
    let l = f.limits.unwrap();
    assert_eq!(l.nofile, Some(Count(None)));
    assert_eq!(l.memory, Some(Size(None)));
    assert_eq!(l.cpus, Some(Cpus(Some(2.0))));
    assert_eq!(l.core, Some(Size(Some(1 << 20))));
    // The log cap: "unlimited" never rotates, a size is bytes, left out is
    // 10 MiB.
    for (text, want) in [
        ("log_size_max = \"unlimited\"", None),
        ("log_size_max = \"64K\"", Some(64 << 10)),
        ("", Some(10 << 20)),
    ] {
        let p = parse(&format!("[limits]\n{text}\n"), "t")
            .unwrap()
            .resolve("t", "s");
        assert_eq!(p.limits.log_size_max, want, "{text}");
    }
}

#[test]
fn merge_rules() {
    let base = parse(
        "description = \"base\"\n[filesystem]\nmounts = [\"/a:/a\", \"/b:/b\"]\nread_only = true\n\
             [limits]\nmemory = \"1G\"\nnofile = 10\n[env]\nA = \"1\"\nB = \"2\"\n",
        "b",
    )
    .unwrap();
    let over = parse(
            "[filesystem]\nmounts = [\"/c:/c\"]\n[limits]\nmemory = \"unlimited\"\n[env]\nB = \"3\"\nC = \"4\"\n",
            "o",
        )
        .unwrap();
    let p = ProfileFile::merge(base, over).resolve("m", "s");
    assert_eq!(p.description, "base");
    assert_eq!(p.filesystem.mounts, vec!["/c:/c"]); // lists replace
    assert!(p.filesystem.read_only); // untouched keys stay
    assert_eq!(p.limits.memory, None); // "unlimited" removes the parent's limit
    assert_eq!(p.limits.nofile, Some(10));
    let env: Vec<_> = p.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(env, ["A=1", "B=3", "C=4"]); // env merges key by key
}

#[test]
fn round_trip_through_show() {
    let p = parse(
            "[security]\ncapabilities = [\"chown\"]\n[limits]\nmemory = \"2G\"\ncore = 1000\n[env]\nX = \"y\"\n",
            "t",
        )
        .unwrap()
        .resolve("n", "s");
    let text = toml::to_string(&ProfileFile::from(&p)).unwrap();
    assert!(text.contains("memory = \"2G\""), "{text}");
    let back = parse(&text, "shown").unwrap().resolve("n", "s");
    assert_eq!(back, p);
}
