//! `hutch diff` and `hutch commit`: a container's changes, seen and made
//! into an image that runs, keeps owners, rolls back, and goes through a
//! registry unchanged. Every test name says `commit`, so
//! `tests/run.sh commit` runs them all.

mod common;

use common::registry::{registry, skopeo_digest};
use common::{TestStore, describe, fixture, podman};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the container of [`store_with_changed_container`] does to busybox:
/// adds a file, changes one, deletes one, replaces a directory, adds a file
/// owned by 1234:5678 (a subordinate id).
const CHANGES: &str = "echo hello > /new.txt; echo changed >> /etc/os-release; \
    rm /home/user/file; rm -rf /opt/data; mkdir /opt/data; echo fresh > /opt/data/fresh; \
    echo owned > /owned.txt; chown 1234:5678 /owned.txt; chmod 4750 /owned.txt";

/// `hutch diff` of that container, as Podman prints it.
const EXPECTED_DIFF: &str = "C /etc/os-release
C /home
C /home/user
D /home/user/file
A /new.txt
C /opt
D /opt/data
A /opt/data/fresh
A /owned.txt
";

/// A store with busybox and the stopped container `c1` that made CHANGES.
fn store_with_changed_container() -> TestStore {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    st.run_ok([
        "run",
        "--name",
        "c1",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        CHANGES,
    ]);
    st
}

fn inspect(st: &TestStore, image: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&st.run_ok(["inspect", image])).unwrap();
    v[0].clone()
}

fn digest_of(st: &TestStore, image: &str) -> String {
    inspect(st, image)["Digest"].as_str().unwrap().to_owned()
}

/// `hutch run --rm --network none IMAGE sh -c SCRIPT`'s stdout.
fn sh(st: &TestStore, image: &str, script: &str) -> String {
    st.run_offline(image, &["sh", "-c", script])
}

/// What the tests look for in an image: the added file, the deleted one,
/// the replaced directory, the owner and mode of the owned file, $A.
const PROBE: &str = "cat /new.txt 2>&1; test -e /home/user/file && echo has-file || echo no-file; \
    ls /opt/data; stat -c '%u:%g %a' /owned.txt 2>&1 | sed 's/.*No such.*/no-owned/'; echo \"A=$A\"";

#[test]
fn commit_diff_shows_the_changes_and_the_image_runs_and_rolls_back() {
    let st = store_with_changed_container();
    assert_eq!(st.run_ok(["diff", "c1"]), EXPECTED_DIFF);
    assert_eq!(st.run_ok(["container", "diff", "c1"]), EXPECTED_DIFF);
    let json: serde_json::Value =
        serde_json::from_str(&st.run_ok(["diff", "--format", "json", "c1"])).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "added": ["/new.txt", "/opt/data/fresh", "/owned.txt"],
            "changed": ["/etc/os-release", "/home", "/home/user", "/opt"],
            "deleted": ["/home/user/file", "/opt/data"],
        })
    );

    // `img` names busybox first, so the commit moves it and rollback has
    // somewhere to go back to.
    st.run_ok(["tag", "busybox", "img"]);
    let busybox = digest_of(&st, "busybox");
    let out = st.run_ok([
        "commit",
        "-m",
        "first commit",
        "--author",
        "Ann <ann@example.org>",
        "-c",
        r#"CMD ["cat","/new.txt"]"#,
        "-c",
        "ENV A=1",
        "c1",
        "img",
    ]);
    // The image ID, full hex, as podman commit prints it.
    let id = out.trim();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{out}"
    );
    let img = inspect(&st, "img");
    assert_eq!(img["Id"], format!("sha256:{id}"));
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["cat", "/new.txt"]));
    assert!(
        img["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("A=1")),
        "{img}"
    );
    // One layer more; the image's own layer is shared, not copied.
    let base = inspect(&st, "busybox");
    let base_layers = base["Layers"].as_array().unwrap();
    let layers = img["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), base_layers.len() + 1);
    assert_eq!(layers[0]["Digest"], base_layers[0]["Digest"]);
    assert_eq!(layers[0]["Path"], base_layers[0]["Path"]);

    // The new image: its CMD, then the changes; busybox is as it was.
    assert_eq!(st.run_offline("img", &[]), "hello\n");
    assert_eq!(
        sh(&st, "img", PROBE),
        "hello\nno-file\nfresh\n1234:5678 4750\nA=1\n"
    );
    assert_eq!(
        sh(&st, "busybox", PROBE),
        "cat: can't open '/new.txt': No such file or directory\nhas-file\nold\nno-owned\nA=\n"
    );
    // -m and the author in the history.
    let history = st.run_ok(["history", "img"]);
    let top = history.lines().nth(1).unwrap();
    assert!(
        top.contains("hutch commit") && top.contains("first commit"),
        "{history}"
    );
    let entries: serde_json::Value =
        serde_json::from_str(&st.run_ok(["history", "--format", "json", "img"])).unwrap();
    let last = entries.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["author"], "Ann <ann@example.org>");
    assert_eq!(last["comment"], "first commit");

    // The same container committed again: the same layer (the tar depends
    // only on the upper dir), under another tag.
    let again = st.run_ok(["commit", "c1", "img:v2"]);
    assert_ne!(again.trim(), id, "another history entry, another config");
    let v2 = inspect(&st, "img:v2");
    assert_eq!(v2["Layers"][1]["Digest"], layers[1]["Digest"]);
    assert_eq!(v2["Layers"][1]["DiffID"], layers[1]["DiffID"]);
    assert_eq!(
        sh(&st, "img:v2", PROBE),
        "hello\nno-file\nfresh\n1234:5678 4750\nA=\n"
    );

    // The tag's history has the commit; rollback undoes it.
    let tag_history = st.run_ok(["history", "--tag", "img"]);
    assert!(tag_history.contains("commit c1"), "{tag_history}");
    let out = st.run_ok(["rollback", "img"]);
    assert!(out.contains(&format!("-> {busybox}")), "{out}");
    assert_eq!(digest_of(&st, "img"), busybox);
    assert_eq!(
        sh(&st, "img", "test -e /new.txt && echo new || echo old"),
        "old\n"
    );
    // img:v2 was not touched.
    assert_eq!(sh(&st, "img:v2", "cat /new.txt"), "hello\n");
}

