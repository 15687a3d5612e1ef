//! Locked profile keys and the rlimit stand-ins for cgroup limits.
//!
//! A flag that weakens a key the profile locks (`untrusted` and `install`
//! lock filesystem, user, network and security) is refused before anything
//! is pulled or started, exit 125, with a message naming the key and the
//! profile file that would allow it. Each refusal has its control: the same
//! flag under `default`, which locks nothing, runs, with a warning.
//!
//! Where no cgroup can be made (the test user never sits in a delegated
//! cgroup: tests/run.sh starts the tests with runuser, outside any systemd
//! user session), a profile's memory limit becomes RLIMIT_DATA and its pids
//! limit RLIMIT_NPROC, said in the warning and in `--dry-run`.

mod common;

use common::{TestStore, describe, fixture};
use std::path::PathBuf;
use std::process::Output;

struct Locks {
    st: TestStore,
    /// hutch's current directory (untrusted mounts it).
    work: PathBuf,
    /// A host directory outside `work`.
    other: PathBuf,
}

fn locks() -> Locks {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    let work = st.tmp().join("work");
    let other = st.tmp().join("other");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret"), "host secret\n").unwrap();
    std::fs::write(work.join("sub/file"), "work file\n").unwrap();
    Locks { st, work, other }
}

impl Locks {
    /// `hutch run --profile PROFILE [flags...] busybox sh -c SCRIPT` in
    /// `work` (without --rm, so that a refused run can be seen to leave no
    /// container).
    fn run(&self, profile: &str, flags: &[&str], script: &str) -> Output {
        self.st
            .hutch()
            .current_dir(&self.work)
            .args(["run", "--profile", profile])
            .args(flags)
            .args(["busybox", "sh", "-c", script])
            .output()
            .unwrap()
    }

    fn profile(&self, name: &str, text: &str) {
        let dir = self.st.home().join(".config/hutch/profiles");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    }

    /// The flags are refused under `profile`: exit 125, the message names
    /// the key and the flag, no container exists and the script did not
    /// run. Returns the message.
    fn refused(&self, profile: &str, flags: &[&str], key: &str) -> String {
        let out = self.run(profile, flags, "echo ran; touch ran-marker");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
        assert!(
            err.contains(&format!("profile {profile} locks {key}; ")),
            "names the key {key}: {err}"
        );
        let flag = flags.join(" ");
        assert!(
            err.contains(&format!("{flag} is refused")),
            "names {flag}: {err}"
        );
        assert!(
            err.contains(&format!("extends = \"{profile}\"")) && err.contains("locked = ["),
            "says how to allow it: {err}"
        );
        assert!(out.stdout.is_empty(), "{}", describe(&out));
        assert!(!self.work.join("ran-marker").exists(), "the command ran");
        assert_eq!(
            self.st.run_ok(["ps", "-aq"]).trim(),
            "",
            "a container was created"
        );
        err
    }

    /// The run succeeded; its stdout and stderr (without the warning about
    /// cgroup limits, which every run of a profile with [limits] prints
    /// here and which the cgroup_fallback tests check).
    fn ok(&self, profile: &str, flags: &[&str], script: &str) -> (String, String) {
        let flags: Vec<&str> = std::iter::once("--rm")
            .chain(flags.iter().copied())
            .collect();
        let out = self.run(profile, &flags, script);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        let err: String = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.starts_with(CGROUP_WARNING))
            .map(|l| format!("{l}\n"))
            .collect();
        (String::from_utf8_lossy(&out.stdout).into_owned(), err)
    }
}

const CGROUP_WARNING: &str = "hutch: warning: memory/pids/cpu limits not applied: ";

/// The interfaces the container sees, on one line.
const IFACES: &str = "ls /sys/class/net | tr '\\n' ' '";

#[test]
fn locks_network_host_is_refused_under_untrusted_and_install() {
    let l = locks();
    l.refused("untrusted", &["--network", "host"], "network.mode");
    let err = l.refused("install", &["--network", "host"], "network.mode");
    assert!(
        err.contains("(the profile has network.mode = \"slirp\")"),
        "{err}"
    );
    // Control: default locks nothing; the flag works, with a warning, and
    // the container sees the host's interfaces (more than lo).
    let (out, err) = l.ok("default", &["--network", "host"], IFACES);
    assert_eq!(
        err,
        "hutch: warning: --network host weakens profile default (network.mode = \"slirp\")\n"
    );
    assert!(out.split_whitespace().count() > 1, "host interfaces: {out}");
}

