//! The standard overlay mount command: `hutch-overlayfs -o
//! lowerdir=L2:L1,upperdir=U,workdir=W MNT` (the hutch binary under that
//! name) and `hutch overlayfs ...`, as Podman's `overlay.mount_program`
//! and the unionmount-testsuite's `--fuse=PROG` call fuse-overlayfs: the
//! mount is made in the caller's own namespace (here one made by the test
//! with `unshare -Urm`), usable as soon as the command returns, and served
//! by a background process until `umount` / `fusermount3 -u`.

mod common;

use common::TestStore;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Output;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Lower layers L2 (top) and L1, upper U, work W, mount point M, and a
/// `hutch-overlayfs` symlink to the hutch binary under test.
struct Dirs {
    st: TestStore,
    root: PathBuf,
    prog: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let st = TestStore::new();
        let root = st.tmp().join("ovm");
        for d in ["L1", "L2", "U", "W", "M", "bin", "tmp"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("L1/a"), "lower a\n").unwrap();
        std::fs::write(root.join("L1/gone"), "from L1\n").unwrap();
        std::fs::write(root.join("L2/b"), "top b\n").unwrap();
        let prog = root.join("bin/hutch-overlayfs");
        std::os::unix::fs::symlink(common::hutch_bin(), &prog).unwrap();
        Dirs { st, root, prog }
    }

    fn p(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Run `script` with bash in a new user+mount namespace where the
    /// test user is root (`unshare -Urm`), with PROG, HUTCH, L1, L2, U, W,
    /// M in the environment (not on any command line, so a search of
    /// command lines for M finds only the overlay server).
    fn in_namespace(&self, script: &str) -> Output {
        let file = self.p("script.sh");
        std::fs::write(&file, script).unwrap();
        let mut c = self.st.command("unshare");
        c.args(["-Urm", "bash", "-eu"]).arg(&file);
        for d in ["L1", "L2", "U", "W", "M"] {
            c.env(d, self.p(d));
        }
        c.env("PROG", &self.prog)
            .env("HUTCH", common::hutch_bin())
            .env("TMPDIR", self.p("tmp"));
        c.output().expect("run unshare")
    }
}

fn show(out: &Output) -> String {
    common::describe(out)
}