#[test]
fn commit_layer_is_an_oci_layer_with_owners_whiteouts_and_opaque_dirs() {
    let st = store_with_changed_container();
    // Without a name: untagged, listed as <none>, found by its ID.
    let id = st.run_ok(["commit", "c1"]).trim().to_owned();
    let images = st.run_ok(["images"]);
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("<none>") && l.contains(&id[..12])),
        "{images}"
    );
    let img = inspect(&st, &id);
    let top = img["Layers"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        top["MediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let blob = st
        .root()
        .join("blobs/sha256")
        .join(&top["Digest"].as_str().unwrap()[7..]);
    let out = Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(&blob)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    // `mode owner size date time name`, date and time left out.
    let lines: Vec<String> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {} {}", f[0], f[1], f[2], f[5..].join(" "))
        })
        .collect();
    assert_eq!(
        lines,
        [
            "drwxr-xr-x 0/0 0 etc/",
            "-rw-r--r-- 0/0 69 etc/os-release",
            "drwxr-xr-x 0/0 0 home/",
            "drwxr-xr-x 1000/1000 0 home/user/",
            "-rw------- 0/0 0 home/user/.wh.file",
            "-rw-r--r-- 0/0 6 new.txt",
            "drwxr-xr-x 0/0 0 opt/",
            "drwxr-xr-x 0/0 0 opt/data/",
            "-rwxr-xr-x 0/0 0 opt/data/.wh..wh..opq",
            "-rw-r--r-- 0/0 6 opt/data/fresh",
            "-rwsr-x--- 1234/5678 6 owned.txt",
        ],
        "{listing}"
    );
    // The launcher's mount points (/etc/hosts, /etc/resolv.conf) are not
    // in it, and the image still has the real ones bind-mounted.
    assert!(!listing.contains("hosts"), "{listing}");
    assert!(
        sh(&st, &id, "cat /etc/hosts").contains("localhost"),
        "control: the committed image runs with a hosts file"
    );
}

