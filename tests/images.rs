//! Image store through the CLI: load every archive format, import rootfs
//! tarballs, save and reload with the same digests, tags and their history,
//! rollback, rmi and prune. Runs as the unprivileged test user.

mod common;

use common::{TestStore, fixture};
use serde_json::Value;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn inspect(store: &TestStore, image: &str) -> Value {
    let v: Value =
        serde_json::from_str(&store.run_ok(["inspect", image])).expect("inspect prints JSON");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "an array of one: {v}");
    v[0].clone()
}

fn diff_ids(v: &Value) -> Vec<String> {
    v["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["DiffID"].as_str().unwrap().to_owned())
        .collect()
}

fn layer_path(v: &Value, i: usize) -> std::path::PathBuf {
    v["Layers"][i]["Path"].as_str().unwrap().into()
}

fn xattr(path: &Path, name: &str) -> Option<String> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf) {
        Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

#[test]
fn every_archive_format_loads_the_same_layer_once() {
    let st = TestStore::new();
    let formats = [
        "busybox-oci.tar",
        "busybox-oci",
        "busybox-docker.tar",
        "busybox-docker25.tar",
        "busybox-zstd-oci",
        "busybox-uncompressed-oci",
    ];
    let mut seen = Vec::new();
    for f in formats {
        let out = st.run_ok(["load", s(&fixture(f))]);
        assert!(out.starts_with("Loaded image: "), "{f}: {out}");
        let digest = out
            .trim()
            .rsplit('(')
            .next()
            .unwrap()
            .trim_end_matches(')')
            .to_owned();
        let v = inspect(&st, &digest);
        seen.push((f, diff_ids(&v)));
    }
    for (f, ids) in &seen {
        assert_eq!(
            ids, &seen[0].1,
            "{f} unpacks to a different DiffID than {}",
            seen[0].0
        );
    }
    // One unpacked layer shared by all six images.
    let layers = std::fs::read_dir(st.root().join("layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(layers, 1, "the same layer must be unpacked once and shared");
}

#[test]
fn loaded_image_is_listed_and_its_files_keep_ownership_and_modes() {
    let st = TestStore::new();
    let out = st.run_ok(["load", s(&fixture("busybox-oci.tar"))]);
    assert!(
        out.contains("Loaded image: docker.io/library/busybox:latest"),
        "{out}"
    );
    let table = st.run_ok(["images"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("REPOSITORY"));
    let row = lines.next().expect("one image row");
    assert!(
        row.starts_with("docker.io/library/busybox") && row.contains("latest"),
        "{table}"
    );
    let rows: Value = serde_json::from_str(&st.run_ok(["images", "--format", "json"])).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["repository"], "docker.io/library/busybox");

    let v = inspect(&st, "busybox");
    assert_eq!(v["Os"], "linux");
    let root = layer_path(&v, 0);
    assert!(root.join("bin/busybox").is_file());
    // Owned by 1000:1000 in the tar: recorded, since the user cannot chown.
    let rec = xattr(
        &root.join("home/user/file"),
        "user.containers.override_stat",
    )
    .expect("ownership recorded");
    assert!(rec.starts_with("1000:1000:"), "{rec}");
    // setuid in the tar: recorded, never set on disk.
    use std::os::unix::fs::PermissionsExt;
    let su = root.join("bin/su-test");
    assert_eq!(
        std::fs::metadata(&su).unwrap().permissions().mode() & 0o6000,
        0
    );
    let rec = xattr(&su, "user.containers.override_stat").expect("setuid recorded");
    assert!(rec.contains("4755"), "{rec}");
}

#[test]
fn saved_archives_reload_with_the_same_digests() {
    let st = TestStore::new();
    st.run_ok(["load", s(&fixture("busybox-oci.tar"))]);
    let orig = inspect(&st, "busybox");
    let out = st.tmp().join("out");
    std::fs::create_dir(&out).unwrap();
    let oci = out.join("b.tar");
    let docker = out.join("b-docker.tar");
    let dir = out.join("b-dir");
    st.run_ok(["save", "busybox", "-o", s(&oci)]);
    st.run_ok([
        "save",
        "busybox",
        "-o",
        s(&docker),
        "--format",
        "docker-archive",
    ]);
    st.run_ok(["save", "busybox", "-o", s(&dir), "--format", "oci-dir"]);
    // No temporary files left beside the outputs.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["b-dir", "b-docker.tar", "b.tar"]);

    for (path, same_manifest) in [(&oci, true), (&dir, true), (&docker, false)] {
        let other = TestStore::new();
        let loaded = other.run_ok(["load", s(path)]);
        assert!(
            loaded.contains("docker.io/library/busybox:latest"),
            "{loaded}"
        );
        let v = inspect(&other, "busybox");
        assert_eq!(
            v["Id"],
            orig["Id"],
            "{}: image ID (config digest) must survive",
            path.display()
        );
        assert_eq!(diff_ids(&v), diff_ids(&orig));
        if same_manifest {
            assert_eq!(
                v["Digest"],
                orig["Digest"],
                "{}: manifest digest must survive",
                path.display()
            );
        }
    }
    // Saving over an existing non-empty directory is refused.
    let (code, err) = st.run_fail(["save", "busybox", "-o", s(&dir), "--format", "oci-dir"]);
    assert_eq!(code, 125);
    assert!(err.contains("already exists"), "{err}");
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
    )
}

#[test]
fn import_rootfs_in_each_compression() {
    let st = TestStore::new();
    let plain = fixture("busybox-rootfs.tar");
    let want = sha256_file(&plain);
    for (i, f) in [
        "busybox-rootfs.tar",
        "busybox-rootfs.tar.gz",
        "busybox-rootfs.tar.zst",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("localhost/rootfs:{i}");
        let out = st.run_ok(["import", s(&fixture(f)), &name]);
        assert!(out.trim().starts_with("sha256:"), "{out}");
        let v = inspect(&st, &name);
        assert_eq!(
            diff_ids(&v),
            vec![want.clone()],
            "{f}: DiffID is the sha256 of the plain tar"
        );
        assert!(layer_path(&v, 0).join("bin/busybox").is_file());
    }
    // The same content imported three times is unpacked once.
    assert_eq!(
        std::fs::read_dir(st.root().join("layers/sha256"))
            .unwrap()
            .count(),
        1
    );
    let (code, err) = st.run_fail(["import", s(&fixture("busybox-rootfs.tar")), "Bad Name"]);
    assert_eq!(code, 125);
    assert!(err.contains("invalid image reference"), "{err}");
}

/// Bytes of the regular files under `dir`.
fn file_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            total += file_bytes(&e.path());
        } else if m.is_file() {
            total += m.len();
        }
    }
    total
}