#[test]
fn locks_network_slirp_and_host_loopback() {
    let l = locks();
    l.refused("untrusted", &["--network", "slirp"], "network.mode");
    let err = l.refused(
        "install",
        &["--network", "slirp:allow_host_loopback=true"],
        "network.allow_host_loopback",
    );
    assert!(
        err.contains("[network] allow_host_loopback = true"),
        "{err}"
    );
    // Controls: under default both work, each with its warning.
    let (out, err) = l.ok(
        "default",
        &["--network", "slirp:allow_host_loopback=true"],
        "grep -c host.hutch.internal /etc/hosts",
    );
    assert_eq!(out, "1\n");
    assert_eq!(
        err,
        "hutch: warning: --network slirp:allow_host_loopback=true weakens profile default \
         (network.allow_host_loopback = false)\n"
    );
    let (out, err) = l.ok("dev", &["--network", "host"], IFACES);
    assert!(out.split_whitespace().count() > 1, "{out}");
    assert!(err.contains("weakens profile dev"), "{err}");
}

#[test]
fn locks_tightening_flags_are_always_silent() {
    let l = locks();
    // --network none under default, and what untrusted already has.
    let (out, err) = l.ok("default", &["--network", "none"], IFACES);
    assert_eq!((out.as_str(), err.as_str()), ("lo ", ""));
    let (out, err) = l.ok("untrusted", &["--network", "none", "--read-only"], IFACES);
    assert_eq!((out.as_str(), err.as_str()), ("lo ", ""));
    let (_, err) = l.ok("install", &["--network", "slirp"], "true");
    assert_eq!(err, "");
}

#[test]
fn locks_host_mounts_are_refused_under_untrusted() {
    let l = locks();
    let vol = format!("{}:/o", l.other.display());
    let err = l.refused("untrusted", &["-v", &vol], "filesystem.mounts");
    assert!(
        err.contains("[filesystem] mounts = [\"${CWD}:${CWD}\", "),
        "{err}"
    );
    // A symlink in the work directory that leads out of it is no way round.
    std::os::unix::fs::symlink(&l.other, l.work.join("link")).unwrap();
    let via = format!("{}:/o", l.work.join("link").display());
    l.refused("untrusted", &["-v", &via], "filesystem.mounts");
    // What untrusted already shows (its work directory) may be mounted
    // again elsewhere, silently.
    let sub = format!("{}:/s:ro", l.work.join("sub").display());
    let (out, err) = l.ok("untrusted", &["-v", &sub], "cat /s/file");
    assert_eq!((out.as_str(), err.as_str()), ("work file\n", ""));
    // Control: under default the volume works, with a warning.
    let (out, err) = l.ok("default", &["-v", &vol], "cat /o/secret");
    assert_eq!(out, "host secret\n");
    assert_eq!(
        err,
        format!("hutch: warning: -v {vol} weakens profile default (filesystem.mounts = [])\n")
    );
}

#[test]
fn locks_follow_extends_and_the_advice_works() {
    let l = locks();
    // Inherits untrusted's locks and turns the network on in its own file:
    // that is allowed, and the lock then holds against flags.
    l.profile(
        "web",
        "extends = \"untrusted\"\n[network]\nmode = \"slirp\"\n",
    );
    let (out, _) = l.ok("web", &[], IFACES);
    assert!(out.contains("eth0"), "{out}");
    l.refused("web", &["--network", "host"], "network.mode");
    // Following the message: a file that drops the network lock lets the
    // flag through (with the warning of an unlocked key).
    let err = l.refused("untrusted", &["--network", "host"], "network.mode");
    let locked = err
        .split("put locked = ")
        .nth(1)
        .and_then(|r| r.split(" in that file").next())
        .unwrap_or_else(|| panic!("no locked = [...] advice: {err}"));
    assert_eq!(
        locked,
        "[\"filesystem\", \"user\", \"network.allow_host_loopback\", \"security\"]"
    );
    l.profile(
        "hostnet",
        &format!("extends = \"untrusted\"\nlocked = {locked}\n"),
    );
    let (out, err) = l.ok("hostnet", &["--network", "host"], IFACES);
    assert!(out.split_whitespace().count() > 1, "{out}");
    assert_eq!(
        err,
        "hutch: warning: --network host weakens profile hostnet (network.mode = \"none\")\n"
    );
    // ... and the other locks stay.
    let vol = format!("{}:/o", l.other.display());
    l.refused("hostnet", &["-v", &vol], "filesystem.mounts");
}

