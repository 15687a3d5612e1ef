//! The forms of `load`, `import` and `save` people type from Podman and
//! Docker: `load -i FILE`, `load` and `import -` reading standard input
//! (a pipe, which cannot seek), `save` writing to standard output unless it
//! is a terminal. Runs as the unprivileged test user.

mod common;

use common::{TestStore, describe, fixture};
use serde_json::Value;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Output, Stdio};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn inspect(st: &TestStore, image: &str) -> Value {
    let v: Value =
        serde_json::from_str(&st.run_ok(["inspect", image])).expect("inspect prints JSON");
    v[0].clone()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Run hutch with `args`, feeding `input` through a pipe (not a file: no
/// seeking possible) as its standard input.
fn piped(st: &TestStore, args: &[&str], input: Vec<u8>) -> Output {
    let mut child = st
        .hutch()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // hutch may stop reading early (an error): a failed write is fine.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// What is in the store's tmp/ (the copy of standard input must be gone).
fn tmp_entries(st: &TestStore) -> Vec<String> {
    std::fs::read_dir(st.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// The manifest digest in `Loaded image: NAME (DIGEST)`.
fn loaded_digest(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", describe(out));
    text.trim()
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_owned()
}

/// A pty pair; the second is a terminal to hand to hutch.
fn pty() -> (OwnedFd, OwnedFd) {
    use rustix::pty::OpenptFlags;
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    rustix::pty::grantpt(&master).unwrap();
    rustix::pty::unlockpt(&master).unwrap();
    let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    (master, slave)
}

#[test]
fn load_takes_dash_i_and_reads_standard_input_when_no_file_is_given() {
    let st = TestStore::new();
    // -i is the positional path under Podman's and Docker's name.
    let out = st.run_ok(["load", "-i", s(&fixture("busybox-oci.tar"))]);
    assert!(
        out.starts_with("Loaded image: docker.io/library/busybox:latest (sha256:"),
        "{out}"
    );
    let oci_digest = inspect(&st, "busybox")["Digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, err) = st.run_fail([
        "load",
        "-i",
        s(&fixture("busybox-oci.tar")),
        s(&fixture("busybox-oci.tar")),
    ]);
    assert_eq!(code, 125, "one input, not two: {err}");

    // Standard input: an OCI archive, a docker-archive, a gzip-compressed
    // Docker 25 archive, each through a pipe, each as loading the file does.
    let other = TestStore::new();
    for (args, file, gz) in [
        (vec!["load"], "busybox-oci.tar", false),
        (vec!["load", "-"], "busybox-docker.tar", false),
        (vec!["load", "-i", "-"], "busybox-docker25.tar", true),
    ] {
        let mut data = std::fs::read(fixture(file)).unwrap();
        if gz {
            data = gzip(&data);
        }
        let from_pipe = loaded_digest(&piped(&st, &args, data));
        let from_file = loaded_digest(
            &other
                .hutch()
                .args(["load", s(&fixture(file))])
                .output()
                .unwrap(),
        );
        assert_eq!(from_pipe, from_file, "{args:?} {file}");
        assert!(
            tmp_entries(&st).is_empty(),
            "{args:?}: {:?}",
            tmp_entries(&st)
        );
    }
    assert!(
        inspect(&st, "busybox")["Digest"] != oci_digest,
        "the docker archives loaded last moved the tag"
    );
    let hist = st.run_ok(["history", "--tag", "busybox"]);
    assert!(hist.contains("load standard input"), "{hist}");
    let out = st.run_ok(["check", "--store"]);
    assert!(out.contains("store is consistent"), "{out}");

    // Failures remove the copy too.
    let out = piped(&st, &["load"], b"not an archive at all\n".repeat(100));
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("standard input is not an image archive"),
        "{err}"
    );
    assert!(tmp_entries(&st).is_empty(), "{:?}", tmp_entries(&st));
    let out = piped(&st, &["load"], Vec::new());
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("standard input is empty"),
        "{}",
        describe(&out)
    );
    assert!(tmp_entries(&st).is_empty(), "{:?}", tmp_entries(&st));

    // A terminal is not read from: the command would only seem to hang.
    let (_master, slave) = pty();
    let out = st
        .hutch()
        .arg("load")
        .stdin(Stdio::from(slave))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("standard input is a terminal"), "{err}");
    assert!(err.contains("hutch load -i FILE"), "{err}");
}

#[test]
fn import_dash_reads_the_tarball_from_standard_input() {
    let st = TestStore::new();
    let gz = std::fs::read(fixture("busybox-rootfs.tar.gz")).unwrap();
    let out = piped(&st, &["import", "-", "piped:1"], gz);
    assert!(out.status.success(), "{}", describe(&out));
    st.run_ok(["import", s(&fixture("busybox-rootfs.tar.gz")), "file:1"]);
    let (a, b) = (inspect(&st, "piped:1"), inspect(&st, "file:1"));
    assert_eq!(a["Layers"][0]["DiffID"], b["Layers"][0]["DiffID"]);
    assert_eq!(a["RepoTags"][0], "localhost/piped:1");
    assert!(
        st.run_offline("piped:1", &["cat", "/etc/os-release"])
            .contains("ID=busybox-fixture")
    );
    let hist = st.run_ok(["history", "--tag", "piped:1"]);
    assert!(hist.contains("import standard input"), "{hist}");
    assert!(tmp_entries(&st).is_empty(), "{:?}", tmp_entries(&st));
    // Control: a file named "-" is still reachable as ./-.
    let (_, err) = st.run_fail(["import", "./-", "x"]);
    assert!(err.contains("./-"), "{err}");

    let (_master, slave) = pty();
    let out = st
        .hutch()
        .args(["import", "-", "x"])
        .stdin(Stdio::from(slave))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("standard input is a terminal"),
        "{}",
        describe(&out)
    );
}

