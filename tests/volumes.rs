//! Named volumes: `hutch volume create|ls|inspect|rm|prune`, `run -v
//! NAME:/path` and `--mount`, filling a new volume from the image, and the
//! profile's locks, on the busybox fixture as an unprivileged user.

mod common;

use common::{TestStore, fixture};
use serde_json::Value;

fn busybox() -> TestStore {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    st
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// `hutch run --rm --network none [flags] busybox sh -c SCRIPT`, asserted
/// to succeed; its stdout.
fn sh(st: &TestStore, flags: &[&str], script: &str) -> String {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    st.run_ok(args)
}

fn names(st: &TestStore) -> Vec<String> {
    st.run_ok(["volume", "ls", "-q"])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn volume_commands_create_ls_inspect_rm_prune() {
    let st = busybox();
    assert_eq!(
        st.run_ok(["volume", "create", "--label", "app=web", "data"]),
        "data\n"
    );
    let anon = st.run_ok(["volume", "create"]).trim().to_string();
    assert_eq!(anon.len(), 64, "a generated name: {anon}");
    assert_eq!(names(&st), {
        let mut v = vec![anon.clone(), "data".into()];
        v.sort();
        v
    });
    let ls = json(&st.run_ok(["volume", "ls", "--format", "json"]));
    assert_eq!(ls.as_array().unwrap().len(), 2);
    let v = &json(&st.run_ok(["volume", "inspect", "data", "--format", "json"]))[0];
    assert_eq!(v["name"], "data");
    assert_eq!(v["labels"]["app"], "web");
    assert_eq!(v["containers"], serde_json::json!([]));
    let mountpoint = v["mountpoint"].as_str().unwrap().to_string();
    assert_eq!(
        mountpoint,
        st.root().join("volumes/data/_data").to_str().unwrap()
    );
    assert!(std::path::Path::new(&mountpoint).is_dir());
    assert!(v["created"].as_str().unwrap().starts_with("20"));

    // Creating it again is refused, with --ignore accepted.
    let (code, err) = st.run_fail(["volume", "create", "data"]);
    assert_eq!(code, 125);
    assert!(err.contains("a volume \"data\" exists already"), "{err}");
    assert_eq!(
        st.run_ok(["volume", "create", "--ignore", "data"]),
        "data\n"
    );
    // Unknown names: a clear error, the known ones still shown.
    let (_, err) = st.run_fail(["volume", "inspect", "data", "nope"]);
    assert!(
        err.contains("no volume \"nope\"; `hutch volume ls` lists them"),
        "{err}"
    );
    let (_, err) = st.run_fail(["volume", "rm", "nope"]);
    assert!(
        err.contains("removing volume nope: no volume \"nope\""),
        "{err}"
    );

    // prune without -f asks and, with no answer, removes nothing.
    let (_, out) = st.run(["volume", "prune"]);
    assert!(out.status.success());
    assert_eq!(names(&st).len(), 2);
    // A volume in use is kept by prune and refused by rm.
    sh(&st, &[], "true");
    st.run_ok([
        "run",
        "--name",
        "user",
        "--network",
        "none",
        "-v",
        "data:/d",
        "busybox",
        "true",
    ]);
    let v = &json(&st.run_ok(["volume", "inspect", "--format", "json", "data"]))[0];
    assert_eq!(v["containers"], serde_json::json!(["user"]));
    assert_eq!(st.run_ok(["volume", "prune", "-f"]), format!("{anon}\n"));
    assert_eq!(names(&st), ["data"]);
    let (code, err) = st.run_fail(["volume", "rm", "data"]);
    assert_eq!(code, 125);
    assert!(
        err.contains(
            "volume data is used by the container(s) user; remove them first (`hutch rm user`)"
        ),
        "{err}"
    );
    assert!(std::path::Path::new(&mountpoint).is_dir());
    // `hutch rm` of the container and `hutch prune` keep the volume.
    st.run_ok(["rm", "user"]);
    st.run_ok(["prune"]);
    assert_eq!(names(&st), ["data"]);
    assert_eq!(st.run_ok(["volume", "rm", "data"]), "data\n");
    assert!(names(&st).is_empty());
    assert!(!std::path::Path::new(&mountpoint).exists());
}

#[test]
fn volume_rm_force_removes_the_containers_as_podman() {
    let st = busybox();
    st.run_ok([
        "run",
        "--name",
        "keeper",
        "--network",
        "none",
        "-v",
        "v1:/d",
        "busybox",
        "true",
    ]);
    assert_eq!(st.run_ok(["volume", "rm", "-f", "v1"]), "v1\n");
    assert!(
        st.run_ok(["ps", "-aq"]).trim().is_empty(),
        "the container went too"
    );
    assert!(names(&st).is_empty());
}

#[test]
fn volume_data_outlives_runs_and_ro_refuses_writes() {
    let st = busybox();
    sh(&st, &["-v", "data:/d"], "echo hello > /d/f; mkdir /d/sub");
    // Created on first use.
    assert_eq!(names(&st), ["data"]);
    assert_eq!(sh(&st, &["-v", "data:/d"], "cat /d/f"), "hello\n");
    // Control: without the volume, /d is not there.
    assert_eq!(
        sh(&st, &[], "cat /d/f 2>/dev/null || echo missing"),
        "missing\n"
    );
    // Files the container's root makes are the user's on the host.
    let data = st.root().join("volumes/data/_data");
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata(st.tmp()).unwrap().uid();
    assert_eq!(std::fs::metadata(data.join("f")).unwrap().uid(), me);
    assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "hello\n");
    // ... and are root's inside.
    assert_eq!(sh(&st, &["-v", "data:/d"], "stat -c %u:%g /d/f"), "0:0\n");
    // :ro and readonly refuse writes; reading works.
    for flags in [
        ["-v", "data:/d:ro"],
        ["--mount", "type=volume,source=data,target=/d,readonly"],
    ] {
        let out = sh(
            &st,
            &flags,
            "cat /d/f; echo x > /d/g 2>/dev/null && echo wrote || echo refused",
        );
        assert_eq!(out, "hello\nrefused\n", "{flags:?}");
    }
    assert!(!data.join("g").exists());
    // --mount type=volume reads and writes the same volume.
    sh(
        &st,
        &["--mount", "type=volume,src=data,dst=/m"],
        "echo again >> /m/f",
    );
    assert_eq!(sh(&st, &["-v", "data:/d"], "cat /d/f"), "hello\nagain\n");
}

#[test]
fn a_new_volume_is_filled_from_the_image_once() {
    let st = busybox();
    let image_etc = sh(&st, &[], "ls -a /etc | sort");
    assert!(image_etc.contains("passwd"), "{image_etc}");
    // A new volume on /etc shows what the image has there, with owners and
    // modes as the container sees them.
    let seen = sh(&st, &["-v", "etcvol:/etc"], "ls -a /etc | sort");
    assert_eq!(seen, image_etc);
    let stat = "stat -c '%a %u %g %n' /etc /etc/passwd";
    assert_eq!(
        sh(&st, &["-v", "etcvol:/etc"], stat),
        sh(&st, &[], stat),
        "modes and owners kept"
    );
    let data = st.root().join("volumes/etcvol/_data");
    assert!(data.join("passwd").is_file());
    // It is not filled again: what a container changed stays.
    sh(
        &st,
        &["-v", "etcvol:/etc"],
        "rm /etc/group; echo mine > /etc/passwd",
    );
    assert_eq!(
        sh(
            &st,
            &["-v", "etcvol:/etc"],
            "cat /etc/passwd; ls /etc/group 2>&1 >/dev/null | wc -l"
        ),
        "mine\n1\n"
    );
    // An existing volume, created empty by `volume create`, is filled by
    // its first container; volume-nocopy leaves a new one empty.
    st.run_ok(["volume", "create", "made"]);
    assert!(sh(&st, &["-v", "made:/etc"], "ls /etc").contains("passwd"));
    let out = sh(
        &st,
        &[
            "--mount",
            "type=volume,source=empty,target=/etc,volume-nocopy",
        ],
        "ls -A /etc | wc -l",
    );
    assert_eq!(out.trim(), "0");
    // A volume on a path the image does not have starts empty.
    assert_eq!(
        sh(&st, &["-v", "fresh:/nowhere"], "ls -A /nowhere | wc -l").trim(),
        "0"
    );
}

#[test]
fn mount_flag_bind_and_tmpfs() {
    let st = busybox();
    let host = st.tmp().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("file"), "from host\n").unwrap();
    let bind = format!("type=bind,source={},target=/h", host.display());
    assert_eq!(
        sh(&st, &["--mount", &bind], "cat /h/file; echo back > /h/new"),
        "from host\n"
    );
    assert_eq!(std::fs::read_to_string(host.join("new")).unwrap(), "back\n");
    let ro = format!("{bind},readonly");
    assert_eq!(
        sh(
            &st,
            &["--mount", &ro],
            "echo x > /h/ro 2>/dev/null && echo wrote || echo refused"
        ),
        "refused\n"
    );
    let out = sh(
        &st,
        &["--mount", "type=tmpfs,target=/t,tmpfs-size=1m"],
        "grep ' /t ' /proc/mounts | cut -d' ' -f3; df -k /t | tail -1 | awk '{print $2}'",
    );
    assert_eq!(out, "tmpfs\n1024\n");
    // No volume was made by any of these.
    assert!(names(&st).is_empty());
}

