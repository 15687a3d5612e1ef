//! Project environments (issue 17) as a user runs them, as the
//! unprivileged test user, with images from a local registry: `hutch
//! shell` into a Debian environment made from hutch.lock, a busybox
//! service beside it (`hutch up`, `down`, `ps --project`, `logs`), reached
//! by name and on localhost, its named volume kept between runs; pins
//! that hold when the registry's tag moves; a stale lock refused; a
//! changed setup command that rebuilds only the setup layer; the same
//! environment in a second store. Test names start with `project_env_`.

mod common;

use common::registry::{push, registry};
use common::{TestStore, describe, eventually, fixture};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Removes every container of the store when the test ends (pass or
/// fail), so that no keeper outlives it.
struct Cleanup<'a>(&'a TestStore);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let ids = self.0.run(["ps", "-aq"]).1.stdout;
        for id in String::from_utf8_lossy(&ids).split_whitespace() {
            let _ = self.0.run(["rm", "-f", id]);
        }
    }
}

fn project_dir(st: &TestStore, toml: &str) -> PathBuf {
    let dir = st.tmp().join("app");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("hutch.toml"), toml).unwrap();
    dir
}

/// `hutch ARGS...` run in `dir`.
fn in_dir(st: &TestStore, dir: &Path, args: &[&str]) -> std::process::Output {
    st.hutch().current_dir(dir).args(args).output().unwrap()
}

fn ok_in(st: &TestStore, dir: &Path, args: &[&str]) -> String {
    let out = in_dir(st, dir, args);
    assert!(
        out.status.success(),
        "hutch {}\n{}",
        args.join(" "),
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `hutch shell -- bash -c SCRIPT` in `dir`: its stdout.
fn shell(st: &TestStore, dir: &Path, script: &str) -> String {
    ok_in(
        st,
        dir,
        &["shell", "--tls-verify=false", "--", "bash", "-c", script],
    )
}

/// An HTTP GET of `/` on HOST:8080 from inside the environment, with
/// bash's /dev/tcp (the Debian image has no HTTP client): the body's last
/// line.
fn get_from_env(st: &TestStore, dir: &Path, host: &str) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/{host}/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && tail -n 1 <&3"
    );
    shell(st, dir, &script).trim().to_string()
}

