//! `hutch cp` and `hutch export`: files between the host and containers,
//! running or stopped; owners, Docker's path rules, tar streams, hostile
//! symlinks and tar entries, and what is left behind.
//!
//! (No test name starts with `cp_`: the filter `cp_` also picks tcp tests.)

mod common;

use common::{
    ContainerStore as Store, busybox, describe, eventually, processes_with, tree_listing,
};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// `run -d --network none --name NAME busybox sh -c SCRIPT`, then wait
/// until the script has written /tmp/ready (its setup is done).
fn start(st: &Store, name: &str, script: &str) {
    let script = format!("{script}; touch /tmp/ready; exec sleep 100000");
    st.run_ok([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        eventually(20, || exec(st, &[name, "test", "-e", "/tmp/ready"]).0 == 0),
        "container {name} did not get ready"
    );
}

/// A stopped container: `run [ARGS] --name NAME busybox sh -c SCRIPT` in
/// the foreground, which exits 0.
fn stopped(st: &Store, name: &str, args: &[&str], script: &str) {
    let mut all = vec!["run", "--network", "none", "--name", name];
    all.extend_from_slice(args);
    all.extend_from_slice(&["busybox", "sh", "-c", script]);
    st.run_ok(all);
}

/// `hutch exec ARGS`: (exit code, stdout, stderr).
fn exec(st: &Store, args: &[&str]) -> (i32, String, String) {
    let out = st.hutch().arg("exec").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `hutch cp ARGS` run in `dir`: (exit code, stderr).
fn cp(st: &Store, dir: &Path, args: &[&str]) -> (i32, String) {
    let out = st
        .hutch()
        .current_dir(dir)
        .arg("cp")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cp_ok(st: &Store, dir: &Path, args: &[&str]) {
    let (code, err) = cp(st, dir, args);
    assert_eq!(code, 0, "hutch cp {}: {err}", args.join(" "));
}

/// A fresh scratch directory of the test (the test user's working area).
fn scratch(st: &Store, name: &str) -> PathBuf {
    let d = st.tmp().join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn my_ids() -> (u32, u32) {
    let m = std::fs::metadata("/proc/self").unwrap();
    (m.uid(), m.gid())
}

/// Nothing of the hutch commands whose command lines hold `needle` runs
/// any more, and the stopped container `name` can be started: `start -a`
/// runs its command to the end; its output.
fn nothing_left_and_startable(st: &Store, name: &str, needle: &str) -> String {
    let left = processes_with(needle);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    let ps = st.run_ok(["ps", "-a"]);
    let line = ps.lines().find(|l| l.ends_with(name)).unwrap_or("");
    assert!(line.contains("Exited"), "{ps}");
    let out = st.hutch().args(["start", "-a", name]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names in a tar stream, with (uid, mode) each.
fn tar_entries(bytes: &[u8]) -> Vec<(String, u64, u32)> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                h.uid().unwrap(),
                h.mode().unwrap(),
            )
        })
        .collect()
}

#[test]
fn copy_into_a_running_container_owned_by_root_or_with_a_by_the_source() {
    let st = busybox();
    start(&st, "into-run", "mkdir /tmp/existing");
    let host = scratch(&st, "host");
    std::fs::write(host.join("f"), "hello\n").unwrap();
    std::fs::set_permissions(host.join("f"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::create_dir_all(host.join("d/sub")).unwrap();
    std::fs::write(host.join("d/sub/file"), "deep\n").unwrap();

    cp_ok(&st, &host, &["f", "into-run:/tmp/"]);
    let (code, out, err) = exec(
        &st,
        &[
            "into-run",
            "sh",
            "-c",
            "stat -c '%u:%g %a' /tmp/f; cat /tmp/f",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "0:0 640\nhello\n"), "{err}");
    // -a: the source's numbers (the test user's, not 0: the control).
    let (uid, gid) = my_ids();
    assert_ne!(uid, 0);
    cp_ok(&st, &host, &["-a", "f", "into-run:/tmp/g"]);
    let (_, out, _) = exec(&st, &["into-run", "stat", "-c", "%u:%g", "/tmp/g"]);
    assert_eq!(out, format!("{uid}:{gid}\n"));

    // A directory: inside an existing one, or as a new path; `/.`: its
    // contents.
    cp_ok(&st, &host, &["d", "into-run:/tmp/existing"]);
    cp_ok(&st, &host, &["d", "into-run:/tmp/newdir"]);
    cp_ok(&st, &host, &["d/.", "into-run:/tmp/existing"]);
    let (_, out, _) = exec(
        &st,
        &[
            "into-run",
            "sh",
            "-c",
            "cd /tmp && find existing newdir | sort",
        ],
    );
    assert_eq!(
        out,
        "existing\nexisting/d\nexisting/d/sub\nexisting/d/sub/file\nexisting/sub\n\
         existing/sub/file\nnewdir\nnewdir/sub\nnewdir/sub/file\n"
    );
    let (_, out, _) = exec(
        &st,
        &["into-run", "stat", "-c", "%u:%g", "/tmp/newdir/sub/file"],
    );
    assert_eq!(out, "0:0\n");
    // A relative container path is relative to its working directory (/).
    cp_ok(&st, &host, &["f", "into-run:tmp/relative"]);
    assert_eq!(
        exec(&st, &["into-run", "cat", "/tmp/relative"]).1,
        "hello\n"
    );
    // An ID prefix names the container too.
    let id = st.run_ok(["ps", "-q"]).trim().to_string();
    cp_ok(&st, &host, &["f", &format!("{}:/tmp/by-id", &id[..12])]);
    assert_eq!(exec(&st, &["into-run", "cat", "/tmp/by-id"]).1, "hello\n");
}

#[test]
fn copy_out_of_a_running_container_keeps_modes_and_times_and_follows_docker_rules() {
    let st = busybox();
    start(
        &st,
        "out-run",
        "mkdir -p /data/sub && echo one > /data/sub/file && chmod 751 /data/sub/file \
         && touch -t 200102030405 /data/sub/file && chown 1234:1234 /data/sub/file",
    );
    let host = scratch(&st, "host");
    cp_ok(&st, &host, &["out-run:/data", "copy"]);
    let f = host.join("copy/sub/file");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "one\n");
    let m = std::fs::metadata(&f).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o751);
    assert_eq!(
        (m.uid(), m.gid()),
        my_ids(),
        "files out of a container are the user's"
    );
    let want = time::PrimitiveDateTime::new(
        time::Date::from_calendar_date(2001, time::Month::February, 3).unwrap(),
        time::Time::from_hms(4, 5, 0).unwrap(),
    )
    .assume_utc()
    .unix_timestamp();
    assert_eq!(m.mtime(), want);
    // Into an existing directory: inside it.
    std::fs::create_dir(host.join("existing")).unwrap();
    cp_ok(&st, &host, &["out-run:/data/sub/file", "existing"]);
    assert_eq!(
        std::fs::read_to_string(host.join("existing/file")).unwrap(),
        "one\n"
    );
    // A file onto an existing file replaces it.
    std::fs::write(host.join("old"), "old\n").unwrap();
    cp_ok(&st, &host, &["out-run:/data/sub/file", "old"]);
    assert_eq!(std::fs::read_to_string(host.join("old")).unwrap(), "one\n");
    // `/.`: the contents into an existing directory.
    cp_ok(&st, &host, &["out-run:/data/.", "existing"]);
    assert!(host.join("existing/sub/file").is_file());

    // Refused, and nothing made: a missing directory named with a
    // trailing /, a missing parent, a directory onto a file.
    let before = tree_listing(&host);
    for (args, want) in [
        (
            ["out-run:/data/sub/file", "nodir/"],
            "must be an existing directory",
        ),
        (
            ["out-run:/data/sub/file", "no/parent"],
            "the parent of no/parent",
        ),
        (["out-run:/data", "old"], "cannot copy a directory onto old"),
    ] {
        let (code, err) = cp(&st, &host, &args);
        assert_eq!(code, 125, "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(tree_listing(&host), before);
}

#[test]
fn copy_into_and_out_of_a_stopped_container() {
    let st = busybox();
    stopped(
        &st,
        "stopped-cp",
        &["-v", "cpvol:/vol"],
        "cat /new 2>/dev/null || echo no-new-yet; echo inside > /made; echo in-volume > /vol/v",
    );
    let host = scratch(&st, "host");
    std::fs::write(host.join("f"), "from the host\n").unwrap();
    cp_ok(&st, &host, &["f", "stopped-cp:/new"]);
    cp_ok(&st, &host, &["stopped-cp:/made", "made"]);
    assert_eq!(
        std::fs::read_to_string(host.join("made")).unwrap(),
        "inside\n"
    );
    let diff = st.run_ok(["diff", "stopped-cp"]);
    assert!(diff.lines().any(|l| l == "A /new"), "{diff}");
    // Its volume is there as when it runs, both ways.
    cp_ok(&st, &host, &["stopped-cp:/vol/v", "v"]);
    assert_eq!(
        std::fs::read_to_string(host.join("v")).unwrap(),
        "in-volume\n"
    );
    cp_ok(&st, &host, &["f", "stopped-cp:/vol/from-host"]);
    assert_eq!(
        st.run_ok([
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "cpvol:/data",
            "busybox",
            "cat",
            "/data/from-host"
        ]),
        "from the host\n"
    );
    // Started again, its command sees the file.
    assert_eq!(
        nothing_left_and_startable(&st, "stopped-cp", "stopped-cp:"),
        "from the host\n"
    );
    // As root of the container, or with -a the source's owner, as when
    // it runs.
    cp_ok(&st, &host, &["-a", "f", "stopped-cp:/tmp/kept"]);
    cp_ok(&st, &host, &["f", "stopped-cp:/tmp/root"]);
    let (uid, _) = my_ids();
    // Its export shows the owners.
    let tar = st.hutch().args(["export", "stopped-cp"]).output().unwrap();
    assert!(tar.status.success(), "{}", describe(&tar));
    let entries = tar_entries(&tar.stdout);
    let owner = |n: &str| entries.iter().find(|e| e.0 == n).map(|e| e.1);
    assert_eq!(owner("tmp/kept"), Some(uid.into()));
    assert_eq!(owner("tmp/root"), Some(0));

    // A copy that fails leaves nothing running and the container as it was.
    let (code, err) = cp(&st, &host, &["f", "stopped-cp:/no/such/dir"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("/no/such is not an existing directory"),
        "{err}"
    );
    let (code, err) = cp(&st, &host, &["stopped-cp:/nothing-here", "out"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("/nothing-here does not exist in the container"),
        "{err}"
    );
    assert!(!host.join("out").exists());
    assert_eq!(
        nothing_left_and_startable(&st, "stopped-cp", "stopped-cp:"),
        "from the host\n"
    );
}

#[test]
fn tar_streams_on_stdin_and_stdout() {
    let st = busybox();
    start(&st, "streams", "mkdir /tmp/in");
    // Out: a tar of the item, named after it.
    let out = st
        .hutch()
        .args(["cp", "streams:/etc/hostname", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let mut a = tar::Archive::new(&out.stdout[..]);
    let mut e = a.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(&*e.path_bytes(), b"hostname");
    let mut s = String::new();
    e.read_to_string(&mut s).unwrap();
    assert_eq!(s, "streams\n");
    // In: extracted into a directory, as it is.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o600);
    b.append_data(&mut h, "x/y", &b"tar\n"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    let (code, err) = pipe_in(&st, &["cp", "-", "streams:/tmp/in"], &bytes);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = exec(
        &st,
        &[
            "streams",
            "sh",
            "-c",
            "cat /tmp/in/x/y; stat -c '%u %a' /tmp/in/x/y",
        ],
    );
    assert_eq!(out, "tar\n0 600\n");
    // Only into an existing directory.
    let (code, err) = pipe_in(&st, &["cp", "-", "streams:/tmp/in/x/y"], &bytes);
    assert_eq!(code, 125);
    assert!(err.contains("is not a directory"), "{err}");
    // A reader that goes away ends it quietly, as a shell's pipe does.
    let mut child = st
        .hutch()
        .args(["export", "streams"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 512];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// hutch ARGS with `input` on stdin: (exit code, stderr).
fn pipe_in(st: &Store, args: &[&str], input: &[u8]) -> (i32, String) {
    let mut child = st
        .hutch()
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    let _ = w.join();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A tar entry with its name written into the header as given.
fn raw_entry(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

#[test]
fn a_hostile_tar_on_stdin_stays_in_the_destination() {
    let st = busybox();
    start(&st, "hostile-in", "mkdir -p /tmp/a/in");
    let mut bytes = Vec::new();
    raw_entry(&mut bytes, "ok", b"ok\n");
    raw_entry(&mut bytes, "/abs/file", b"abs\n");
    raw_entry(&mut bytes, "../escape", b"escaped\n");
    bytes.extend_from_slice(&[0u8; 1024]);
    let (code, err) = pipe_in(&st, &["cp", "-", "hostile-in:/tmp/a/in"], &bytes);
    assert_eq!(code, 125);
    assert!(
        err.contains("tar entry \"../escape\" leaves the destination"),
        "{err}"
    );
    let (_, out, _) = exec(
        &st,
        &["hostile-in", "sh", "-c", "cd /tmp/a && find . | sort"],
    );
    // Absolute names land inside; `..` is refused (control: `ok` came).
    assert_eq!(out, ".\n./in\n./in/abs\n./in/abs/file\n./in/ok\n");
}

#[test]
fn symlinks_in_a_container_are_copied_as_symlinks_and_resolve_inside_it() {
    let st = busybox();
    start(
        &st,
        "links",
        "mkdir /tmp/h && ln -s /etc/passwd /tmp/h/pw && ln -s ../../../../../.. /tmp/h/up \
         && echo normal > /tmp/h/n && ln -s /etc /x && echo container-secret > /etc/secret",
    );
    let host = scratch(&st, "host");
    let outside = st.tmp().to_path_buf();
    let before = tree_listing(&outside.join("home"));
    cp_ok(&st, &host, &["links:/tmp/h", "out"]);
    assert_eq!(
        std::fs::read_link(host.join("out/pw")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        std::fs::read_link(host.join("out/up")).unwrap(),
        Path::new("../../../../../..")
    );
    // Control: the ordinary file next to them.
    assert_eq!(
        std::fs::read_to_string(host.join("out/n")).unwrap(),
        "normal\n"
    );
    assert_eq!(
        tree_listing(&host),
        [
            "d 0755 - out",
            "f 0644 7 out/n",
            "l 0777 - out/pw -> /etc/passwd",
            "l 0777 - out/up -> ../../../../../..",
        ]
    );
    assert_eq!(tree_listing(&outside.join("home")), before);
    // Paths through the container's symlinks resolve in the container:
    // its /etc, not the host's.
    cp_ok(&st, &host, &["links:/x/secret", "via-link"]);
    assert_eq!(
        std::fs::read_to_string(host.join("via-link")).unwrap(),
        "container-secret\n"
    );
    cp_ok(&st, &host, &["links:/x/hostname", "hostname"]);
    assert_eq!(
        std::fs::read_to_string(host.join("hostname")).unwrap(),
        "links\n"
    );
    cp_ok(&st, &host, &["links:/tmp/h/up/etc/secret", "via-up"]);
    assert_eq!(
        std::fs::read_to_string(host.join("via-up")).unwrap(),
        "container-secret\n"
    );
    assert!(
        !Path::new("/etc/secret").exists(),
        "the control: the host has none"
    );
    // -L follows the item itself, to the container's file.
    cp_ok(&st, &host, &["-L", "links:/tmp/h/pw", "passwd"]);
    let container_passwd = exec(&st, &["links", "cat", "/etc/passwd"]).1;
    assert_eq!(
        std::fs::read_to_string(host.join("passwd")).unwrap(),
        container_passwd
    );
    assert!(
        std::fs::symlink_metadata(host.join("passwd"))
            .unwrap()
            .is_file()
    );
    // A host symlink copied in stays a symlink (not the host's file).
    std::os::unix::fs::symlink("/etc/hostname", host.join("hostlink")).unwrap();
    cp_ok(&st, &host, &["hostlink", "links:/tmp/hostlink"]);
    let (_, out, _) = exec(&st, &["links", "readlink", "/tmp/hostlink"]);
    assert_eq!(out, "/etc/hostname\n");
}

#[test]
fn errors_name_the_container_or_path_and_change_nothing() {
    let st = busybox();
    start(&st, "errs", "true");
    let host = scratch(&st, "host");
    std::fs::write(host.join("f"), "x").unwrap();
    let before = tree_listing(&host);
    for (args, want) in [
        (
            vec!["f", "nothing-here:/tmp"],
            "no container \"nothing-here\"",
        ),
        (
            vec!["errs:/no/such/file", "out"],
            "/no/such/file does not exist in the container",
        ),
        (
            vec!["missing-on-host", "errs:/tmp"],
            "missing-on-host does not exist on the host",
        ),
        (vec!["f", "g"], "one of them must be CONTAINER:PATH"),
        (vec!["errs:/etc/hostname", "errs:/tmp/x"], "not supported"),
    ] {
        let (code, err) = cp(&st, &host, &args);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(tree_listing(&host), before);
    let (_, out, _) = exec(&st, &["errs", "ls", "/tmp"]);
    assert_eq!(out, "ready\n");
}

#[test]
fn export_of_a_running_and_a_stopped_container_is_its_merged_root() {
    let st = busybox();
    let change = "echo added > /added; rm -f /etc/group; mkdir -p /owned; chown 1234:5678 /owned";
    start(&st, "exp-run", change);
    stopped(&st, "exp-stopped", &[], change);
    let out = st.hutch().args(["export", "exp-run"]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let dir = scratch(&st, "out");
    st.run_ok([
        "export",
        "-o",
        dir.join("stopped.tar").to_str().unwrap(),
        "exp-stopped",
    ]);
    let stopped_tar = std::fs::read(dir.join("stopped.tar")).unwrap();
    for (which, bytes) in [("running", &out.stdout), ("stopped", &stopped_tar)] {
        let entries = tar_entries(bytes);
        let find = |n: &str| entries.iter().find(|e| e.0 == n);
        assert!(find("bin/busybox").is_some(), "{which}: the image's files");
        assert!(find("added").is_some(), "{which}: the change");
        assert!(find("etc/group").is_none(), "{which}: a deleted file");
        assert!(find("etc/passwd").is_some(), "{which}: the control");
        assert_eq!(find("etc/passwd").unwrap().1, 0, "{which}: root's");
        assert_eq!(
            find("owned").unwrap().1,
            1234,
            "{which}: the container's uid"
        );
        // The root filesystem only: no /proc, no volumes.
        assert!(!entries.iter().any(|e| e.0.starts_with("proc/")), "{which}");
    }
    // Only the file: nothing half-written beside it.
    assert_eq!(tree_listing(&dir).len(), 1, "{:?}", tree_listing(&dir));
    assert_eq!(
        nothing_left_and_startable(&st, "exp-stopped", &dir.display().to_string()),
        ""
    );
    // Failures leave no file, and not a temporary one either.
    std::fs::create_dir(dir.join("a-directory")).unwrap();
    let before = tree_listing(&dir);
    let (code, err) = st.run_fail([
        "export",
        "-o",
        dir.join("a-directory").to_str().unwrap(),
        "exp-stopped",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("it is a directory"), "{err}");
    let (_, err) = st.run_fail([
        "export",
        "-o",
        dir.join("no/such/dir/x.tar").to_str().unwrap(),
        "exp-run",
    ]);
    assert!(err.contains("no/such/dir"), "{err}");
    let (_, err) = st.run_fail([
        "export",
        "-o",
        dir.join("x.tar").to_str().unwrap(),
        "nothing-here",
    ]);
    assert!(err.contains("no container \"nothing-here\""), "{err}");
    assert_eq!(tree_listing(&dir), before);
    // Not to a terminal.
    let (_controller, terminal) = common::pty();
    let out = st
        .hutch()
        .args(["export", "exp-run"])
        .stdout(Stdio::from(terminal))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("refusing to write a tar archive to a terminal"),
        "{}",
        describe(&out)
    );
}
