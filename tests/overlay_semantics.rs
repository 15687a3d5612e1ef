//! `hutch overlay` beyond the differential tests: the command's contract
//! (exit status, stdio, cwd, errors), what happens when hutch is killed,
//! concurrent copy-up, ownership records from image layers, and that other
//! tools read hutch's upper dirs.
//!
//! `hutch overlay --lower DIR[:DIR...] --upper DIR [--work DIR] MOUNTPOINT
//! -- CMD [ARG...]`: lowers top-first, a user+mount namespace (current uid
//! -> 0), the FUSE overlay at MOUNTPOINT, CMD inside with stdio inherited and
//! cwd unchanged; exits with CMD's status, 125 on hutch errors (126/127 for a
//! command that is not executable / not found, as DESIGN.md says).

mod common;
#[path = "overlay/helpers.rs"]
mod helpers;

use common::TestStore;
use helpers::*;
use serde_json::Value;
use sha2::Digest as _;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Scratch dir + two small generated layers (top-first).
struct Small {
    sc: Scratch,
    st: TestStore,
    lowers: Vec<PathBuf>,
}

fn small() -> Small {
    common::assert_unprivileged();
    let st = TestStore::new();
    let sc = Scratch::new(st.tmp());
    let l1 = LayerBuilder::new(sc.dir.join("L1"));
    l1.file("file", b"from L1\n")
        .file("gone", b"whited out\n")
        .file("dir/inner", b"inner\n");
    l1.finish(1, &[]);
    let l2 = LayerBuilder::new(sc.dir.join("L2"));
    l2.file("top", b"from L2\n").whiteout("gone");
    l2.finish(2, &[]);
    Small {
        lowers: vec![sc.dir.join("L2"), sc.dir.join("L1")],
        sc,
        st,
    }
}

fn join(lowers: &[PathBuf]) -> String {
    lowers.iter().map(|p| s(p)).collect::<Vec<_>>().join(":")
}

/// `hutch overlay ...` (no `--work` if `work` is None), not yet run.
fn overlay_cmd(
    st: &TestStore,
    lowers: &[PathBuf],
    upper: &Path,
    work: Option<&Path>,
    mnt: &Path,
) -> Command {
    let mut c = st.hutch();
    c.arg("overlay")
        .arg("--lower")
        .arg(join(lowers))
        .arg("--upper")
        .arg(upper);
    if let Some(w) = work {
        c.arg("--work").arg(w);
    }
    c.arg(mnt).arg("--");
    c
}