#[test]
fn bad_mounts_are_clear_errors_and_create_nothing() {
    let st = busybox();
    // The volumes directory and the lock files exist from then on.
    st.run_ok(["volume", "create", "warm"]);
    st.run_ok(["volume", "rm", "warm"]);
    sh(&st, &[], "true");
    let before = st.listing();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--mount", "type=volume,source=data"],
            "no target: add target=/path",
        ),
        (
            &["--mount", "type=nfs,source=x,target=/d"],
            "unknown type `nfs`",
        ),
        (
            &["--mount", "type=volume,source=../x,target=/d"],
            "source=../x is not a volume name",
        ),
        (
            &["--mount", "type=volume,target=/d"],
            "a volume needs source=NAME",
        ),
        (
            &["--mount", "type=volume,source=a,target=/d,bogus"],
            "unknown option `bogus`",
        ),
        (&["-v", "../x:/d"], "is not absolute"),
        (&["-v", "data:relative"], "is not absolute"),
        (&["-v", "data:/d:rx"], "the options are `ro` and `rw`"),
        (&["-v", "a_b-c.d!:/d"], "is not a valid volume name"),
    ];
    for (flags, msg) in cases {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let (code, err) = st.run_fail(&args);
        assert_eq!(code, 125, "{flags:?}: {err}");
        assert!(err.contains(msg), "{flags:?}: expected {msg:?} in: {err}");
    }
    let (_, err) = st.run_fail(["volume", "create", "../x"]);
    assert!(err.contains("\"../x\" is not a valid volume name"), "{err}");
    let (_, err) = st.run_fail([
        "run",
        "--rm",
        "--pull",
        "never",
        "-v",
        "new:/d",
        "no-such-image",
        "true",
    ]);
    assert!(err.contains("no-such-image"), "{err}");
    // A run that fails after its volume was made (a bad -w, found while
    // planning) takes the new volume away again.
    let (_, err) = st.run_fail([
        "run", "--rm", "-w", "rel", "-v", "new:/d", "busybox", "true",
    ]);
    assert!(err.contains("must be an absolute path"), "{err}");
    assert!(names(&st).is_empty());
    assert_eq!(st.listing(), before, "nothing half-created in the store");
}

