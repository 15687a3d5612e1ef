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
        self.in_namespace_with(&["-Urm"], script)
    }

    /// [`Dirs::in_namespace`] in a namespace that also maps the test
    /// user's subordinate ids (`unshare -r --map-auto -m`: ids 1..65535
    /// exist), so that shifted owners can be shown and stored.
    fn in_wide_namespace(&self, script: &str) -> Output {
        self.in_namespace_with(&["--map-root-user", "--map-auto", "--mount"], script)
    }

    fn in_namespace_with(&self, unshare: &[&str], script: &str) -> Output {
        let file = self.p("script.sh");
        std::fs::write(&file, script).unwrap();
        let mut c = self.st.command("unshare");
        c.args(unshare).args(["bash", "-eu"]).arg(&file);
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
            "lowerdir=$L1,upperdir=$U,workdir=$W,uidmapping=0:1000",
            "uidmapping=0:1000: expected STORED:SHOWN:LEN triples",
        ),
        (
            "lowerdir=$L1,upperdir=$U,workdir=$W,gidmapping=0:1:4294967295",
            "runs past the largest id",
        ),
        (
            "lowerdir=$L1,upperdir=$U,workdir=$W,squash_to_uid=x",
            "squash_to_uid=x: expected an id",
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

/// Shell functions for the owner tests: `owners F...` prints `F uid:gid`
/// of each name below $M; `stored F...` prints what the upper dir holds
/// for each: the ownership record's uid:gid (regular files, directories),
/// `none` without one, or `disk uid:gid` for `-h` names (symlinks, fifos:
/// their owner on disk); `record F UID:GID:MODE:TYPE` makes a lower file
/// `F` with that ownership record.
const OWNER_HELPERS: &str = r#"
owners() { for f in "$@"; do echo "$f $(stat -c %u:%g "$M/$f")"; done; }
stored() {
  for f in "$@"; do
    case $f in
      -h:*) f=${f#-h:}; echo "$f disk $(stat -c %u:%g "$U/$f")" ;;
      *) r=$(getfattr --only-values -n user.containers.override_stat "$U/$f" 2>/dev/null) || r=none
         echo "$f ${r%:*:*}" ;;
    esac
  done
}
record() { echo "$1" > "$1"; setfattr -n user.containers.override_stat -v "$2" "$1"; }
"#;

/// Lines of `text` between `== from` and the next `== ` line.
fn section<'a>(text: &'a str, from: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| *l != format!("== {from}"))
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .collect()
}

/// `uidmapping=`/`gidmapping=` as fuse-overlayfs: stored ids are shown
/// through the map, ids outside it as 65534; a new entry gets the caller's
/// id stored back through the map, a chown likewise (an id outside it is
/// stored as 65534); the same upper dir mounted without the options shows
/// the stored ids.
#[test]
fn overlay_mount_uid_gid_mapping_shows_and_stores_shifted_owners() {
    let d = Dirs::new();
    // stored 1000 <-> shown 0, stored 0..999 <-> shown 100..1099.
    let map = "uidmapping=1000:0:1:0:100:1000,gidmapping=1000:0:1:0:100:1000";
    let out = d.in_wide_namespace(&format!(
        r#"{OWNER_HELPERS}
record "$L1/rec" 1000:1000:0644:file
record "$L1/rec2" 500:600:0644:file
record "$L1/far" 2000:2000:0644:file
"$PROG" -o "lowerdir=$L2:$L1,upperdir=$U,workdir=$W,{map}" "$M"
echo "== shown"
owners a rec rec2 far
echo new > "$M/new"; mkdir "$M/dir"; ln -s new "$M/link"; mkfifo "$M/fifo"
echo "== created"
owners new dir link fifo
chown 150:160 "$M/new"
chown -h 120:130 "$M/link"
chown 3000:3000 "$M/rec2"
echo "== chowned"
owners new link rec2
umount "$M"
echo "== stored"
stored new dir rec2 -h:link -h:fifo
"$PROG" -o "lowerdir=$L2:$L1,upperdir=$U,workdir=$W" "$M"
echo "== control"
owners a rec rec2 far new dir link fifo
umount "$M"
"#
    ));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", show(&out));
    let want: &[(&str, &[&str])] = &[
        // On disk the lower `a` is the test user's (0 here): shown 100.
        (
            "shown",
            &["a 100:100", "rec 0:0", "rec2 600:700", "far 65534:65534"],
        ),
        // The caller (root, shown 0) is stored as 1000, shown as 0 again.
        ("created", &["new 0:0", "dir 0:0", "link 0:0", "fifo 0:0"]),
        (
            "chowned",
            &["new 150:160", "link 120:130", "rec2 65534:65534"],
        ),
        (
            "stored",
            &[
                "new 50:60",
                "dir 1000:1000",
                "rec2 65534:65534",
                "link disk 20:30",
                "fifo disk 1000:1000",
            ],
        ),
        (
            "control",
            &[
                "a 0:0",
                "rec 1000:1000",
                "rec2 65534:65534",
                "far 2000:2000",
                "new 50:60",
                "dir 1000:1000",
                "link 20:30",
                "fifo 1000:1000",
            ],
        ),
    ];
    for (name, lines) in want {
        assert_eq!(section(&text, name), *lines, "{name}: {}", show(&out));
    }
}

