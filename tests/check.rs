//! `hutch check` on the test host, which tests/host-setup.sh prepared the
//! way a desktop distribution is: every required prerequisite must pass.

mod common;

use common::TestStore;
use serde_json::Value;

#[test]
fn host_check_passes_on_a_prepared_host_and_names_every_check() {
    let st = TestStore::new();
    let out = st.run_ok(["check"]);
    for name in [
        "kernel", "userns", "fuse", "tun", "uidmap", "subids", "cgroup", "landlock",
    ] {
        assert!(out.contains(name), "check {name} missing from:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    let json: Value = serde_json::from_str(&st.run_ok(["check", "--format", "json"])).unwrap();
    let findings = json.as_array().unwrap();
    assert_eq!(findings.len(), 8);
    let status = |c: &str| findings.iter().find(|f| f["check"] == c).unwrap()["status"].clone();
    // Prepared by the harness: these must be ok, not merely not failing.
    assert_eq!(status("fuse"), "ok");
    assert_eq!(status("uidmap"), "ok");
    assert_eq!(status("subids"), "ok");
    assert_eq!(status("userns"), "ok");
}

#[test]
fn repair_needs_store() {
    let st = TestStore::new();
    let (code, err) = st.run_fail(["check", "--repair"]);
    assert_eq!(code, 125, "usage errors exit 125 as in Podman: {err}");
    assert!(err.contains("--store"), "{err}");
}

/// `hutch check` in a mount namespace of the test user's own where
/// /dev/net is an empty tmpfs: the default profile's network cannot work
/// there, so check must fail (install.sh then does not say "ready") and
/// name the fix. Control: the same namespace without the tmpfs passes.
#[test]
fn check_fails_when_the_default_network_cannot_work() {
    let st = TestStore::new();
    let hutch = common::hutch_bin();
    let script = format!(
        "{h} check >/dev/null; echo control=$?; \
         mount -t tmpfs none /dev/net || exit 99; {h} check; echo hidden=$?",
        h = hutch.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .envs(st.hutch().get_envs().filter_map(|(k, v)| Some((k, v?))))
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("control=0\n"), "{}", common::describe(&out));
    assert!(s.contains("hidden=1\n"), "{}", common::describe(&out));
    let tun = s.lines().find(|l| l.contains(" tun ")).unwrap_or("");
    assert!(tun.starts_with("[FAIL]"), "{s}");
    assert!(tun.contains("--network none"), "{s}");
    assert!(s.contains("sudo modprobe tun"), "{s}");
}
