//! Hostile images: root filesystems whose own symlinks point out of the
//! container, run (not only unpacked) under every built-in profile.
//!
//! Setting up a container mounts /proc, /dev, /sys, the /etc files,
//! volumes and tmpfs mounts into the image's tree before pivot_root. If a
//! path there is followed as a host path, an image with `/etc -> /home/you`
//! makes hutch write into the host. Each image below points its links at a
//! "victim" directory of the host that the test user can write (shown by a
//! control write), and every run must leave the victim exactly as it was.
//! A second control shows the link really is in the image and points at
//! the victim (the container reads it back), so the attack is armed.

mod common;

use common::{TestStore, describe, fixture, tree_listing};
use std::path::PathBuf;

const PROFILES: &[&str] = &["default", "untrusted", "install", "dev"];

/// A symlink or plain entry added on top of the busybox root filesystem.
enum Entry {
    Link(&'static str, String),
    Dir(&'static str),
}

/// busybox-rootfs.tar without the top-level directories in `drop`, plus
/// `extra`, imported as `name`.
fn import_image(st: &TestStore, name: &str, drop: &[&str], extra: &[Entry]) {
    let src = std::fs::File::open(fixture("busybox-rootfs.tar")).unwrap();
    let out_path = st.tmp().join(format!("{name}.tar"));
    let mut out = tar::Builder::new(std::fs::File::create(&out_path).unwrap());
    let mut archive = tar::Archive::new(src);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let top = path
            .components()
            .find_map(|c| match c {
                std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .unwrap_or_default();
        if drop.contains(&top.as_str()) {
            continue;
        }
        let mut header = entry.header().clone();
        out.append_data(&mut header, &path, &mut entry).unwrap();
    }
    for e in extra {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_704_067_200);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        match e {
            Entry::Link(at, to) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                out.append_link(&mut h, at, to).unwrap();
            }
            Entry::Dir(at) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                out.append_data(&mut h, at, std::io::empty()).unwrap();
            }
        }
    }
    out.into_inner().unwrap();
    st.run_ok(["import", out_path.to_str().unwrap(), name]);
}

/// Whether some directory below `root` holds a symlink at `rel` whose
/// target mentions `target` (an unpacked layer in the store).
fn stored_link_to(root: &std::path::Path, rel: &str, target: &str) -> bool {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(to) = std::fs::read_link(dir.join(rel))
            && to.to_string_lossy().contains(target)
        {
            return true;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    false
}

/// A directory of the host the test user can write, with a file in it.
struct Victim {
    dir: PathBuf,
    before: Vec<String>,
    _keep: Option<tempfile::TempDir>,
}

impl Victim {
    fn new(st: &TestStore) -> Victim {
        // Outside /tmp where possible, so that links into it do not pass
        // through the container's own /tmp (which the tmp cases replace).
        let keep = tempfile::Builder::new()
            .prefix("hutch-victim-")
            .tempdir_in("/var/tmp")
            .ok();
        let dir = match &keep {
            Some(k) => k.path().join("victim"),
            None => st.tmp().join("victim"),
        };
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("hosts"), b"the host's own file\n").unwrap();
        std::os::unix::fs::symlink("hosts", dir.join("link")).unwrap();
        // Control: the user running hutch can write here, so a container
        // setup that follows a link into it would succeed in writing.
        let probe = dir.join("probe");
        std::fs::write(&probe, b"x").unwrap();
        std::fs::remove_file(&probe).unwrap();
        let before = tree_listing(&dir);
        Victim {
            dir,
            before,
            _keep: keep,
        }
    }

    fn assert_untouched(&self, what: &str, out: &std::process::Output) {
        assert_eq!(
            tree_listing(&self.dir),
            self.before,
            "{what}: the host directory {} changed\n{}",
            self.dir.display(),
            describe(out)
        );
        assert_eq!(
            std::fs::read(self.dir.join("hosts")).unwrap(),
            b"the host's own file\n",
            "{what}: a host file was overwritten"
        );
    }

    /// `../` enough times to climb from any container path to the root,
    /// then the victim's host path: a relative link out of the root.
    fn relative(&self) -> String {
        format!("{}{}", "../".repeat(40), self.rel())
    }

    fn rel(&self) -> String {
        self.dir
            .to_str()
            .unwrap()
            .trim_start_matches('/')
            .to_string()
    }

    fn abs(&self) -> String {
        self.dir.to_str().unwrap().to_string()
    }
}