#[test]
fn commit_pushed_and_pulled_elsewhere_is_the_same_image() {
    let st = store_with_changed_container();
    let reg = registry();
    st.run_ok(["commit", "-c", "ENV A=1", "c1", "img:v2"]);
    let digest = digest_of(&st, "img:v2");
    let dest = format!("127.0.0.1:{}/commit/img:v2", reg.port);
    let out = st.run_ok(["push", "-q", "--tls-verify=false", "img:v2", &dest]);
    assert_eq!(out.trim(), digest);
    let other = TestStore::new();
    let out = other.run_ok(["pull", "-q", "--tls-verify=false", &dest]);
    assert_eq!(out.trim(), digest, "the manifest digest survives the trip");
    assert_eq!(
        sh(&other, &dest, PROBE),
        "hello\nno-file\nfresh\n1234:5678 4750\nA=1\n"
    );
    // Control: the pulling store had no busybox of its own.
    let (_, out) = other.run(["inspect", "busybox"]);
    assert!(!out.status.success(), "{}", describe(&out));
    // skopeo and rootless podman see the same image: the same digest, and
    // podman runs it with the change.
    let dest_ref = format!("docker://{dest}");
    assert_eq!(skopeo_digest(&st, &dest_ref, &[]), digest);
    let pdir = st.tmp().join("podman");
    let run = |args: &[&str]| {
        let out = podman(&pdir).args(args).output().unwrap();
        assert!(out.status.success(), "podman {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run(&["pull", "-q", "--tls-verify=false", &dest]);
    assert_eq!(
        run(&["image", "inspect", "--format", "{{.Digest}}", &dest]),
        digest
    );
    assert_eq!(
        run(&["run", "--rm", "--network", "none", &dest, "cat", "/new.txt"]),
        "hello"
    );
    let _ = podman(&pdir)
        .args(["unshare", "rm", "-rf"])
        .arg(&pdir)
        .status();
}

#[test]
fn commit_of_a_running_container_takes_what_it_wrote() {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    let mut child = st
        .hutch()
        .args([
            "run",
            "--name",
            "live",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo up > /live.txt; sleep 60",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let (_, out) = st.run(["diff", "live"]);
        if String::from_utf8_lossy(&out.stdout).contains("A /live.txt") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the running container's change did not show: {}",
            describe(&out)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ps = st.run_ok(["ps"]);
    assert!(ps.contains("live"), "still running: {ps}");
    st.run_ok(["commit", "live", "snap"]);
    assert_eq!(sh(&st, "snap", "cat /live.txt"), "up\n");
    st.run_ok(["rm", "-f", "live"]);
    let _ = child.wait();
}

#[test]
fn commit_refuses_bad_input_and_a_failed_commit_leaves_nothing() {
    let st = store_with_changed_container();
    st.run_ok(["tag", "busybox", "img"]);
    let (code, err) = st.run_fail(["commit", "nosuch", "img"]);
    assert_eq!(code, 125);
    assert!(err.contains("no container \"nosuch\""), "{err}");
    assert!(err.contains("hutch ps -a"), "{err}");
    let (code, err) = st.run_fail(["diff", "nosuch"]);
    assert_eq!(code, 125);
    assert!(err.contains("no container \"nosuch\""), "{err}");

    let before = st.listing();
    for (change, says) in [
        ("FROM busybox", "unknown instruction FROM"),
        ("CMD [\"echo\", 'hi']", "not a JSON array of strings"),
        ("EXPOSE 0", "from 1 to 65535"),
    ] {
        let (code, err) = st.run_fail(["commit", "-c", "ENV OK=1", "-c", change, "c1", "img"]);
        assert_eq!(code, 125, "{err}");
        assert!(err.contains(says), "{change}: {err}");
        assert!(err.contains("-c "), "{change}: names the option: {err}");
    }
    // A commit that fails while writing (a file in the upper dir it cannot
    // read) leaves no blob, layer, tag or temporary file either.
    use std::os::unix::fs::PermissionsExt;
    let dir = inspect(&st, "c1")["Hutch"]["Dir"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = std::path::Path::new(&dir).join("upper/new.txt");
    let mode = std::fs::metadata(&file).unwrap().permissions();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let (code, err) = st.run_fail(["commit", "c1", "img"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("/new.txt") && err.contains("Permission denied"),
        "{err}"
    );
    std::fs::set_permissions(&file, mode).unwrap();
    assert_eq!(st.listing(), before, "nothing written, no tag moved");
    assert_eq!(digest_of(&st, "img"), digest_of(&st, "busybox"));
    // Control: the same commit works once the file is readable.
    st.run_ok(["commit", "c1", "img"]);
    assert_ne!(digest_of(&st, "img"), digest_of(&st, "busybox"));
}

/// A directory of the image renamed in the container (`mv`, one rename on
/// the overlay, nothing copied) is a directory move for `hutch diff`, as
/// Podman shows one, and `hutch commit` writes it out whole: the new image
/// has the moved directory with the image's files (hard links, symlinks,
/// long names), minus what was deleted in it, plus what was added, and
/// nothing at the old path.
#[test]
fn commit_of_a_renamed_image_directory_keeps_its_content() {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    st.run_ok([
        "run",
        "--name",
        "mv1",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "mv /opt/links /moved && echo x > /moved/new && rm /moved/b",
    ]);
    let long = "long".repeat(30);
    assert_eq!(
        st.run_ok(["diff", "mv1"]),
        format!(
            "A /moved\nA /moved/a\nA /moved/{long}\nA /moved/new\nA /moved/sym\nC /opt\nD /opt/links\n"
        )
    );
    st.run_ok(["commit", "mv1", "moved"]);
    let probe = "ls /moved; test -e /opt/links || echo gone; readlink /moved/sym; \
                 cat /moved/a /moved/new; ls /opt";
    assert_eq!(
        sh(&st, "moved", probe),
        format!("a\n{long}\nnew\nsym\ngone\na\nhardlinked\nx\ndata\n")
    );
    // Control: the image itself is unchanged.
    assert_eq!(
        sh(&st, "busybox", "ls /opt/links; test -e /moved || echo none"),
        format!("a\nb\n{long}\nsym\nnone\n")
    );
}
