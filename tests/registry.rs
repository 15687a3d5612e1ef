//! `hutch pull` against a real registry: Debian's `docker-registry` (the
//! CNCF distribution registry) on a free 127.0.0.1 port with its storage in
//! a temporary directory, filled by `skopeo copy` from the fixtures.

mod common;

use common::registry::{
    login_args, push, registry, registry_with_auth, registry_with_config, skopeo_digest,
};
use common::{TestStore, describe, fixture};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

#[test]
fn pull_matches_skopeo_runs_and_keeps_the_tags_history() {
    let st = TestStore::new();
    let reg = registry();
    let src = format!("oci-archive:{}", fixture("busybox-oci.tar").display());
    let digest = push(&st, &reg, &src, "test/busybox:1.0", false);
    let name = format!("127.0.0.1:{}/test/busybox:1.0", reg.port);
    let (_, out) = st.run(["pull", "--tls-verify=false", &name]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Pulled {name} ({digest})\n")
    );
    // Off a terminal: one line per layer on stderr.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().count() == 1 && err.starts_with("blob sha256:") && err.contains(": pulled "),
        "{err}"
    );
    let out = st.run_offline(&name, &["echo", "pulled"]);
    assert_eq!(out, "pulled\n");
    // Pulling again fetches nothing new and moves nothing; -q is quiet.
    let (_, out) = st.run(["pull", "-q", "--tls-verify=false", &name]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let (_, out) = st.run(["pull", "--tls-verify=false", &name]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.ends_with(": already in the store\n"), "{err}");
    // A new version under the same tag: the old one stays in the history.
    let deb = format!("oci-archive:{}", fixture("debian-oci.tar").display());
    let new = push(&st, &reg, &deb, "test/busybox:1.0", false);
    assert_ne!(new, digest);
    st.run_ok(["pull", "-q", "--tls-verify=false", &name]);
    st.run_ok(["rollback", &name]);
    let out = st.run_offline(&name, &["echo", "old again"]);
    assert_eq!(out, "old again\n");
}

#[test]
fn pull_of_an_index_picks_the_host_platform() {
    let st = TestStore::new();
    let reg = registry();
    let src = format!("oci:{}:latest", fixture("busybox-index-oci").display());
    push(&st, &reg, &src, "multi/busybox:latest", true);
    let name = format!("127.0.0.1:{}/multi/busybox", reg.port);
    st.run_ok(["pull", "--tls-verify=false", &name]);
    let out = st.run_offline(&name, &["uname", "-m"]);
    assert_eq!(out.trim(), std::env::consts::ARCH);
    // A platform the index does not have is a clear error.
    let (code, err) = st.run_fail([
        "pull",
        "--tls-verify=false",
        "--platform",
        "linux/s390x",
        &name,
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("no image for linux/s390x"), "{err}");
}

#[test]
fn missing_images_are_clear_errors_and_change_nothing() {
    let st = TestStore::new();
    let reg = registry();
    let src = format!("oci-archive:{}", fixture("busybox-oci.tar").display());
    let digest = push(&st, &reg, &src, "test/busybox:1.0", false);
    st.run_ok(["images"]); // the store's skeleton exists from here on
    let before = st.listing();
    for (name, want) in [
        (
            format!("127.0.0.1:{}/test/busybox:2.0", reg.port),
            "2.0 not found",
        ),
        (
            format!("127.0.0.1:{}/test/nothing:1.0", reg.port),
            "repository test/nothing",
        ),
        (
            format!(
                "127.0.0.1:{}/test/busybox@sha256:{}",
                reg.port,
                "0".repeat(64)
            ),
            "not found",
        ),
    ] {
        let (code, err) = st.run_fail(["pull", "--tls-verify=false", &name]);
        assert_eq!(code, 125, "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(err.contains(&format!("127.0.0.1:{}", reg.port)), "{err}");
        assert_eq!(st.listing(), before, "{name} left something in the store");
    }
    // By digest: stored untagged, runnable by digest.
    let by_digest = format!("127.0.0.1:{}/test/busybox@{digest}", reg.port);
    let out = st.run_ok(["pull", "--tls-verify=false", &by_digest]);
    assert_eq!(out, format!("Pulled {digest} (untagged)\n"));
    // Without --tls-verify=false the plain-HTTP registry is refused.
    let name = format!("127.0.0.1:{}/test/busybox:1.0", reg.port);
    let (code, err) = st.run_fail(["pull", &name]);
    assert_eq!(code, 125);
    assert!(err.contains("--tls-verify=false"), "{err}");
    assert!(err.contains("registries.toml"), "{err}");
    // ... unless registries.toml says it is insecure (Podman's syntax); the
    // command line still wins.
    let conf = st.home().join(".config/hutch/registries.toml");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"127.0.0.1:{}\"\ninsecure = true\n",
            reg.port
        ),
    )
    .unwrap();
    let out = st.run_ok(["pull", "-q", &name]);
    assert_eq!(out.trim(), digest);
    let (code, _) = st.run_fail(["pull", "--tls-verify=true", &name]);
    assert_eq!(code, 125);
    // A broken file is a clear error naming it.
    std::fs::write(&conf, "[[registry]]\nlocation = 5\n").unwrap();
    let (code, err) = st.run_fail(["pull", &name]);
    assert_eq!(code, 125);
    assert!(err.contains(&conf.display().to_string()), "{err}");
}

