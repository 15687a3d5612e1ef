//! Differential tests of hutch's FUSE overlay against the kernel overlayfs.
//!
//! The same lower layers (generated here in the format of
//! src/overlay/format.rs, which the kernel reads with `-o userxattr`) are
//! mounted twice: by the kernel overlayfs in `unshare -Urm`, and by
//! `hutch overlay`. tests/overlay/ops.py runs the same operations on both
//! (hand-written scenarios, and seeded random sequences), recording each
//! outcome (ok or errno) and what it read back, then dumps the visible tree
//! (type, mode, owner, size, sha256, symlink target, nlink, user xattrs,
//! deliberate mtimes, hardlink groups). The kernel is the oracle: logs and
//! dumps must be identical. Then the two upper dirs are compared:
//!
//! 1. raw, outside any mount, reduced to what they mean (normalize_upper in
//!    tests/overlay/helpers.rs): whiteouts (char 0:0, or the `.wh.NAME`
//!    fallback), opaque marks (`user.overlay.opaque=y`, or `.wh..wh..opq`),
//!    file contents, symlink targets, effective modes and user xattrs must
//!    match. Deliberately ignored (printed as notes):
//!    - the kernel's own xattrs `user.overlay.origin`/`impure`/`redirect`
//!      and hutch's `user.containers.override_stat` (the effective mode is
//!      compared instead: the record's mode where there is one, else the
//!      on-disk mode), i.e. every xattr of an on-disk format;
//!    - whiteouts with nothing below to hide, opaque marks on dirs with no
//!      lower children, unmodified copy-ups (same content, mode and xattrs,
//!      one link) and copied-up dirs without changes: they do not change the
//!      merged view, and when to copy up is the implementation's business;
//!    - nlink of whiteouts (the kernel hardlinks all of them to one inode),
//!      and all timestamps (the mounted dumps compare mtimes).
//! 2. by reading each one with the other implementation: hutch mounts the
//!    kernel's upper as its top lower layer and must show the kernel's tree;
//!    the kernel mounts hutch's upper (read-only) and must show hutch's tree,
//!    once hutch's ownership records are applied (the kernel does not read
//!    them).
//!
//! hutch runs with the kernel's writeback cache (its default) except where
//! a case says `Exact`: with the writeback cache the kernel keeps the file
//! times of regular files itself and sends `mtime = now` on a truncate only
//! when the size changes, so truncate(2) to a file's current size keeps its
//! mtime (ext4 and the kernel overlay on it update it). That one difference
//! is documented in `hutch overlay --help`. The truncate_lower scenario
//! runs with `--no-writeback`, where hutch must match the kernel exactly;
//! the random runs never truncate to the current size (ops.py). The other
//! way round, only the writeback cache gets mmap right: without it the
//! kernel updates mtime when the dirty pages are written back, not at the
//! first store as ext4 does, so everything else runs in the default mode.
//! Both run with `--no-redirect-dir`: the kernel overlay mounted without
//! privileges (`userxattr`) cannot rename a directory of a lower layer
//! (EXDEV), which hutch does by default with a redirect record (tested in
//! overlay_semantics.rs and by the unionmount-testsuite).
//!
//! Known, accepted differences between the two views:
//! - st_ino of hardlinks: the kernel (without `index=on`) shows the lower
//!   file's inode number for a copied-up file and the upper's for new links
//!   to it; hardlink groups are completed from the upper dir before
//!   comparing (with_upper_links), and hutch must show whole groups itself.
//! - nlink of lower hardlinks: after one name of a lower hardlink pair is
//!   unlinked or copied up, the kernel still reports the lower file's link
//!   count; hutch may report the names it still shows instead (and then
//!   must: accept_stale_nlink, eq_but_stale_nlink).
//! - dir nlink is not compared as a number: ops.py records whether it is 1
//!   (the kernel's answer for merged dirs) or 2 + subdirs.
//!
//! `HUTCH_OVERLAY_ORACLE_ONLY=1` runs only the kernel half (a check of the
//! harness); `HUTCH_OVERLAY_SEEDS` (default 20) and `HUTCH_OVERLAY_STEPS`
//! (default 200) size the random runs; `HUTCH_OVERLAY_KEEP=1` keeps the
//! scratch dirs for a look.