/// Fresh upper, work and mount point dirs.
fn dirs(sc: &Scratch, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let d = sc.fresh(name);
    let (u, w, m) = (d.join("upper"), d.join("work"), d.join("mnt"));
    for p in [&u, &w, &m] {
        mkdirs(p);
    }
    (u, w, m)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// the command's contract

#[test]
fn runs_the_command_inside_with_stdio_cwd_and_exit_status() {
    let t = small();
    let (u, w, m) = dirs(&t.sc, "run");
    let cwd = t.sc.dir.clone();
    let script = "read line; echo \"stdin: $line\"; echo \"cwd: $(pwd)\"; echo \"uid: $(id -u)\"; \
                  cat \"$1/file\" \"$1/top\"; test -e \"$1/gone\" || echo 'gone: hidden'; \
                  echo oops >&2; echo new > \"$1/created\"; \
                  grep -F \" $1 \" /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1 | sed 's/^/fstype: /'; \
                  exit 7";
    let mut cmd = overlay_cmd(&t.st, &t.lowers, &u, Some(&w), &m);
    cmd.args(["sh", "-c", script, "sh"])
        .arg(&m)
        .current_dir(&cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start hutch overlay");
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(7),
        "the command's exit status\n{}",
        common::describe(&out)
    );
    assert!(
        text.contains("stdin: hello\n"),
        "stdin is inherited: {text}"
    );
    assert!(
        text.contains(&format!("cwd: {}\n", cwd.display())),
        "cwd is unchanged: {text}"
    );
    assert!(
        text.contains("uid: 0\n"),
        "the user is root in the namespace: {text}"
    );
    assert!(
        text.contains("from L1\nfrom L2\n"),
        "both layers are visible: {text}"
    );
    assert!(
        text.contains("gone: hidden"),
        "the whiteout hides L1's file: {text}"
    );
    assert!(err.contains("oops"), "stderr is inherited: {err}");
    let fstype = text
        .lines()
        .find_map(|l| l.strip_prefix("fstype: "))
        .unwrap_or_else(|| panic!("the mount point is a mount inside: {text}"));
    assert!(
        fstype.starts_with("fuse"),
        "hutch's overlay is a FUSE file system, got {fstype}"
    );

    // Afterwards: the change is in the upper dir, nothing is mounted here,
    // the mount point is an empty dir again.
    assert_eq!(std::fs::read(u.join("created")).unwrap(), b"new\n");
    assert!(
        !mounted_here(&m),
        "{} must not be mounted outside",
        m.display()
    );
    assert_eq!(
        std::fs::read_dir(&m).unwrap().count(),
        0,
        "mount point is empty outside"
    );
    assert!(
        !u.join("file").exists(),
        "a lower file that was only read is not copied up"
    );

    // --work is optional; exit status 0 passes through too.
    let (u2, _, m2) = dirs(&t.sc, "nowork");
    let out = output(
        overlay_cmd(&t.st, &t.lowers, &u2, None, &m2)
            .args(["cat"])
            .arg(m2.join("top")),
    );
    check_ok("hutch overlay without --work", &out);
    assert_eq!(stdout(&out), "from L2\n");
}

#[test]
fn hutch_errors_exit_125_and_missing_commands_127() {
    let t = small();
    let (u, w, m) = dirs(&t.sc, "err");
    let missing = t.sc.dir.join("no-such-layer");

    let out =
        output(overlay_cmd(&t.st, std::slice::from_ref(&missing), &u, Some(&w), &m).arg("true"));
    assert_eq!(
        out.status.code(),
        Some(125),
        "missing lower dir\n{}",
        common::describe(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-layer"),
        "the error names the path: {err}"
    );

    let out = output(
        overlay_cmd(
            &t.st,
            &t.lowers,
            &u,
            Some(&w),
            &t.sc.dir.join("no-such-mnt"),
        )
        .arg("true"),
    );
    assert_eq!(
        out.status.code(),
        Some(125),
        "missing mount point\n{}",
        common::describe(&out)
    );

    let out = output(
        t.st.hutch()
            .args(["overlay", "--lower", &join(&t.lowers), "--upper"])
            .arg(&u)
            .arg(&m),
    );
    assert_eq!(
        out.status.code(),
        Some(125),
        "no command\n{}",
        common::describe(&out)
    );

    let out = output(overlay_cmd(&t.st, &t.lowers, &u, Some(&w), &m).arg("/no/such/command"));
    assert_eq!(
        out.status.code(),
        Some(127),
        "command not found\n{}",
        common::describe(&out)
    );
    assert!(!mounted_here(&m));
    assert_eq!(std::fs::read_dir(&m).unwrap().count(), 0);
}

#[test]
fn killing_hutch_unmounts_the_overlay() {
    let t = small();
    let (u, w, m) = dirs(&t.sc, "kill");
    let out_dir = t.sc.fresh("killout");
    // Inside: record our pid, then stat a file in the overlay every 20 ms;
    // on an error record its name and stop.
    let probe = r#"
import errno, os, sys, time
m, out = sys.argv[1], sys.argv[2]
open(os.path.join(out, "pid.tmp"), "w").write(str(os.getpid()))
os.rename(os.path.join(out, "pid.tmp"), os.path.join(out, "pid"))
end = time.time() + 100
while time.time() < end:
    try:
        os.stat(os.path.join(m, "file"))
        open(os.path.join(m, "file")).read()
    except OSError as e:
        open(os.path.join(out, "err"), "w").write(errno.errorcode.get(e.errno, str(e.errno)))
        sys.exit(3)
    time.sleep(0.02)
"#;
    let mut child = overlay_cmd(&t.st, &t.lowers, &u, Some(&w), &m)
        .arg(python())
        .args(["-c", probe])
        .arg(&m)
        .arg(&out_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hutch overlay");
    let t0 = Instant::now();
    let pid_file = out_dir.join("pid");
    while !pid_file.exists() {
        if let Ok(Some(st)) = child.try_wait() {
            let mut e = String::new();
            child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
            panic!("hutch overlay ended early ({st}): {e}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the command did not start within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let inner: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !out_dir.join("err").exists(),
        "the overlay works before the kill"
    );

    // SIGKILL to hutch: no chance to clean up.
    // SAFETY: kill(2) on the pid of our own child; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    child.wait().unwrap();

    // The command must lose the file system (ENOTCONN) or die with hutch.
    let alive = |pid: i32| Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
    let t1 = Instant::now();
    let outcome = loop {
        if let Ok(e) = std::fs::read_to_string(out_dir.join("err")) {
            break format!("got {e}");
        }
        if !alive(inner) {
            break "died".to_string();
        }
        if t1.elapsed() > Duration::from_secs(10) {
            // Ours to clean up: the command hutch started for this test.
            // SAFETY: as above.
            unsafe { libc::kill(inner, libc::SIGKILL) };
            panic!("10 s after SIGKILL to hutch, the overlay still answered the command inside");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("after SIGKILL to hutch, the command inside {outcome}");
    // A dead FUSE server: ENOTCONN for new requests, ECONNABORTED for one
    // that was in flight when the kernel aborted the connection.
    if let Some(e) = outcome.strip_prefix("got ") {
        assert!(
            e == "ENOTCONN" || e == "ECONNABORTED",
            "a dead FUSE server means ENOTCONN (or ECONNABORTED), got {e}"
        );
    }
    let t2 = Instant::now();
    while alive(inner) && t2.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(inner), "the command inside is gone");

    assert!(!mounted_here(&m), "nothing is mounted on the host");
    let entries: Vec<_> = std::fs::read_dir(&m)
        .expect("the mount point is an ordinary dir on the host")
        .collect();
    assert!(entries.is_empty(), "mount point is empty on the host");
    std::fs::remove_dir(&m).expect("the mount point can be removed");
    assert!(u.exists(), "the upper dir survives");
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|st| {
            st.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

// ---------------------------------------------------------------------------
// concurrent copy-up

const BIG: usize = 50 * 1024 * 1024;
const BLOCK: usize = 65536;
const COUNT: usize = 16;
const WORKERS: &[&str] = &["A", "B", "C", "D"];

/// 4 processes open the same 50 MiB lower file for appending at the same
/// moment, each appends COUNT blocks of its letter.
const APPEND_BODY: &str = "P=$1; OPS=$2; GO=$3; shift 3; \
    for tag in A B C D; do \"$P\" \"$OPS\" append-worker \"$M/big\" \"$GO\" $tag 16 65536 & done; \
    sleep 0.3; touch \"$GO\"; wait; r=0; for j in $(jobs -p); do wait $j || r=1; done; \
    sha256sum \"$M/big\"; exit $r";

fn check_appended(what: &str, upper: &Path, original_sha: &str, inside_sha: &str) {
    let names: Vec<_> = std::fs::read_dir(upper)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        ["big"],
        "{what}: the upper dir holds one copy of the file and nothing else"
    );
    let data = std::fs::read(upper.join("big")).unwrap();
    assert_eq!(
        data.len(),
        BIG + WORKERS.len() * COUNT * BLOCK,
        "{what}: every append landed"
    );
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&data[..BIG])),
        original_sha,
        "{what}: the lower content was copied once, intact"
    );
    let mut per = std::collections::BTreeMap::new();
    for (i, block) in data[BIG..].chunks(BLOCK).enumerate() {
        let c = block[0];
        assert!(
            block.iter().all(|b| *b == c),
            "{what}: appended block {i} is torn (mixed writers)"
        );
        *per.entry(c as char).or_insert(0) += 1;
    }
    let want: std::collections::BTreeMap<char, usize> = WORKERS
        .iter()
        .map(|t| (t.chars().next().unwrap(), COUNT))
        .collect();
    assert_eq!(per, want, "{what}: blocks per writer");
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&data)),
        inside_sha,
        "{what}: the upper file is what the processes inside saw"
    );
}

#[test]
fn concurrent_appends_copy_up_once() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let sc = Scratch::new(st.tmp());
    let content = bytes(42, BIG);
    let original_sha = hex::encode(sha2::Sha256::digest(&content));
    let l1 = LayerBuilder::new(sc.dir.join("L1"));
    l1.file("big", &content);
    drop(content);
    let l2 = LayerBuilder::new(sc.dir.join("L2"));
    l2.file("other", b"x");
    let lowers = vec![sc.dir.join("L2"), sc.dir.join("L1")];
    let [p, o] = sc.py();

    // The oracle first: the kernel overlay passes the same checks.
    let (u, w, m) = dirs(&sc, "kernel");
    let go = sc.fresh("kgo").join("go");
    let out = kernel_session(
        &lowers,
        Some((&u, &w)),
        &m,
        APPEND_BODY,
        &[p.clone().into(), o.clone().into(), go.into()],
    );
    check_ok("concurrent appends on the kernel overlay", &out);
    let inside = stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    check_appended("kernel overlay", &u, &original_sha, &inside);

    let (u, w, m) = dirs(&sc, "hutch");
    let go = sc.fresh("hgo").join("go");
    let out = hutch_session(
        st.hutch(),
        &[],
        &lowers,
        &u,
        &w,
        &m,
        APPEND_BODY,
        &[p.into(), o.into(), go.into()],
    );
    check_ok("concurrent appends on hutch's overlay", &out);
    let inside = stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    check_appended("hutch overlay", &u, &original_sha, &inside);
    // No half-made copies left behind in the work dir.
    let mut stray = Vec::new();
    let mut stack = vec![w.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let md = e.metadata().unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else if md.len() > 0 {
                stray.push(format!("{} ({} bytes)", e.path().display(), md.len()));
            }
        }
    }
    assert!(stray.is_empty(), "leftovers in the work dir: {stray:?}");
}

