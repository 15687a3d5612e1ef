//! Helpers for the overlay tests (tests/overlay_diff.rs,
//! tests/overlay_semantics.rs), included with `#[path]`.
//!
//! * [`build_layers`] generates three lower layers in the on-disk format of
//!   src/overlay/format.rs (whiteouts = char devices 0:0, opaque dirs =
//!   `user.overlay.opaque=y`), which is also what the kernel overlayfs reads
//!   with `-o userxattr`, so the same directories serve both.
//! * [`kernel_session`] and [`hutch_session`] run a shell snippet with an
//!   overlay of those layers mounted at `$M`: the kernel's (`unshare -Urm` +
//!   `mount -t overlay`) or hutch's (`hutch overlay ... -- sh -c`).
//! * `tests/overlay/ops.py` (embedded here, written to the scratch dir so the
//!   test user never needs to read the source tree) does the file operations
//!   and dumps trees; the comparators below explain differences.
#![allow(dead_code)]

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The operation/dump script, embedded.
pub const OPS_PY: &str = include_str!("ops.py");

/// The scenarios ops.py knows; tests/overlay_diff.rs has one test each and
/// checks this list against `ops.py scenarios`.
pub const SCENARIOS: &[&str] = &[
    "append_lower",
    "chmod_chown_utimens_lower",
    "copyup_keeps_metadata",
    "dotdot_and_dir_nlink",
    "fifos",
    "file_apis",
    "hardlink_to_lower",
    "layers_hardlinks_and_identity",
    "lower_layer_modes",
    "opaque_dir_from_layer",
    "open_unlinked_and_renamed",
    "readdir_whiteouts",
    "rename_file_across_dirs",
    "rename_lower_dir",
    "rename_noreplace_exchange",
    "replace_file_and_dir",
    "rm_then_recreate",
    "rmdir_then_mkdir_opaque",
    "statfs_works",
    "symlinks",
    "truncate_lower",
    "unlink_hardlinked_lower",
    "whiteout_hides_lower",
    "xattrs_on_lower",
];

/// Per-command time limit (seconds): a hung FUSE server must fail a test,
/// not hang the suite. `timeout` kills hutch, which aborts the connection.
pub const CMD_TIMEOUT: &str = "300";

/// The python interpreter (`HUTCH_PYTHON`, else `python3` from PATH).
pub fn python() -> String {
    std::env::var("HUTCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// `HUTCH_OVERLAY_ORACLE_ONLY=1`: run only the kernel half (to check the
/// harness before `hutch overlay` exists). Never set in CI.
pub fn oracle_only() -> bool {
    std::env::var("HUTCH_OVERLAY_ORACLE_ONLY").is_ok_and(|v| v == "1")
}

/// A number from the environment, else `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A `timeout`-wrapped command.
pub fn timed(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new("timeout");
    c.args(["-k", "10", CMD_TIMEOUT])
        .arg(program)
        .stdin(Stdio::null());
    c
}

pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn check_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed\n{}",
        super::common::describe(out)
    );
}

pub fn mkdirs(p: &Path) {
    std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
}

/// Remove a tree that may hold mode-000 directories (the kernel's
/// `work/work`, chmod'ed test dirs): make every directory u+rwx first.
pub fn remove_tree(p: &Path) {
    fn fix(p: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(p)
            && m.is_dir()
        {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    fix(&e.path());
                }
            }
        }
    }
    if p.exists() {
        fix(p);
        let _ = std::fs::remove_dir_all(p);
    }
}

// ---------------------------------------------------------------------------
// scratch space

/// A scratch directory with ops.py in it, removed (forcefully) on drop.
pub struct Scratch {
    pub dir: PathBuf,
    pub ops: PathBuf,
    n: std::cell::Cell<u32>,
}

impl Scratch {
    pub fn new(base: &Path) -> Scratch {
        let dir = base.join("ov");
        mkdirs(&dir);
        let ops = dir.join("ops.py");
        std::fs::write(&ops, OPS_PY).unwrap();
        Scratch {
            dir,
            ops,
            n: std::cell::Cell::new(0),
        }
    }

    /// A fresh, empty directory `NAME.<n>`.
    pub fn fresh(&self, name: &str) -> PathBuf {
        let n = self.n.get();
        self.n.set(n + 1);
        let p = self.dir.join(format!("{name}.{n}"));
        mkdirs(&p);
        p
    }

    /// `python3 ops.py ARGS...` as a list of words, for shell snippets.
    pub fn py(&self) -> [String; 2] {
        [python(), s(&self.ops).to_string()]
    }

    /// A raw dump (`ops.py dump --raw`) of a directory outside any overlay,
    /// read as root of a user namespace (mode-000 files are readable then).
    pub fn raw_dump(&self, dir: &Path) -> Value {
        let out = output(
            timed("unshare")
                .arg("-Ur")
                .arg(python())
                .arg(&self.ops)
                .args(["dump", "--raw"])
                .arg(dir),
        );
        check_ok(&format!("raw dump of {}", dir.display()), &out);
        serde_json::from_slice(&out.stdout).expect("raw dump is JSON")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("HUTCH_OVERLAY_KEEP").is_none() {
            remove_tree(&self.dir);
        } else {
            eprintln!("kept {}", self.dir.display());
        }
    }
}