mod common;
#[path = "overlay/helpers.rs"]
mod helpers;

use common::TestStore;
use helpers::*;
use serde_json::Value;
use std::path::PathBuf;

/// How hutch serves the overlay in a differential case.
#[derive(Clone, Copy)]
enum Mode {
    /// The default: the kernel's writeback cache on.
    Writeback,
    /// `--no-writeback`: file times exactly as the kernel overlay's.
    Exact,
}

impl Mode {
    fn opts(self) -> &'static [&'static str] {
        match self {
            Mode::Writeback => &["--no-redirect-dir"],
            Mode::Exact => &["--no-writeback", "--no-redirect-dir"],
        }
    }
}

/// Generated layers plus what the kernel shows of them. Field order is drop
/// order: the scratch dir (with mode-000 dirs) goes before the store.
struct Layers {
    sc: Scratch,
    st: TestStore,
    lowers: Vec<PathBuf>,
    view: Value,
    raw_before: Vec<Value>,
}

impl Layers {
    fn generated() -> Layers {
        common::assert_unprivileged();
        let st = TestStore::new();
        let sc = Scratch::new(st.tmp());
        let lowers = build_layers(&sc.dir.join("layers"));
        Layers::with(sc, st, lowers)
    }

    fn with(sc: Scratch, st: TestStore, lowers: Vec<PathBuf>) -> Layers {
        let view = kernel_view(&sc, &lowers);
        let raw_before = lowers.iter().map(|l| sc.raw_dump(l)).collect();
        Layers {
            sc,
            st,
            lowers,
            view,
            raw_before,
        }
    }

    /// The lower layers must be exactly as before (no copy-up into them, no
    /// xattrs, no hardlinks to them: ctime and nlink would show it).
    fn lowers_unchanged(&self) -> Result<(), String> {
        for (l, before) in self.lowers.iter().zip(&self.raw_before) {
            let after = self.sc.raw_dump(l);
            if let Err(e) = compare_dumps("before", before, "after", &after) {
                return Err(format!("lower layer {} was modified: {e}", l.display()));
            }
        }
        Ok(())
    }

    fn assert_lowers_unchanged(&self) {
        if let Err(e) = self.lowers_unchanged() {
            panic!("{e}");
        }
    }