#[test]
fn an_imported_uncompressed_tar_is_not_stored_twice() {
    let st = TestStore::new();
    let tar = fixture("busybox-rootfs.tar");
    let tar_size = std::fs::metadata(&tar).unwrap().len();
    st.run_ok(["import", s(&tar), "plain:1"]);
    let blobs = file_bytes(&st.root().join("blobs/sha256"));
    let layers = file_bytes(&st.root().join("layers/sha256"));
    // The unpacked layer holds the content once; the blob next to it is a
    // compressed copy (about half of this tar), not a second full one.
    assert!(
        layers > tar_size * 9 / 10,
        "control: the unpacked layer holds the content ({layers} of {tar_size} bytes)"
    );
    assert!(
        blobs < tar_size * 7 / 10,
        "blobs/ holds {blobs} bytes for a {tar_size}-byte tar"
    );
    let v = inspect(&st, "plain:1");
    assert_eq!(
        v["Layers"][0]["MediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        diff_ids(&v),
        vec![sha256_file(&tar)],
        "the DiffID is the tar's"
    );
    let out = st.run_ok(["check", "--store"]);
    assert!(out.contains("store is consistent"), "{out}");

    // save round trips: an OCI archive loads elsewhere with the same
    // digest and runs; a docker-archive carries the original tar byte for
    // byte (its layer is the decompressed blob).
    let oci = st.tmp().join("plain-oci.tar");
    st.run_ok(["save", "plain:1", "-o", s(&oci)]);
    let other = TestStore::new();
    let out = other.run_ok(["load", "-q", s(&oci)]);
    assert_eq!(out.trim(), v["Digest"].as_str().unwrap());
    assert!(
        other
            .run_offline("plain:1", &["cat", "/etc/os-release"])
            .contains("ID=busybox-fixture")
    );
    let docker = st.tmp().join("plain-docker.tar");
    st.run_ok([
        "save",
        "plain:1",
        "--format",
        "docker-archive",
        "-o",
        s(&docker),
    ]);
    let mut archive = tar::Archive::new(std::fs::File::open(&docker).unwrap());
    let original = std::fs::read(&tar).unwrap();
    let mut found = false;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".tar") {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            assert!(data == original, "{name}: the layer is the imported tar");
            found = true;
        }
    }
    assert!(found, "the docker-archive has a layer tar");
    // A lost unpacked layer is rebuilt from the compressed blob.
    let diff = &diff_ids(&v)[0][7..];
    std::fs::remove_dir_all(st.root().join("layers/sha256").join(diff)).unwrap();
    st.run_ok(["check", "--store", "--repair"]);
    assert!(
        st.run_offline("plain:1", &["cat", "/etc/os-release"])
            .contains("ID=busybox-fixture")
    );
}

