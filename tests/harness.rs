//! Checks of the test environment itself: that the integration tests really
//! run the way tests/run.sh promises (unprivileged, with FUSE, subordinate
//! ids and the fixtures), and that the helpers in tests/common work.

mod common;

use common::*;
use std::ffi::CStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Every fixture tests may rely on (tests/fixtures/README.md).
const FIXTURES: &[&str] = &[
    "busybox-rootfs.tar",
    "busybox-rootfs.tar.gz",
    "busybox-rootfs.tar.zst",
    "busybox-oci",
    "busybox-oci.tar",
    "busybox-docker.tar",
    "busybox-docker25.tar",
    "busybox-zstd-oci",
    "busybox-uncompressed-oci",
    "multilayer-oci",
    "multilayer2-oci",
    "busybox-index-oci",
    "debian-rootfs.tar.gz",
    "debian-oci.tar",
    "debian-docker.tar",
];

fn user_name() -> String {
    // SAFETY: getpwuid_r writes only into the buffers we pass, whose sizes
    // we give; the result pointer is checked before use.
    unsafe {
        let uid = libc::geteuid();
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16384];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result);
        assert!(
            rc == 0 && !result.is_null(),
            "uid {uid} has no passwd entry"
        );
        CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned()
    }
}

/// The subordinate id range of this user in /etc/subuid or /etc/subgid.
fn sub_range(file: &str) -> Option<(u64, u64)> {
    let name = user_name();
    // SAFETY: no preconditions.
    let uid = unsafe { libc::geteuid() }.to_string();
    let text = fs::read_to_string(file).unwrap_or_default();
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != name && who != uid {
            return None;
        }
        Some((start.trim().parse().ok()?, count.trim().parse().ok()?))
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..])
}

/// Read a blob of an OCI layout, checking its digest and size.
fn read_blob(layout: &Path, desc: &serde_json::Value) -> Vec<u8> {
    let digest = desc["digest"].as_str().expect("descriptor has a digest");
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("{digest}: not a sha256 digest"));
    let path = layout.join("blobs/sha256").join(hex);
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert_eq!(
        sha256_hex(&bytes),
        hex,
        "{} does not match its digest",
        path.display()
    );
    assert_eq!(
        Some(bytes.len() as u64),
        desc["size"].as_u64(),
        "{}: size differs from its descriptor",
        path.display()
    );
    bytes
}

#[test]
fn runs_as_an_unprivileged_user() {
    // SAFETY: no preconditions.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    assert_ne!(uid, 0, "tests run as root: use tests/run.sh");
    assert_ne!(euid, 0, "tests run with euid 0: use tests/run.sh");
    assert_unprivileged();
}

#[test]
fn dev_fuse_opens_read_write() {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse");
    assert!(f.is_ok(), "cannot open /dev/fuse read-write: {:?}", f.err());
}

#[test]
fn newuidmap_and_newgidmap_are_privileged() {
    for tool in ["newuidmap", "newgidmap"] {
        let path = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .map(|d| PathBuf::from(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found (package uidmap)"));
        let meta = fs::metadata(&path).unwrap();
        let setuid_root = meta.uid() == 0 && meta.permissions().mode() & 0o4000 != 0;
        let has_caps = {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: both strings are NUL-terminated; a null buffer of size
            // 0 asks only for the attribute's size.
            let n = unsafe {
                libc::getxattr(
                    c.as_ptr(),
                    c"security.capability".as_ptr(),
                    std::ptr::null_mut(),
                    0,
                )
            };
            n > 0
        };
        assert!(
            setuid_root || has_caps,
            "{} is neither setuid root nor has file capabilities",
            path.display()
        );
    }
}

#[test]
fn user_has_subordinate_id_ranges() {
    for file in ["/etc/subuid", "/etc/subgid"] {
        let (start, count) = sub_range(file)
            .unwrap_or_else(|| panic!("{} has no range for user {}", file, user_name()));
        assert!(
            count >= 65536,
            "{file}: range of {} has {count} ids, want 65536",
            user_name()
        );
        assert!(start > 0, "{file}: range starts at 0");
    }
}

#[test]
fn user_namespace_maps_subordinate_ids() {
    let max: u64 = fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .expect("read user.max_user_namespaces")
        .trim()
        .parse()
        .unwrap();
    assert!(
        max > 0,
        "user namespaces are disabled (user.max_user_namespaces = 0)"
    );
    // util-linux unshare uses newuidmap/newgidmap for --map-auto.
    let out = Command::new("unshare")
        .args([
            "--user",
            "--map-auto",
            "--map-root-user",
            "cat",
            "/proc/self/uid_map",
        ])
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "unshare --user --map-auto failed: {}",
        describe(&out)
    );
    let mapped: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum();
    assert!(
        mapped >= 65536,
        "only {mapped} ids mapped in a user namespace: {}",
        describe(&out)
    );
}

#[test]
fn all_fixtures_exist_and_are_readable() {
    for name in FIXTURES {
        let path = fixture(name);
        if path.is_file() {
            let mut f =
                fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            let mut head = [0u8; 512];
            f.read_exact(&mut head)
                .unwrap_or_else(|e| panic!("{} is too short: {e}", path.display()));
        } else {
            assert!(
                path.join("index.json").is_file(),
                "{} has no index.json",
                path.display()
            );
            assert!(
                path.join("oci-layout").is_file(),
                "{} has no oci-layout",
                path.display()
            );
        }
    }
}

#[test]
fn busybox_oci_layout_is_a_valid_image() {
    let layout = fixture("busybox-oci");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap())
            .expect("index.json parses");
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"]
        .as_array()
        .expect("index.json has manifests");
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"], "latest",
        "ref name annotation"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&read_blob(&layout, &manifests[0])).expect("manifest parses");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&read_blob(&layout, &manifest["config"])).expect("config parses");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let layers = manifest["layers"].as_array().unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(diff_ids.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // The gzip layer decompresses to its diff_id.
    let gz = read_blob(&layout, &layers[0]);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .expect("layer is gzip");
    assert_eq!(
        format!("sha256:{}", sha256_hex(&raw)),
        diff_ids[0].as_str().unwrap()
    );
}

