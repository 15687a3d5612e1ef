//! Containers that run again: `start` (and `start -a`), `restart`, and
//! `run --restart`, whose keeper starts the command again when it exits.

mod common;

use common::{TestStore, describe, fixture, http_get_until};
use std::time::Duration;

/// A store with the busybox fixture loaded as `busybox`, that stops
/// every container it still runs when the test ends (pass or fail).
struct Store(TestStore);

impl std::ops::Deref for Store {
    type Target = TestStore;
    fn deref(&self) -> &TestStore {
        &self.0
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let ids = self.0.run(["ps", "-q"]).1.stdout;
        for id in String::from_utf8_lossy(&ids).split_whitespace() {
            let _ = self.0.run(["rm", "-f", id]);
        }
    }
}

fn busybox() -> Store {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    Store(st)
}

/// The container's record as `inspect` shows it.
fn inspect(st: &Store, key: &str) -> serde_json::Value {
    serde_json::from_str(&st.run_ok(["inspect", key])).unwrap()
}

/// Counts its runs in a file of its upper dir, says the count, and
/// exits 3.
const COUNTING: &str = "echo x >> /runs; wc -l < /runs; echo err >&2; exit 3";

#[test]
fn start_runs_an_exited_container_again_on_its_upper_dir() {
    let st = busybox();
    let id = st
        .run_ok([
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "again",
            "busybox",
            "sh",
            "-c",
            COUNTING,
        ])
        .trim()
        .to_string();
    assert_eq!(st.run_ok(["wait", "again"]).trim(), "3");
    assert_eq!(st.run_ok(["logs", "again"]), "1\n");
    let first = inspect(&st, "again");
    // Started again: the same container, its file kept, the log appended.
    assert_eq!(st.run_ok(["start", "again"]).trim(), "again");
    assert_eq!(st.run_ok(["wait", "again"]).trim(), "3");
    assert_eq!(st.run_ok(["logs", "again"]), "1\n2\n");
    let second = inspect(&st, "again");
    assert_eq!(second["id"], id.as_str());
    assert_ne!(second["started"], first["started"], "started time updated");
    assert_eq!(second["exit_code"], 3);
    // A running container is left running: its name, no error.
    st.run_ok([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "up",
        "busybox",
        "sleep",
        "1000",
    ]);
    let pid = inspect(&st, "up")["pid"].clone();
    assert_eq!(st.run_ok(["start", "up", "again"]), "up\nagain\n");
    assert_eq!(inspect(&st, "up")["pid"], pid, "the same keeper serves it");
    st.run_ok(["wait", "again"]);
}

#[test]
fn start_a_of_a_foreground_container_shows_its_output_and_status() {
    let st = busybox();
    let (_, out) = st.run([
        "run",
        "--network",
        "none",
        "--name",
        "fg",
        "busybox",
        "sh",
        "-c",
        COUNTING,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    // -a: this run's output only, stdout and stderr apart, its status.
    let (_, out) = st.run(["start", "-a", "fg"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // A keeper served it: its output is kept from now on.
    assert_eq!(st.run_ok(["logs", "fg"]), "2\n");
    assert!(st.run_ok(["ps", "-a"]).contains("Exited (3)"));
}

#[test]
fn start_binds_the_published_ports_again() {
    let st = busybox();
    let serve = "mkdir -p /www && echo started-$(wc -l < /runs) > /www/index.html \
                 && exec httpd -f -p 8080 -h /www";
    let script = format!("echo x >> /runs; {serve}");
    let out = st
        .hutch()
        .args([
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            "127.0.0.1::8080",
            "busybox",
            "sh",
            "-c",
        ])
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let port_of = |stderr: &[u8]| -> u16 {
        let err = String::from_utf8_lossy(stderr);
        err.lines()
            .find_map(|l| l.strip_prefix("hutch: port 8080/tcp is published on 127.0.0.1:"))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port reported: {err}"))
    };
    let port = port_of(&out.stderr);
    http_get_until(port, "/", Duration::from_secs(20), |b| {
        b.contains("started-1")
    })
    .unwrap();
    st.run_ok(["stop", "web"]);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let (_, out) = st.run(["start", "web"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web\n");
    let port = port_of(&out.stderr);
    http_get_until(port, "/", Duration::from_secs(20), |b| {
        b.contains("started-2")
    })
    .unwrap();
    let ps = st.run_ok(["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->8080/tcp")), "{ps}");
}

#[test]
fn start_refuses_what_it_cannot_do() {
    let st = busybox();
    let (code, err) = st.run_fail(["start", "no-such"]);
    assert_eq!(code, 125);
    assert!(err.contains("no container \"no-such\""), "{err}");
    st.run_ok(["run", "--network", "none", "--name", "a", "busybox", "true"]);
    st.run_ok(["run", "--network", "none", "--name", "b", "busybox", "true"]);
    let (code, err) = st.run_fail(["start", "-a", "a", "b"]);
    assert_eq!(code, 125);
    assert!(err.contains("one container"), "{err}");
    // Nothing was started.
    assert_eq!(inspect(&st, "a")["detached"], false);
    let (code, err) = st.run_fail(["start"]);
    assert_eq!(code, 125);
    assert!(err.contains("<CONTAINERS>"), "{err}");
    let (code, err) = st.run_fail(["start", "-i", "a"]);
    assert_eq!(code, 125);
    assert!(err.contains("start -i"), "{err}");
    // One bad name among good ones: the others start, the status says so.
    let (_, out) = st.run(["start", "a", "no-such"]);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n");
}