#[test]
fn save_writes_to_standard_output_unless_it_is_a_terminal() {
    let st = TestStore::new();
    st.run_ok(["load", s(&fixture("busybox-oci.tar"))]);
    let digest = inspect(&st, "busybox")["Digest"].clone();
    for format in ["oci-archive", "docker-archive"] {
        let file = st.tmp().join(format!("saved-{format}.tar"));
        st.run_ok(["save", "busybox", "--format", format, "-o", s(&file)]);
        let out = st
            .hutch()
            .args(["save", "busybox", "--format", format])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        // The same archive as with -o, byte for byte.
        assert_eq!(out.stdout, std::fs::read(&file).unwrap(), "{format}");
        // And it loads again (through a pipe, into another store).
        let other = TestStore::new();
        let loaded = loaded_digest(&piped(&other, &["load"], out.stdout));
        if format == "oci-archive" {
            assert_eq!(loaded, digest.as_str().unwrap());
        }
        assert_eq!(
            inspect(&other, "busybox")["Id"],
            inspect(&st, "busybox")["Id"],
            "{format}"
        );
    }
    // `-o -` is standard output too.
    let out = st
        .hutch()
        .args(["save", "busybox", "-o", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.len() > 1_000_000,
        "{}",
        describe(&out)
    );
    // A directory cannot be streamed.
    let (_, err) = st.run_fail(["save", "busybox", "--format", "oci-dir"]);
    assert!(err.contains("-o DIR"), "{err}");

    // A terminal gets no archive, and a message saying what to do instead.
    let (master, slave) = pty();
    let out = st
        .hutch()
        .args(["save", "busybox"])
        .stdout(Stdio::from(slave))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to write an image archive to a terminal"),
        "{err}"
    );
    assert!(err.contains("-o FILE"), "{err}");
    // Nothing reached the terminal.
    rustix::fs::fcntl_setfl(&master, rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut buf = [0u8; 64];
    assert!(
        rustix::io::read(&master, &mut buf).is_err(),
        "nothing was written to the terminal"
    );
}
