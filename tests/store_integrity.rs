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
            for l in v["Layers"].as_array().unwrap() {
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
    let layer = v["Layers"][0].clone();
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