// ---------------------------------------------------------------------------
// image layers: ownership records, OCI whiteouts

/// Loads a fixture into the store; its layer paths, top-first.
fn fixture_layers(st: &TestStore, name: &str) -> Vec<PathBuf> {
    let id = st.run_ok(["load", "-q", s(&common::fixture(name))]);
    let v: Value = serde_json::from_str(&st.run_ok(["inspect", id.trim()])).unwrap();
    v[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|l| PathBuf::from(l["Path"].as_str().unwrap()))
        .collect()
}

const STAT_PY: &str = r#"
import json, os, stat, sys
m = sys.argv[1]
out = {}
for p in sys.argv[2:]:
    try:
        st = os.lstat(os.path.join(m, p))
        out[p] = {"mode": "%04o" % stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
                  "type": stat.S_IFMT(st.st_mode)}
    except OSError as e:
        out[p] = e.strerror
print(json.dumps(out))
"#;

#[test]
fn ownership_and_modes_come_from_the_layer_records() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let sc = Scratch::new(st.tmp());
    let lowers = fixture_layers(&st, "busybox-oci");
    assert_eq!(lowers.len(), 1);
    let disk = std::fs::symlink_metadata(lowers[0].join("bin/su-test")).unwrap();
    assert_eq!(
        disk.mode() & 0o7777,
        0o755,
        "on disk the layer has no setuid bit (format.rs)"
    );
    let (u, w, m) = dirs(&sc, "own");
    let paths = [
        "bin/su-test",
        "tmp",
        "root",
        "home/user",
        "home/user/file",
        "bin/busybox",
    ];
    // Stat, copy su-test up by setting a user xattr on it, stat again. (Not
    // by writing: a write by root of a user namespace drops setuid, on the
    // kernel overlay too. Files of uid 1000 cannot be copied up here: only
    // uid 0 is mapped, so root has no capabilities over them.)
    let body = "P=$1; S=$2; shift 2; \"$P\" -c \"$S\" \"$M\" \"$@\" && \
                \"$P\" -c 'import os, sys; os.setxattr(sys.argv[1], \"user.copyup\", b\"1\")' \"$M/bin/su-test\" \
                && \"$P\" -c \"$S\" \"$M\" \"$@\"";
    let mut args: Vec<std::ffi::OsString> = vec![python().into(), STAT_PY.into()];
    args.extend(paths.iter().map(|p| (*p).into()));
    let out = hutch_session(st.hutch(), &[], &lowers, &u, &w, &m, body, &args);
    check_ok("stat through hutch overlay", &out);
    let text = stdout(&out);
    let mut lines = text.lines();
    for when in ["before copy-up", "after copy-up"] {
        let v: Value = serde_json::from_str(lines.next().expect("two stat lines")).unwrap();
        assert_eq!(
            v["bin/su-test"]["mode"], "4755",
            "{when}: setuid from the record: {v}"
        );
        assert_eq!(v["bin/su-test"]["uid"], 0, "{when}: {v}");
        assert_eq!(v["tmp"]["mode"], "1777", "{when}: sticky /tmp: {v}");
        assert_eq!(v["root"]["mode"], "0700", "{when}: {v}");
        // uid 1000 is not mapped in this namespace (only 0 is): the kernel
        // shows the overflow uid. It must not be 0 (the on-disk owner).
        assert_eq!(
            v["home/user"]["uid"], 65534,
            "{when}: owner 1000 shows as unmapped: {v}"
        );
        assert_eq!(v["home/user/file"]["uid"], 65534, "{when}: {v}");
        assert_eq!(v["bin/busybox"]["uid"], 0, "{when}: {v}");
    }
    // The copied-up file keeps its true mode in the upper dir's record and
    // has no setuid bit on disk (format.rs).
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(
        u.join("bin/su-test"),
        "user.containers.override_stat",
        &mut buf,
    )
    .unwrap_or_else(|e| panic!("bin/su-test in the upper dir has an ownership record: {e}"));
    let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(rec.starts_with("0:0:4755"), "{rec}");
    let up = std::fs::symlink_metadata(u.join("bin/su-test")).unwrap();
    assert_eq!(
        up.mode() & 0o7000,
        0,
        "no setuid bit on disk in the upper dir either"
    );
}

