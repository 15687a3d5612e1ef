//! The store under stress: concurrent loads, a hutch killed mid-load, and
//! `hutch check --store` finding and repairing damage.

mod common;

use common::{TestStore, fixture};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn two_concurrent_loads_of_one_image_end_consistent() {
    let st = TestStore::new();
    let img = fixture("debian-oci.tar");
    let mut kids: Vec<_> = (0..2)
        .map(|_| st.hutch().args(["load", "-q", s(&img)]).spawn().unwrap())
        .collect();
    for k in kids.iter_mut() {
        assert!(k.wait().unwrap().success());
    }
    let rows: Value = serde_json::from_str(&st.run_ok(["images", "--format", "json"])).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    let out = st.run_ok(["check", "--store"]);
    assert!(out.contains("store is consistent"), "{out}");
    assert_eq!(
        std::fs::read_dir(st.root().join("tmp")).unwrap().count(),
        0,
        "no leftovers in tmp/"
    );
}

#[test]
fn a_killed_load_leaves_no_half_image_and_the_next_load_completes() {
    let st = TestStore::new();
    let img = fixture("debian-oci.tar");
    for delay_ms in [5u64, 40, 150, 400] {
        let mut child = st.hutch().args(["load", "-q", s(&img)]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Either the image is there and complete, or it is not there at all.
        let rows: Value = serde_json::from_str(&st.run_ok(["images", "--format", "json"])).unwrap();
        for r in rows.as_array().unwrap() {
            let v: Value =
                serde_json::from_str(&st.run_ok(["inspect", r["digest"].as_str().unwrap()]))
                    .unwrap();
            for l in v[0]["Layers"].as_array().unwrap() {
                assert!(
                    Path::new(l["Path"].as_str().unwrap()).is_dir(),
                    "visible image with a missing layer"
                );
            }
        }
    }
    // Leftovers are only garbage: check reports the store usable, repair clears them.
    st.run_ok(["check", "--store", "--repair"]);
    let out = st.run_ok(["check", "--store"]);
    assert!(out.contains("store is consistent"), "{out}");
    st.run_ok(["load", s(&img)]);
    let out = st.run_ok(["check", "--store"]);
    assert!(out.contains("store is consistent"), "{out}");
}

#[test]
fn check_store_finds_damage_and_repair_fixes_it() {
    let st = TestStore::new();
    st.run_ok(["load", s(&fixture("busybox-oci.tar"))]);
    let v: Value = serde_json::from_str(&st.run_ok(["inspect", "busybox"])).unwrap();
    let layer = v[0]["Layers"][0].clone();
    let diff = &layer["DiffID"].as_str().unwrap()[7..];

    // An unpacked layer went missing: repair unpacks it again from its blob.
    std::fs::remove_dir_all(st.root().join("layers/sha256").join(diff)).unwrap();
    let (code, _) = st.run_fail(["check", "--store"]);
    assert_eq!(code, 1);
    let out = st.run_ok(["check", "--store", "--repair"]);
    assert!(
        out.contains("unpacked layer") && out.contains("again from its blob"),
        "{out}"
    );
    assert!(
        st.root()
            .join("layers/sha256")
            .join(diff)
            .join("root/bin/busybox")
            .is_file()
    );
    assert!(
        st.run_ok(["check", "--store"])
            .contains("store is consistent")
    );

    // A blob was corrupted on disk: found, removed, and the image's tag
    // dropped, since its data is gone.
    let blob = st
        .root()
        .join("blobs/sha256")
        .join(&layer["Digest"].as_str().unwrap()[7..]);
    let mut data = std::fs::read(&blob).unwrap();
    data[100] ^= 0xff;
    std::fs::write(&blob, data).unwrap();
    let (code, _) = st
        .hutch()
        .args(["check", "--store"])
        .output()
        .map(|o| (o.status.code(), ()))
        .unwrap();
    assert_eq!(code, Some(1));
    let out = st.run_ok(["check", "--store", "--repair"]);
    assert!(out.contains("damaged"), "{out}");
    let (_, err) = st.run_fail(["inspect", "busybox"]);
    assert!(err.contains("no image"), "{err}");
    // Loading again restores it.
    st.run_ok(["load", s(&fixture("busybox-oci.tar"))]);
    assert!(
        st.run_ok(["check", "--store"])
            .contains("store is consistent")
    );
}

/// Run hutch with `args` on a store in a tmpfs of `size` (mounted in a
/// private mount namespace: a user namespace mapping us to root mounts
/// it, a nested one maps us back to our own uid before hutch starts, so
/// hutch runs unprivileged as always). Returns hutch's exit code, its
/// stderr, the store root as hutch saw it, and the files hutch left under
/// the store's tmp/, blobs/ and layers/ and hidden ones in its root
/// (temporary files of atomic writes), listed before the tmpfs goes.
/// `before` is a shell snippet run first in the same place, with `$HUTCH`
/// the hutch binary and `$MNT` the tmpfs.
fn on_small_fs(
    st: &TestStore,
    size: &str,
    before: &str,
    args: &[&str],
) -> (i32, String, String, Vec<String>) {
    let mnt = st.tmp().join(format!("small-{size}"));
    std::fs::create_dir_all(&mnt).unwrap();
    let root = mnt.join("store");
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let inner = r#"
        mount -t tmpfs -o size="$SIZE" tmpfs "$MNT" || { echo "mount failed" >&2; exit 90; }
        exec unshare --user --map-user="$OUTER_UID" --map-group="$OUTER_GID" sh -c '
            HUTCH="$1"; eval "$BEFORE" >/dev/null 2>&1
            "$@" >/dev/null; rc=$?
            echo "exit=$rc"
            find "$HUTCH_ROOT/tmp" "$HUTCH_ROOT/blobs" "$HUTCH_ROOT/layers" ! -type d
            find "$HUTCH_ROOT" -maxdepth 1 -name ".*" ! -type d
        ' sh "$@"
    "#;
    let bin = std::env::var_os("HUTCH_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_hutch").into());
    let mut cmd = std::process::Command::new("unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        inner,
        "sh",
    ])
    .arg(&bin)
    .args(args);
    for (k, v) in st.hutch().get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let out = cmd
        .env("HUTCH_ROOT", &root)
        .env("SIZE", size)
        .env("BEFORE", before)
        .env("MNT", &mnt)
        .env("OUTER_UID", uid.to_string())
        .env("OUTER_GID", gid.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut lines = stdout.lines();
    let code = lines
        .next()
        .and_then(|l| l.strip_prefix("exit="))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no exit status from the namespace script:\n{stdout}\n{stderr}"));
    let left = lines.map(str::to_owned).collect();
    (code, stderr, root.display().to_string(), left)
}