#[test]
fn tags_keep_history_and_rollback_walks_back() {
    let st = TestStore::new();
    let v1 = st
        .run_ok(["import", s(&fixture("busybox-rootfs.tar")), "app"])
        .trim()
        .to_owned();
    let v2 = st
        .run_ok(["import", s(&fixture("busybox-rootfs.tar.gz")), "app"])
        .trim()
        .to_owned();
    assert_ne!(v1, v2);
    let hist = st.run_ok(["history", "--tag", "app"]);
    assert!(hist.contains(&v1) && hist.contains(&v2), "{hist}");
    assert!(
        hist.lines().nth(1).unwrap().contains("(current)")
            && hist.lines().nth(1).unwrap().contains(&v2)
    );

    let out = st.run_ok(["rollback", "app"]);
    assert!(out.contains(&format!("{v2} -> {v1}")), "{out}");
    assert_eq!(inspect(&st, "app")["Digest"], v1);
    let (code, err) = st.run_fail(["rollback", "app"]);
    assert_eq!(code, 125);
    assert!(err.contains("no earlier version"), "{err}");
    st.run_ok(["rollback", "app", "--to", &v2]);
    assert_eq!(inspect(&st, "app")["Digest"], v2);

    // tag: a second name for the same image, with its own history.
    st.run_ok(["tag", "app", "localhost/other:1"]);
    assert_eq!(inspect(&st, "localhost/other:1")["Digest"], v2);
    // prune keeps what history references, so rollback still works after it.
    st.run_ok(["prune"]);
    st.run_ok(["rollback", "app"]);
    assert_eq!(inspect(&st, "app")["Digest"], v1);
    // prune --history forgets earlier versions and frees their data.
    let out = st.run_ok(["prune", "--history"]);
    assert!(out.contains("freed"), "{out}");
    let (_, err) = st.run_fail(["rollback", "app"]);
    assert!(err.contains("no earlier version"), "{err}");
    // --build-cache forgets the build cache too (none was made here) and
    // leaves the images.
    let out = st.run_ok(["prune", "--build-cache"]);
    assert!(out.starts_with("forgot 0 build cache entries\n"), "{out}");
    assert_eq!(inspect(&st, "app")["Digest"], v1);
}

#[test]
fn tag_without_a_registry_names_a_localhost_image() {
    let st = TestStore::new();
    st.run_ok(["load", s(&fixture("busybox-oci.tar"))]);
    st.run_ok(["tag", "busybox", "mydeb:12"]);
    let rows: Value = serde_json::from_str(&st.run_ok(["images", "--format", "json"])).unwrap();
    let mut names: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["repository"].as_str().unwrap(),
                r["tag"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["docker.io/library/busybox:latest", "localhost/mydeb:12"],
        "a new name without a registry goes under localhost/, as in podman tag"
    );
    let digest = inspect(&st, "docker.io/library/busybox")["Digest"].clone();
    // Both short names still find their images.
    assert_eq!(inspect(&st, "mydeb:12")["Digest"], digest);
    assert_eq!(inspect(&st, "localhost/mydeb:12")["Digest"], digest);
    assert_eq!(inspect(&st, "busybox")["Digest"], digest);
    // Control: nothing was created under Docker Hub's name.
    let (_, err) = st.run_fail(["inspect", "docker.io/library/mydeb:12"]);
    assert!(err.contains("no image"), "{err}");
    // A name with a registry is kept as given; tag history and rmi find short names.
    st.run_ok(["tag", "mydeb:12", "docker.io/me/app:1"]);
    assert_eq!(inspect(&st, "me/app:1")["Digest"], digest);
    assert!(
        st.run_ok(["history", "--tag", "mydeb:12"])
            .contains("tag busybox")
    );
    let out = st.run_ok(["rmi", "mydeb:12"]);
    assert!(out.contains("Untagged: localhost/mydeb:12"), "{out}");
}