#[test]
fn oci_whiteouts_and_opaque_dirs_of_the_multilayer_fixture() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let sc = Scratch::new(st.tmp());
    let lowers = fixture_layers(&st, "multilayer-oci");
    assert_eq!(lowers.len(), 3);
    let (u, w, m) = dirs(&sc, "ml");
    let body = "cat \"$M/etc/motd\" \"$M/opt/data/new\" \"$M/usr/share/shared/shared.txt\" >/dev/null && \
                ls -A \"$M/opt/data\"; test -e \"$M/bin/false\" && echo 'false: present'; \
                test -e \"$M/bin/true\" && echo 'true: present'; cat \"$M/etc/motd\"";
    let out = hutch_session(st.hutch(), &[], &lowers, &u, &w, &m, body, &[]);
    check_ok("reading the multilayer image through hutch", &out);
    let text = stdout(&out);
    assert!(
        text.starts_with("new\n"),
        "/opt/data is opaque: only `new`: {text}"
    );
    assert!(
        !text.contains("false: present"),
        "/bin/false is whited out: {text}"
    );
    assert!(text.contains("true: present"), "{text}");
    assert!(text.contains("welcome to the multilayer fixture"), "{text}");
}

// ---------------------------------------------------------------------------
// other tools read hutch's upper dirs

#[test]
fn fuse_overlayfs_reads_an_upper_dir_hutch_wrote() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let sc = Scratch::new(st.tmp());
    let lowers = build_layers(&sc.dir.join("layers"));
    let mut total = Vec::new();
    for action in [
        ["scenario", "rmdir_then_mkdir_opaque"],
        ["scenario", "whiteout_hides_lower"],
    ] {
        let action: Vec<String> = action.iter().map(|x| x.to_string()).collect();
        let h = run_hutch(&sc, st.hutch(), &[], &lowers, &action);
        let mut all = vec![h.upper.clone()];
        all.extend(lowers.iter().cloned());
        let m = sc.fresh("fuse-overlayfs");
        let [p, o] = sc.py();
        let body = "\"$1\" \"$2\" dump \"$M\"; r=$?; umount \"$M\"; exit $r";
        let script =
            format!("fuse-overlayfs -o \"lowerdir=$1\" \"$2\" || exit 99; M=$2; shift 2; {body}");
        let out = output(
            timed("unshare")
                .args(["-Urm", "sh", "-c", &script, "sh", &join(&all)])
                .arg(&m)
                .args([p, o]),
        );
        check_ok("fuse-overlayfs over hutch's upper dir", &out);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        // Structure and content only: fuse-overlayfs 1.10 reads ownership
        // records differently, and its dir mtimes and statfs differ.
        let strip = |d: &Value| {
            let mut d = d.clone();
            for e in d["entries"].as_object_mut().unwrap().values_mut() {
                if let Some(o) = e.as_object_mut() {
                    o.retain(|k, _| ["type", "size", "sha256", "target"].contains(&k.as_str()));
                }
            }
            d["hardlinks"] = Value::Null;
            d["statfs"] = Value::Null;
            d
        };
        if let Err(e) = compare_dumps("hutch", &strip(&h.dump), "fuse-overlayfs", &strip(&v)) {
            total.push(format!("{action:?}: {e}"));
        }
    }
    assert!(
        total.is_empty(),
        "fuse-overlayfs sees another tree:\n{}",
        total.join("\n")
    );
}