/// Shell function `server_pid`: the pid of the process whose command line
/// names $M (the pattern comes from a file, so grep's own command line does
/// not match), and `mounted`: whether $M is a mount point now.
const HELPERS: &str = r#"
printf '%s\n' "$M" > "$TMPDIR/pattern"
server_pid() {
  for p in /proc/[0-9]*; do
    [ -r "$p/cmdline" ] || continue
    if tr '\0' '\n' < "$p/cmdline" 2>/dev/null | grep -qxF -f "$TMPDIR/pattern"; then
      echo "${p#/proc/}"
    fi
  done 2>/dev/null
}
mounted() { awk -v m="$M" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; }
"#;

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn ended(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

#[test]
fn overlay_mount_writes_reach_the_upper_dir_and_umount_ends_the_server() {
    let d = Dirs::new();
    let out = d.in_namespace(&format!(
        r#"{HELPERS}
mounted && {{ echo "M mounted before the test"; exit 1; }}
"$PROG" -o "lowerdir=$L2:$L1,upperdir=$U,workdir=$W" "$M"
echo "rc=$?"
# usable at once: the command returned only once the mount was ready
echo "read a=$(cat "$M/a") b=$(cat "$M/b")"
echo "changed a" > "$M/a"
echo "new file" > "$M/n"
rm "$M/gone"
echo "reread a=$(cat "$M/a") n=$(cat "$M/n") gone=$(ls "$M" | grep -c '^gone$' || true)"
awk -v m="$M" '$5 == m' /proc/self/mountinfo | sed 's/.* - /fstype=/; s/ .*//'
echo "server=$(server_pid)"
umount "$M"
echo "umount=$?"
mounted && echo "still mounted" || echo "unmounted"
"#
    ));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", show(&out));
    assert!(text.contains("rc=0\n"), "{}", show(&out));
    assert!(text.contains("read a=lower a b=top b\n"), "{}", show(&out));
    assert!(
        text.contains("reread a=changed a n=new file gone=0\n"),
        "{}",
        show(&out)
    );
    assert!(text.contains("fstype=fuse.hutch\n"), "{}", show(&out));
    assert!(text.contains("umount=0\nunmounted\n"), "{}", show(&out));

    // The changes are in the upper dir, the lower layers are untouched.
    assert_eq!(std::fs::read_to_string(d.p("U/a")).unwrap(), "changed a\n");
    assert_eq!(std::fs::read_to_string(d.p("U/n")).unwrap(), "new file\n");
    assert_eq!(std::fs::read_to_string(d.p("L1/a")).unwrap(), "lower a\n");
    assert_eq!(
        std::fs::read_to_string(d.p("L1/gone")).unwrap(),
        "from L1\n"
    );
    assert!(!d.p("L1/n").exists() && !d.p("L2/n").exists());
    let whiteout = std::fs::symlink_metadata(d.p("U/gone"))
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false)
        || d.p("U/.wh.gone").exists();
    assert!(whiteout, "no whiteout for `gone` in the upper dir");

    // The server ran in the background while mounted, and ends with the
    // mount.
    let pid: i32 = text
        .lines()
        .find_map(|l| l.strip_prefix("server="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no overlay server found while mounted: {}", show(&out)));
    assert!(
        common::eventually(20, || ended(pid)),
        "the overlay server {pid} still runs after umount"
    );
}

#[test]
fn overlay_mount_read_only_without_upperdir_and_fusermount_unmounts() {
    let d = Dirs::new();
    let out = d.in_namespace(&format!(
        r#"{HELPERS}
"$HUTCH" overlayfs -o "lowerdir=$L2:$L1" "$M"
echo "rc=$?"
echo "read a=$(cat "$M/a") b=$(cat "$M/b")"
if (echo x > "$M/new") 2> "$TMPDIR/err"; then echo "write ok"; else echo "write refused: $(cat "$TMPDIR/err")"; fi
echo "scratch=$(ls "$TMPDIR" | grep -c '^hutch-overlayfs-ro' || true)"
echo "server=$(server_pid)"
fusermount3 -u "$M"
echo "fusermount=$?"
mounted && echo "still mounted" || echo "unmounted"
"#
    ));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", show(&out));
    assert!(text.contains("rc=0\n"), "{}", show(&out));
    assert!(text.contains("read a=lower a b=top b\n"), "{}", show(&out));
    assert!(
        text.contains("write refused:") && text.contains("Read-only file system"),
        "{}",
        show(&out)
    );
    assert!(text.contains("scratch=1\n"), "{}", show(&out));
    assert!(text.contains("fusermount=0\nunmounted\n"), "{}", show(&out));
    assert!(!d.p("L1/new").exists() && !d.p("L2/new").exists());
    let pid: i32 = text
        .lines()
        .find_map(|l| l.strip_prefix("server="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no overlay server found while mounted: {}", show(&out)));
    assert!(
        common::eventually(20, || ended(pid)),
        "the overlay server {pid} still runs after fusermount3 -u"
    );
    // The empty upper and work dirs the read-only mount needed are gone
    // with the server.
    let tmp = d.p("tmp");
    assert!(
        common::eventually(20, || std::fs::read_dir(&tmp)
            .unwrap()
            .filter_map(|e| e.ok())
            .all(|e| !e
                .file_name()
                .to_string_lossy()
                .starts_with("hutch-overlayfs-ro"))),
        "the read-only mount's scratch dir is left in {}",
        tmp.display()
    );
}

#[test]
fn overlay_mount_bad_options_give_a_clear_error_and_mount_nothing() {
    let d = Dirs::new();
    // Each: options, then a phrase its error must contain.
    let cases: &[(&str, &str)] = &[
        (
            "lowerdir=$L1,upperdir=$U,workdir=$W,squash_to_root",
            "squash_to_root is not supported",
        ),
        (
            "lowerdir=$L1,upperdir=$U,workdir=$W,uidmapping=0:1000:1",
            "does not shift ids",
        ),
        (
            "lowerdir=$L1,upperdir=$U,workdir=$W,bogus=1",
            "unknown mount option \"bogus=1\"",
        ),
        ("lowerdir=$L1,upperdir=$U", "upperdir needs a workdir"),
        ("upperdir=$U,workdir=$W", "no lower layer"),
        (
            "lowerdir=$L1/missing,upperdir=$U,workdir=$W",
            "is not a directory",
        ),
        (
            "lowerdir=$L1,upperdir=$U,workdir=$W,xattr_permissions=1",
            "xattr_permissions=1",
        ),
    ];
    let mut script = String::from(HELPERS);
    for (i, (opts, _)) in cases.iter().enumerate() {
        script.push_str(&format!(
            "rc=0; \"$PROG\" -o \"{opts}\" \"$M\" 2> \"$TMPDIR/err{i}\" || rc=$?\n\
             echo \"case{i} rc=$rc $(mounted && echo mounted || echo clean) server=$(server_pid)\"\n"
        ));
    }
    // Control: the same command with good options mounts.
    script.push_str(
        "\"$PROG\" -o \"lowerdir=$L1,upperdir=$U,workdir=$W\" \"$M\"\n\
         mounted && echo \"control mounted\"\n\
         umount \"$M\"\n",
    );
    let out = d.in_namespace(&script);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", show(&out));
    assert!(text.contains("control mounted\n"), "{}", show(&out));
    for (i, (opts, phrase)) in cases.iter().enumerate() {
        assert!(
            text.contains(&format!("case{i} rc=1 clean server=\n")),
            "{opts}: not refused cleanly: {}",
            show(&out)
        );
        let err = std::fs::read_to_string(d.p(&format!("tmp/err{i}"))).unwrap();
        assert!(
            err.starts_with("hutch-overlayfs: error: ") && err.contains(phrase),
            "{opts}: error {err:?} does not say {phrase:?}"
        );
    }
    // Nothing was written by the refused mounts.
    assert_eq!(std::fs::read_dir(d.p("U")).unwrap().count(), 0);
}

#[test]
fn overlay_mount_outside_a_user_namespace_says_what_is_needed() {
    let d = Dirs::new();
    let out =
        d.st.command(&d.prog)
            .arg("-o")
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                s(&d.p("L1")),
                s(&d.p("U")),
                s(&d.p("W"))
            ))
            .arg(d.p("M"))
            .output()
            .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs root of a user namespace") && err.contains("unshare -Urm"),
        "{err}"
    );
    // Control: the same command inside a namespace mounts.
    let ok = d.in_namespace(
        "\"$PROG\" -o \"lowerdir=$L1,upperdir=$U,workdir=$W\" \"$M\" && cat \"$M/a\" && umount \"$M\"\n",
    );
    assert!(ok.status.success(), "{}", show(&ok));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "lower a\n");
}