#[test]
fn a_full_disk_is_reported_as_such_and_leaves_nothing_half_written() {
    let st = TestStore::new();
    // A gzip-compressed docker-archive: load extracts it into tmp/ first.
    let gz = st.tmp().join("busybox-docker.tar.gz");
    {
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        std::io::copy(
            &mut std::fs::File::open(fixture("busybox-docker.tar")).unwrap(),
            &mut enc,
        )
        .unwrap();
        enc.finish().unwrap();
    }
    let oci = fixture("busybox-oci.tar");
    let docker = fixture("busybox-docker.tar");
    let plain = fixture("busybox-rootfs.tar");
    let gz_rootfs = fixture("busybox-rootfs.tar.gz");
    let commands: Vec<Vec<&str>> = vec![
        vec!["load", s(&oci)],
        vec!["load", s(&docker)],
        vec!["load", s(&gz)],
        vec!["import", s(&plain), "x"],
        vec!["import", s(&gz_rootfs), "x"],
    ];
    // Control: with room enough, each command works in this setting.
    for args in &commands {
        let (code, err, _, _) = on_small_fs(&st, "64m", "", args);
        assert_eq!(code, 0, "{args:?} on a 64 MiB tmpfs: {err}");
    }
    // The busybox layer unpacks to about 4 MB: each size runs out at
    // another point (the blob, the unpacked files, the extracted archive).
    for size in ["1m", "2m", "3m"] {
        for args in &commands {
            let (code, err, root, left) = on_small_fs(&st, size, "", args);
            assert_eq!(code, 125, "{size} {args:?}: {err}");
            assert!(
                err.contains("no space left on device while writing"),
                "{size} {args:?}: {err}"
            );
            assert!(
                err.contains(&format!("to the store at {root};")) && err.contains("hutch prune"),
                "{size} {args:?}: {err}"
            );
            for wrong in ["damaged", "mismatch", "corrupt", "expected a tar"] {
                assert!(!err.contains(wrong), "{size} {args:?}: {wrong:?} in {err}");
            }
            assert!(left.is_empty(), "{size} {args:?}: left behind: {left:?}");
        }
    }
}

#[test]
fn a_full_disk_when_moving_a_tag_is_reported_as_such() {
    let st = TestStore::new();
    let oci = fixture("busybox-oci.tar");
    // The image fits; then a file takes the rest of the space.
    let fill = format!(
        "\"$HUTCH\" load {} && dd if=/dev/zero of=\"$MNT/fill\" bs=64k",
        s(&oci)
    );
    let (code, err, root, left) = on_small_fs(&st, "16m", &fill, &["tag", "busybox", "mine:1"]);
    assert_eq!(code, 125, "{err}");
    // Only the image's own files remain; no half-written copy of refs.json.
    assert!(
        left.iter()
            .all(|f| f.contains("/blobs/") || f.contains("/layers/")),
        "{left:?}"
    );
    assert!(
        err.contains(&format!(
            "no space left on device while writing the tags (refs.json) to the store at {root};"
        )),
        "{err}"
    );
    // Control: the same with room left works.
    let (code, err, _, _) = on_small_fs(
        &st,
        "16m",
        &format!("\"$HUTCH\" load {}", s(&oci)),
        &["tag", "busybox", "mine:1"],
    );
    assert_eq!(code, 0, "{err}");
}