#[test]
fn locked_profiles_refuse_volumes_as_host_mounts() {
    let st = busybox();
    let work = st.tmp().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let run = |flags: &[&str]| {
        st.hutch()
            .current_dir(&work)
            .args(["run", "--rm", "--profile", "untrusted"])
            .args(flags)
            .args(["busybox", "true"])
            .output()
            .unwrap()
    };
    for flags in [
        &["-v", "data:/d"][..],
        &["--mount", "type=volume,source=data,target=/d"],
        &["--mount", "type=bind,source=/etc,target=/e"],
    ] {
        let out = run(flags);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {err}");
        assert!(
            err.contains("profile untrusted locks filesystem.mounts; ")
                && err.contains(&format!("{} is refused", flags.join(" "))),
            "{flags:?}: {err}"
        );
    }
    assert!(names(&st).is_empty(), "a refused run creates no volume");
    // Controls: a tmpfs passes the lock; under default a volume is allowed
    // with a warning.
    let out = run(&["--mount", "type=tmpfs,target=/t"]);
    assert!(out.status.success(), "{}", common::describe(&out));
    let out = st
        .hutch()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "data:/d",
            "busybox",
            "true",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hutch: warning: -v data:/d weakens profile default (filesystem.mounts = [])"),
        "{err}"
    );
}