#[test]
fn busybox_rootfs_tarball_has_the_promised_entries() {
    let file = fs::File::open(fixture("busybox-rootfs.tar")).unwrap();
    let mut archive = tar::Archive::new(file);
    let mut seen = std::collections::BTreeMap::new();
    for entry in archive.entries().expect("a tar archive") {
        let entry = entry.expect("a tar entry");
        let h = entry.header();
        let path = entry.path().unwrap().display().to_string();
        let link = entry.link_name().unwrap().map(|l| l.display().to_string());
        seen.insert(
            path.trim_start_matches("./")
                .trim_end_matches('/')
                .to_string(),
            (
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                link,
            ),
        );
    }
    let get = |p: &str| {
        seen.get(p)
            .unwrap_or_else(|| panic!("{p} missing from busybox-rootfs.tar"))
    };
    assert!(get("bin/busybox").0.is_file());
    assert_eq!(
        get("bin/sh").4.as_deref(),
        Some("busybox"),
        "bin/sh -> busybox"
    );
    let su = get("bin/su-test");
    assert_eq!(
        (su.1 & 0o7777, su.2),
        (0o4755, 0),
        "bin/su-test is setuid root"
    );
    let file = get("home/user/file");
    assert_eq!(
        (file.2, file.3),
        (1000, 1000),
        "home/user/file owned by 1000:1000"
    );
    assert_eq!(get("tmp").1 & 0o7777, 0o1777);
    let b = get("opt/links/b");
    assert!(b.0.is_hard_link(), "opt/links/b is a hardlink");
    assert_eq!(b.4.as_deref(), Some("./opt/links/a"));
    for p in ["etc/passwd", "etc/group", "opt/data/old"] {
        assert_eq!(get(p).2, 0, "{p} owned by root");
    }
}

#[test]
fn hutch_binary_runs_and_help_leaves_the_store_alone() {
    let bin = hutch_bin();
    let meta = fs::metadata(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert!(
        meta.permissions().mode() & 0o111 != 0,
        "{} is not executable",
        bin.display()
    );
    let store = TestStore::new();
    let before = store.listing();
    let help = store.run_ok(["--help"]);
    assert!(help.contains("Usage"), "hutch --help prints usage:\n{help}");
    assert_eq!(store.listing(), before, "hutch --help changed the store");
    let (code, stderr) = store.run_fail(["no-such-command"]);
    assert_ne!(code, 0);
    assert!(
        !stderr.is_empty(),
        "an unknown command explains itself on stderr"
    );
}

#[test]
fn tree_listing_lists_every_path() {
    let store = TestStore::new();
    let d = store.tmp().join("scratch");
    fs::create_dir_all(d.join("a/b")).unwrap();
    fs::write(d.join("a/b/file"), b"12345").unwrap();
    fs::set_permissions(d.join("a/b/file"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("b/file", d.join("a/link")).unwrap();
    let listing = tree_listing(&d);
    assert_eq!(
        listing,
        vec![
            "d 0755 - a".to_string(),
            "d 0755 - a/b".to_string(),
            "f 0640 5 a/b/file".to_string(),
            "l 0777 - a/link -> b/file".to_string(),
        ]
        .into_iter()
        .map(|s| if s.starts_with('d') {
            s.replace("0755", &dir_mode())
        } else {
            s
        })
        .collect::<Vec<_>>()
    );
    assert!(tree_listing(&d.join("missing")).is_empty());
}

/// Mode of a new directory under the current umask.
fn dir_mode() -> String {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .map(|m| u32::from_str_radix(m.trim(), 8).unwrap())
        .expect("Umask in /proc/self/status");
    format!("{:04o}", 0o777 & !mask)
}

#[test]
#[should_panic(expected = "fixture no-such-fixture missing")]
fn missing_fixture_panics_with_advice() {
    fixture("no-such-fixture");
}