// ---------------------------------------------------------------------------
// sessions: a shell snippet with an overlay at $M

/// The body runs as `sh -c`, with `$M` the mount point and `$1...` = `args`.
fn wrap_body(body: &str) -> String {
    format!("M=$1; shift; {body}")
}

fn check_layer_path(p: &Path) {
    let t = s(p);
    assert!(
        !t.contains([':', ',', '\\']),
        "layer path {t} holds a character overlay options cannot carry"
    );
}

/// Run `body` with the kernel overlay mounted at `mnt` (read-only if `upper`
/// is None), in `unshare -Urm`. Exit 99 means the mount failed.
pub fn kernel_session(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    mnt: &Path,
    body: &str,
    args: &[OsString],
) -> Output {
    for l in lowers {
        check_layer_path(l);
    }
    let mut opts = format!(
        "userxattr,lowerdir={}",
        lowers.iter().map(|p| s(p)).collect::<Vec<_>>().join(":")
    );
    if let Some((u, w)) = upper {
        check_layer_path(u);
        check_layer_path(w);
        opts.push_str(&format!(",upperdir={},workdir={}", s(u), s(w)));
    }
    let script = format!(
        "O=$1; shift; mount -t overlay overlay -o \"$O\" \"$1\" || exit 99; {}",
        wrap_body(body)
    );
    output(
        timed("unshare")
            .args(["-Urm", "sh", "-c", &script, "sh", &opts])
            .arg(mnt)
            .args(args),
    )
}

/// Run `body` under `hutch overlay --lower ... --upper U --work W M -- sh -c`.
#[allow(clippy::too_many_arguments)] // the overlay command line, spelled out
pub fn hutch_session(
    hutch: Command,
    opts: &[&str],
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    mnt: &Path,
    body: &str,
    args: &[OsString],
) -> Output {
    let mut cmd = timed(hutch.get_program());
    for (k, v) in hutch.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.args(hutch.get_args())
        .arg("overlay")
        .args(opts)
        .arg("--lower")
        .arg(lowers.iter().map(|p| s(p)).collect::<Vec<_>>().join(":"))
        .arg("--upper")
        .arg(upper)
        .arg("--work")
        .arg(work)
        .arg(mnt)
        .args(["--", "sh", "-c", &wrap_body(body), "sh"])
        .arg(mnt)
        .args(args);
    output(&mut cmd)
}

/// What one run of ops.py on one overlay produced.
#[derive(Debug)]
pub struct RunOut {
    pub ops: String,
    pub dump: Value,
    pub upper: PathBuf,
}

/// The snippet that runs `ops.py ACTION... $M` then `ops.py dump $M`, with
/// args = [python, ops.py, outdir, action...].
const RUN_BODY: &str = "P=$1; OPS=$2; OUT=$3; shift 3; \
    \"$P\" \"$OPS\" \"$@\" \"$M\" > \"$OUT/ops.jsonl\" || exit 97; \
    \"$P\" \"$OPS\" dump \"$M\" > \"$OUT/dump.json\" || exit 98";

fn run_args(sc: &Scratch, out: &Path, action: &[String]) -> Vec<OsString> {
    let [p, o] = sc.py();
    let mut v: Vec<OsString> = vec![p.into(), o.into(), out.as_os_str().to_owned()];
    v.extend(action.iter().map(OsString::from));
    v
}

