//! Interoperability with the tools people already use: skopeo and rootless
//! podman read what `hutch save` writes, and hutch loads what they write,
//! with the same digests.

mod common;

use common::{TestStore, fixture, podman};
use serde_json::Value;
use sha2::Digest as _;
use std::path::Path;
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed\n{}",
        common::describe(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn inspect(st: &TestStore, image: &str) -> Value {
    let v: Value = serde_json::from_str(&st.run_ok(["inspect", image])).unwrap();
    v[0].clone()
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

#[test]
fn skopeo_reads_what_hutch_saves_with_the_same_digests() {
    let st = TestStore::new();
    st.run_ok(["load", s(&fixture("busybox-oci.tar"))]);
    let v = inspect(&st, "busybox");
    let out = st.tmp().join("out");
    std::fs::create_dir(&out).unwrap();
    st.run_ok(["save", "busybox", "-o", s(&out.join("oci.tar"))]);
    st.run_ok([
        "save",
        "busybox",
        "-o",
        s(&out.join("dir")),
        "--format",
        "oci-dir",
    ]);
    st.run_ok([
        "save",
        "busybox",
        "-o",
        s(&out.join("docker.tar")),
        "--format",
        "docker-archive",
    ]);

    for src in [
        format!("oci-archive:{}", s(&out.join("oci.tar"))),
        format!("oci:{}", s(&out.join("dir"))),
    ] {
        let raw = run(Command::new("skopeo").args(["inspect", "--raw", &src]));
        assert_eq!(
            sha(raw.as_bytes()),
            v["Digest"].as_str().unwrap(),
            "{src}: manifest digest"
        );
        let cfg = run(Command::new("skopeo").args(["inspect", "--raw", "--config", &src]));
        assert_eq!(
            sha(cfg.as_bytes()),
            v["Id"].as_str().unwrap(),
            "{src}: config digest"
        );
    }
    let src = format!("docker-archive:{}", s(&out.join("docker.tar")));
    let cfg = run(Command::new("skopeo").args(["inspect", "--raw", "--config", &src]));
    assert_eq!(
        sha(cfg.as_bytes()),
        v["Id"].as_str().unwrap(),
        "docker-archive keeps the image ID"
    );
    let info: Value =
        serde_json::from_str(&run(Command::new("skopeo").args(["inspect", &src]))).unwrap();
    assert_eq!(info["Layers"][0], v["Layers"][0]["DiffID"], "{info}");
    // The name travels in manifest.json's RepoTags.
    let mut archive = tar::Archive::new(std::fs::File::open(out.join("docker.tar")).unwrap());
    let manifest: Value = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
        .map(|e| serde_json::from_reader(e).unwrap())
        .expect("manifest.json in the docker-archive");
    assert_eq!(
        manifest[0]["RepoTags"][0],
        "docker.io/library/busybox:latest"
    );

    // And back: skopeo rewrites hutch's archive as a docker-archive, hutch loads it.
    let again = out.join("via-skopeo.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci-archive:{}", s(&out.join("oci.tar"))),
        &format!("docker-archive:{}:localhost/roundtrip:1", s(&again)),
    ]));
    let other = TestStore::new();
    other.run_ok(["load", s(&again)]);
    assert_eq!(inspect(&other, "localhost/roundtrip:1")["Id"], v["Id"]);
}

#[test]
fn rootless_podman_loads_what_hutch_saves_and_hutch_loads_what_podman_saves() {
    let st = TestStore::new();
    st.run_ok(["load", s(&fixture("busybox-oci.tar"))]);
    let v = inspect(&st, "busybox");
    let id = v["Id"].as_str().unwrap()[7..].to_owned();
    let pdir = st.tmp().join("podman");
    let saved = st.tmp().join("hutch-saved.tar");
    st.run_ok(["save", "busybox", "-o", s(&saved)]);
    run(podman(&pdir).args(["load", "-q", "-i", s(&saved)]));
    let ids = run(podman(&pdir).args(["images", "--no-trunc", "--format", "{{.ID}}"]));
    assert!(
        ids.lines().any(|l| l.trim_start_matches("sha256:") == id),
        "podman sees image ID {id}: {ids}"
    );

    let from_podman = st.tmp().join("podman-saved.tar");
    run(podman(&pdir).args([
        "save",
        "--format",
        "oci-archive",
        "-o",
        s(&from_podman),
        &id,
    ]));
    let other = TestStore::new();
    let out = other.run_ok(["load", "-q", s(&from_podman)]);
    let loaded = inspect(&other, out.trim());
    assert_eq!(loaded["Id"], v["Id"], "the image ID survives podman save");
    let _ = Command::new("podman")
        .arg("unshare")
        .arg("rm")
        .arg("-rf")
        .arg(&pdir)
        .status();
}