#[test]
fn rmi_keeps_shared_layers_and_prune_frees_the_rest() {
    let st = TestStore::new();
    st.run_ok(["load", s(&fixture("multilayer-oci"))]);
    st.run_ok(["load", s(&fixture("multilayer2-oci"))]);
    let rows: Value = serde_json::from_str(&st.run_ok(["images", "--format", "json"])).unwrap();
    let names: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["repository"].as_str().unwrap(),
                r["tag"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let a = inspect(&st, &names[0]);
    let b = inspect(&st, &names[1]);
    let shared: Vec<String> = diff_ids(&a)
        .into_iter()
        .filter(|d| diff_ids(&b).contains(d))
        .collect();
    assert!(!shared.is_empty(), "the fixtures share a layer");
    let out = st.run_ok(["rmi", &names[0]]);
    assert!(out.contains("Untagged:"), "{out}");
    for d in &shared {
        assert!(
            st.root().join("layers/sha256").join(&d[7..]).is_dir(),
            "shared layer {d} must stay"
        );
    }
    for d in diff_ids(&a).iter().filter(|d| !shared.contains(d)) {
        assert!(
            !st.root().join("layers/sha256").join(&d[7..]).exists(),
            "layer {d} only used by the removed image"
        );
    }
    st.run_ok(["rmi", &names[1]]);
    assert_eq!(
        std::fs::read_dir(st.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(st.root().join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
    let (code, err) = st.run_fail(["rmi", &names[1]]);
    assert_eq!(code, 125);
    assert!(err.contains("no image"), "{err}");
}

#[test]
fn whiteouts_and_opaque_dirs_use_the_overlay_format() {
    let st = TestStore::new();
    st.run_ok(["load", s(&fixture("multilayer-oci"))]);
    let rows: Value = serde_json::from_str(&st.run_ok(["images", "--format", "json"])).unwrap();
    let v = inspect(&st, rows[0]["id"].as_str().unwrap());
    let top = layer_path(&v, 1);
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let wh = std::fs::symlink_metadata(top.join("bin/false")).expect("whiteout for /bin/false");
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0:0 char device"
    );
    assert_eq!(
        xattr(&top.join("opt/data"), "user.overlay.opaque").as_deref(),
        Some("y")
    );
    assert!(top.join("etc/motd").is_file());
}

#[test]
fn index_picks_the_host_platform_or_the_one_asked_for() {
    let st = TestStore::new();
    let out = st.run_ok(["load", "-q", s(&fixture("busybox-index-oci"))]);
    let amd = out.trim().to_owned();
    assert_eq!(inspect(&st, &amd)["Architecture"], "amd64");
    let other = TestStore::new();
    let arm = other.run_ok([
        "load",
        "-q",
        "--platform",
        "linux/arm64",
        s(&fixture("busybox-index-oci")),
    ]);
    assert_eq!(inspect(&other, arm.trim())["Architecture"], "arm64");
    let (code, err) = other.run_fail([
        "load",
        "--platform",
        "linux/s390x",
        s(&fixture("busybox-index-oci")),
    ]);
    assert_eq!(code, 125);
    assert!(
        err.contains("no image for linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );
}

#[test]
fn host_image_is_built_in() {
    let st = TestStore::new();
    let v = inspect(&st, "host");
    assert_eq!(v["Id"], "host");
    assert_eq!(v["Layers"][0]["Path"], "/");
    let (code, err) = st.run_fail(["save", "host", "-o", s(&st.tmp().join("x.tar"))]);
    assert_eq!(code, 125);
    assert!(err.contains("cannot be saved"), "{err}");
}

#[test]
fn history_shows_the_build_steps() {
    let st = TestStore::new();
    st.run_ok(["load", s(&fixture("multilayer-oci"))]);
    let rows: Value = serde_json::from_str(&st.run_ok(["images", "--format", "json"])).unwrap();
    let id = rows[0]["id"].as_str().unwrap();
    let out = st.run_ok(["history", &id[7..19]]);
    assert!(out.starts_with("CREATED"), "{out}");
    assert!(out.lines().count() >= 3, "one row per layer: {out}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let st = TestStore::new();
    st.run_ok(["load", s(&fixture("debian-oci.tar"))]);
    // `hutch inspect debian | head -0`: nobody reads the pipe.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = st
        .hutch()
        .args(["inspect", "debian:bookworm"])
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}