    /// One differential case; Err holds every difference found.
    fn diff(&self, mode: Mode, action: &[String]) -> Result<(), String> {
        let k = run_kernel(&self.sc, &self.lowers, action);
        let failed = failed_checks(&k.ops);
        assert!(
            failed.is_empty(),
            "{action:?}: scenario checks fail on the kernel overlay, so the scenario \
             (tests/overlay/ops.py) is wrong:\n{}",
            failed.join("\n")
        );
        if oracle_only() {
            eprintln!(
                "{action:?}: kernel half ok; hutch half skipped (HUTCH_OVERLAY_ORACLE_ONLY=1)"
            );
            return Ok(());
        }
        let h = run_hutch(&self.sc, self.st.hutch(), mode.opts(), &self.lowers, action);
        let mut errs = Vec::new();
        if let Err(e) = compare_ops("kernel", &k.ops, "hutch", &h.ops) {
            errs.push(e);
        }
        let failed = failed_checks(&h.ops);
        if !failed.is_empty() {
            errs.push(format!(
                "scenario checks fail on hutch:\n{}",
                failed.join("\n")
            ));
        }
        let kraw = self.sc.raw_dump(&k.upper);
        let hraw = self.sc.raw_dump(&h.upper);
        // See with_upper_links: the kernel's st_ino of hardlinks is fixed up.
        let kdump = with_upper_links(&k.dump, &kraw);
        let hdump = with_upper_links(&h.dump, &hraw);
        if h.dump["hardlinks"] != hdump["hardlinks"] {
            errs.push(format!(
                "hutch shows different inode numbers for names of one file (the kernel's \
                 quirk, not to be copied): groups {} but in its upper dir {}",
                h.dump["hardlinks"], hraw["hardlinks"]
            ));
        }
        let (hdump_k, notes) = accept_stale_nlink(&kdump, &hdump);
        for n in notes {
            eprintln!("{action:?}: accepted: {n}");
        }
        if let Err(e) = compare_dumps("kernel", &kdump, "hutch", &hdump_k) {
            errs.push(format!("final tree: {e}"));
        }

        // The upper dirs, raw.
        let kn = normalize_upper(&kraw, &self.view);
        let hn = normalize_upper(&hraw, &self.view);
        for n in &kn.notes {
            eprintln!("{action:?}: kernel upper: {n}");
        }
        for n in &hn.notes {
            eprintln!("{action:?}: hutch upper: {n}");
        }
        if let Err(e) = compare_uppers("kernel", &kn, "hutch", &hn) {
            errs.push(e);
        }

        // Each reads the other's upper.
        let mut on_kernel_upper = vec![k.upper.clone()];
        on_kernel_upper.extend(self.lowers.iter().cloned());
        let v = hutch_view(&self.sc, self.st.hutch(), &on_kernel_upper);
        let (v, _) = accept_stale_nlink(&kdump, &v);
        if let Err(e) = compare_dumps("kernel", &kdump, "hutch reading the kernel's upper", &v) {
            errs.push(format!(
                "hutch does not read the kernel's upper dir right: {e}"
            ));
        }
        let mut on_hutch_upper = vec![h.upper.clone()];
        on_hutch_upper.extend(self.lowers.iter().cloned());
        let v = apply_hutch_format(&kernel_view(&self.sc, &on_hutch_upper), &hraw);
        let (hdump_v, _) = accept_stale_nlink(&v, &hdump);
        if let Err(e) = compare_dumps("hutch", &hdump_v, "kernel reading hutch's upper", &v) {
            errs.push(format!(
                "the kernel does not read hutch's upper dir right: {e}"
            ));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("\n\n"))
        }
    }
}

fn scenario(name: &str) -> Vec<String> {
    vec!["scenario".into(), name.into()]
}

fn random(seed: u64) -> Vec<String> {
    vec![
        "run".into(),
        "--seed".into(),
        seed.to_string(),
        "--steps".into(),
        env_num("HUTCH_OVERLAY_STEPS", 200).to_string(),
    ]
}

fn entry<'a>(view: &'a Value, path: &str) -> &'a Value {
    &view["entries"][path]
}

// ---------------------------------------------------------------------------
// the oracle: the harness and the generated layers on the kernel overlay

#[test]
fn kernel_overlay_shows_the_generated_layers() {
    let l = Layers::generated();
    let v = &l.view;
    let n = v["entries"].as_object().unwrap().len();
    assert!(n > 400, "about 450 visible entries, got {n}");
    for hidden in [
        "wh/gone",
        "wh/l2only",
        "opq/l1child",
        "opq/l1dir",
        "rmd/allwh/a",
        "typ/wasdir/child",
        "rand/r0/s0/g0",
        "big/e040",
    ] {
        assert!(
            entry(v, hidden).is_null(),
            "{hidden} must be hidden: {}",
            entry(v, hidden)
        );
    }
    for shown in [
        "opq/l2child",
        "opq/l3child",
        "big/e050",
        "wh/keep",
        "typ/wasfile/inner",
        "rand/r2/s2/only",
    ] {
        assert!(entry(v, shown).is_object(), "{shown} must be visible");
    }
    let big = v["entries"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("big/"))
        .count();
    assert_eq!(big, 150 - 25 + 1 + 1 + 30, "entries of the merged big/");
    assert_eq!(entry(v, "typ/wasdir")["type"], "file");
    assert_eq!(entry(v, "typ/wasfile")["type"], "dir");
    assert_eq!(entry(v, "sym/l2over")["target"], "from-L2");
    assert_eq!(entry(v, "modes/m000")["mode"], "0000");
    assert_eq!(entry(v, "attr/suid")["mode"], "4755");
    assert_eq!(entry(v, "fifo/lowerfifo")["type"], "fifo");
    assert_eq!(entry(v, "meta/xf")["xattrs"]["user.keep"], "kept");
    assert!(
        entry(v, "opq")["xattrs"].as_object().unwrap().is_empty(),
        "the overlay hides its own xattrs: {}",
        entry(v, "opq")
    );
    let groups = v["hardlinks"].as_array().unwrap();
    assert!(
        groups.contains(&serde_json::json!(["links/pair1", "links/pair2"])),
        "{groups:?}"
    );
    assert!(
        groups.contains(&serde_json::json!(["links/l3a", "links/l3b"])),
        "{groups:?}"
    );
    assert_eq!(
        entry(v, "base/d0/f0")["mtime"]
            .as_u64()
            .map(|t| t < 1_600_000_000_000_000_000),
        Some(true)
    );
    assert_eq!(v["statfs"]["ok"], true);
}