/// Rootless Podman (Debian's) with a throwaway store on the overlay
/// driver, hutch-overlayfs as its mount program: a container runs on
/// hutch's overlay, writes, and reads the image's layers back; its change
/// lands in the container's layer and survives a restart.
#[test]
fn overlay_mount_podman_runs_containers_with_hutch_overlayfs_as_mount_program() {
    let d = Dirs::new();
    let pd = d.p("podman");
    std::fs::create_dir_all(pd.join("xdg")).unwrap();
    let podman = |args: &[&str]| -> Output {
        let mut c = d.st.command("podman");
        c.arg("--root")
            .arg(pd.join("root"))
            .arg("--runroot")
            .arg(pd.join("run"))
            .args(["--storage-driver", "overlay", "--storage-opt"])
            .arg(format!("overlay.mount_program={}", s(&d.prog)))
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--runtime",
                "runc",
            ])
            .args(args)
            .env("XDG_RUNTIME_DIR", pd.join("xdg"));
        c.output().expect("run podman")
    };
    let load = podman(&["load", "-q", "-i", s(&common::fixture("busybox-oci.tar"))]);
    assert!(load.status.success(), "{}", show(&load));
    let image = "docker.io/library/busybox:latest";
    let run = podman(&[
        "run",
        "--name",
        "ovm",
        image,
        "sh",
        "-c",
        "echo written > /root/new && cat /root/new && head -1 /etc/passwd && \
         ls /bin/busybox && awk '$2 == \"/\" { print \"root fs: \" $3 }' /proc/mounts",
    ]);
    let text = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(run.status.success(), "{}", show(&run));
    assert_eq!(
        text,
        "written\nroot:x:0:0:root:/root:/bin/sh\n/bin/busybox\nroot fs: fuse.hutch\n",
        "{}",
        show(&run)
    );
    // The write is the container's change, and is there on the next start.
    let diff = podman(&["diff", "ovm"]);
    assert!(
        String::from_utf8_lossy(&diff.stdout).contains("A /root/new"),
        "{}",
        show(&diff)
    );
    let again = podman(&["start", "-a", "ovm"]);
    assert!(again.status.success(), "{}", show(&again));
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("written\n"));
    let rm = podman(&["rm", "ovm"]);
    assert!(rm.status.success(), "{}", show(&rm));
    // No overlay server is left once Podman has unmounted.
    let prog = s(&d.prog).to_string();
    assert!(
        common::eventually(20, || common::processes_with(&prog).into_iter().all(ended)),
        "overlay servers left: {:?}",
        common::processes_with(&prog)
    );
    // The store holds files of the user's subordinate ids: remove it from
    // inside Podman's namespace.
    let _ = podman(&["unshare", "rm", "-rf", s(&pd)]);
}
