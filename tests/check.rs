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
        "kernel", "userns", "fuse", "tun", "uidmap", "subids", "cgroup",
    ] {
        assert!(out.contains(name), "check {name} missing from:\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
    let json: Value = serde_json::from_str(&st.run_ok(["check", "--format", "json"])).unwrap();
    let findings = json.as_array().unwrap();
    assert_eq!(findings.len(), 7);
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