#[test]
fn scenario_list_matches_ops_py() {
    let st = TestStore::new();
    let sc = Scratch::new(st.tmp());
    let out = output(
        std::process::Command::new(python())
            .arg(&sc.ops)
            .arg("scenarios"),
    );
    check_ok("ops.py scenarios", &out);
    let listed: Vec<_> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        listed, SCENARIOS,
        "keep helpers::SCENARIOS and the tests below in step with ops.py"
    );
}

#[test]
fn scenario_checks_hold_on_the_kernel_overlay() {
    let l = Layers::generated();
    let mut bad = Vec::new();
    for name in SCENARIOS {
        let k = run_kernel(&l.sc, &l.lowers, &scenario(name));
        let failed = failed_checks(&k.ops);
        let checks = k
            .ops
            .lines()
            .filter(|x| x.contains("\"op\": \"check\""))
            .count();
        if !failed.is_empty() {
            bad.push(format!("{name}: {}", failed.join("; ")));
        }
        assert!(
            k.ops.lines().last().is_some_and(|x| x.contains("\"end\"")),
            "{name} ran to its end"
        );
        eprintln!(
            "{name}: {} operations, {checks} checks",
            k.ops.lines().count()
        );
    }
    assert!(
        bad.is_empty(),
        "checks failing on the kernel overlay:\n{}",
        bad.join("\n")
    );
    // Random runs are deterministic on the kernel (the same seed twice).
    let a = run_kernel(&l.sc, &l.lowers, &random(1));
    let b = run_kernel(&l.sc, &l.lowers, &random(1));
    compare_ops("first", &a.ops, "second", &b.ops).unwrap();
    compare_dumps("first", &a.dump, "second", &b.dump).unwrap();
    let errnos: std::collections::BTreeSet<_> = a
        .ops
        .lines()
        .filter_map(|x| serde_json::from_str::<Value>(x).ok())
        .filter_map(|x| x["r"].as_str().map(String::from))
        .collect();
    eprintln!("seed 1 outcomes: {errnos:?}");
    assert!(
        errnos.contains("ok") && errnos.len() >= 4,
        "a random run meets several errors: {errnos:?}"
    );
    l.assert_lowers_unchanged();
}

// ---------------------------------------------------------------------------
// hutch against the kernel

#[test]
fn initial_view_matches_the_kernel() {
    if oracle_only() {
        return;
    }
    let l = Layers::generated();
    let h = hutch_view(&l.sc, l.st.hutch(), &l.lowers);
    let k = kernel_view_rw(&l.sc, &l.lowers);
    if let Err(e) = compare_dumps("kernel", &k, "hutch", &h) {
        panic!("the layers look different through hutch: {e}");
    }
    l.assert_lowers_unchanged();
}

macro_rules! scenario_tests {
    ($mode:ident: $($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let l = Layers::generated();
            let errs: Vec<String> = [
                l.diff(Mode::$mode, &scenario(stringify!($name))),
                l.lowers_unchanged(),
            ]
                .into_iter()
                .filter_map(Result::err)
                .collect();
            if !errs.is_empty() {
                panic!(
                    "scenario {}: hutch differs from the kernel overlay:\n{}",
                    stringify!($name),
                    errs.join("\n\n")
                );
            }
        }
    )*};
}

