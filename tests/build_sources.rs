//! `hutch build`'s sources beyond plain context files, and RUN's mounts,
//! as the unprivileged test user: ADD of local archives (and hostile
//! ones), ADD of a URL with `--checksum`, COPY here-documents with
//! variables, `COPY --from` keeping the stage's owners and set-id bits,
//! `RUN --mount=type=cache`, a RUN that changes nothing, `-f -`. Every test
//! name starts with `build_sources_`.

mod common;

use common::{TestStore, busybox, describe};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn context(st: &TestStore, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = st.tmp().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (f, content) in files {
        std::fs::write(dir.join(f), content).unwrap();
    }
    dir
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `hutch build ARGS`: (success, stdout, stderr).
fn build(st: &TestStore, args: &[&str]) -> (bool, String, String) {
    let out = st.hutch().arg("build").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn build_ok(st: &TestStore, args: &[&str]) -> String {
    let out = st.hutch().arg("build").args(args).output().unwrap();
    assert!(out.status.success(), "build {args:?}\n{}", describe(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run(st: &TestStore, image: &str, script: &str) -> String {
    st.run_ok([
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        script,
    ])
}

fn inspect(st: &TestStore, image: &str) -> Value {
    let v: Value = serde_json::from_str(&st.run_ok(["inspect", image])).unwrap();
    v[0].clone()
}

fn images(st: &TestStore) -> String {
    st.run_ok(["images", "--digests"])
}

/// A tar.gz with `entries` (name written as is, so `..` names can be made;
/// content; uid).
fn tar_gz(entries: &[(&str, &[u8], u64)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, uid) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o640);
        h.set_uid(*uid);
        h.set_gid(*uid);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn build_sources_add_unpacks_archives_and_refuses_hostile_ones() {
    let st = busybox();
    let good = tar_gz(&[("data/one", b"first\n", 7), ("./two", b"second\n", 0)]);
    let ctx = context(
        &st,
        "add",
        &[
            ("app.tar.gz", &good),
            ("plain.txt", b"not an archive\n"),
            (
                "Containerfile",
                b"FROM busybox\nADD app.tar.gz /opt/app/\nADD plain.txt /opt/\n",
            ),
        ],
    );
    build_ok(&st, &["-t", "added", p(&ctx)]);
    let out = run(
        &st,
        "added",
        "cat /opt/app/data/one /opt/app/two /opt/plain.txt; stat -c '%u %a' /opt/app/data/one",
    );
    assert_eq!(out, "first\nsecond\nnot an archive\n7 640\n");
    // The archive itself is not in the image, only what it holds.
    assert_eq!(run(&st, "added", "ls /opt/app"), "data\ntwo\n");

    // A name with `..` would leave the destination: refused, no image.
    let before = images(&st);
    let bad = tar_gz(&[("ok", b"fine", 0), ("../../etc/evil", b"evil", 0)]);
    let ctx = context(
        &st,
        "hostile",
        &[
            ("bad.tar.gz", &bad),
            ("Containerfile", b"FROM busybox\nADD bad.tar.gz /opt/\n"),
        ],
    );
    let (ok, _, err) = build(&st, &["-t", "hostile", p(&ctx)]);
    assert!(!ok, "a hostile archive was accepted\n{err}");
    assert!(err.contains(":2:") && err.contains(".."), "{err}");
    assert_eq!(images(&st), before, "a failed build left an image");
}

/// A server on 127.0.0.1 answering every GET with `body`; it counts the
/// requests.
fn serve(body: &'static [u8]) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = c.write_all(body);
        }
    });
    (port, count)
}

fn sha256_hex(data: &[u8]) -> String {
    use std::process::{Command, Stdio};
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn build_sources_add_url_checks_its_checksum() {
    let st = busybox();
    const BODY: &[u8] = b"downloaded content 5c1e\n";
    let (port, count) = serve(BODY);
    let sum = sha256_hex(BODY);
    let wrong = sha256_hex(b"something else");
    let file = |sum: &str| {
        format!(
            "FROM busybox\nADD --checksum=sha256:{sum} http://127.0.0.1:{port}/files/tool.bin /dl/\n"
        )
    };
    let before = images(&st);
    let ctx = context(&st, "bad", &[("Containerfile", file(&wrong).as_bytes())]);
    let (ok, _, err) = build(&st, &["-t", "dl", p(&ctx)]);
    assert!(!ok, "a download with the wrong checksum was taken\n{err}");
    assert!(err.contains("checksum") && err.contains(&sum), "{err}");
    assert_eq!(images(&st), before, "the failed build left an image");
    assert_eq!(count.load(Ordering::SeqCst), 1, "the server was asked once");

    let ctx = context(&st, "good", &[("Containerfile", file(&sum).as_bytes())]);
    build_ok(&st, &["-t", "dl", p(&ctx)]);
    assert_eq!(
        run(&st, "dl", "cat /dl/tool.bin; stat -c %a /dl/tool.bin"),
        "downloaded content 5c1e\n600\n"
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);
    // With a checksum the step is known before fetching: no request.
    let err = build_ok(&st, &["-t", "dl", p(&ctx)]);
    assert!(err.contains("(0 steps ran, 1 cached"), "{err}");
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "a cached ADD fetched again"
    );
}

#[test]
fn build_sources_copy_heredocs_expand_unless_quoted() {
    let st = busybox();
    let ctx = context(
        &st,
        "heredoc",
        &[(
            "Containerfile",
            b"FROM busybox\nARG WHO=builder\nENV GREETING=hello\n\
              COPY <<EOF /etc/motd\n$GREETING \"${WHO}\" ${MISSING:-none}\nEOF\n\
              COPY <<'EOF' /etc/raw\n$GREETING ${WHO}\nEOF\n",
        )],
    );
    build_ok(&st, &["-t", "hd", "--build-arg", "WHO=ann", p(&ctx)]);
    assert_eq!(
        run(&st, "hd", "cat /etc/motd /etc/raw"),
        "hello \"ann\" none\n$GREETING ${WHO}\n"
    );
    // The arg is in the key: another value makes another file.
    build_ok(&st, &["-t", "hd", "--build-arg", "WHO=bob", p(&ctx)]);
    assert_eq!(run(&st, "hd", "head -1 /etc/motd"), "hello \"bob\" none\n");
}

#[test]
fn build_sources_copy_from_keeps_owners_and_setuid() {
    let st = busybox();
    let ctx = context(
        &st,
        "owners",
        &[(
            "Containerfile",
            b"FROM busybox AS b\n\
              RUN mkdir -p /out/d && echo x > /out/d/f && chown -R 123:456 /out/d && chmod 4750 /out/d/f\n\
              FROM busybox\nCOPY --from=b /out /copied\n\
              COPY --from=b --chown=9:9 /out/d/f /chowned\n",
        )],
    );
    build_ok(&st, &["-t", "own", p(&ctx)]);
    assert_eq!(
        run(
            &st,
            "own",
            "stat -c '%u:%g %a' /copied/d /copied/d/f /chowned"
        ),
        "123:456 755\n123:456 4750\n9:9 4750\n"
    );
}

#[test]
fn build_sources_run_mounts_and_empty_runs() {
    let st = busybox();
    let ctx = context(
        &st,
        "cache",
        &[(
            "Containerfile",
            b"FROM busybox\n\
              RUN --mount=type=cache,target=/buildcache/app sh -c 'echo run >> /buildcache/app/log; wc -l < /buildcache/app/log > /count'\n\
              RUN true\n",
        )],
    );
    build_ok(&st, &["-t", "c1", p(&ctx)]);
    assert_eq!(run(&st, "c1", "cat /count"), "1\n");
    build_ok(&st, &["--no-cache", "-t", "c2", p(&ctx)]);
    assert_eq!(
        run(&st, "c2", "cat /count"),
        "2\n",
        "the cache directory outlives the build"
    );
    // Neither the cache's files nor its mount point are in the image.
    assert_eq!(
        run(&st, "c2", "ls -d /buildcache 2>/dev/null; ls -d /count"),
        "/count\n"
    );
    // `RUN true` changed nothing: no layer, an empty_layer history entry;
    // the cache RUN made one (control).
    let base = inspect(&st, "busybox")["RootFS"]["diff_ids"]
        .as_array()
        .unwrap()
        .len();
    let v = inspect(&st, "c2");
    assert_eq!(v["RootFS"]["diff_ids"].as_array().unwrap().len(), base + 1);
    let history = v["History"].as_array().unwrap();
    let last = history.last().unwrap();
    assert_eq!(last["created_by"], "RUN true");
    assert_eq!(last["empty_layer"], true);
    let cache_run = &history[history.len() - 2];
    assert!(cache_run.get("empty_layer").is_none(), "{cache_run}");
    // After `prune --build-cache` the cache directory starts empty again.
    st.run_ok(["prune", "--build-cache"]);
    build_ok(&st, &["-t", "c3", p(&ctx)]);
    assert_eq!(run(&st, "c3", "cat /count"), "1\n");
}

#[test]
fn build_sources_containerfile_on_stdin() {
    let st = busybox();
    let ctx = context(&st, "stdin", &[("note.txt", b"from the context\n")]);
    let mut child = st
        .hutch()
        .args(["build", "-t", "piped", "-f", "-", p(&ctx)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nCOPY note.txt /\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(run(&st, "piped", "cat /note.txt"), "from the context\n");
}

#[test]
fn build_sources_from_scratch_and_from_a_digest() {
    let st = busybox();
    let digest = inspect(&st, "busybox")["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let file = format!(
        "FROM busybox@{digest} AS tools\nRUN echo pinned > /pinned\n\
         FROM scratch\nCOPY --from=tools /bin/busybox /bin/busybox\n\
         COPY --from=tools /pinned /pinned\nCMD [\"/bin/busybox\", \"cat\", \"/pinned\"]\n"
    );
    let ctx = context(&st, "scratch", &[("Containerfile", file.as_bytes())]);
    build_ok(&st, &["--pull", "never", "-t", "tiny", p(&ctx)]);
    assert_eq!(
        st.run_ok(["run", "--rm", "--network", "none", "tiny"]),
        "pinned\n"
    );
    // scratch: the image has exactly the two COPY layers.
    let v = inspect(&st, "tiny");
    assert_eq!(v["RootFS"]["diff_ids"].as_array().unwrap().len(), 2, "{v}");
    // Control: a digest the store does not have is refused, naming it.
    let missing = format!("sha256:{}", "0".repeat(64));
    let ctx = context(
        &st,
        "missing",
        &[(
            "Containerfile",
            format!("FROM busybox@{missing}\n").as_bytes(),
        )],
    );
    let (ok, _, err) = build(&st, &["--pull", "never", p(&ctx)]);
    assert!(!ok && err.contains(&missing), "{err}");
}

#[test]
fn build_sources_run_binds_a_stage_read_only() {
    let st = busybox();
    let ctx = context(
        &st,
        "bind",
        &[
            ("ctx.txt", b"from the context\n"),
            (
                "Containerfile",
                b"FROM busybox AS data\nRUN mkdir /out && echo from the stage > /out/x\n\
                  FROM busybox\n\
                  RUN --mount=type=bind,from=data,source=/out,target=/in cp /in/x /copied && \
                      (touch /in/new 2>/dev/null && echo writable || echo read-only) > /mode\n\
                  RUN --mount=type=bind,target=/ctx cat /ctx/ctx.txt > /from-ctx\n",
            ),
        ],
    );
    build_ok(&st, &["-t", "bound", p(&ctx)]);
    assert_eq!(
        run(
            &st,
            "bound",
            "cat /copied /mode /from-ctx; ls -d /in /ctx 2>&1 | wc -l"
        ),
        "from the stage\nread-only\nfrom the context\n2\n"
    );
    // The mount points are not in the image (`ls` failed for both: two
    // lines of errors counted above; control: /copied exists).
    assert_eq!(
        run(&st, "bound", "ls -d /in /ctx 2>/dev/null; ls /copied"),
        "/copied\n"
    );
}

#[test]
fn build_sources_stage_symlinks_never_reach_the_host() {
    let st = busybox();
    // A stage whose /out points at the root: through it, a COPY --from or a
    // bind mount would name the host's files if hutch followed it.
    let ctx = context(
        &st,
        "evil",
        &[(
            "Containerfile",
            b"FROM busybox AS evil\nRUN ln -s / /out && ln -s /etc /etcl\n\
              FROM busybox\nCOPY --from=evil /out/etc/hostname /leak\n",
        )],
    );
    let before = images(&st);
    let (ok, _, err) = build(&st, &["-t", "leak", p(&ctx)]);
    assert!(!ok, "COPY --from went through the stage's symlink\n{err}");
    assert!(err.contains("/out/etc/hostname"), "{err}");
    assert_eq!(images(&st), before);
    let ctx = context(
        &st,
        "evil-bind",
        &[(
            "Containerfile",
            b"FROM busybox AS evil\nRUN ln -s /etc /etcl\n\
              FROM busybox\nRUN --mount=type=bind,from=evil,source=/etcl,target=/m cat /m/hostname\n",
        )],
    );
    let (ok, _, err) = build(&st, &[p(&ctx)]);
    assert!(!ok, "a bind mount's source went through a symlink\n{err}");
    assert!(err.contains("symlink"), "{err}");
    // Control: the symlink itself is copied as a symlink.
    let ctx = context(
        &st,
        "link",
        &[(
            "Containerfile",
            b"FROM busybox AS evil\nRUN ln -s / /out\nFROM busybox\nCOPY --from=evil /out /link\n",
        )],
    );
    build_ok(&st, &["-t", "link", p(&ctx)]);
    assert_eq!(run(&st, "link", "readlink /link"), "/\n");
}

#[test]
fn build_sources_secret_modes() {
    let st = busybox();
    let ctx = context(
        &st,
        "secret-mode",
        &[
            ("tok", b"t0ken\n"),
            (
                "Containerfile",
                b"FROM busybox\nUSER 1000\n\
                  RUN --mount=type=secret,id=tok,mode=0444 cat /run/secrets/tok > /tmp/seen\n\
                  RUN --mount=type=secret,id=tok (cat /run/secrets/tok || echo denied) > /tmp/plain; \
                      stat -c %a /run/secrets/tok >> /tmp/plain\n",
            ),
        ],
    );
    // The source file's own mode does not matter.
    let tok = ctx.join("tok");
    std::fs::set_permissions(&tok, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let secret = format!("id=tok,src={}", p(&tok));
    build_ok(&st, &["-t", "sm", "--secret", &secret, p(&ctx)]);
    assert_eq!(
        run(&st, "sm", "cat /tmp/seen /tmp/plain"),
        "t0ken\ndenied\n400\n"
    );
}