/// Run `script` in `image` under `profile` with `extra` flags; returns the
/// output whatever the status (a hostile image may make setup fail, which
/// is fine as long as nothing leaks).
fn run(
    st: &TestStore,
    profile: &str,
    extra: &[&str],
    image: &str,
    script: &str,
) -> std::process::Output {
    let work = st.tmp().join("work");
    std::fs::create_dir_all(&work).unwrap();
    st.hutch()
        .current_dir(&work)
        .args(["run", "--rm", "--profile", profile, "--network", "none"])
        .args(extra)
        .args([image, "sh", "-c", script])
        .output()
        .unwrap()
}

/// The container's view is sane: /etc/hosts is hutch's, /proc is a procfs
/// of its own, /dev/null is a device (so setup ran, in the root).
const SANE: &str =
    "grep -q localhost /etc/hosts && test -c /dev/null && test -r /proc/self/status && echo SANE";

#[test]
fn hostile_links_at_system_mount_points_stay_inside_the_root() {
    let st = TestStore::new();
    let v = Victim::new(&st);
    // (image, dropped top-level dirs, links, what the link is called)
    let cases: Vec<(&str, Vec<&str>, Vec<Entry>, &str)> = vec![
        (
            "etc-abs",
            vec!["etc"],
            vec![Entry::Link("etc", v.abs())],
            "/etc",
        ),
        (
            "etc-rel",
            vec!["etc"],
            vec![Entry::Link("etc", v.relative())],
            "/etc",
        ),
        (
            "etc-chain",
            vec!["etc"],
            vec![
                Entry::Link("etc", "l1".into()),
                Entry::Link("l1", "/l2".into()),
                Entry::Link("l2", v.relative()),
            ],
            "/l2",
        ),
        (
            "etc-missing",
            vec!["etc"],
            vec![Entry::Link("etc", format!("{}/missing/deeper", v.abs()))],
            "/etc",
        ),
        (
            "hosts-file",
            vec![],
            vec![
                Entry::Link("etc/hosts", format!("{}/hosts", v.abs())),
                Entry::Link("etc/resolv.conf", format!("{}/link", v.relative())),
                Entry::Link("etc/hostname", format!("{}/nothing-yet", v.abs())),
            ],
            "/etc/hosts",
        ),
        (
            "dev",
            vec!["dev"],
            vec![Entry::Link("dev", v.abs())],
            "/dev",
        ),
        (
            "proc",
            vec!["proc"],
            vec![Entry::Link("proc", v.relative())],
            "/proc",
        ),
        (
            "sys",
            vec!["sys"],
            vec![Entry::Link("sys", v.abs())],
            "/sys",
        ),
        (
            "tmp",
            vec!["tmp"],
            vec![Entry::Link("tmp", v.abs())],
            "/tmp",
        ),
        (
            "tmp-missing",
            vec!["tmp"],
            vec![Entry::Link("tmp", format!("{}/gone", v.relative()))],
            "/tmp",
        ),
    ];
    for (name, drop, links, link) in &cases {
        import_image(&st, name, drop, links);
        let mut ran = 0;
        for profile in PROFILES {
            // The tmp cases mount a tmpfs through the image's /tmp link
            // (untrusted and install do so by themselves).
            let extra: &[&str] = if name.starts_with("tmp") {
                &["--tmpfs", "/tmp"]
            } else {
                &[]
            };
            let out = run(
                &st,
                profile,
                extra,
                name,
                &format!("readlink {link}; {SANE}"),
            );
            let what = format!("image {name} under {profile}");
            v.assert_untouched(&what, &out);
            let stdout = String::from_utf8_lossy(&out.stdout);
            // Setup resolved the links inside the root and the container
            // still works; or it refused with a message (never a crash).
            // The victim lives below the host's /tmp, so where a link leads
            // there, the links' targets inside the container are below its
            // /tmp too: under a profile with a tmpfs on /tmp they are
            // hidden after setup, and the view is not sane (no harm done).
            let tmpfs_hides =
                (*profile == "untrusted" || *profile == "install") && v.abs().starts_with("/tmp/");
            match out.status.code() {
                Some(125) => {
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(err.contains("hutch:"), "{what}\n{}", describe(&out));
                }
                Some(_) if tmpfs_hides && !stdout.contains("SANE") => {
                    assert!(
                        stdout.contains(&v.rel()) || matches!(*name, "dev" | "proc" | "sys"),
                        "{what}\n{}",
                        describe(&out)
                    );
                }
                Some(0) => {
                    ran += 1;
                    assert!(stdout.contains("SANE"), "{what}\n{}", describe(&out));
                    // Control: the link the image armed is really there,
                    // pointing at the host's victim directory.
                    if *name == "hosts-file" {
                        // hutch puts its own /etc/hosts in place of the
                        // image's link, so the container cannot read it
                        // back: look in the store's unpacked layer.
                        assert!(
                            stored_link_to(st.root(), "etc/hosts", &v.rel()),
                            "{what}: the hostile link is not in the stored layer"
                        );
                    } else if *name != "dev" && *name != "proc" && *name != "sys" {
                        assert!(
                            stdout.contains(&v.rel()),
                            "{what}: the hostile link is not in the image\n{}",
                            describe(&out)
                        );
                    }
                }
                _ => panic!("{what}: unexpected status\n{}", describe(&out)),
            }
        }
        // Refusing is safe but must not be all there is: the sandbox
        // comes up, in the root, under some profile for every image.
        assert!(ran > 0, "image {name} was refused under every profile");
    }
}