#[test]
fn locks_unknown_key_is_an_error_with_file_and_line() {
    let l = locks();
    l.profile(
        "bad",
        "extends = \"default\"\n\nlocked = [\"network\", \"netwrk\"]\n",
    );
    let out = l.run("bad", &[], "true");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        err.contains("bad.toml, line 3, key `locked`: `netwrk` cannot be locked"),
        "{err}"
    );
}

/// A line of /proc/self/limits: (soft, hard).
fn limit(limits: &str, name: &str) -> (String, String) {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in\n{limits}"));
    let f: Vec<&str> = line[name.len()..].split_whitespace().collect();
    (f[0].to_owned(), f[1].to_owned())
}

fn dry_run(l: &Locks, profile: &str) -> (serde_json::Value, String) {
    let out =
        l.st.hutch()
            .current_dir(&l.work)
            .args(["run", "--dry-run", "--profile", profile, "busybox", "true"])
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cgroup_fallback_limits_memory_and_pids_with_rlimits() {
    let l = locks();
    l.profile(
        "memlim",
        "extends = \"default\"\n[limits]\nmemory = \"64M\"\npids = 100\n",
    );
    let script = "cat /proc/self/limits; \
                  dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null && echo big-ok || echo big-refused";
    let out = l.run("memlim", &["--rm"], script);
    assert!(out.status.success(), "{}", describe(&out));
    let (out, err) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(
        limit(&out, "Max data size"),
        ("67108864".into(), "67108864".into()),
        "{out}"
    );
    assert_eq!(limit(&out, "Max processes"), ("100".into(), "100".into()));
    assert!(out.ends_with("big-refused\n"), "a 100M buffer: {out}");
    assert_eq!(err.lines().count(), 1, "a single warning: {err}");
    assert!(
        err.starts_with(CGROUP_WARNING)
            && err.contains(
                "; instead memory is approximated by RLIMIT_DATA = 64M per process, pids by \
                 RLIMIT_NPROC = 100"
            ),
        "{err}"
    );
    // Control: without the limits, nothing is set and the buffer is fine.
    let (out, err) = l.ok("default", &[], script);
    assert_ne!(limit(&out, "Max data size").0, "67108864", "{out}");
    assert!(out.ends_with("big-ok\n"), "{out}");
    assert_eq!(err, "");
    // untrusted's own nproc (512) stays; its 2G memory becomes RLIMIT_DATA.
    let out = l.run("untrusted", &["--rm"], "cat /proc/self/limits");
    assert!(out.status.success(), "{}", describe(&out));
    let (out, err) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(limit(&out, "Max data size").0, (2u64 << 30).to_string());
    assert_eq!(limit(&out, "Max processes").0, "512");
    assert!(
        err.contains("RLIMIT_DATA = 2G per process") && !err.contains("RLIMIT_NPROC"),
        "{err}"
    );
}

#[test]
fn cgroup_fallback_is_shown_by_dry_run() {
    let l = locks();
    let (spec, err) = dry_run(&l, "untrusted");
    let fb = &spec["cgroup_fallback"];
    assert_eq!(fb["rlimits"]["data"], 2u64 << 30, "{spec:#}");
    assert!(
        fb["rlimits"]["nproc"].is_null(),
        "untrusted sets nproc itself"
    );
    assert!(fb["reason"].as_str().unwrap().contains("cgroup"), "{fb}");
    assert!(
        err.starts_with("hutch: warning: memory/pids/cpu limits would not be applied: ")
            && err.contains("RLIMIT_DATA = 2G per process"),
        "{err}"
    );
    // Control: default asks for no cgroup limit; nothing to stand in for.
    let (spec, err) = dry_run(&l, "default");
    assert!(spec.get("cgroup_fallback").is_none(), "{spec:#}");
    assert_eq!(err, "");
}