/// O_TMPFILE: fuser does not speak FUSE_TMPFILE, so hutch answers it with a
/// clean EOPNOTSUPP (what programs such as glibc's tmpfile() and Python's
/// tempfile expect before they fall back to a named file), and the
/// fallback works.
#[test]
fn o_tmpfile_is_a_clean_eopnotsupp_with_a_working_fallback() {
    let sm = small();
    let (u, w, m) = dirs(&sm.sc, "tmpfile");
    let py = "import os, sys, tempfile, errno\n\
              d = os.path.join(sys.argv[1], 'dir')\n\
              try:\n\
              \x20   fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o600)\n\
              \x20   os.close(fd); print('tmpfile: ok')\n\
              except OSError as e:\n\
              \x20   print('tmpfile:', errno.errorcode[e.errno])\n\
              with tempfile.TemporaryFile(dir=d) as f:\n\
              \x20   f.write(b'spill'); f.seek(0); print('fallback:', f.read().decode())\n\
              print('left:', sorted(os.listdir(d)))\n";
    let out = output(
        overlay_cmd(&sm.st, &sm.lowers, &u, Some(&w), &m)
            .args([python().as_str(), "-c", py])
            .arg(&m),
    );
    check_ok("O_TMPFILE in hutch's overlay", &out);
    let text = stdout(&out);
    assert_eq!(
        // ENOTSUP is EOPNOTSUPP on Linux (Python names it ENOTSUP).
        text,
        "tmpfile: ENOTSUP\nfallback: spill\nleft: ['inner']\n",
        "O_TMPFILE must fail cleanly and the named fallback must work and be removed"
    );
}

// ---------------------------------------------------------------------------
// names, modes and owners as the kernel filesystems give them

/// What `script` printed in the overlay and in the tmpfs, and the upper
/// dir (kept while this lives).
struct Compared {
    ovl: String,
    tmpfs: String,
    upper: PathBuf,
    _sm: Small,
}

/// Runs `script` (sh) inside `hutch overlay` with `$1` the overlay and `$2`
/// a tmpfs mounted in the same namespace (the control).
fn overlay_and_tmpfs(name: &str, script: &str) -> Compared {
    overlay_and_tmpfs_on(small(), name, script)
}

/// [`overlay_and_tmpfs`] over the layers of `sm`.
fn overlay_and_tmpfs_on(sm: Small, name: &str, script: &str) -> Compared {
    let (u, w, m) = dirs(&sm.sc, name);
    let t = sm.sc.fresh(&format!("{name}-tmpfs"));
    mkdirs(&t);
    let wrapped = format!(
        "mount -t tmpfs tmpfs \"$2\" || exit 99\nrun() {{\n{script}\n}}\n\
         run \"$1\" > \"$2/.overlay.out\" 2>&1; run \"$2\" > \"$2/.tmpfs.out\" 2>&1\n\
         cat \"$2/.overlay.out\"; echo ====; cat \"$2/.tmpfs.out\""
    );
    let out = output(
        overlay_cmd(&sm.st, &sm.lowers, &u, Some(&w), &m)
            .args(["sh", "-c", &wrapped, "sh"])
            .arg(&m)
            .arg(&t),
    );
    check_ok(&format!("{name} in hutch's overlay and a tmpfs"), &out);
    let text = stdout(&out);
    let (o, c) = text
        .split_once("====\n")
        .unwrap_or_else(|| panic!("no separator in {text:?}"));
    Compared {
        ovl: o.to_string(),
        tmpfs: c.to_string(),
        upper: u,
        _sm: sm,
    }
}

/// A name longer than NAME_MAX (255 bytes) is ENAMETOOLONG for every
/// operation that takes one, a lookup included (not ENOENT), as on a
/// tmpfs; a 255-byte name works.
#[test]
fn overlay_longname_is_enametoolong_as_on_a_tmpfs() {
    let py = "import os, sys, errno\n\
              d = sys.argv[1]\n\
              def e(f):\n\
              \x20   try:\n\
              \x20       f(); return 'ok'\n\
              \x20   except OSError as x:\n\
              \x20       return errno.errorcode[x.errno]\n\
              n = os.path.join(d, 'x' * 256)\n\
              s = os.path.join(d, 'short')\n\
              open(s, 'w').close()\n\
              for what, f in [\n\
              \x20   ('lstat', lambda: os.lstat(n)),\n\
              \x20   ('create', lambda: os.close(os.open(n, os.O_CREAT | os.O_WRONLY, 0o644))),\n\
              \x20   ('mkdir', lambda: os.mkdir(n)),\n\
              \x20   ('mkfifo', lambda: os.mkfifo(n)),\n\
              \x20   ('symlink', lambda: os.symlink('short', n)),\n\
              \x20   ('link', lambda: os.link(s, n)),\n\
              \x20   ('rename-to', lambda: os.rename(s, n)),\n\
              \x20   ('rename-from', lambda: os.rename(n, s)),\n\
              \x20   ('unlink', lambda: os.unlink(n)),\n\
              \x20   ('rmdir', lambda: os.rmdir(n)),\n\
              \x20   ('name-max', lambda: open(os.path.join(d, 'y' * 255), 'w').close()),\n\
              ]:\n\
              \x20   print(what, e(f))\n";
    let script = format!("{} -c \"{}\" \"$1\"", python(), py.replace('"', "\\\""));
    let Compared { ovl, tmpfs, .. } = overlay_and_tmpfs("longname", &script);
    let expected: String = [
        "lstat",
        "create",
        "mkdir",
        "mkfifo",
        "symlink",
        "link",
        "rename-to",
        "rename-from",
        "unlink",
        "rmdir",
    ]
    .iter()
    .map(|w| format!("{w} ENAMETOOLONG\n"))
    .chain(["name-max ok\n".to_string()])
    .collect();
    assert_eq!(tmpfs, expected, "the control (tmpfs)");
    assert_eq!(ovl, expected, "hutch's overlay, compared with a tmpfs");
}

