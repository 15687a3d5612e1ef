//! `hutch verify --image`: an image's rootfs digest is the same in two
//! stores on different file systems (tmpfs and the test's own temporary
//! directory, ext4 here), differs between images, is checked by
//! `--expect`, and is what an independent implementation of its
//! definition (Python's `tarfile`, from the rootfs tarball the image was
//! made of) computes.

mod common;

use common::{TestStore, fixture};
use std::path::{Path, PathBuf};
use std::process::Output;

const TMPFS_MAGIC: u64 = 0x0102_1994;

fn fs_type(p: &Path) -> String {
    let st = rustix::fs::statfs(p).unwrap_or_else(|e| panic!("statfs {}: {e}", p.display()));
    match st.f_type as u64 {
        TMPFS_MAGIC => "tmpfs".into(),
        0xEF53 => "ext2/3/4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x0102_1997 => "9p".into(),
        0x794C_7630 => "overlayfs".into(),
        t => format!("type {t:#x}"),
    }
}

/// A second store on tmpfs: its own temporary directory in /dev/shm (the
/// test store's HOME and XDG directories stay where `TestStore` put them).
struct TmpfsStore {
    st: TestStore,
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl TmpfsStore {
    fn new() -> TmpfsStore {
        let st = TestStore::new();
        let dir = tempfile::Builder::new()
            .prefix("hutch-test-rootfs-digest-")
            .tempdir_in("/dev/shm")
            .expect("a temporary directory in /dev/shm");
        let root = dir.path().join("store");
        std::fs::create_dir(&root).unwrap();
        TmpfsStore {
            st,
            _dir: dir,
            root,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.st
            .hutch()
            .env("HUTCH_ROOT", &self.root)
            .args(args)
            .output()
            .unwrap()
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "hutch {args:?} in the tmpfs store: {}",
            common::describe(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn digest_line(out: &str) -> String {
    let line = out.trim().to_string();
    assert!(
        line.starts_with("sha256:") && line.len() == 71 && !line.contains('\n'),
        "expected one sha256:<64 hex> line, got {out:?}"
    );
    line
}

const IMAGES: [(&str, &str); 3] = [
    ("busybox-oci.tar", "busybox"),
    ("debian-oci.tar", "debian:bookworm"),
    ("multilayer-oci", "multilayer-oci"),
];

#[test]
fn rootfs_digest_same_in_a_tmpfs_store_and_a_disk_store() {
    let disk = TestStore::new();
    let tmpfs = TmpfsStore::new();
    let (disk_fs, tmpfs_fs) = (fs_type(disk.root()), fs_type(&tmpfs.root));
    eprintln!(
        "stores: {} on {disk_fs}, {} on {tmpfs_fs}",
        disk.root().display(),
        tmpfs.root.display()
    );
    assert_eq!(tmpfs_fs, "tmpfs", "/dev/shm is not a tmpfs here");
    if disk_fs == tmpfs_fs {
        eprintln!("both stores are on {disk_fs}: the test compares two stores of one kind");
    }
    for (file, _) in IMAGES {
        disk.run_ok(["load", "-q", s(&fixture(file))]);
        tmpfs.run_ok(&["load", "-q", s(&fixture(file))]);
    }
    let mut seen = Vec::new();
    for (_, name) in IMAGES {
        let a = digest_line(&disk.run_ok(["verify", "--image", name]));
        let b = digest_line(&tmpfs.run_ok(&["verify", "--image", name]));
        assert_eq!(
            a, b,
            "{name}: the rootfs digest differs between {disk_fs} and {tmpfs_fs}"
        );
        eprintln!("{name}: {a}");
        seen.push(a);
    }
    // Control: different images, different digests.
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), IMAGES.len(), "{seen:?}");
}

#[test]
fn rootfs_digest_expect_and_compare() {
    let st = TestStore::new();
    st.run_ok(["load", "-q", s(&fixture("busybox-oci.tar"))]);
    st.run_ok(["load", "-q", s(&fixture("multilayer-oci"))]);
    let d = digest_line(&st.run_ok(["verify", "--image", "busybox"]));
    assert_eq!(
        digest_line(&st.run_ok(["verify", "--image", "busybox", "--expect", &d])),
        d
    );
    let wrong = format!("sha256:{}", "0".repeat(64));
    let (code, err) = st.run_fail(["verify", "--image", "busybox", "--expect", &wrong]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&d) && err.contains(&wrong), "{err}");
    let (code, err) = st.run_fail(["verify", "--image", "busybox", "--expect", "sha256:xyz"]);
    assert_eq!(code, 125, "a malformed digest is a usage error: {err}");
    assert!(err.contains("sha256:<64 hex digits>"), "{err}");
    let (code, err) = st.run_fail(["verify"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--image"), "{err}");

    // The multilayer fixture deletes /bin/false of the busybox layer
    // with a whiteout (and adds files further down the order).
    let (code, err) = st.run_fail([
        "verify",
        "--image",
        "multilayer-oci",
        "--compare",
        "busybox",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("differ first at /bin/false: only in the second tree"),
        "{err}"
    );
    let out = st.run_ok(["verify", "--image", "busybox", "--compare", "busybox"]);
    assert_eq!(out, format!("{d}\n{d}\n"));
}

/// The digest's definition (`src/image/rootfs_digest.rs`), written again
/// with Python's `tarfile` over a single-layer rootfs tarball: hard links
/// are files of their own, symlinks 0:0 and 0777, no mtimes, no xattrs
/// (the Debian fixture has none).
const PYTHON_DIGEST: &str = r#"
import hashlib, sys, tarfile
def norm(name):
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "" if name == "." else name
src = tarfile.open(sys.argv[1])
entries, contents = {}, {}
for m in src:  # in stream order: the contents are read once
    p = norm(m.name)
    entries[p.encode("utf-8", "surrogateescape")] = m
    if m.isreg():
        contents[p] = src.extractfile(m).read()
h = hashlib.sha256()
for key in sorted(entries):
    m = entries[key]
    p = key.decode("utf-8", "surrogateescape")
    ti = tarfile.TarInfo("./" + p)
    ti.mtime = 0
    ti.uname = ti.gname = ""
    ti.mode = m.mode & 0o7777
    ti.uid, ti.gid = m.uid, m.gid
    data = None
    if m.isdir():
        ti.type = tarfile.DIRTYPE
    elif m.issym():
        ti.type, ti.linkname, ti.mode, ti.uid, ti.gid = tarfile.SYMTYPE, m.linkname, 0o777, 0, 0
    elif m.isreg() or m.islnk():
        ti.type = tarfile.REGTYPE
        data = contents[norm(m.linkname) if m.islnk() else p]
        ti.size = len(data)
    elif m.ischr() or m.isblk():
        ti.type, ti.devmajor, ti.devminor = m.type, m.devmajor, m.devminor
    elif m.isfifo():
        ti.type = tarfile.FIFOTYPE
    else:
        sys.exit("unexpected member " + m.name)
    h.update(ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
    if data is not None:
        h.update(data)
        h.update(b"\0" * (-len(data) % 512))
h.update(b"\0" * 1024)
print("sha256:" + h.hexdigest())
"#;

#[test]
fn rootfs_digest_matches_an_independent_python_computation() {
    let st = TestStore::new();
    let script = st.tmp().join("digest.py");
    std::fs::write(&script, PYTHON_DIGEST).unwrap();
    // Each image's one layer is made of that rootfs tarball
    // (tests/fixtures/README.md).
    let mut seen = Vec::new();
    for (archive, name, rootfs) in [
        ("debian-oci.tar", "debian:bookworm", "debian-rootfs.tar.gz"),
        ("busybox-oci.tar", "busybox", "busybox-rootfs.tar"),
    ] {
        st.run_ok(["load", "-q", s(&fixture(archive))]);
        let ours = digest_line(&st.run_ok(["verify", "--image", name]));
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(fixture(rootfs))
            .output()
            .expect("python3 (installed by tests/host-setup.sh)");
        assert!(out.status.success(), "{}", common::describe(&out));
        let theirs = digest_line(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(ours, theirs, "{name}: hutch and Python's tarfile disagree");
        seen.push(ours);
    }
    assert_ne!(seen[0], seen[1], "control: two images, two digests");
}