/// The project's containers as `hutch ps --project` lists them: (service,
/// state).
fn project_ps(st: &TestStore, dir: &Path) -> Vec<(String, String)> {
    let text = ok_in(st, dir, &["ps", "--project", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn state_of(st: &TestStore, dir: &Path, service: &str) -> Option<String> {
    project_ps(st, dir)
        .into_iter()
        .find(|(s, _)| s == service)
        .map(|(_, state)| state)
}

/// The DiffIDs of an image of the store.
fn layers(st: &TestStore, image: &str) -> Vec<String> {
    let out = st.run_ok(["inspect", "-f", "{{json .RootFS.diff_ids}}", image]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The image the environment's container runs.
fn env_image(st: &TestStore, dir: &Path) -> String {
    let text = ok_in(st, dir, &["ps", "--project", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "env")
        .map(|r| r["image"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no env container in {text}"))
}

const WEB: &str = "[ -f /www/index.html ] || echo hello > /www/index.html; \
                   echo web starts; exec httpd -f -p 8080 -h /www";

#[test]
fn project_env_shell_services_volumes_pins_and_setup() {
    let st = TestStore::new();
    let _cleanup = Cleanup(&st);
    let reg = registry();
    let debian = format!("oci-archive:{}", fixture("debian-oci.tar").display());
    let busybox = format!("oci-archive:{}", fixture("busybox-oci.tar").display());
    push(&st, &reg, &debian, "app/debian:stable", false);
    push(&st, &reg, &busybox, "app/busybox:1", false);
    let r = |name: &str| format!("127.0.0.1:{}/{name}", reg.port);
    let toml = |setup: &str| {
        format!(
            "[env]\nimage = \"{}\"\nsetup = [\"{setup}\"]\n\n\
             [services.web]\nimage = \"{}\"\ncommand = \"{WEB}\"\n\
             volumes = [\"www:/www\"]\nready = {{ tcp = 8080 }}\n",
            r("app/debian:stable"),
            r("app/busybox:1")
        )
    };
    let dir = project_dir(&st, &toml("echo one > /etc/setup-marker"));

    // No lock yet: refused, with the command that fixes it.
    let out = in_dir(&st, &dir, &["shell", "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no hutch.lock") && err.contains("hutch lock"),
        "{err}"
    );
    ok_in(&st, &dir, &["lock", "--tls-verify=false"]);

    // The registry's tag moves after locking: the environment is still the
    // pinned Debian, not the busybox now behind the tag.
    push(&st, &reg, &busybox, "app/debian:stable", false);

    // A shell, from a subdirectory of the project: the user's own id, the
    // directory where it was started, the setup's result; a file made
    // inside is the user's in the project.
    let me = rustix::process::getuid().as_raw();
    let out = shell(
        &st,
        &dir.join("src"),
        "id -u; pwd; cat /etc/debian_version >/dev/null && echo debian; \
         cat /etc/setup-marker; echo made > ../made-inside",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            me.to_string().as_str(),
            dir.join("src").to_str().unwrap(),
            "debian",
            "one"
        ],
        "{out}"
    );
    let made = std::fs::metadata(dir.join("made-inside")).unwrap();
    assert_eq!(
        (made.uid(), made.gid()),
        (me, rustix::process::getgid().as_raw())
    );
    // The last shell out stopped the environment (no service runs).
    assert_eq!(state_of(&st, &dir, "env").as_deref(), Some("exited"));

    // Two shells: the second joins the first's environment (it sees what
    // the first made in the container's own /tmp), which runs on while
    // the first is in it and stops after it leaves.
    let mut first = st
        .hutch()
        .current_dir(&dir)
        .args(["shell", "--", "bash", "-c"])
        .arg("echo $$ > /tmp/first-shell; sleep 4")
        .spawn()
        .unwrap();
    assert!(
        eventually(20, || in_dir(
            &st,
            &dir,
            &["shell", "--", "test", "-s", "/tmp/first-shell"]
        )
        .status
        .success()),
        "the second shell never saw the first one's file"
    );
    assert_eq!(state_of(&st, &dir, "env").as_deref(), Some("running"));
    assert!(first.wait().unwrap().success());
    assert_eq!(state_of(&st, &dir, "env").as_deref(), Some("exited"));

    // Services: up -d returns once web accepts connections; the
    // environment reaches it by name and on localhost.
    let out = in_dir(&st, &dir, &["up", "-d", "--tls-verify=false"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("service web is started"),
        "{}",
        describe(&out)
    );
    assert_eq!(state_of(&st, &dir, "web").as_deref(), Some("running"));
    assert_eq!(get_from_env(&st, &dir, "web"), "hello");
    assert_eq!(get_from_env(&st, &dir, "localhost"), "hello");
    // The shell left, but the services keep the environment.
    assert_eq!(state_of(&st, &dir, "env").as_deref(), Some("running"));
    assert!(ok_in(&st, &dir, &["logs", "web"]).contains("web starts"));

    // The volume keeps its data through down and up.
    let web = format!(
        "{}-web",
        env_container_prefix(&ok_in(&st, &dir, &["ps", "--project", "--format", "json"]))
    );
    st.run_ok(["exec", &web, "sh", "-c", "echo kept > /www/index.html"]);
    ok_in(&st, &dir, &["down"]);
    assert!(project_ps(&st, &dir).is_empty());
    ok_in(&st, &dir, &["up", "-d", "--tls-verify=false"]);
    assert_eq!(get_from_env(&st, &dir, "web"), "kept");

    // A changed setup command: the lock is stale until `hutch lock`, then
    // the environment is made again with only its setup layer rebuilt.
    let before = layers(&st, &env_image(&st, &dir));
    ok_in(&st, &dir, &["down"]);
    std::fs::write(dir.join("hutch.toml"), toml("echo two > /etc/setup-marker")).unwrap();
    let out = in_dir(&st, &dir, &["shell", "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stale") && err.contains("run `hutch lock`"),
        "{err}"
    );
    ok_in(&st, &dir, &["lock", "--tls-verify=false"]);
    assert_eq!(shell(&st, &dir, "cat /etc/setup-marker").trim(), "two");
    let after = layers(&st, &env_image(&st, &dir));
    assert_eq!(before.len(), after.len(), "{before:?} {after:?}");
    let n = before.len();
    assert_eq!(before[..n - 1], after[..n - 1], "the base layers changed");
    assert_ne!(
        before[n - 1],
        after[n - 1],
        "the setup layer did not change"
    );

    // down -v removes the containers and the project's volume.
    ok_in(&st, &dir, &["down", "-v"]);
    assert!(project_ps(&st, &dir).is_empty());
    let volumes = st.run_ok(["volume", "ls", "-q"]);
    assert!(!volumes.contains("_www"), "{volumes}");
}

/// The project's name, from the environment's container name in `hutch
/// ps --project --format json`.
fn env_container_prefix(json: &str) -> String {
    let rows: serde_json::Value = serde_json::from_str(json).unwrap();
    let name = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "env")
        .and_then(|r| r["name"].as_str())
        .unwrap_or_else(|| panic!("no env container in {json}"))
        .to_string();
    name.strip_suffix("-env").unwrap().to_string()
}

#[test]
fn project_env_is_the_same_in_a_second_store() {
    let first = TestStore::new();
    let _c1 = Cleanup(&first);
    let reg = registry();
    let debian = format!("oci-archive:{}", fixture("debian-oci.tar").display());
    push(&first, &reg, &debian, "same/debian:stable", false);
    let dir = project_dir(
        &first,
        &format!(
            "[env]\nimage = \"127.0.0.1:{}/same/debian:stable\"\n",
            reg.port
        ),
    );
    ok_in(&first, &dir, &["lock", "--tls-verify=false"]);
    let lock = std::fs::read_to_string(dir.join("hutch.lock")).unwrap();
    let version = shell(&first, &dir, "cat /etc/debian_version");

    // A second store (another user's, another machine's) with the same
    // project and lock: the same environment, and `verify` passes.
    let second = TestStore::new();
    let _c2 = Cleanup(&second);
    assert_eq!(shell(&second, &dir, "cat /etc/debian_version"), version);
    let out = in_dir(&second, &dir, &["verify", "--tls-verify=false"]);
    assert!(out.status.success(), "{}", describe(&out));
    let digest = |st: &TestStore| {
        String::from_utf8(in_dir(st, &dir, &["verify", "--tls-verify=false"]).stdout).unwrap()
    };
    assert_eq!(digest(&first), digest(&second));
    assert!(lock.contains(digest(&first).trim()), "{lock}");
    assert_eq!(
        std::fs::read_to_string(dir.join("hutch.lock")).unwrap(),
        lock,
        "shell or verify rewrote the lock"
    );

    // A project brought up (even without services) stays up when a shell
    // leaves, until `hutch down`; `ps --project DIR` finds it from
    // elsewhere.
    ok_in(&second, &dir, &["up", "-d"]);
    shell(&second, &dir, "true");
    let listed = ok_in(
        &second,
        Path::new("/"),
        &["ps", "--project", dir.to_str().unwrap()],
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("env ") && l.contains(" Up ")),
        "{listed}"
    );
    ok_in(&second, &dir, &["down"]);
    assert!(project_ps(&second, &dir).is_empty());
}

#[test]
fn project_env_services_that_never_get_ready_are_reported() {
    let st = TestStore::new();
    let _cleanup = Cleanup(&st);
    let reg = registry();
    let busybox = format!("oci-archive:{}", fixture("busybox-oci.tar").display());
    push(&st, &reg, &busybox, "bad/busybox:1", false);
    let image = format!("127.0.0.1:{}/bad/busybox:1", reg.port);
    let dir = project_dir(
        &st,
        &format!(
            "[env]\nimage = \"{image}\"\n\n\
             [services.deaf]\nimage = \"{image}\"\ncommand = \"sleep 600\"\n\
             ready = {{ tcp = 9999, timeout = 1 }}\n\n\
             [services.gone]\nimage = \"{image}\"\ncommand = \"echo bye; exit 3\"\n\
             ready = {{ command = \"false\" }}\ndepends_on = [\"deaf\"]\n"
        ),
    );
    ok_in(&st, &dir, &["lock", "--tls-verify=false"]);
    let out = in_dir(&st, &dir, &["up", "-d", "--tls-verify=false"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("service deaf was not ready after 1 s")
            && err.contains("port 9999")
            && err.contains("hutch logs deaf"),
        "{err}"
    );
    // `gone` depends on `deaf`: never started.
    assert_eq!(state_of(&st, &dir, "gone"), None);

    // Control: with `deaf` ready at once, `gone` starts, exits, and is
    // reported as such rather than waited for.
    let toml = std::fs::read_to_string(dir.join("hutch.toml")).unwrap();
    std::fs::write(
        dir.join("hutch.toml"),
        toml.replace("ready = { tcp = 9999, timeout = 1 }\n", ""),
    )
    .unwrap();
    ok_in(&st, &dir, &["lock", "--tls-verify=false"]);
    let out = in_dir(&st, &dir, &["up", "-d", "--tls-verify=false"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("service deaf is started")
            && err.contains("service gone stopped before it was ready")
            && err.contains("Exited (3)"),
        "{err}"
    );
    assert!(ok_in(&st, &dir, &["logs", "gone"]).contains("bye"));
    ok_in(&st, &dir, &["down"]);
    assert!(project_ps(&st, &dir).is_empty());
}

#[test]
fn project_env_builds_start_from_the_pinned_bases() {
    let st = TestStore::new();
    let _cleanup = Cleanup(&st);
    let reg = registry();
    let busybox = format!("oci-archive:{}", fixture("busybox-oci.tar").display());
    let debian = format!("oci-archive:{}", fixture("debian-oci.tar").display());
    push(&st, &reg, &busybox, "built/base:1", false);
    let base = format!("127.0.0.1:{}/built/base:1", reg.port);
    let dir = project_dir(
        &st,
        "[env]\nbuild = \"Containerfile\"\nshell = \"/bin/sh\"\n\n\
         [services.echo]\nbuild = \"Containerfile.echo\"\nready = { tcp = 7000 }\n",
    );
    std::fs::write(
        dir.join("Containerfile"),
        format!("FROM {base}\nRUN echo built > /built\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("Containerfile.echo"),
        format!("FROM {base}\nCMD [\"nc\", \"-ll\", \"-p\", \"7000\", \"-e\", \"echo\", \"from-echo\"]\n"),
    )
    .unwrap();
    ok_in(&st, &dir, &["lock", "--tls-verify=false"]);
    // The tag moves to Debian after locking: the builds still start from
    // the pinned busybox.
    push(&st, &reg, &debian, "built/base:1", false);
    let out = ok_in(
        &st,
        &dir,
        &[
            "shell",
            "--tls-verify=false",
            "--",
            "sh",
            "-c",
            "cat /built; test -e /etc/debian_version && echo debian || echo busybox",
        ],
    );
    assert_eq!(out, "built\nbusybox\n");
    ok_in(&st, &dir, &["up", "-d", "--tls-verify=false"]);
    let out = ok_in(&st, &dir, &["shell", "--", "nc", "echo", "7000"]);
    assert_eq!(out.trim(), "from-echo");
    let images = st.run_ok(["images", "--format", "json"]);
    assert!(
        images.contains("/env-base") && images.contains("/echo"),
        "{images}"
    );
    // An environment built from a Containerfile has no rootfs digest to
    // verify: said so, not passed.
    let out = in_dir(&st, &dir, &["verify", "--tls-verify=false"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("records no rootfs digest"),
        "{}",
        describe(&out)
    );
    ok_in(&st, &dir, &["down"]);
}