#[test]
fn volumes_below_hostile_links_stay_inside_the_root() {
    let st = TestStore::new();
    let v = Victim::new(&st);
    let src_dir = st.tmp().join("src-dir");
    std::fs::create_dir_all(&src_dir).unwrap();
    std::fs::write(src_dir.join("marker"), b"volume\n").unwrap();
    let src_file = st.tmp().join("src-file");
    std::fs::write(&src_file, b"file volume\n").unwrap();
    import_image(
        &st,
        "links",
        &["root"],
        &[
            Entry::Link("root", v.abs()),
            Entry::Link("data", v.relative()),
            Entry::Dir("opt/x"),
            Entry::Link("opt/x/up", "../../../../../../..".into()),
        ],
    );
    let dir_vol = format!("{}:/data/sub/new", src_dir.display());
    let file_vol = format!("{}:/root/.bashrc", src_file.display());
    let up_vol = format!("{}:/opt/x/up{}/made-by-volume", src_dir.display(), v.abs());
    for profile in PROFILES {
        let out = run(
            &st,
            profile,
            &[
                "-v",
                &dir_vol,
                "-v",
                &file_vol,
                "-v",
                &up_vol,
                "--tmpfs",
                &format!("/opt/x/up{}/made-by-tmpfs", v.abs()),
            ],
            "links",
            "readlink /root; cat /data/sub/new/marker /root/.bashrc; ls /",
        );
        let what = format!("volumes under {profile}");
        v.assert_untouched(&what, &out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if *profile == "untrusted" || *profile == "install" {
            // These profiles lock host mounts: refused before anything runs.
            assert_eq!(out.status.code(), Some(125), "{what}\n{}", describe(&out));
            continue;
        }
        assert_eq!(out.status.code(), Some(0), "{what}\n{}", describe(&out));
        // Control: the volumes are there, at the links' targets inside the
        // container, and the links in the image point at the victim.
        assert!(
            stdout.contains("volume\nfile volume\n"),
            "{what}\n{}",
            describe(&out)
        );
        assert!(stdout.contains(&v.abs()), "{what}\n{}", describe(&out));
        // The host's own copy of the volume source is untouched too.
        assert_eq!(std::fs::read(src_dir.join("marker")).unwrap(), b"volume\n");
    }
}

#[test]
fn dotdot_in_container_paths_is_cleaned_inside_the_root() {
    let st = TestStore::new();
    st.run_ok([
        "import",
        fixture("busybox-rootfs.tar").to_str().unwrap(),
        "bb",
    ]);
    let src = st.tmp().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("marker"), b"bound\n").unwrap();
    let host_x = st.tmp().join("dotdot-x");
    let host_y = st.tmp().join("dotdot-y");
    let climb = "/..".repeat(12);
    let vol = format!("{}:{climb}{}", src.display(), host_x.display());
    let tmpfs = format!("{climb}{}", host_y.display());
    let image = "bb";
    let out = st
        .hutch()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &vol,
            "--tmpfs",
            &tmpfs,
        ])
        .arg(image)
        .args([
            "sh",
            "-c",
            &format!(
                "cat {x}/marker && touch {y}/inside && ls {y}",
                x = host_x.display(),
                y = host_y.display()
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // Control: the mounts are where Docker's lexical cleaning puts them.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bound\n") && stdout.contains("inside"),
        "{}",
        describe(&out)
    );
    // Nothing was created on the host's side of the `..`.
    assert!(
        !host_x.exists(),
        "{} was created on the host",
        host_x.display()
    );
    assert!(
        !host_y.exists(),
        "{} was created on the host",
        host_y.display()
    );
}