/// Builds (`prepare`) or works in (`ops`) a chain of directories 30 names
/// of 200 bytes deep under `argv[2]`: about 6,000 bytes, past PATH_MAX.
/// The script moves down with `chdir`, so every call it makes has a short
/// path; the overlay sees the whole path from its layer roots.
const DEEP_PY: &str = r#"
import errno, os, sys
mode, root = sys.argv[1], sys.argv[2]
NAME = 'd' * 200
def down(make):
    os.chdir(root)
    for _ in range(30):
        if make:
            os.mkdir(NAME)
        os.chdir(NAME)
def prepare():
    down(True)
    for n, data in [('keep', 'lower\n'), ('gone', 'x'), ('moved', 'm\n')]:
        with open(n, 'w') as f:
            f.write(data)
def e(f):
    try:
        r = f()
        return 'ok' if r is None else r
    except OSError as x:
        return errno.errorcode[x.errno]
def ops():
    if not os.path.exists(os.path.join(root, NAME)):
        prepare()
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    down(False)
    print('depth', len(os.getcwd()) - len(root) > 4096)
    print('read', e(lambda: open('keep').read().strip()))
    print('append', e(lambda: open('keep', 'a').write('upper\n')))
    print('read again', e(lambda: open('keep').read().split()))
    print('chmod', e(lambda: os.chmod('keep', 0o600)), oct(os.stat('keep').st_mode & 0o7777))
    print('setxattr', e(lambda: os.setxattr('keep', 'user.t', b'v')))
    print('getxattr', e(lambda: os.getxattr('keep', 'user.t')))
    print('utime', e(lambda: os.utime('keep', ns=(10**18, 2 * 10**18))), os.stat('keep').st_mtime_ns)
    print('unlink lower', e(lambda: os.unlink('gone')), os.path.exists('gone'))
    print('rename lower', e(lambda: os.rename('moved', 'moved2')), open('moved2').read().strip())
    print('mkdir', e(lambda: os.mkdir('sub')))
    print('create', e(lambda: open('sub/f', 'w').write('new')))
    print('symlink', e(lambda: os.symlink('keep', 'l')), e(lambda: os.readlink('l')))
    print('mkfifo', e(lambda: os.mkfifo('p', 0o640)), oct(os.lstat('p').st_mode))
    print('link', e(lambda: os.link('keep', 'k2')), os.stat('keep').st_nlink)
    print('truncate', e(lambda: os.truncate('k2', 3)), open('keep').read())
    print('rename dir', e(lambda: os.rename('sub', 'sub2')), os.listdir('sub2'))
    print('rename up', e(lambda: os.rename('k2', 'k2', dst_dir_fd=top)))
    print('listing', sorted(os.listdir('.')))
    print('top', os.stat('k2', dir_fd=top).st_nlink)
    for n in ['keep', 'moved2', 'l', 'p', 'sub2/f']:
        os.unlink(n)
    os.rmdir('sub2')
    print('emptied', os.listdir('.'))
    for _ in range(30):
        os.chdir('..')
        os.rmdir(NAME)
    print('removed', NAME in os.listdir('.'))
{'prepare': prepare, 'ops': ops}[mode]()
"#;

/// Paths longer than PATH_MAX from the layer roots (the kernel refuses
/// them in one call): files of a deep lower chain are read, copied up
/// (with their 30 parents), changed, renamed, whited out, and new
/// entries made, as on a tmpfs (the control, which gets the same chain).
#[test]
fn overlay_long_paths_work_as_on_a_tmpfs() {
    let sm = small();
    let l1 = sm.sc.dir.join("L1");
    check_ok(
        "building a deep lower chain",
        &output(
            Command::new(python())
                .args(["-c", DEEP_PY, "prepare"])
                .arg(&l1),
        ),
    );
    let py = sm.sc.dir.join("deep.py");
    std::fs::write(&py, DEEP_PY).unwrap();
    let script = format!("{} {} ops \"$1\" || echo failed", python(), s(&py));
    let c = overlay_and_tmpfs_on(sm, "deep", &script);
    let expected = "depth True\nread lower\nappend 6\nread again ['lower', 'upper']\n\
                    chmod ok 0o600\nsetxattr ok\ngetxattr b'v'\n\
                    utime ok 2000000000000000000\nunlink lower ok False\n\
                    rename lower ok m\nmkdir ok\ncreate 3\nsymlink ok keep\n\
                    mkfifo ok 0o10640\nlink ok 2\ntruncate ok low\n\
                    rename dir ok ['f']\nrename up ok\n\
                    listing ['keep', 'l', 'moved2', 'p', 'sub2']\ntop 2\nemptied []\n\
                    removed False\n";
    assert_eq!(c.tmpfs, expected, "the control (tmpfs)");
    assert_eq!(c.ovl, c.tmpfs, "hutch's overlay, compared with a tmpfs");
}