fn collect(what: &str, out: &Output, dir: &Path, upper: PathBuf) -> RunOut {
    let ops = std::fs::read_to_string(dir.join("ops.jsonl")).unwrap_or_default();
    if !out.status.success() {
        let tail: Vec<_> = ops.lines().rev().take(5).collect();
        panic!(
            "{what} failed (97 = ops.py failed, 98 = dump failed, 99 = mount failed)\n{}\n\
             --- last operation lines ---\n{}",
            super::common::describe(out),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let dump = serde_json::from_slice(&std::fs::read(dir.join("dump.json")).unwrap())
        .unwrap_or_else(|e| panic!("{what}: dump is not JSON: {e}"));
    RunOut { ops, dump, upper }
}

/// Run an ops.py action on the kernel overlay (fresh upper).
pub fn run_kernel(sc: &Scratch, lowers: &[PathBuf], action: &[String]) -> RunOut {
    let d = sc.fresh("kernel");
    let (u, w, m) = (d.join("upper"), d.join("work"), d.join("mnt"));
    for p in [&u, &w, &m] {
        mkdirs(p);
    }
    let out = kernel_session(
        lowers,
        Some((&u, &w)),
        &m,
        RUN_BODY,
        &run_args(sc, &d, action),
    );
    collect(&format!("kernel overlay: ops.py {action:?}"), &out, &d, u)
}

/// Run an ops.py action under `hutch overlay` (fresh upper).
/// `opts` go to `hutch overlay` (e.g. `--no-writeback`).
pub fn run_hutch(
    sc: &Scratch,
    hutch: Command,
    opts: &[&str],
    lowers: &[PathBuf],
    action: &[String],
) -> RunOut {
    let d = sc.fresh("hutch");
    let (u, w, m) = (d.join("upper"), d.join("work"), d.join("mnt"));
    for p in [&u, &w, &m] {
        mkdirs(p);
    }
    let out = hutch_session(
        hutch,
        opts,
        lowers,
        &u,
        &w,
        &m,
        RUN_BODY,
        &run_args(sc, &d, action),
    );
    collect(&format!("hutch overlay: ops.py {action:?}"), &out, &d, u)
}

const DUMP_BODY: &str = "\"$1\" \"$2\" dump \"$M\"";

/// The view of `lowers` through the kernel overlay, read-only (needs at
/// least two lowers).
pub fn kernel_view(sc: &Scratch, lowers: &[PathBuf]) -> Value {
    let m = sc.fresh("kview");
    let [p, o] = sc.py();
    let out = kernel_session(lowers, None, &m, DUMP_BODY, &[p.into(), o.into()]);
    check_ok("kernel overlay (read-only) dump", &out);
    serde_json::from_slice(&out.stdout).expect("dump is JSON")
}

/// The view of `lowers` through the kernel overlay with an empty upper
/// (the root then shows the upper dir's own attributes).
pub fn kernel_view_rw(sc: &Scratch, lowers: &[PathBuf]) -> Value {
    let d = sc.fresh("kviewrw");
    let (u, w, m) = (d.join("upper"), d.join("work"), d.join("mnt"));
    for p in [&u, &w, &m] {
        mkdirs(p);
    }
    let [p, o] = sc.py();
    let out = kernel_session(lowers, Some((&u, &w)), &m, DUMP_BODY, &[p.into(), o.into()]);
    check_ok("kernel overlay dump", &out);
    serde_json::from_slice(&out.stdout).expect("dump is JSON")
}

/// The view of `lowers` through hutch's overlay with an empty upper.
pub fn hutch_view(sc: &Scratch, hutch: Command, lowers: &[PathBuf]) -> Value {
    let d = sc.fresh("hview");
    let (u, w, m) = (d.join("upper"), d.join("work"), d.join("mnt"));
    for p in [&u, &w, &m] {
        mkdirs(p);
    }
    let [p, o] = sc.py();
    let out = hutch_session(
        hutch,
        &[],
        lowers,
        &u,
        &w,
        &m,
        DUMP_BODY,
        &[p.into(), o.into()],
    );
    check_ok("hutch overlay dump", &out);
    serde_json::from_slice(&out.stdout).expect("dump is JSON")
}

// ---------------------------------------------------------------------------
// generated layers

/// Fixed, old timestamps (see ops.py: before 1.6e9 s means "set on purpose").
const T0: i64 = 1_400_000_000;

pub struct LayerBuilder {
    root: PathBuf,
}

impl LayerBuilder {
    pub fn new(root: PathBuf) -> LayerBuilder {
        mkdirs(&root);
        LayerBuilder { root }
    }

    fn p(&self, rel: &str) -> PathBuf {
        let p = self.root.join(rel);
        if let Some(parent) = p.parent() {
            mkdirs(parent);
        }
        p
    }

    pub fn dir(&self, rel: &str) -> &Self {
        mkdirs(&self.root.join(rel));
        self
    }

    pub fn file(&self, rel: &str, data: &[u8]) -> &Self {
        std::fs::write(self.p(rel), data).unwrap();
        self
    }

    /// A sparse file of `size` bytes with data at the given (offset, len)
    /// ranges and holes elsewhere.
    pub fn sparse(&self, rel: &str, ranges: &[(u64, usize)], size: u64) -> &Self {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(self.p(rel)).unwrap();
        for (i, &(off, len)) in ranges.iter().enumerate() {
            f.write_all_at(&bytes(20 + i as u64, len), off).unwrap();
        }
        f.set_len(size).unwrap();
        self
    }

    pub fn mode(&self, rel: &str, mode: u32) -> &Self {
        std::fs::set_permissions(self.root.join(rel), std::fs::Permissions::from_mode(mode))
            .unwrap();
        self
    }

    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        std::os::unix::fs::symlink(target, self.p(rel)).unwrap();
        self
    }

    pub fn hardlink(&self, existing: &str, rel: &str) -> &Self {
        std::fs::hard_link(self.root.join(existing), self.p(rel)).unwrap();
        self
    }

    pub fn fifo(&self, rel: &str, mode: u32) -> &Self {
        rustix::fs::mknodat(
            CWD,
            self.p(rel),
            FileType::Fifo,
            Mode::from_raw_mode(mode),
            0,
        )
        .unwrap();
        self
    }

    /// A whiteout: a character device 0:0 (unprivileged since Linux 5.8).
    pub fn whiteout(&self, rel: &str) -> &Self {
        rustix::fs::mknodat(
            CWD,
            self.p(rel),
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .unwrap_or_else(|e| panic!("mknod 0:0 {rel}: {e} (kernel older than 5.8?)"));
        self
    }

    pub fn xattr(&self, rel: &str, name: &str, value: &[u8]) -> &Self {
        rustix::fs::lsetxattr(self.root.join(rel), name, value, XattrFlags::empty())
            .unwrap_or_else(|e| panic!("setxattr {name} on {rel}: {e}"));
        self
    }

    pub fn opaque(&self, rel: &str) -> &Self {
        mkdirs(&self.root.join(rel));
        self.xattr(rel, "user.overlay.opaque", b"y")
    }

    /// Give every entry a fixed, old mtime (directories last, deepest first)
    /// and apply deferred directory modes.
    pub fn finish(&self, salt: i64, dir_modes: &[(&str, u32)]) {
        let mut all = Vec::new();
        walk_paths(&self.root, &mut all);
        all.sort();
        for (i, p) in all.iter().enumerate() {
            let t = Timespec {
                tv_sec: T0 + salt * 1_000_000 + i as i64 * 7,
                tv_nsec: (i as i64 * 1_234_567) % 1_000_000_000,
            };
            let md = std::fs::symlink_metadata(p).unwrap();
            if md.is_dir() {
                continue;
            }
            set_times(p, t);
        }
        for (rel, mode) in dir_modes {
            std::fs::set_permissions(self.root.join(rel), std::fs::Permissions::from_mode(*mode))
                .unwrap();
        }
        let mut dirs: Vec<_> = all
            .iter()
            .filter(|p| std::fs::symlink_metadata(p).unwrap().is_dir())
            .cloned()
            .collect();
        dirs.push(self.root.clone());
        dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for (i, d) in dirs.iter().enumerate() {
            set_times(
                d,
                Timespec {
                    tv_sec: T0 + salt * 1_000_000 + 500_000 + i as i64,
                    tv_nsec: 999,
                },
            );
        }
    }
}

fn set_times(p: &Path, t: Timespec) {
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}

fn walk_paths(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let dir = e.file_type().unwrap().is_dir();
        out.push(p.clone());
        if dir {
            walk_paths(&p, out);
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), for file contents.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Three generated lower layers under `base`, returned top-first (the
/// order of `lowerdir=`): L3 (top), L2, L1 (bottom). About 450 entries; the
/// paths are the ones ops.py's scenarios use.
pub fn build_layers(base: &Path) -> Vec<PathBuf> {
    let l1 = LayerBuilder::new(base.join("L1"));
    let l2 = LayerBuilder::new(base.join("L2"));
    let l3 = LayerBuilder::new(base.join("L3"));

    // base/: 10 dirs x 15 files of assorted sizes and modes.
    let sizes = [0usize, 1, 100, 4095, 4096, 5000, 65537, 200_000];
    let modes = [0o644, 0o600, 0o755, 0o444, 0o640];
    for d in 0..10 {
        for f in 0..15 {
            let rel = format!("base/d{d}/f{f}");
            let n = sizes[(d * 15 + f) % sizes.len()];
            l1.file(&rel, &bytes((d * 100 + f) as u64, n))
                .mode(&rel, modes[(d + f) % modes.len()]);
        }
    }
    l1.file("base/d1/sub/x", b"x").file("base/d1/sub/y/z", b"z");
    // L2 overrides some base files and adds some.
    for d in 0..10 {
        l2.file(
            &format!("base/d{d}/f3"),
            format!("L2 version of d{d}/f3\n").as_bytes(),
        )
        .file(&format!("base/d{d}/l2new"), b"added in L2\n");
    }
    l3.file("base/d0/f4", b"L3 version of d0/f4\n")
        .file("base/d5/l3new", b"added in L3\n");

    // wh/: whiteouts in layers.
    l1.file("wh/gone", b"whited out by L2\n")
        .file("wh/keep", b"keep\n")
        .file("wh/other", b"other\n");
    l2.whiteout("wh/gone")
        .file("wh/l2only", b"whited out by L3\n");
    l3.whiteout("wh/l2only");

    // rmd/: for rmdir + mkdir.
    l1.file("rmd/full/a", b"a")
        .file("rmd/full/b", b"b")
        .file("rmd/full/deep/c", b"c")
        .dir("rmd/empty")
        .file("rmd/allwh/a", b"a")
        .file("rmd/allwh/b", b"b");
    l2.file("rmd/full/l2", b"l2")
        .file("rmd/full/deep/l2", b"l2")
        .whiteout("rmd/allwh/a")
        .whiteout("rmd/allwh/b");

    // opq/: opaque in L2.
    l1.file("opq/l1child", b"hidden by opaque L2\n")
        .file("opq/l1dir/x", b"hidden too\n");
    l2.opaque("opq").file("opq/l2child", b"from L2\n");
    l3.file("opq/l3child", b"from L3\n");

    // meta/: copy-up metadata.
    l1.file("meta/xf", b"file with xattrs\n")
        .xattr("meta/xf", "user.keep", b"kept")
        .xattr("meta/xf", "user.bin", &[0, 1, 2, 255])
        .file("meta/ro", b"read-only\n")
        .mode("meta/ro", 0o444)
        .file("meta/exe", b"#!/bin/sh\n")
        .mode("meta/exe", 0o755)
        .xattr("meta/exe", "user.exe", b"yes")
        .xattr("meta", "user.dirattr", b"on the dir");

    // attr/: chmod/chown/utimens.
    l1.file("attr/f644", b"f644\n")
        .file("attr/f644b", b"f644b\n")
        .file("attr/f600", b"f600\n")
        .mode("attr/f600", 0o600)
        .file("attr/suid", b"suid\n")
        .mode("attr/suid", 0o4755)
        .file("attr/times", b"times\n")
        .file("attr/symtarget", b"target\n")
        .symlink("attr/sym", "symtarget")
        .dir("attr/dir");

    // ren/: renames.
    l1.file("ren/src/a", b"ren a\n")
        .file("ren/src/b", b"ren b\n")
        .file("ren/src/c", b"ren c\n")
        .file("ren/dst/existing", b"existing\n")
        .file("ren/lowdir/f", b"f\n")
        .file("ren/merged/m1", b"m1\n")
        .file("ren/opq/o", b"o\n")
        .dir("ren/emptydir");
    l2.file("ren/merged/m2", b"m2\n");

    // links/: hardlinks and a symlink.
    l1.file("links/single", b"single\n")
        .file("links/pair1", b"hardlinked\n")
        .hardlink("links/pair1", "links/pair2")
        .symlink("links/sym", "single");
    l3.file("links/l3a", b"l3 pair\n")
        .hardlink("links/l3a", "links/l3b");

    // data/: bigger files.
    l1.file("data/big", &bytes(7, 5 * 1024 * 1024))
        .file("data/small", &bytes(8, 1000))
        .file("data/medium", &bytes(9, 70_000))
        .sparse("data/sparse", &[(0, 4096), (2 << 20, 4096)], 4 << 20);

    // sym/: symlinks.
    l1.symlink("sym/rel", "../data/small")
        .symlink("sym/abs", "/nonexistent/absolute")
        .symlink("sym/dangling", "nowhere")
        .symlink("sym/todir", "../base/d0")
        .symlink("sym/l2over", "from-L1");
    l2.symlink("sym/l2over", "from-L2");

    // fifo/, xa/, typ/, modes/.
    l1.fifo("fifo/lowerfifo", 0o644);
    l1.file("xa/file", b"xattrs\n")
        .xattr("xa/file", "user.one", b"1")
        .xattr("xa/file", "user.bin", &[0xff, 0, 0x80])
        .dir("xa/dir")
        .xattr("xa/dir", "user.d", b"dir")
        .symlink("xa/sym", "file");
    l1.file("typ/wasdir/child", b"child of a dir L2 replaces\n")
        .file("typ/wasfile", b"file L2 replaces by a dir\n");
    l2.file("typ/wasdir", b"now a file\n")
        .file("typ/wasfile/inner", b"inner\n");
    l1.file("modes/m000", b"m000\n")
        .mode("modes/m000", 0o000)
        .file("modes/m400", b"m400\n")
        .mode("modes/m400", 0o400)
        .file("modes/m444", b"m444\n")
        .mode("modes/m444", 0o444)
        .file("modes/m755", b"m755\n")
        .mode("modes/m755", 0o755)
        .file("modes/dir555/in", b"in\n")
        .file("modes/dir700/in", b"in\n");

    // big/: a large merged dir with whiteouts in between.
    for i in 0..150 {
        l1.file(&format!("big/e{i:03}"), format!("{i}\n").as_bytes());
    }
    for i in (40..90).step_by(1) {
        if i % 2 == 0 {
            l2.whiteout(&format!("big/e{i:03}"));
        }
    }
    l2.file("big/l2file", b"l2\n");
    for i in 0..30 {
        l3.file(&format!("big/f{i:03}"), b"l3\n");
    }
    l3.file("big/e050", b"back in L3\n");

    // rand/: a tree for the random runs.
    for i in 0..60u64 {
        let rel = format!("rand/r{}/s{}/g{i}", i % 4, i % 3);
        l1.file(&rel, &bytes(1000 + i, (i as usize * 997) % 20000));
    }
    for i in 0..20u64 {
        l2.file(&format!("rand/r{}/l2_{i}", i % 4), &bytes(2000 + i, 300));
    }
    l2.whiteout("rand/r0/s0/g0").whiteout("rand/r1/s1/g1");
    l2.opaque("rand/r2/s2").file("rand/r2/s2/only", b"opaque\n");
    l3.file("rand/r3/l3", b"l3\n")
        .xattr("rand/r3/l3", "user.a", b"from l3");

    l1.finish(1, &[("modes/dir555", 0o555), ("attr/dir", 0o755)]);
    l2.finish(2, &[]);
    l3.finish(3, &[]);
    vec![base.join("L3"), base.join("L2"), base.join("L1")]
}

// ---------------------------------------------------------------------------
// comparisons

fn short(v: &Value) -> String {
    let t = v.to_string();
    if t.len() > 300 {
        format!("{}...", &t[..300])
    } else {
        t
    }
}

/// Whether `h` equals `k` up to a stale link count: every `nlink` that
/// differs is larger in `k` (the kernel's) and at least 1 in `h`.
///
/// Without `index=on` the kernel reports a lower file's on-disk link count
/// even after the overlay removed or broke away some of its names (unlink
/// or copy-up of one name of a lower hardlink pair); hutch may report the
/// names that are still there. [`accept_stale_nlink`] checks the latter for
/// whole trees.
pub fn eq_but_stale_nlink(k: &Value, h: &Value) -> bool {
    match (k, h) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter().all(|(key, x)| match b.get(key) {
                    None => false,
                    Some(y) if key == "nlink" => {
                        x == y
                            || matches!((x.as_u64(), y.as_u64()), (Some(kx), Some(hy)) if kx > hy && hy >= 1)
                    }
                    Some(y) => eq_but_stale_nlink(x, y),
                })
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| eq_but_stale_nlink(x, y))
        }
        _ => k == h,
    }
}

/// `hutch_view` with the kernel's link count wherever the kernel's is a
/// stale, larger count (see [`eq_but_stale_nlink`]) and hutch's equals the
/// number of names of that file it shows; notes say where.
pub fn accept_stale_nlink(kernel_view: &Value, hutch_view: &Value) -> (Value, Vec<String>) {
    let mut out = hutch_view.clone();
    let mut notes = Vec::new();
    let names = |p: &str| {
        hutch_view["hardlinks"]
            .as_array()
            .and_then(|gs| {
                gs.iter()
                    .find(|g| g.as_array().unwrap().iter().any(|x| x == p))
            })
            .map(|g| g.as_array().unwrap().len() as u64)
            .unwrap_or(1)
    };
    if let Some(entries) = out["entries"].as_object_mut() {
        for (p, e) in entries.iter_mut() {
            let (Some(k), Some(h)) = (
                kernel_view["entries"][p]["nlink"].as_u64(),
                e["nlink"].as_u64(),
            ) else {
                continue;
            };
            if k > h && h == names(p) {
                notes.push(format!(
                    "{p}: nlink kernel {k} (stale, from the lower file) / hutch {h} (names shown)"
                ));
                e["nlink"] = k.into();
            }
        }
    }
    (out, notes)
}

/// Compare two operation logs line by line, the second (hutch's) allowed a
/// stale-free `nlink` (see [`eq_but_stale_nlink`]); on a difference, the
/// first differing line with some context.
pub fn compare_ops(a_name: &str, a: &str, b_name: &str, b: &str) -> Result<(), String> {
    let la: Vec<_> = a.lines().collect();
    let lb: Vec<_> = b.lines().collect();
    for i in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(i).copied(), lb.get(i).copied());
        let same = match (x, y) {
            (Some(x), Some(y)) => {
                x == y
                    || matches!(
                        (serde_json::from_str::<Value>(x), serde_json::from_str::<Value>(y)),
                        (Ok(vx), Ok(vy)) if eq_but_stale_nlink(&vx, &vy)
                    )
            }
            (x, y) => x == y,
        };
        if !same {
            let ctx: Vec<_> = la[i.saturating_sub(4)..i].to_vec();
            return Err(format!(
                "operation logs differ at line {} ({} vs {} lines)\n--- context ---\n{}\n\
                 --- {a_name} ---\n{}\n--- {b_name} ---\n{}",
                i + 1,
                la.len(),
                lb.len(),
                ctx.join("\n"),
                x.unwrap_or("<end>"),
                y.unwrap_or("<end>"),
            ));
        }
    }
    Ok(())
}

