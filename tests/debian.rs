//! A real multi-owner distribution (Debian minbase from debootstrap): owners,
//! setuid bits and hardlinks survive an unprivileged load, in both archive
//! formats.

mod common;

use common::{TestStore, fixture};
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn record(path: &Path) -> Option<String> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, "user.containers.override_stat", &mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn layer_root(st: &TestStore, image: &str) -> PathBuf {
    let v: Value = serde_json::from_str(&st.run_ok(["inspect", image])).unwrap();
    let layers = v[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "the Debian fixture is one layer");
    PathBuf::from(layers[0]["Path"].as_str().unwrap())
}

/// uid of `user` in the image's /etc/passwd.
fn uid_of(root: &Path, user: &str) -> u32 {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    passwd
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .and_then(|l| l.split(':').nth(2))
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("{user} not in the image's /etc/passwd"))
}

fn check_debian(st: &TestStore, image: &str) {
    let root = layer_root(st, image);
    let apt = uid_of(&root, "_apt");
    assert_ne!(apt, 0);
    let rec =
        record(&root.join("var/cache/apt/archives/partial")).expect("owner of partial/ recorded");
    assert!(
        rec.starts_with(&format!("{apt}:")),
        "partial/ must belong to _apt ({apt}): {rec}"
    );
    // setuid root binary: recorded, not set on disk.
    let su = root.join("usr/bin/su");
    assert_eq!(
        std::fs::metadata(&su).unwrap().mode() & 0o4000,
        0,
        "no setuid bit on disk"
    );
    let rec = record(&su).expect("su's mode recorded");
    assert!(rec.starts_with("0:0:4755"), "{rec}");
    // Hardlinks in the image stay hardlinks.
    let linked = walk_find(&root, &|m| m.is_file() && m.nlink() > 1);
    assert!(
        linked,
        "the Debian rootfs has hardlinked files and they must stay linked"
    );
    // Everything in the store is owned by the test user (no chown happened).
    let me = unsafe { libc::geteuid() };
    assert_eq!(std::fs::metadata(&su).unwrap().uid(), me);
}

fn walk_find(dir: &Path, pred: &dyn Fn(&std::fs::Metadata) -> bool) -> bool {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.path().symlink_metadata().unwrap();
        if pred(&m) || (m.is_dir() && walk_find(&e.path(), pred)) {
            return true;
        }
    }
    false
}

#[test]
fn debian_oci_archive_keeps_owners_setuid_and_hardlinks() {
    let st = TestStore::new();
    let out = st.run_ok(["load", fixture("debian-oci.tar").to_str().unwrap()]);
    let name = out
        .trim()
        .strip_prefix("Loaded image: ")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    check_debian(&st, &name);
}

#[test]
fn debian_docker_archive_keeps_owners_setuid_and_hardlinks() {
    let st = TestStore::new();
    let out = st.run_ok(["load", "-q", fixture("debian-docker.tar").to_str().unwrap()]);
    check_debian(&st, out.trim());
}

#[test]
fn debian_rootfs_import() {
    let st = TestStore::new();
    st.run_ok([
        "import",
        fixture("debian-rootfs.tar.gz").to_str().unwrap(),
        "debian-local",
    ]);
    check_debian(&st, "localhost/debian-local");
}