mod scenario {
    use super::*;
    // truncate(2) to the current size: see the top comment.
    scenario_tests!(Exact: truncate_lower);
    scenario_tests!(
        Writeback:
        append_lower,
        chmod_chown_utimens_lower,
        copyup_keeps_metadata,
        dotdot_and_dir_nlink,
        fifos,
        file_apis,
        hardlink_to_lower,
        layers_hardlinks_and_identity,
        lower_layer_modes,
        open_unlinked_and_renamed,
        opaque_dir_from_layer,
        readdir_whiteouts,
        rename_file_across_dirs,
        rename_lower_dir,
        rename_noreplace_exchange,
        replace_file_and_dir,
        rm_then_recreate,
        rmdir_then_mkdir_opaque,
        statfs_works,
        symlinks,
        unlink_hardlinked_lower,
        whiteout_hides_lower,
        xattrs_on_lower,
    );
}

/// Seeds `part` of 4 of 1..=HUTCH_OVERLAY_SEEDS; all differing seeds are
/// reported, each with its first difference.
fn random_part(part: u64) {
    let l = Layers::generated();
    let n = env_num("HUTCH_OVERLAY_SEEDS", 20);
    let mut bad = Vec::new();
    let mut ran = 0;
    for seed in (1..=n).filter(|s| s % 4 == part) {
        ran += 1;
        if let Err(e) = l.diff(Mode::Writeback, &random(seed)) {
            bad.push(format!("=== seed {seed} ===\n{e}"));
        }
    }
    let differ = bad.len();
    if let Err(e) = l.lowers_unchanged() {
        bad.push(format!("=== after all seeds ===\n{e}"));
    }
    assert!(
        bad.is_empty(),
        "{differ} of {ran} random runs differ from the kernel overlay \
         (HUTCH_OVERLAY_SEEDS=N runs seeds up to N, HUTCH_OVERLAY_KEEP=1 keeps the logs):\n{}",
        bad.join("\n\n")
    );
}

#[test]
fn random_ops_seeds_part0() {
    random_part(0);
}
#[test]
fn random_ops_seeds_part1() {
    random_part(1);
}
#[test]
fn random_ops_seeds_part2() {
    random_part(2);
}
#[test]
fn random_ops_seeds_part3() {
    random_part(3);
}

/// The multilayer fixture's layers as hutch unpacked them (whiteout and
/// opaque dir from OCI `.wh.` entries), with the ownership records stripped
/// (the kernel does not read them, so with them the views differ by design;
/// tests/overlay_semantics.rs checks that hutch applies them).
#[test]
fn random_ops_on_the_multilayer_fixture() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let sc = Scratch::new(st.tmp());
    let id = st.run_ok(["load", "-q", s(&common::fixture("multilayer-oci"))]);
    let v: Value = serde_json::from_str(&st.run_ok(["inspect", id.trim()])).unwrap();
    let mut lowers = Vec::new();
    for (i, layer) in v[0]["Layers"].as_array().unwrap().iter().enumerate().rev() {
        let src = PathBuf::from(layer["Path"].as_str().unwrap());
        let dst = sc.dir.join(format!("fixture-layer{i}"));
        let out = output(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(&src)
                .arg(&dst),
        );
        check_ok("cp -a of a fixture layer", &out);
        let out = output(
            std::process::Command::new(python())
                .arg(&sc.ops)
                .arg("strip-override")
                .arg(&dst),
        );
        check_ok("ops.py strip-override", &out);
        lowers.push(dst);
    }
    assert_eq!(lowers.len(), 3);
    let l = Layers::with(sc, st, lowers);
    assert!(
        entry(&l.view, "bin/false").is_null(),
        "layer 2 whites out /bin/false"
    );
    assert!(
        entry(&l.view, "opt/data/old").is_null(),
        "layer 2 makes /opt/data opaque"
    );
    assert!(entry(&l.view, "opt/data/new").is_object());
    let mut bad = Vec::new();
    for seed in [101, 102, 103] {
        if let Err(e) = l.diff(Mode::Writeback, &random(seed)) {
            bad.push(format!("=== seed {seed} ===\n{e}"));
        }
    }
    if let Err(e) = l.lowers_unchanged() {
        bad.push(format!("=== after all seeds ===\n{e}"));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}