/// Failed `check` lines of an operation log.
pub fn failed_checks(ops: &str) -> Vec<String> {
    ops.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["op"] == "check" && v["ok"] != true)
        .map(|v| v.to_string())
        .collect()
}

/// Compare two dumps (entries, hardlink groups, statfs); every difference,
/// up to 60 lines.
pub fn compare_dumps(a_name: &str, a: &Value, b_name: &str, b: &Value) -> Result<(), String> {
    let mut diffs = Vec::new();
    let empty = serde_json::Map::new();
    let ea = a["entries"].as_object().unwrap_or(&empty);
    let eb = b["entries"].as_object().unwrap_or(&empty);
    let keys: BTreeSet<_> = ea.keys().chain(eb.keys()).collect();
    for k in keys {
        match (ea.get(k), eb.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => match (x.as_object(), y.as_object()) {
                (Some(ox), Some(oy)) => {
                    let fields: BTreeSet<_> = ox.keys().chain(oy.keys()).collect();
                    for f in fields {
                        if ox.get(f) != oy.get(f) {
                            diffs.push(format!(
                                "{k}: {f}: {a_name} {} / {b_name} {}",
                                ox.get(f).map(short).unwrap_or("-".into()),
                                oy.get(f).map(short).unwrap_or("-".into())
                            ));
                        }
                    }
                }
                _ => diffs.push(format!(
                    "{k}: {a_name} {} / {b_name} {}",
                    short(x),
                    short(y)
                )),
            },
            (Some(x), None) => diffs.push(format!("{k}: only in {a_name}: {}", short(x))),
            (None, Some(y)) => diffs.push(format!("{k}: only in {b_name}: {}", short(y))),
            (None, None) => unreachable!(),
        }
    }
    for f in ["hardlinks", "statfs"] {
        if a[f] != b[f] {
            diffs.push(format!(
                "{f}: {a_name} {} / {b_name} {}",
                short(&a[f]),
                short(&b[f])
            ));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        let n = diffs.len();
        diffs.truncate(60);
        Err(format!(
            "trees differ ({n} differences):\n  {}",
            diffs.join("\n  ")
        ))
    }
}

/// `view` with its hardlink groups completed from the upper dir it was
/// made with: paths that are one inode in the upper are one file.
///
/// Needed for the kernel's view: without `index=on`, the kernel reports the
/// lower file's inode number for a copied-up file that had one link below,
/// and the upper inode number for new links made to it, so two names of one
/// file show different `st_ino`. hutch is held to the corrected groups.
pub fn with_upper_links(view: &Value, raw_upper: &Value) -> Value {
    let entries = view["entries"].as_object().cloned().unwrap_or_default();
    let mut groups: Vec<BTreeSet<String>> = Vec::new();
    let add = |groups: &mut Vec<BTreeSet<String>>, g: BTreeSet<String>| {
        let mut merged = g;
        groups.retain(|x| {
            if x.is_disjoint(&merged) {
                true
            } else {
                merged.extend(x.iter().cloned());
                false
            }
        });
        groups.push(merged);
    };
    for source in [&view["hardlinks"], &raw_upper["hardlinks"]] {
        for g in source.as_array().into_iter().flatten() {
            let g: BTreeSet<String> = g
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p.as_str())
                .filter(|p| entries.contains_key(*p))
                .filter(|p| raw_upper["entries"][*p]["type"] != "chr")
                .map(String::from)
                .collect();
            if g.len() > 1 {
                add(&mut groups, g);
            }
        }
    }
    let mut out: Vec<Vec<String>> = groups
        .into_iter()
        .map(|g| g.into_iter().collect())
        .collect();
    out.sort();
    let mut v = view.clone();
    v["hardlinks"] = serde_json::json!(out);
    v
}