#[test]
fn push_is_read_by_skopeo_podman_and_hutch_with_the_same_digest() {
    let st = TestStore::new();
    let reg = registry();
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    let inspect: serde_json::Value =
        serde_json::from_str(&st.run_ok(["inspect", "busybox"])).unwrap();
    let digest = inspect[0]["Digest"].as_str().unwrap().to_owned();
    let dest = format!("127.0.0.1:{}/pushed/busybox:2", reg.port);
    let (_, out) = st.run(["push", "--tls-verify=false", "busybox", &dest]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Pushed {dest} ({digest}): 2 blobs uploaded, 0 mounted, 0 already there\n")
    );
    // Off a terminal, progress is a line per blob on stderr.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("blob sha256:") && l.contains(": pushed "))
            .count(),
        2,
        "{err}"
    );
    // Again: everything is there already.
    let out = st.run_ok(["push", "--tls-verify=false", "busybox", &dest]);
    assert!(
        out.ends_with("0 blobs uploaded, 0 mounted, 2 already there\n"),
        "{out}"
    );
    // To another repository of the same registry: mounted, not uploaded.
    let copy = format!("127.0.0.1:{}/other/copy:1", reg.port);
    let out = st.run_ok(["push", "--tls-verify=false", "busybox", &copy]);
    assert!(
        out.ends_with("0 blobs uploaded, 2 mounted, 0 already there\n"),
        "{out}"
    );
    let other = TestStore::new();
    let out = other.run_ok(["pull", "-q", "--tls-verify=false", &copy]);
    assert_eq!(out.trim(), digest);
    // -q: the digest alone, no progress.
    let (_, out) = st.run(["push", "-q", "--tls-verify=false", "busybox", &dest]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{digest}\n"));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    // skopeo sees the same digest.
    assert_eq!(skopeo_digest(&st, &format!("docker://{dest}"), &[]), digest);
    // Rootless podman pulls it (vfs storage in the test's directory).
    let podman = |args: &[&str]| {
        let root = st.tmp().join("podman");
        Command::new("podman")
            .env("HOME", st.home())
            .env("XDG_RUNTIME_DIR", st.tmp())
            .arg("--root")
            .arg(root.join("root"))
            .arg("--runroot")
            .arg(root.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = podman(&["pull", "-q", "--tls-verify=false", &dest]);
    assert!(out.status.success(), "podman pull: {}", describe(&out));
    let out = podman(&["image", "inspect", "--format", "{{.Digest}}", &dest]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
    let _ = podman(&[
        "unshare",
        "rm",
        "-rf",
        st.tmp().join("podman").to_str().unwrap(),
    ]);
    // And another store pulls it back and runs it.
    let other = TestStore::new();
    let out = other.run_ok(["pull", "-q", "--tls-verify=false", &dest]);
    assert_eq!(out.trim(), digest);
    let out = other.run_offline(&dest, &["echo", "round trip"]);
    assert_eq!(out, "round trip\n");
    // A missing destination name is a clear error.
    let (code, err) = st.run_fail(["push", "--tls-verify=false", &digest[7..19]]);
    assert_eq!(code, 125);
    assert!(err.contains("give a destination"), "{err}");
}

/// Run hutch with its credentials under `runtime` (as XDG_RUNTIME_DIR) and
/// `stdin` as input; asserts that no password of these tests is printed.
fn hutch_with_auth_dir(
    st: &TestStore,
    runtime: &std::path::Path,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    std::fs::create_dir_all(runtime).unwrap();
    let mut child = st
        .hutch()
        .env("XDG_RUNTIME_DIR", runtime)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("s3cret")
            && !String::from_utf8_lossy(&out.stderr).contains("s3cret"),
        "a password was printed: {}",
        describe(&out)
    );
    out
}

#[test]
fn login_keeps_podman_credentials_that_push_pull_and_skopeo_use() {
    let st = TestStore::new();
    let reg = registry_with_auth(Some(("alice", "s3cret-pw")));
    let runtime = st.tmp().join("runtime");
    let hutch = |args: &[&str], stdin: &str| hutch_with_auth_dir(&st, &runtime, args, stdin);
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    let registry = format!("127.0.0.1:{}", reg.port);
    let dest = format!("{registry}/private/busybox:1");
    let auth_file = runtime.join("containers/auth.json");
    // Without credentials: refused, with the way out in the message.
    let out = hutch(&["push", "--tls-verify=false", "busybox", &dest], "");
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("hutch login {registry}")),
        "{}",
        describe(&out)
    );
    // A wrong password is refused and nothing is kept.
    let login = login_args(&registry);
    let out = hutch(&login, "wrong\n");
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(!auth_file.exists());
    // The right one is kept in Podman's file, readable by the user only.
    let out = hutch(&login, "s3cret-pw\n");
    assert!(out.status.success(), "{}", describe(&out));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&auth_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&auth_file).unwrap()).unwrap();
    assert!(doc["auths"][&registry]["auth"].is_string(), "{doc}");
    // push and pull use it; skopeo reads the same file.
    let out = hutch(&["push", "--tls-verify=false", "busybox", &dest], "");
    assert!(out.status.success(), "{}", describe(&out));
    let pushed = skopeo_digest(
        &st,
        &format!("docker://{dest}"),
        &["--authfile", auth_file.to_str().unwrap()],
    );
    assert!(pushed.starts_with("sha256:"), "{pushed}");
    let out = hutch(&["pull", "-q", "--tls-verify=false", &dest], "");
    assert!(out.status.success(), "{}", describe(&out));
    use base64::Engine;
    // Credentials that went wrong since the login (changed password): a
    // pull of something new is refused, names the registry and the
    // repository, and leaves the store as it was.
    let good = std::fs::read(&auth_file).unwrap();
    let wrong = base64::engine::general_purpose::STANDARD.encode("alice:not-any-more");
    std::fs::write(
        &auth_file,
        format!("{{\"auths\":{{\"{registry}\":{{\"auth\":\"{wrong}\"}}}}}}"),
    )
    .unwrap();
    let before = st.listing();
    let out = hutch(
        &[
            "pull",
            "--tls-verify=false",
            &format!("{registry}/private/other:1"),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&registry) && err.contains("private/other") && err.contains("alice"),
        "{err}"
    );
    assert_eq!(st.listing(), before);
    std::fs::write(&auth_file, good).unwrap();
    // logout forgets; the next pull is refused again.
    let out = hutch(&["logout", &registry], "");
    assert!(out.status.success(), "{}", describe(&out));
    let out = hutch(&["pull", "--tls-verify=false", &dest], "");
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let out = hutch(&["logout", &registry], "");
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    // Docker's config.json is read too.
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pw");
    let docker = st.home().join(".docker/config.json");
    std::fs::create_dir_all(docker.parent().unwrap()).unwrap();
    std::fs::write(
        &docker,
        format!("{{\"auths\":{{\"{registry}\":{{\"auth\":\"{auth}\"}}}}}}"),
    )
    .unwrap();
    let out = hutch(&["pull", "-q", "--tls-verify=false", &dest], "");
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn run_pulls_what_is_missing_unless_told_not_to() {
    let st = TestStore::new();
    let reg = registry();
    let src = format!("oci-archive:{}", fixture("busybox-oci.tar").display());
    let digest = push(&st, &reg, &src, "test/busybox:1.0", false);
    let name = format!("127.0.0.1:{}/test/busybox:1.0", reg.port);
    let run = |pull: &str| {
        st.hutch()
            .args(["run", "--rm", "--network", "none", "--pull", pull])
            .args(["--tls-verify=false", &name, "echo", "ran"])
            .output()
            .unwrap()
    };
    // never: not in the store, so it fails and nothing is fetched.
    let out = run("never");
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no image"),
        "{}",
        describe(&out)
    );
    // missing (the default): pulled (reported on stderr), then run.
    let out = run("missing");
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("Pulled {name} ({digest})")),
        "{}",
        describe(&out)
    );
    // Now it is there: no pull.
    let out = run("missing");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("Pulled"),
        "{}",
        describe(&out)
    );
    // always: a new version under the tag is fetched first.
    let deb = format!("oci-archive:{}", fixture("debian-oci.tar").display());
    let new = push(&st, &reg, &deb, "test/busybox:1.0", false);
    let out = run("always");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&new),
        "{}",
        describe(&out)
    );
    // A missing image that cannot be pulled says both.
    let gone = format!("127.0.0.1:{}/test/gone:1", reg.port);
    let out = st
        .hutch()
        .args(["run", "--rm", "--tls-verify=false", &gone, "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not in the store and pulling it failed"),
        "{err}"
    );
    assert!(err.contains("not found"), "{err}");
}