/// Runs `script` (sh, `$1` the mount point) in `hutch overlay` over the
/// layers of `sm` with `opts`, on `upper`; its stdout.
fn in_overlay(sm: &Small, upper: &Path, opts: &[&str], script: &str) -> String {
    let work = upper.with_extension("work");
    let mnt = upper.with_extension("mnt");
    mkdirs(&mnt);
    let mut c = sm.st.hutch();
    c.arg("overlay").args(opts);
    c.arg("--lower")
        .arg(join(&sm.lowers))
        .arg("--upper")
        .arg(upper);
    c.arg("--work").arg(&work).arg(&mnt).arg("--");
    let out = output(c.args(["sh", "-c", script, "sh"]).arg(&mnt));
    check_ok("a script in hutch's overlay", &out);
    stdout(&out)
}

/// Renaming a directory of a lower layer moves it at once (no copy): the
/// upper dir holds the directory at its new name with a redirect record
/// (the kernel's `user.overlay.redirect`) and a whiteout at the old name;
/// its lower content shows at the new name, also after a remount and a
/// second move, and changes inside it stay in the upper. Control: with
/// `--no-redirect-dir` the same rename(2) is EXDEV, as on the kernel
/// overlay mounted without privileges.
#[test]
fn overlay_renames_lower_directories_with_a_redirect_record() {
    let sm = small();
    let py = python();
    let rename = format!(
        "{py} -c 'import os, sys\ntry: os.rename(sys.argv[1], sys.argv[2]); print(\"rename ok\")\nexcept OSError as e: print(\"rename\", e.strerror)' "
    );
    // Control first, on an upper of its own.
    let ctl = sm.sc.fresh("redirect-off");
    let out = in_overlay(
        &sm,
        &ctl,
        &["--no-redirect-dir"],
        &format!("cd \"$1\" && {rename} dir moved && ls -d dir"),
    );
    assert_eq!(
        out, "rename Invalid cross-device link\ndir\n",
        "--no-redirect-dir"
    );

    let upper = sm.sc.fresh("redirect").join("upper");
    mkdirs(&upper);
    let out = in_overlay(
        &sm,
        &upper,
        &[],
        &format!(
            "cd \"$1\" && {rename} dir moved && mkdir -p a/b && {rename} moved a/b/x && \
             echo added > a/b/x/added && cat a/b/x/inner && ls a/b/x && \\
             {{ [ -e dir ] || echo dir gone; }}"
        ),
    );
    assert_eq!(
        out, "rename ok\nrename ok\ninner\nadded\ninner\ndir gone\n",
        "the moves"
    );
    // A remount reads the record: the lower content is still there.
    let out = in_overlay(
        &sm,
        &upper,
        &[],
        &format!(
            "cd \"$1\" && cat a/b/x/inner a/b/x/added && rm a/b/x/inner && \
             {rename} a/b/x back && ls back && \\
             {{ [ -e dir ] || [ -e a/b/x ] || echo both gone; }}"
        ),
    );
    assert_eq!(
        out, "inner\nadded\nrename ok\nadded\nboth gone\n",
        "after a remount"
    );
    let out = in_overlay(&sm, &upper, &[], "cd \"$1\" && ls -a back && cat file");
    assert_eq!(out, ".\n..\nadded\nfrom L1\n", "after a second remount");

    // On disk: a record with the lower path, whiteouts, and no copy of
    // the lower file anywhere in the upper.
    let back = upper.join("back");
    let value = xattr_of(&back, "user.overlay.redirect");
    assert_eq!(value.as_deref(), Some(&b"/dir"[..]), "the redirect record");
    for wh in [upper.join("dir"), back.join("inner")] {
        let m = std::fs::symlink_metadata(&wh).unwrap();
        assert!(
            std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()) && m.rdev() == 0,
            "{} is a whiteout",
            wh.display()
        );
    }
    let out = output(
        Command::new("find")
            .arg(&upper)
            .args(["-type", "f", "-name", "inner"]),
    );
    assert_eq!(stdout(&out), "", "no copy of the lower file in the upper");
}

/// The value of the xattr `name` of `path`, if it has one.
fn xattr_of(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("reading {name} of {}: {e}", path.display()),
    }
}

/// chmod of a fifo or socket keeps the setuid, setgid and sticky bits
/// (as on a tmpfs and the kernel overlay), also when it is created with
/// them; they are on disk in the upper dir.
#[test]
fn overlay_mode_fifo_and_socket_keep_special_bits() {
    let script = format!(
        "cd \"$1\" || exit 1\n\
         mkfifo f; chmod 01621 f; stat -c 'f %a' f; chmod 06755 f; stat -c 'f %a' f\n\
         {} -c 'import os, socket; os.mkfifo(\"g\", 0o4644); socket.socket(socket.AF_UNIX).bind(\"s\")'\n\
         stat -c 'g %a' g; chmod 02710 s; stat -c 's %a %F' s\n\
         mv f f2; stat -c 'f2 %a' f2",
        python()
    );
    let c = overlay_and_tmpfs("fifomode", &script);
    let expected = "f 1621\nf 6755\ng 4644\ns 2710 socket\nf2 6755\n";
    assert_eq!(c.tmpfs, expected, "the control (tmpfs)");
    assert_eq!(c.ovl, expected, "hutch's overlay, compared with a tmpfs");
    for (name, mode) in [("f2", 0o6755), ("g", 0o4644), ("s", 0o2710)] {
        let m = std::fs::symlink_metadata(c.upper.join(name)).unwrap();
        assert_eq!(m.mode() & 0o7777, mode, "{name} on disk in the upper dir");
    }
}

