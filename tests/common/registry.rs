//! A real registry for the tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on a free 127.0.0.1 port with its storage in a
//! temporary directory, and `skopeo copy` to fill it.

use super::{TestStore, describe};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A registry process, stopped on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

pub fn registry() -> Registry {
    registry_with_auth(None)
}

/// A registry with `auth` (YAML) in its configuration, which answers 401
/// to an anonymous `/v2/`.
pub fn registry_with_config(auth: &str) -> Registry {
    registry_inner(auth.to_owned(), 401, tempfile::tempdir().unwrap())
}

/// With `Some((user, password))`: htpasswd (Basic) authentication.
pub fn registry_with_auth(user: Option<(&str, &str)>) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let mut auth = String::new();
    if let Some((u, p)) = user {
        let out = Command::new("htpasswd")
            .args(["-Bbn", u, p])
            .output()
            .expect("htpasswd (apache2-utils, installed by tests/host-setup.sh)");
        assert!(out.status.success(), "{}", describe(&out));
        let file = dir.path().join("htpasswd");
        std::fs::write(&file, &out.stdout).unwrap();
        auth = format!(
            "auth:\n  htpasswd:\n    realm: hutch-test\n    path: {}\n",
            file.display()
        );
    }
    let up = if user.is_some() { 401 } else { 200 };
    registry_inner(auth, up, dir)
}

pub fn registry_inner(auth: String, up: u16, dir: tempfile::TempDir) -> Registry {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (tests/host-setup.sh installs it)");
    let reg = Registry {
        child,
        port,
        _dir: dir,
    };
    let t0 = Instant::now();
    while http_status(port, "/v2/") != Some(up) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "docker-registry did not answer on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    reg
}

/// `skopeo copy` SRC to the registry as NAME; returns the pushed digest as
/// `skopeo inspect` reports it. `all`: every image of an index.
pub fn push(st: &TestStore, reg: &Registry, src: &str, name: &str, all: bool) -> String {
    copy_with(st, reg, src, name, if all { &["--all"] } else { &[] })
}

/// [`push`] with other `skopeo copy` options (`--preserve-digests`).
pub fn copy_with(st: &TestStore, reg: &Registry, src: &str, name: &str, opts: &[&str]) -> String {
    let dest = format!("docker://127.0.0.1:{}/{name}", reg.port);
    let out = Command::new("skopeo")
        .env("HOME", st.home())
        .env("TMPDIR", st.tmp())
        .args(["copy", "--insecure-policy", "--dest-tls-verify=false", "-q"])
        .args(opts)
        .args([src, &dest])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy: {}", describe(&out));
    skopeo_digest(st, &dest, &[])
}

/// What `skopeo inspect` (TLS verification off, with `extra` options such
/// as `--raw` or `--authfile F`) prints for DEST (`docker://...`).
pub fn skopeo_inspect(st: &TestStore, dest: &str, extra: &[&str]) -> String {
    let out = Command::new("skopeo")
        .env("HOME", st.home())
        .args(["inspect", "--tls-verify=false"])
        .args(extra)
        .arg(dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {dest}: {}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The manifest digest skopeo reports for DEST.
pub fn skopeo_digest(st: &TestStore, dest: &str, extra: &[&str]) -> String {
    let mut args = vec!["--format", "{{.Digest}}"];
    args.extend_from_slice(extra);
    skopeo_inspect(st, dest, &args)
}

/// `hutch login` arguments for USER alice with the password on stdin.
pub fn login_args(registry: &str) -> [&str; 6] {
    [
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "--password-stdin",
        registry,
    ]
}