/// A token service for the registry's bearer flow: RS256 JWTs signed with
/// `openssl dgst` by a key whose self-signed certificate the registry
/// trusts. Anonymous requests get pull access; `alice:s3cret-pw` gets push
/// too; anything else is refused. Returns (port, requests seen).
fn token_server(dir: &std::path::Path) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap()
        .stdout;
    let x5c = STANDARD.encode(der);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        for (n, s) in l.incoming().flatten().enumerate() {
            let mut s = s;
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => req.extend_from_slice(&buf[..k]),
                }
            }
            let req = String::from_utf8_lossy(&req).into_owned();
            let line = req.lines().next().unwrap_or_default().to_owned();
            let user = req
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    let v = v.trim();
                    (k.eq_ignore_ascii_case("authorization") && v.starts_with("Basic "))
                        .then(|| v["Basic ".len()..].to_owned())
                })
                .and_then(|b| STANDARD.decode(b.trim()).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            log.lock().unwrap().push(format!("{line} user={user:?}"));
            let (code, body) = match user.as_deref() {
                Some("alice:s3cret-pw") | None => {
                    let query = line.split(['?', ' ']).nth(2).unwrap_or_default();
                    let scopes: Vec<String> = query
                        .split('&')
                        .filter_map(|kv| kv.strip_prefix("scope="))
                        .map(|v| {
                            v.replace("%3A", ":")
                                .replace("%2F", "/")
                                .replace("%2C", ",")
                        })
                        .collect();
                    let access: Vec<serde_json::Value> = scopes
                        .iter()
                        .filter_map(|sc| {
                            let mut p = sc.splitn(3, ':');
                            let (kind, name, actions) = (p.next()?, p.next()?, p.next()?);
                            let granted: Vec<&str> = actions
                                .split(',')
                                .filter(|a| *a == "pull" || user.is_some())
                                .collect();
                            Some(
                                serde_json::json!({"type": kind, "name": name, "actions": granted}),
                            )
                        })
                        .collect();
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs();
                    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
                    let claims = serde_json::json!({
                        "iss": "hutch-test-issuer", "sub": user.clone().unwrap_or_default(),
                        "aud": "hutch-test-registry", "exp": now + 300, "nbf": now - 10,
                        "iat": now, "jti": format!("t{n}"), "access": access,
                    });
                    let input = format!(
                        "{}.{}",
                        URL_SAFE_NO_PAD.encode(header.to_string()),
                        URL_SAFE_NO_PAD.encode(claims.to_string())
                    );
                    let f = dir.join(format!("input-{n}"));
                    std::fs::write(&f, &input).unwrap();
                    let sig = Command::new("openssl")
                        .args(["dgst", "-sha256", "-sign"])
                        .arg(dir.join("key.pem"))
                        .arg(&f)
                        .output()
                        .unwrap()
                        .stdout;
                    let jwt = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
                    (200, serde_json::json!({ "token": jwt }).to_string())
                }
                Some(_) => (401, "{\"details\":\"bad credentials\"}".to_owned()),
            };
            let _ = write!(
                s,
                "HTTP/1.0 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn bearer_token_flow_with_a_token_service() {
    let st = TestStore::new();
    let keys = tempfile::tempdir().unwrap();
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=hutch-token", "-keyout"])
        .arg(keys.path().join("key.pem"))
        .arg("-out")
        .arg(keys.path().join("cert.pem"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let (tport, seen) = token_server(keys.path());
    let reg = registry_with_config(&format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: hutch-test-registry\n    \
         issuer: hutch-test-issuer\n    rootcertbundle: {}\n",
        keys.path().join("cert.pem").display()
    ));
    st.run_ok(["load", "-q", fixture("busybox-oci.tar").to_str().unwrap()]);
    let registry = format!("127.0.0.1:{}", reg.port);
    let dest = format!("{registry}/tok/busybox:1");
    let runtime = st.tmp().join("runtime");
    let hutch = |args: &[&str], stdin: &str| hutch_with_auth_dir(&st, &runtime, args, stdin);
    // Anonymous: the token grants pull only, so the push is refused.
    let out = hutch(&["push", "--tls-verify=false", "busybox", &dest], "");
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    // Wrong password: the token service refuses, login keeps nothing.
    let login = login_args(&registry);
    let out = hutch(&login, "nope\n");
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{}",
        describe(&out)
    );
    // With the right one: push (token with push), then an anonymous pull
    // in another store (token with pull).
    let out = hutch(&login, "s3cret-pw\n");
    assert!(out.status.success(), "{}", describe(&out));
    let out = hutch(&["push", "--tls-verify=false", "busybox", &dest], "");
    assert!(out.status.success(), "{}", describe(&out));
    let other = TestStore::new();
    let out = other.run_ok(["pull", "-q", "--tls-verify=false", &dest]);
    assert!(out.starts_with("sha256:"), "{out}");
    // A push to another repository mounts the blobs from the first: the
    // token asked for then covers both repositories.
    let copy = format!("{registry}/tok/copy:1");
    let out = hutch(&["push", "--tls-verify=false", "busybox", &copy], "");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .ends_with("0 blobs uploaded, 2 mounted, 0 already there\n"),
        "{}",
        describe(&out)
    );
    let log = seen.lock().unwrap().join("\n");
    assert!(
        log.lines()
            .any(|l| l.contains("scope=repository:tok/copy:pull%2Cpush")
                && l.contains("scope=repository:tok/busybox:pull")),
        "{log}"
    );
    // The push asked for (and, with credentials, got) push access.
    assert!(
        log.contains("scope=repository:tok/busybox:") && log.contains("push"),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("push") && l.contains("alice")),
        "{log}"
    );
    assert!(log.contains("user=Some(\"alice:s3cret-pw\")"), "{log}");
    assert!(log.contains("user=None"), "{log}");
}