/// The same owner operations in `$1`, for `hutch run` (busybox sh): a fifo
/// and a symlink chown-ed, a chown clearing setuid, new entries of another
/// user in a setgid directory, a rename.
const OWNER_SCRIPT: &str = "for d in /w /ctl; do mkdir -p $d; cd $d; echo \"-- $d\"\n\
     mkfifo f; chown 123:456 f; echo \"chown rc=$?\"; stat -c 'f %u:%g' f\n\
     ln -s target l; chown -h 123:456 l; echo \"lchown rc=$?\"; stat -c 'l %u:%g' l\n\
     mkfifo g; chmod 04755 g; chown 7:8 g; stat -c 'g %u:%g %a' g\n\
     mkdir -m 2777 sg; chgrp 321 sg; chmod 2777 sg\n\
     su nobody -s /bin/sh -c 'mkfifo sg/p; ln -s x sg/l'; stat -c '%n %u:%g' sg/p sg/l\n\
     mv f f2; stat -c 'f2 %u:%g' f2\n\
     done";

/// With a subordinate id range (the default when the user has one), chown
/// of a fifo or symlink is kept, as on a tmpfs in the same container (the
/// control): before, it returned 0 and changed nothing. A symlink of the
/// image chown-ed is copied up with its new owner and still resolves. On
/// disk the owner is the range's host id, and the store still removes the
/// container.
#[test]
fn overlay_owner_chown_of_fifo_and_symlink_is_kept_with_a_subuid_range() {
    let st = common::busybox();
    let script = format!(
        "{OWNER_SCRIPT}\n\
         chown -h 123:456 /bin/sh; stat -c 'image symlink %u:%g' /bin/sh; readlink /bin/sh; \
         /bin/sh -c 'echo still runs'"
    );
    let out = output(st.hutch().args([
        "run", "--name", "own", "--tmpfs", "/ctl", "busybox", "sh", "-c", &script,
    ]));
    check_ok("owners in hutch run", &out);
    let text = stdout(&out);
    let (ovl, rest) = text
        .strip_prefix("-- /w\n")
        .and_then(|t| t.split_once("-- /ctl\n"))
        .unwrap_or_else(|| panic!("unexpected output {text:?}"));
    let (ctl, image) = rest
        .split_once("image symlink")
        .unwrap_or_else(|| panic!("unexpected output {text:?}"));
    let expected = "chown rc=0\nf 123:456\nlchown rc=0\nl 123:456\ng 7:8 755\n\
                    sg/p 65534:321\nsg/l 65534:321\nf2 123:456\n";
    assert_eq!(ctl, expected, "the control (a tmpfs in the container)");
    assert_eq!(ovl, expected, "hutch's overlay, compared with a tmpfs");
    assert_eq!(
        image, " 123:456\nbusybox\nstill runs\n",
        "a symlink of the image"
    );
    // On disk: the owner is a host id of the range (not the store's user).
    let containers = st.root().join("containers");
    let dir = std::fs::read_dir(&containers)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("upper").is_dir())
        .expect("the container's upper dir");
    let me = rustix::process::getuid().as_raw();
    let f2 = std::fs::symlink_metadata(dir.join("upper/w/f2")).unwrap();
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(&f2.file_type()),
        "f2 is a fifo on disk"
    );
    assert_ne!(f2.uid(), me, "f2 is owned by a subordinate id on disk");
    let sh = std::fs::symlink_metadata(dir.join("upper/bin/sh")).unwrap();
    assert!(sh.file_type().is_symlink());
    assert_eq!(sh.uid(), f2.uid(), "both are the host id of 123");
    st.run_ok(["rm", "own"]);
    assert!(!dir.exists(), "the store removed the container's upper dir");
}

/// With one id (no subordinate range), chown to an unmapped id never
/// reaches the overlay (the kernel says EINVAL) and nothing changes; chown
/// to root works; as on a tmpfs in the same container.
#[test]
fn overlay_owner_one_id_map_refuses_unmapped_ids_as_a_tmpfs() {
    let st = common::busybox();
    let script = "for d in /w /ctl; do mkdir -p $d; cd $d; echo \"-- $d\"\n\
                  mkfifo f; chown 123:456 f 2>/dev/null; echo \"chown rc=$?\"; stat -c 'f %u:%g' f\n\
                  ln -s t l; chown -h 0:0 l; echo \"chown root rc=$?\"; stat -c 'l %u:%g' l\n\
                  done";
    let out = output(st.hutch().env("HUTCH_IDMAP", "single").args([
        "run", "--rm", "--tmpfs", "/ctl", "busybox", "sh", "-c", script,
    ]));
    check_ok("owners in hutch run with one id", &out);
    let expected = "chown rc=1\nf 0:0\nchown root rc=0\nl 0:0\n";
    assert_eq!(
        stdout(&out),
        format!("-- /w\n{expected}-- /ctl\n{expected}"),
        "hutch's overlay (/w) and a tmpfs (/ctl)"
    );
}
