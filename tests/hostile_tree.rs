//! A container builds a tree meant to break cleanup in its root filesystem
//! (its upper dir in the store): a directory chain over 3000 levels deep
//! with 250-byte names at the bottom, so the full path is far past
//! PATH_MAX; a name with a newline and invalid UTF-8; `chmod 000` on
//! directories and files and a mode-000 FIFO; `chmod 500` directories;
//! hardlinks; symlinks to the host's `/`, `/etc` and a directory of the
//! test user's. `hutch rm` and `hutch run --rm` must remove all of it with
//! a descriptor limit far below the depth (a walk holding a descriptor per
//! level, as before, fails with "Too many open files"), leave the store's
//! `tmp/` empty, never follow a symlink out, and `hutch prune` must then
//! succeed without warnings.
//!
//! The overlay keeps owner rwx on directories and rw on files on disk (the
//! modes the container set are in xattrs; FIFOs keep theirs), so on-disk
//! modes that refuse the owner are covered by the unit tests of
//! `src/store/remove.rs`. The overlay resolves every path from the upper
//! dir's top, so a container cannot `mkdir` past PATH_MAX in one go: it
//! builds chains that fit and moves one into the bottom of another, as an
//! attacker would. Controls: the container prints the depth it built, and
//! before `hutch rm` the host's `find` sees that depth on disk and a
//! symlink in the tree leads to the host directory.

mod common;

use common::{TestStore, describe, fixture, hutch_bin};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The depth the script builds: /a, 1900 levels, b, 1100 levels, l, 15
/// levels of 250-byte names.
const DEPTH: usize = 1 + 1900 + 1 + 1100 + 1 + 15;

/// Descriptor limit for `hutch rm` and `hutch prune`, far below `DEPTH`.
const RM_NOFILE: u32 = 64;

/// Descriptor limit for `hutch run --rm` (running needs more for itself).
const RUN_NOFILE: u32 = 256;

/// The container's script; `out` is a host directory of the test user's
/// that symlinks point to.
fn script(out: &Path) -> String {
    format!(
        r#"set -e
chain() {{ i=0; while [ $i -lt $2 ]; do printf '%s/' "$1"; i=$((i+1)); done; }}
a=$(chain d 1900); b=$(chain d 1100); n=$(printf %0250d 0); l=$(chain "$n" 15)
mkdir -p "/a/$a" "/b/$b" "/l/$l"
ln -s {out} /a/out
cd "/l/$l"
odd=$(printf 'odd\nname\377')
mkdir "$odd" locked
echo x > "$odd/$odd"; echo secret > locked/f; mkfifo -m 000 fifo
ln -s / rootlink; ln -s /etc etclink; ln -s {out} out; ln -s ../../.. up
ln "$odd/$odd" hard
chmod 000 "$odd/$odd" locked/f "$odd" locked
cd /
mkdir /a/d/side /b/d/side; echo y > /a/d/side/g
chmod 000 /a/d/side/g /a/d/side /b/d/side
mv /l "/b/$b"
chmod 500 "/b/$b" /b/d
mv /b "/a/$a"
chmod 500 "/a/$a" /a/d/d
echo "depth $((1 + 1900 + 1 + 1100 + 1 + 15))"
"#,
        out = out.display()
    )
}

/// A store with busybox, and a host directory with a file that must
/// survive every removal.
fn setup() -> (TestStore, PathBuf) {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    let out = st.tmp().join("outside");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep"), "kept").unwrap();
    (st, out)
}

/// `hutch ARGS` with the descriptor limit `nofile` (through `sh -c ulimit`).
fn hutch_limited(st: &TestStore, nofile: u32, args: &[&str]) -> Output {
    let cmd = st.hutch();
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
        .arg(hutch_bin())
        .args(args)
        .stdin(std::process::Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.output().unwrap()
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what}\n{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// The deepest level below `dir`, as the host's `find` sees it.
fn depth_on_disk(dir: &Path) -> usize {
    let out = std::process::Command::new("find")
        .arg(dir)
        .args(["-printf", "%d\\n"])
        .output()
        .unwrap();
    // Exit status 1: the mode-000 directories could not be listed.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn hostile_tree_rm_and_prune_remove_everything() {
    let (st, outside) = setup();
    let built = st.run_ok([
        "run",
        "--name",
        "hostile",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        &script(&outside),
    ]);
    assert_eq!(built, format!("depth {DEPTH}\n"));
    // Controls: the tree on disk is that deep, and its symlinks lead out.
    let containers = entries(&st.root().join("containers"));
    assert_eq!(containers.len(), 1, "{containers:?}");
    let upper = containers[0].join("upper");
    assert!(
        depth_on_disk(&upper) >= DEPTH,
        "depth on disk: {}",
        depth_on_disk(&upper)
    );
    assert_eq!(
        std::fs::read_to_string(upper.join("a/out/keep")).unwrap(),
        "kept"
    );

    let out = hutch_limited(&st, RM_NOFILE, &["rm", "hostile"]);
    assert_eq!(ok(out, "hutch rm"), "hostile\n");
    assert!(entries(&st.root().join("tmp")).is_empty());
    assert!(entries(&st.root().join("containers")).is_empty());
    assert!(st.run_ok(["ps", "-aq"]).trim().is_empty());
    assert_eq!(
        std::fs::read_to_string(outside.join("keep")).unwrap(),
        "kept"
    );

    let out = hutch_limited(&st, RM_NOFILE, &["prune"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out, "hutch prune");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(entries(&st.root().join("tmp")).is_empty());
    // The image is still there and runs.
    assert_eq!(st.run_offline("busybox", &["echo", "fine"]), "fine\n");
}

#[test]
fn hostile_tree_run_rm_removes_everything() {
    let (st, outside) = setup();
    let out = hutch_limited(
        &st,
        RUN_NOFILE,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            &script(&outside),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // The control: the container built the whole tree.
    assert_eq!(ok(out, "hutch run --rm"), format!("depth {DEPTH}\n"));
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(entries(&st.root().join("tmp")).is_empty());
    assert!(entries(&st.root().join("containers")).is_empty());
    assert_eq!(
        std::fs::read_to_string(outside.join("keep")).unwrap(),
        "kept"
    );
    ok(hutch_limited(&st, RM_NOFILE, &["prune"]), "hutch prune");
}