#[test]
fn progress_bars_on_a_terminal() {
    let st = TestStore::new();
    let reg = registry();
    let src = format!("oci-archive:{}", fixture("busybox-oci.tar").display());
    let digest = push(&st, &reg, &src, "test/busybox:1.0", false);
    let name = format!("127.0.0.1:{}/test/busybox:1.0", reg.port);
    // `script` gives hutch a pseudo-terminal as stdout and stderr.
    let cmd = format!(
        "{} pull --tls-verify=false {name}",
        common::hutch_bin().display()
    );
    let mut script = Command::new("script");
    for (k, v) in st.hutch().get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let out = script
        .env("TERM", "xterm")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .expect("script (util-linux)");
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // A bar with the layer's digest and size, redrawn in place (escape
    // sequences), ending as the line of the finished layer.
    assert!(text.contains("\u{1b}["), "no terminal drawing: {text:?}");
    let finished = text.split(['\r', '\n']).any(|l| {
        let l = l.trim_start_matches(|c: char| {
            c == '\u{1b}' || c == '[' || c.is_ascii_digit() || c.is_ascii_uppercase()
        });
        l.starts_with("sha256:")
            && l[7..19].chars().all(|c| c.is_ascii_hexdigit())
            && l[19..].starts_with(" pulled ")
            && l.contains(" MB")
    });
    assert!(finished, "no finished bar for the layer: {text:?}");
    assert!(
        text.contains(&format!("Pulled {name} ({digest})")),
        "{text:?}"
    );
}

#[test]
fn pull_from_a_name_that_does_not_resolve_says_so_and_points_to_load() {
    let st = TestStore::new();
    for args in [
        vec!["pull", "nonexistent.invalid/x:1"],
        // With TLS verification off, the plain-HTTP retry fails the same way.
        vec!["pull", "--tls-verify=false", "nonexistent.invalid:5000/x:1"],
    ] {
        let (code, err) = st.run_fail(&args);
        assert_eq!(code, 125, "{err}");
        assert!(
            err.contains("name resolution of nonexistent.invalid failed"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("hutch load") && err.contains("hutch import"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("tls-verify"), "{args:?}: {err}");
    }
    let files: Vec<String> = st
        .listing()
        .into_iter()
        .filter(|l| !l.starts_with("d ") && !l.contains(" locks/"))
        .collect();
    assert!(files.is_empty(), "a failed pull stores nothing: {files:?}");
}