/// `squash_to_root` and `squash_to_uid=`/`squash_to_gid=` change only
/// what is shown: every file shows 0:0 (7:8), a new file and a chown store
/// the ids themselves, and the same upper dir mounted without the option
/// shows them.
#[test]
fn overlay_mount_squash_shows_one_owner_and_stores_the_real_ones() {
    let d = Dirs::new();
    let out = d.in_wide_namespace(&format!(
        r#"{OWNER_HELPERS}
record "$L1/rec" 1000:1000:0644:file
"$PROG" -o "lowerdir=$L2:$L1,upperdir=$U,workdir=$W,squash_to_root" "$M"
echo new > "$M/new"; ln -s new "$M/link"
chown 150:160 "$M/new"
chown -h 120:130 "$M/link"
echo "== root"
owners a b rec new link
umount "$M"
"$PROG" -o "lowerdir=$L2:$L1,upperdir=$U,workdir=$W,squash_to_root,squash_to_uid=7,squash_to_gid=8" "$M"
echo "== uid gid"
owners a b rec new link
umount "$M"
"$PROG" -o "lowerdir=$L2:$L1,upperdir=$U,workdir=$W,squash_to_uid=7" "$M"
echo "== uid only"
owners rec new
umount "$M"
echo "== stored"
stored new -h:link
"$PROG" -o "lowerdir=$L2:$L1,upperdir=$U,workdir=$W" "$M"
echo "== control"
owners a b rec new link
umount "$M"
"#
    ));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", show(&out));
    let want: &[(&str, &[&str])] = &[
        (
            "root",
            &["a 0:0", "b 0:0", "rec 0:0", "new 0:0", "link 0:0"],
        ),
        (
            "uid gid",
            &["a 7:8", "b 7:8", "rec 7:8", "new 7:8", "link 7:8"],
        ),
        // Without squash_to_root the gids are the stored ones.
        ("uid only", &["rec 7:1000", "new 7:160"]),
        ("stored", &["new 150:160", "link disk 120:130"]),
        (
            "control",
            &[
                "a 0:0",
                "b 0:0",
                "rec 1000:1000",
                "new 150:160",
                "link 120:130",
            ],
        ),
    ];
    for (name, lines) in want {
        assert_eq!(section(&text, name), *lines, "{name}: {}", show(&out));
    }
}