/// Xattr names that belong to an on-disk format, never to a file's content.
pub fn reserved_xattr(name: &str) -> bool {
    [
        "user.overlay.",
        "user.containers.",
        "user.fuseoverlayfs.",
        "user.hutch.",
        "trusted.overlay.",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

fn user_xattrs(v: &Value) -> BTreeMap<String, Value> {
    v["xattrs"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !reserved_xattr(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The ownership record of a raw entry: (uid, gid, "%04o" mode).
fn override_stat(v: &Value) -> Option<(u64, u64, String)> {
    let rec = v["xattrs"]["user.containers.override_stat"].as_str()?;
    let mut it = rec.split(':');
    let uid = it.next()?.parse().ok()?;
    let gid = it.next()?.parse().ok()?;
    let mode = u32::from_str_radix(it.next()?, 8).ok()?;
    Some((uid, gid, format!("{:04o}", mode & 0o7777)))
}

/// A dump of an overlay that read hutch's upper dir (kernel, fuse-overlayfs),
/// made comparable with hutch's own view: ownership records in the upper
/// (which the kernel does not interpret) are applied, format xattrs that
/// the kernel shows as plain `user.*` xattrs are dropped.
pub fn apply_hutch_format(view: &Value, hutch_raw_upper: &Value) -> Value {
    let mut v = view.clone();
    if let Some(entries) = v["entries"].as_object_mut() {
        for (path, e) in entries.iter_mut() {
            if let Some(x) = e.get_mut("xattrs").and_then(Value::as_object_mut) {
                x.retain(|k, _| !reserved_xattr(k));
            }
            if let Some((uid, gid, mode)) = override_stat(&hutch_raw_upper["entries"][path]) {
                // The record shows container ids; only 0 is mapped here.
                e["uid"] = if uid == 0 { 0.into() } else { 65534.into() };
                e["gid"] = if gid == 0 { 0.into() } else { 65534.into() };
                e["mode"] = mode.into();
            }
        }
    }
    v
}

fn parent_of(p: &str) -> Option<&str> {
    p.rfind('/').map(|i| &p[..i])
}

/// An upper dir reduced to what it means, given the view of the lowers below
/// it. See the module docs of tests/overlay_diff.rs for the rules.
pub struct NormUpper {
    pub entries: BTreeMap<String, Value>,
    pub hardlinks: Vec<Vec<String>>,
    pub notes: Vec<String>,
}

pub fn normalize_upper(raw: &Value, lower_view: &Value) -> NormUpper {
    let lower = lower_view["entries"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut notes = Vec::new();
    let mut m: BTreeMap<String, Value> = BTreeMap::new();
    let mut opaque_marker_dirs = BTreeSet::new();
    let mut raw_nlink = BTreeMap::new();
    for (path, e) in raw["entries"].as_object().expect("raw dump entries") {
        if path == "." {
            continue;
        }
        let name = path.rsplit('/').next().unwrap();
        let ty = e["type"].as_str().unwrap_or("?");
        raw_nlink.insert(path.clone(), e["nlink"].as_u64().unwrap_or(0));
        if ty == "chr" && e["rdev"] == serde_json::json!([0, 0]) {
            m.insert(path.clone(), serde_json::json!({"kind": "whiteout"}));
            continue;
        }
        if ty == "file" && name == ".wh..wh..opq" {
            opaque_marker_dirs.insert(parent_of(path).unwrap_or(".").to_string());
            notes.push(format!("{path}: opaque marker file (fallback format)"));
            continue;
        }
        if ty == "file"
            && let Some(target) = name.strip_prefix(".wh.")
        {
            let p = match parent_of(path) {
                Some(d) => format!("{d}/{target}"),
                None => target.to_string(),
            };
            notes.push(format!("{path}: whiteout file (fallback format)"));
            m.insert(p, serde_json::json!({"kind": "whiteout"}));
            continue;
        }
        let mode = override_stat(e)
            .map(|(_, _, m)| m)
            .unwrap_or_else(|| e["mode"].as_str().unwrap_or("?").to_string());
        let mut n = serde_json::json!({"kind": ty, "mode": mode, "xattrs": user_xattrs(e)});
        match ty {
            "dir" => {
                let x = &e["xattrs"];
                n["opaque"] = ([
                    "user.overlay.opaque",
                    "trusted.overlay.opaque",
                    "user.fuseoverlayfs.opaque",
                ]
                .iter()
                .any(|k| x[*k] == "y"))
                .into();
            }
            "file" => n["sha256"] = e["sha256"].clone(),
            "symlink" => n["target"] = e["target"].clone(),
            _ => {}
        }
        m.insert(path.clone(), n);
    }
    for d in opaque_marker_dirs {
        if let Some(e) = m.get_mut(&d) {
            e["opaque"] = true.into();
        }
    }
    let is_opaque =
        |m: &BTreeMap<String, Value>, p: &str| m.get(p).is_some_and(|e| e["opaque"] == true);
    let hidden_by_ancestor = |m: &BTreeMap<String, Value>, p: &str| {
        let mut cur = parent_of(p);
        while let Some(a) = cur {
            if is_opaque(m, a) {
                return true;
            }
            cur = parent_of(a);
        }
        false
    };
    let lower_visible =
        |m: &BTreeMap<String, Value>, p: &str| lower.contains_key(p) && !hidden_by_ancestor(m, p);
    let lower_has_children = |p: &str| {
        let pre = format!("{p}/");
        lower.keys().any(|k| k.starts_with(&pre))
    };

    let paths: Vec<String> = m.keys().cloned().collect();
    let mut drop = BTreeSet::new();
    let mut unmark = BTreeSet::new();
    for p in &paths {
        let e = &m[p];
        let vis = lower_visible(&m, p);
        match e["kind"].as_str().unwrap() {
            "whiteout" if !vis => {
                notes.push(format!(
                    "{p}: whiteout without anything below to hide (ignored)"
                ));
                drop.insert(p.clone());
            }
            "dir" if e["opaque"] == true => {
                let matters = vis && lower[p.as_str()]["type"] == "dir" && lower_has_children(p);
                if !matters {
                    notes.push(format!(
                        "{p}: opaque mark without lower entries to hide (ignored)"
                    ));
                    unmark.insert(p.clone());
                }
            }
            "file" | "symlink" | "fifo" if vis => {
                // An unmodified copy-up (same content, mode, xattrs) that is
                // not hardlinked to anything means nothing.
                let l = &lower[p.as_str()];
                let same = l["type"] == e["kind"]
                    && l["mode"] == e["mode"]
                    && l.get("sha256") == e.get("sha256")
                    && l.get("target") == e.get("target")
                    && user_xattrs(l) == user_xattrs(e)
                    && raw_nlink.get(p) == Some(&1);
                if same {
                    notes.push(format!("{p}: unmodified copy-up (ignored)"));
                    drop.insert(p.clone());
                }
            }
            _ => {}
        }
    }
    for p in &unmark {
        m.get_mut(p).unwrap()["opaque"] = false.into();
    }
    for p in &drop {
        m.remove(p);
    }
    // Directories that carry nothing: deepest first.
    let mut dirs: Vec<String> = m
        .iter()
        .filter(|(_, e)| e["kind"] == "dir")
        .map(|(p, _)| p.clone())
        .collect();
    dirs.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for p in dirs {
        let e = &m[&p];
        let pre = format!("{p}/");
        let has_children = m.keys().any(|k| k.starts_with(&pre));
        let vis = lower_visible(&m, &p);
        if !has_children
            && vis
            && e["opaque"] != true
            && lower[p.as_str()]["type"] == "dir"
            && lower[p.as_str()]["mode"] == e["mode"]
            && user_xattrs(&lower[p.as_str()]) == user_xattrs(e)
        {
            notes.push(format!("{p}: copied-up dir without changes (ignored)"));
            m.remove(&p);
        }
    }
    let hardlinks = raw["hardlinks"]
        .as_array()
        .map(|gs| {
            gs.iter()
                .map(|g| {
                    g.as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|p| p.as_str())
                        .filter(|p| m.get(*p).is_some_and(|e| e["kind"] == "file"))
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .filter(|g| g.len() > 1)
                .collect()
        })
        .unwrap_or_default();
    NormUpper {
        entries: m,
        hardlinks,
        notes,
    }
}

/// Compare two normalized upper dirs.
pub fn compare_uppers(
    a_name: &str,
    a: &NormUpper,
    b_name: &str,
    b: &NormUpper,
) -> Result<(), String> {
    let mut diffs = Vec::new();
    let keys: BTreeSet<_> = a.entries.keys().chain(b.entries.keys()).collect();
    for k in keys {
        match (a.entries.get(k), b.entries.get(k)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => diffs.push(format!(
                "{k}: {a_name} {} / {b_name} {}",
                x.map(short).unwrap_or("-".into()),
                y.map(short).unwrap_or("-".into())
            )),
        }
    }
    if a.hardlinks != b.hardlinks {
        diffs.push(format!(
            "hardlink groups: {a_name} {:?} / {b_name} {:?}",
            a.hardlinks, b.hardlinks
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        let n = diffs.len();
        diffs.truncate(60);
        Err(format!(
            "upper dirs differ ({n} differences):\n  {}",
            diffs.join("\n  ")
        ))
    }
}

/// Whether /proc/self/mountinfo mentions `path` as a mount point.
pub fn mounted_here(path: &Path) -> bool {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = s(path);
    mi.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|mp| mp == p))
}
