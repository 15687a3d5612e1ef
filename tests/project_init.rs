//! `hutch init`: the commented hutch.toml of a project environment (issue
//! 17), written as the unprivileged test user. Needs no fixtures.

mod common;

use common::TestStore;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `hutch init ARGS...` run in `dir`.
fn init_in(st: &TestStore, dir: &Path, args: &[&str]) -> std::process::Output {
    st.hutch()
        .arg("init")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("start hutch")
}

/// The `[env] image` of a hutch.toml, read as TOML.
fn image_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let doc: toml::Table = toml::from_str(&text).expect("hutch.toml is TOML");
    doc["env"]["image"].as_str().expect("env.image").to_owned()
}

#[test]
fn project_init_writes_a_commented_manifest_in_the_current_directory() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let project = st.tmp().join("project");
    std::fs::create_dir(&project).unwrap();
    let out = init_in(&st, &project, &[]);
    assert!(out.status.success(), "{}", common::describe(&out));
    let path = project.join("hutch.toml");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("wrote ") && stdout.contains("hutch.toml"),
        "{stdout}"
    );
    let meta = std::fs::metadata(&path).unwrap();
    // SAFETY: geteuid has no preconditions and cannot fail.
    assert_eq!(meta.uid(), unsafe { libc::geteuid() }, "owned by the user");
    assert_eq!(meta.mode() & 0o022, 0, "not writable by others");
    assert_eq!(image_of(&path), "debian:stable");
    // Every key is shown; the optional ones commented out.
    let text = std::fs::read_to_string(&path).unwrap();
    for key in [
        "platforms",
        "build",
        "context",
        "args",
        "target",
        "profile",
        "mounts",
        "env",
        "ports",
        "shell",
        "setup",
        "workdir",
        "command",
        "volumes",
        "ready",
        "depends_on",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("# {key} = "))),
            "`{key}` is not shown commented out:\n{text}"
        );
    }
    assert!(text.contains("# [services.db]"), "{text}");
    // Only [env] and its image are live.
    let doc: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(doc.keys().collect::<Vec<_>>(), ["env"]);
    assert_eq!(doc["env"].as_table().unwrap().len(), 1);
    // Nothing else was written, and the store was not needed.
    let entries: Vec<_> = std::fs::read_dir(&project).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn project_init_refuses_to_overwrite_an_existing_manifest() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let project = st.tmp().join("project");
    std::fs::create_dir(&project).unwrap();
    let first = init_in(&st, &project, &[]);
    assert!(first.status.success(), "{}", common::describe(&first));
    let path = project.join("hutch.toml");
    let mine = "[env]\nimage = \"mine:1\"\n";
    std::fs::write(&path, mine).unwrap();
    let second = init_in(&st, &project, &["--image", "busybox"]);
    assert_eq!(
        second.status.code(),
        Some(125),
        "{}",
        common::describe(&second)
    );
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("exists already") && stderr.contains("does not overwrite"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        mine,
        "left as it was"
    );
    // The same with DIR given, from elsewhere.
    let (code, stderr) = st.run_fail(["init".as_ref(), project.as_os_str()]);
    assert_eq!(code, 125, "{stderr}");
    assert!(stderr.contains("exists already"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), mine);
}

#[test]
fn project_init_image_flag_and_directory_argument() {
    common::assert_unprivileged();
    let st = TestStore::new();
    // DIR is made when missing, as `git init DIR`.
    let project = st.tmp().join("new/project");
    let out = st.run_ok(["init", "--image", "busybox", project.to_str().unwrap()]);
    assert!(
        out.contains(&project.join("hutch.toml").display().to_string()),
        "{out}"
    );
    assert_eq!(image_of(&project.join("hutch.toml")), "busybox");
    let other = st.tmp().join("other");
    st.run_ok([
        "init",
        "--image",
        "localhost:5000/team/dev:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        other.to_str().unwrap(),
    ]);
    assert!(image_of(&other.join("hutch.toml")).starts_with("localhost:5000/team/dev:1@sha256:"));
}

#[test]
fn project_init_refuses_a_bad_image_and_writes_nothing() {
    common::assert_unprivileged();
    let st = TestStore::new();
    let project = st.tmp().join("project");
    let (code, stderr) =
        st.run_fail(["init", "--image", "Not An/Image", project.to_str().unwrap()]);
    assert_eq!(code, 125, "{stderr}");
    assert!(
        stderr.contains("--image Not An/Image") && stderr.contains("invalid image reference"),
        "{stderr}"
    );
    assert!(!project.join("hutch.toml").exists());
}