/// The same lower files (owners on disk), the same operations and the same
/// options through fuse-overlayfs and through hutch-overlayfs show the
/// same owners: ids outside the map, chowns and new files of ids outside
/// it, overlapping triples, the squash options. (The upper dirs differ by
/// design: fuse-overlayfs chowns on disk, hutch keeps ownership records.)
#[test]
fn overlay_mount_shifted_owners_are_those_of_fuse_overlayfs() {
    let d = Dirs::new();
    let script = r#"
cd "$L1"
echo c > c; echo e > e; ln -s a sym; mkdir dd
chown 1000:1000 b; chown 5:6 c; chown -h 1000:1000 sym; chown 1000:1000 dd
for opts in \
  "uidmapping=0:100:1000,gidmapping=0:100:1000" \
  "uidmapping=0:100:10:5:200:10,gidmapping=0:100:10:5:200:10" \
  "squash_to_root" \
  "squash_to_uid=7" \
  "squash_to_gid=8,gidmapping=0:100:10"; do
  for prog in fuse-overlayfs "$PROG"; do
    rm -rf "$U" "$W"; mkdir "$U" "$W"
    "$prog" -o "lowerdir=$L1,upperdir=$U,workdir=$W,$opts" "$M" 2>/dev/null
    echo "== $opts ${prog##*/}"
    touch "$M/new"; mkdir "$M/newd"; ln -s x "$M/newl"; mkfifo "$M/newf"
    stat -c '%n %u:%g' "$M"/a "$M"/b "$M"/c "$M"/sym "$M"/dd "$M"/new "$M"/newd "$M"/newl "$M"/newf
    chown 100:100 "$M/a"; chown 1099:1099 "$M/b"; chown 3000:3000 "$M/c" 2>&1
    chown -h 100:100 "$M/sym"; chown 105:104 "$M/e"
    stat -c '%n %u:%g' "$M"/a "$M"/b "$M"/c "$M"/sym "$M"/e
    umount "$M"
  done
done
"#;
    // Lower `a` comes from Dirs::new; `b` needs to be in L1 here.
    std::fs::write(d.p("L1/b"), "b\n").unwrap();
    let out = d.in_wide_namespace(script);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", show(&out));
    let mut compared = 0;
    for opts in [
        "uidmapping=0:100:1000,gidmapping=0:100:1000",
        "uidmapping=0:100:10:5:200:10,gidmapping=0:100:10:5:200:10",
        "squash_to_root",
        "squash_to_uid=7",
        "squash_to_gid=8,gidmapping=0:100:10",
    ] {
        let theirs = section(&text, &format!("{opts} fuse-overlayfs"));
        let ours = section(&text, &format!("{opts} hutch-overlayfs"));
        let theirs: Vec<String> = theirs
            .iter()
            .map(|l| l.replace(s(&d.p("M")), "M"))
            .collect();
        let ours: Vec<String> = ours.iter().map(|l| l.replace(s(&d.p("M")), "M")).collect();
        assert_eq!(theirs.len(), 14, "{opts}: {}", show(&out));
        assert_eq!(ours, theirs, "{opts}: {}", show(&out));
        compared += 1;
    }
    assert_eq!(compared, 5);
    // Not all alike: the map shows the lower owners shifted (control
    // against a comparison of two programs that both ignore the options).
    assert!(text.contains("M/c 105:106\n"), "{}", show(&out));
}

/// Rootless Podman (Debian's) with a throwaway store on the overlay
/// driver, hutch-overlayfs as its mount program: a container runs on
/// hutch's overlay, writes, and reads the image's layers back; its change
/// lands in the container's layer and survives a restart.
#[test]
fn overlay_mount_podman_runs_containers_with_hutch_overlayfs_as_mount_program() {
    let d = Dirs::new();
    let pd = d.p("podman");
    let mount_program = format!("overlay.mount_program={}", s(&d.prog));
    let storage = [
        "--storage-driver",
        "overlay",
        "--storage-opt",
        &mount_program,
    ];
    let podman = |args: &[&str]| -> Output {
        let mut c = common::podman_storage(&pd, &storage);
        c.args(args)
            .env("HOME", d.st.home())
            .stdin(std::process::Stdio::null());
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

    // With --uidmap/--gidmap, containers-storage does not chown the image
    // for the container: it passes uidmapping=0:1:65535 (and gidmapping)
    // to the mount program. The container (its root is 1 in Podman's
    // namespace) sees the image's files as 0:0, not as 65534, and its new
    // file is stored as 0:0, not as 1:1 (a record "1:1:...").
    let run = podman(&[
        "run",
        "--name",
        "ovm-map",
        "--uidmap",
        "0:1:65535",
        "--gidmap",
        "0:1:65535",
        image,
        "sh",
        "-c",
        "echo mapped > /root/new2 && cat /root/new2 && \
         stat -c '%u:%g %n' /root/new2 /bin/busybox /etc/passwd && \
         tr -s ' ' < /proc/self/uid_map",
    ]);
    assert!(run.status.success(), "{}", show(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "mapped\n0:0 /root/new2\n0:0 /bin/busybox\n0:0 /etc/passwd\n 0 1 65535\n",
        "{}",
        show(&run)
    );
    let inspect = podman(&[
        "inspect",
        "--format",
        "{{.GraphDriver.Data.UpperDir}}",
        "ovm-map",
    ]);
    assert!(inspect.status.success(), "{}", show(&inspect));
    let upper = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
    let stored = podman(&[
        "unshare",
        "sh",
        "-c",
        "stat -c %u:%g \"$1/root/new2\" && \
         { getfattr --only-values -n user.containers.override_stat \"$1/root/new2\" \
           2>/dev/null || echo 'no record'; }",
        "sh",
        &upper,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&stored.stdout),
        "0:0\nno record\n",
        "{}",
        show(&stored)
    );
    let rm = podman(&["rm", "ovm-map"]);
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
