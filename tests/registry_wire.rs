//! `hutch pull` over a bad wire: a real registry (Debian's
//! `docker-registry`, filled by `skopeo copy`) behind a proxy in the test
//! (tests/common/faulty_proxy.rs) that records every request and breaks
//! chosen answers: corrupted, truncated and dropped bodies, wrong headers,
//! oversized and unknown documents, error statuses, a failing token service,
//! a pull killed mid-layer. A failure must be exit status 125 with an error
//! that names the registry, the repository and the digest involved, and
//! must leave the store as it was; a passing fault must be survived by
//! retrying or resuming where the download broke off.

mod common;

use common::faulty_proxy::{Fault, FaultyProxy, Times};
use common::registry::{Registry, copy_with, registry, skopeo_inspect};
use common::{TestStore, describe, fixture};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The store listing without lock files: they persist by design (deleting
/// a lock file another process waits on would let two holders in).
fn listing(st: &TestStore) -> Vec<String> {
    st.listing()
        .into_iter()
        .filter(|l| !l.contains(" locks"))
        .collect()
}

/// `skopeo copy --preserve-digests SRC` into the registry as NAME (so the
/// layers keep their compression); returns the digest and the manifest
/// as the registry serves it.
fn copy_to(st: &TestStore, reg: &Registry, src: &str, name: &str) -> (String, serde_json::Value) {
    let digest = copy_with(st, reg, src, name, &["--preserve-digests"]);
    let dest = format!("docker://127.0.0.1:{}/{name}", reg.port);
    let manifest = serde_json::from_str(&skopeo_inspect(st, &dest, &["--raw"])).unwrap();
    (digest, manifest)
}

/// Digest, size and media type of the only layer of `manifest`.
fn only_layer(manifest: &serde_json::Value) -> (String, u64, String) {
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    (
        layers[0]["digest"].as_str().unwrap().to_owned(),
        layers[0]["size"].as_u64().unwrap(),
        layers[0]["mediaType"].as_str().unwrap().to_owned(),
    )
}

/// Run hutch with `args`; kill it and fail the test if it takes longer
/// than `limit` (so a hang fails instead of blocking the suite).
fn hutch_within(st: &TestStore, args: &[&str], limit: Duration) -> Output {
    let child = st
        .hutch()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_within(child, &format!("hutch {}", args.join(" ")), limit)
}

fn wait_within(mut child: Child, shown: &str, limit: Duration) -> Output {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_t.join().unwrap();
            panic!(
                "`{shown}` did not finish within {}s; stderr so far:\n{}",
                limit.as_secs(),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

const LIMIT: Duration = Duration::from_secs(180);

fn pull_ok(st: &TestStore, name: &str) -> String {
    let out = hutch_within(st, &["pull", "--tls-verify=false", name], LIMIT);
    assert!(out.status.success(), "pull {name}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// busybox-oci (one gzip layer) in a registry behind a proxy.
struct Wire {
    st: TestStore,
    proxy: FaultyProxy,
    _reg: Registry,
    repo: String,
    /// NAME:TAG through the proxy.
    name: String,
    digest: String,
    manifest: serde_json::Value,
    layer: String,
    layer_size: u64,
    config: String,
}

impl Wire {
    fn busybox() -> Wire {
        let st = TestStore::new();
        let reg = registry();
        let repo = "wire/busybox".to_owned();
        let src = format!("oci:{}:latest", fixture("busybox-oci").display());
        let (digest, manifest) = copy_to(&st, &reg, &src, &format!("{repo}:1.0"));
        let (layer, layer_size, _) = only_layer(&manifest);
        let config = manifest["config"]["digest"].as_str().unwrap().to_owned();
        let proxy = FaultyProxy::start(reg.port);
        let name = format!("{}/{repo}:1.0", proxy.addr());
        Wire {
            st,
            proxy,
            _reg: reg,
            repo,
            name,
            digest,
            manifest,
            layer,
            layer_size,
            config,
        }
    }

    /// The path part of a blob's URL.
    fn blob(&self, digest: &str) -> String {
        format!("/{}/blobs/{digest}", self.repo)
    }

    /// Pull `name` (with the faults set up): it must fail with 125, name
    /// the proxy's registry, the repository and each of `words` (case
    /// ignored), and leave the store and `hutch images` as they were.
    /// Returns stderr.
    fn pull_fails(&self, name: &str, words: &[&str], limit: Duration) -> String {
        let st = &self.st;
        st.run_ok(["images"]); // the store's skeleton exists from here on
        let before = listing(st);
        let images = st.run_ok(["images", "--format", "json"]);
        let out = hutch_within(st, &["pull", "--tls-verify=false", name], limit);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let log = self.proxy.log_text();
        eprintln!("pull {name}: {err}"); // shown with --nocapture
        assert_eq!(
            out.status.code(),
            Some(125),
            "{}\nproxy log:\n{log}",
            describe(&out)
        );
        assert!(
            err.contains(&self.proxy.addr()),
            "the error does not name the registry {}: {err}\nproxy log:\n{log}",
            self.proxy.addr()
        );
        assert!(
            err.contains(&self.repo),
            "the error does not name the repository {}: {err}",
            self.repo
        );
        let lower = err.to_lowercase();
        for w in words {
            assert!(
                lower.contains(&w.to_lowercase()),
                "the error does not say {w:?}: {err}\nproxy log:\n{log}"
            );
        }
        assert_eq!(
            listing(st),
            before,
            "the failed pull changed the store: {err}"
        );
        assert_eq!(
            st.run_ok(["images", "--format", "json"]),
            images,
            "the failed pull changed `hutch images`"
        );
        err
    }

    /// The image pulled runs.
    fn runs(&self, name: &str) {
        let out = self.st.run_offline(name, &["cat", "/etc/os-release"]);
        assert!(out.contains("ID=busybox-fixture"), "{out}");
    }
}

// ---------------------------------------------------------------- the proxy

/// A plain HTTP/1.1 GET (with `extra` header lines) to 127.0.0.1:`port`:
/// status, headers (lowercase names) and the body as far as it came.
fn http_get(port: u16, path: &str, extra: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all); // a dropped connection ends early
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    (status.parse().unwrap(), headers, all[end + 4..].to_vec())
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The proxy passes what it does not break, and breaks what it is told
/// to, exactly: the other tests rely on it.
#[test]
fn wire_proxy_passes_through_and_breaks_exactly_what_it_is_told() {
    let w = Wire::busybox();
    let (port, blob) = (w.proxy.port, format!("/v2{}", w.blob(&w.layer)));
    let (status, h, whole) = http_get(port, &blob, "");
    assert_eq!(status, 200);
    assert_eq!(whole.len() as u64, w.layer_size);
    assert_eq!(header(&h, "docker-content-digest"), Some(w.layer.as_str()));
    assert_eq!(w.proxy.bytes_sent(&blob), w.layer_size);
    // Range goes to the registry, which answers 206.
    let (status, h, tail) = http_get(port, &blob, "Range: bytes=1000-\r\n");
    assert_eq!(status, 206);
    assert_eq!(tail, whole[1000..]);
    assert_eq!(
        header(&h, "content-length"),
        Some((w.layer_size - 1000).to_string().as_str())
    );
    let log = w.proxy.requests_to(&blob);
    assert_eq!(log[1].range.as_deref(), Some("bytes=1000-"));
    assert_eq!(log[1].range_start(), Some(1000));
    assert_eq!(log[1].status, 206);
    // The manifest keeps its Content-Type and digest.
    let manifest = format!("/v2/{}/manifests/1.0", w.repo);
    let (status, h, _) = http_get(port, &manifest, &format!("Accept: {MANIFEST_TYPE}\r\n"));
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), Some(MANIFEST_TYPE));
    assert_eq!(header(&h, "docker-content-digest"), Some(w.digest.as_str()));
    // Each fault, once.
    let once = |f: Fault| w.proxy.fault(&blob, f, Times::First(1));
    once(Fault::Corrupt(5));
    let (_, _, body) = http_get(port, &blob, "");
    let diff: Vec<usize> = (0..body.len()).filter(|&i| body[i] != whole[i]).collect();
    assert_eq!((body.len(), diff), (whole.len(), vec![5]));
    once(Fault::Truncate(300));
    let (_, h, body) = http_get(port, &blob, "");
    assert_eq!(header(&h, "content-length"), Some("300"));
    assert_eq!(body, whole[..300]);
    once(Fault::DropAfter(4000));
    let (_, h, body) = http_get(port, &blob, "");
    assert_eq!(
        header(&h, "content-length"),
        Some(w.layer_size.to_string().as_str())
    );
    assert_eq!(body, whole[..4000]);
    once(Fault::Status(503));
    assert_eq!(http_get(port, &blob, "").0, 503);
    once(Fault::Unauthorized("Bearer realm=\"http://x/t\"".into()));
    let (status, h, _) = http_get(port, &blob, "");
    assert_eq!(
        (status, header(&h, "www-authenticate")),
        (401, Some("Bearer realm=\"http://x/t\""))
    );
    once(Fault::ContentType("text/html".into()));
    let (_, h, body) = http_get(port, &blob, "");
    assert_eq!(header(&h, "content-type"), Some("text/html"));
    assert_eq!(body, whole);
    once(Fault::Body {
        content_type: "application/x-test".into(),
        body: b"{}".to_vec(),
    });
    let (_, h, body) = http_get(port, &blob, "");
    assert_eq!(body, b"{}");
    assert_eq!(header(&h, "content-type"), Some("application/x-test"));
    assert_eq!(
        header(&h, "docker-content-digest"),
        Some("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
    );
    // Used up: the next answer is whole again.
    assert_eq!(http_get(port, &blob, "").2, whole);
    // Stall: holds the rest back until released.
    w.proxy.clear_log();
    once(Fault::Stall(2000));
    let getter = std::thread::spawn(move || http_get(port, &blob, "").2);
    assert!(w.proxy.wait_sent(&w.layer, 2000, LIMIT));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(w.proxy.bytes_sent(&w.layer), 2000);
    w.proxy.release();
    assert_eq!(getter.join().unwrap(), whole);
    // A TLS probe is closed unanswered and not recorded.
    let before = w.proxy.requests().len();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(&[0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0]).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert_eq!(w.proxy.requests().len(), before);
}

// ---------------------------------------------------------------- formats

#[test]
fn wire_pulls_gzip_zstd_and_uncompressed_layers() {
    let st = TestStore::new();
    let reg = registry();
    let proxy = FaultyProxy::start(reg.port);
    let mut kinds = Vec::new();
    for (fx, want_type) in [
        ("busybox-oci", "application/vnd.oci.image.layer.v1.tar+gzip"),
        (
            "busybox-zstd-oci",
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        (
            "busybox-uncompressed-oci",
            "application/vnd.oci.image.layer.v1.tar",
        ),
    ] {
        let src = format!("oci:{}:latest", fixture(fx).display());
        let repo = format!("wire/{fx}");
        let (digest, manifest) = copy_to(&st, &reg, &src, &format!("{repo}:1"));
        // skopeo kept the fixture's bytes: same manifest, same compression.
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture(fx).join("index.json")).unwrap())
                .unwrap();
        assert_eq!(
            index["manifests"][0]["digest"].as_str().unwrap(),
            digest,
            "{fx}"
        );
        let (layer, size, media_type) = only_layer(&manifest);
        assert_eq!(media_type, want_type, "{fx}: {manifest}");
        kinds.push(media_type);

        let name = format!("{}/{repo}:1", proxy.addr());
        let out = pull_ok(&st, &name);
        assert_eq!(out, format!("Pulled {name} ({digest})\n"), "{fx}");
        // It came over the wire, whole.
        assert_eq!(
            proxy.bytes_sent(&format!("/{repo}/blobs/{layer}")),
            size,
            "{fx}\n{}",
            proxy.log_text()
        );
        let inspect: serde_json::Value =
            serde_json::from_str(&st.run_ok(["inspect", &name])).unwrap();
        assert_eq!(inspect[0]["Digest"].as_str(), Some(digest.as_str()), "{fx}");
        let out = st.run_offline(&name, &["busybox", "cat", "/etc/os-release"]);
        assert!(out.contains("ID=busybox-fixture"), "{fx}: {out}");
    }
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    let out = st.hutch().args(["check", "--store"]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
}

// ---------------------------------------------------------------- failures

#[test]
fn wire_corrupted_layer_blob_is_refused() {
    let w = Wire::busybox();
    w.proxy
        .fault(&w.blob(&w.layer), Fault::Corrupt(1000), Times::Always);
    let err = w.pull_fails(&w.name, &[&w.layer], LIMIT);
    let lower = err.to_lowercase();
    assert!(
        lower.contains("digest") || lower.contains("corrupt") || lower.contains("mismatch"),
        "{err}"
    );
    assert!(!w.proxy.requests_to(&w.blob(&w.layer)).is_empty());
}

#[test]
fn wire_corrupted_uncompressed_layer_is_a_hash_mismatch() {
    // No compression to trip over first: the corruption can only be seen
    // by hashing.
    let st = TestStore::new();
    let reg = registry();
    let src = format!(
        "oci:{}:latest",
        fixture("busybox-uncompressed-oci").display()
    );
    let (_, manifest) = copy_to(&st, &reg, &src, "wire/plain:1");
    let (layer, size, _) = only_layer(&manifest);
    let proxy = FaultyProxy::start(reg.port);
    proxy.fault(
        &format!("/wire/plain/blobs/{layer}"),
        Fault::Corrupt(size / 2),
        Times::Always,
    );
    st.run_ok(["images"]);
    let before = listing(&st);
    let name = format!("{}/wire/plain:1", proxy.addr());
    let out = hutch_within(&st, &["pull", "--tls-verify=false", &name], LIMIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    for w in [proxy.addr().as_str(), "wire/plain", &layer] {
        assert!(err.contains(w), "no {w:?} in: {err}");
    }
    assert!(err.contains("mismatch"), "{err}");
    assert_eq!(listing(&st), before);
}

#[test]
fn wire_corrupted_config_blob_is_refused() {
    let w = Wire::busybox();
    w.proxy
        .fault(&w.blob(&w.config), Fault::Corrupt(10), Times::Always);
    w.pull_fails(&w.name, &["digest", &w.config], LIMIT);
}

#[test]
fn wire_corrupted_manifest_by_digest_is_refused() {
    let w = Wire::busybox();
    w.proxy
        .fault("/manifests/", Fault::Corrupt(10), Times::Always);
    let by_digest = format!("{}/{}@{}", w.proxy.addr(), w.repo, w.digest);
    w.pull_fails(&by_digest, &["digest", &w.digest], LIMIT);
    assert!(
        !w.proxy.requests_to("/manifests/").is_empty(),
        "{}",
        w.proxy.log_text()
    );
}

#[test]
fn wire_truncated_blob_with_a_short_content_length_is_refused() {
    let w = Wire::busybox();
    w.proxy.fault(
        &w.blob(&w.layer),
        Fault::Truncate(w.layer_size / 2),
        Times::Always,
    );
    w.pull_fails(&w.name, &[&w.layer], LIMIT);
    let gets = w.proxy.requests_to(&w.blob(&w.layer));
    assert!(!gets.is_empty(), "{}", w.proxy.log_text());
}

#[test]
fn wire_connection_dropped_mid_layer_every_time_gives_up() {
    let w = Wire::busybox();
    // Half the layer, then every resume is cut before its first byte: no
    // progress, so hutch must give up (a connection that breaks but makes
    // progress each time is resumed to the end, as the test above shows).
    w.proxy.fault(
        &w.blob(&w.layer),
        Fault::DropAfter(w.layer_size / 2),
        Times::First(1),
    );
    w.proxy
        .fault(&w.blob(&w.layer), Fault::DropAfter(0), Times::Always);
    w.pull_fails(
        &w.name,
        &[&w.layer, "broke at byte"],
        Duration::from_secs(60),
    );
    // It resumed from where it was before giving up.
    let gets = w.proxy.requests_to(&w.blob(&w.layer));
    assert!(gets.len() > 2, "{}", w.proxy.log_text());
    assert!(
        gets[1..]
            .iter()
            .all(|r| r.range_start() == Some(w.layer_size / 2)),
        "{}",
        w.proxy.log_text()
    );
}

#[test]
fn wire_manifest_served_as_html_is_refused() {
    let w = Wire::busybox();
    w.proxy.fault(
        "/manifests/",
        Fault::ContentType("text/html; charset=utf-8".into()),
        Times::Always,
    );
    w.pull_fails(&w.name, &["Content-Type", "text/html"], LIMIT);
}

#[test]
fn wire_manifest_over_8_mib_is_refused() {
    let w = Wire::busybox();
    let mut doc = w.manifest.clone();
    doc["annotations"] = serde_json::json!({ "pad": "x".repeat(9 << 20) });
    let body = serde_json::to_vec(&doc).unwrap();
    assert!(body.len() > 9 << 20);
    w.proxy.fault(
        "/manifests/",
        Fault::Body {
            content_type: MANIFEST_TYPE.into(),
            body,
        },
        Times::Always,
    );
    w.pull_fails(&w.name, &["MiB"], LIMIT);
}

#[test]
fn wire_manifest_of_an_unknown_media_type_is_refused() {
    let w = Wire::busybox();
    let unknown = "application/vnd.example.unknown+json";
    let mut doc = w.manifest.clone();
    doc["mediaType"] = unknown.into();
    w.proxy.fault(
        "/manifests/",
        Fault::Body {
            content_type: unknown.into(),
            body: serde_json::to_vec(&doc).unwrap(),
        },
        Times::Always,
    );
    w.pull_fails(&w.name, &["media type", unknown], LIMIT);
}

/// A token service that answers 500 to everything; returns its port and
/// the number of requests it got.
fn failing_token_service() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => req.extend_from_slice(&buf[..k]),
                }
            }
            let body = "token service broken";
            let _ = write!(
                s,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, count)
}

#[test]
fn wire_failing_token_service_is_refused() {
    let w = Wire::busybox();
    let (tport, asked) = failing_token_service();
    w.proxy.fault_methods(
        "/v2/",
        &["GET", "HEAD"],
        Fault::Unauthorized(format!(
            "Bearer realm=\"http://127.0.0.1:{tport}/token\",service=\"x\""
        )),
        Times::Always,
    );
    w.pull_fails(&w.name, &["token", "500"], LIMIT);
    assert!(asked.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

// ---------------------------------------------------------------- recoveries

#[test]
fn wire_connection_dropped_mid_layer_once_resumes_with_range() {
    let w = Wire::busybox();
    let blob = w.blob(&w.layer);
    w.proxy
        .fault(&blob, Fault::DropAfter(w.layer_size / 2), Times::First(1));
    let out = pull_ok(&w.st, &w.name);
    assert_eq!(out, format!("Pulled {} ({})\n", w.name, w.digest));
    let log = w.proxy.log_text();
    let gets: Vec<_> = w
        .proxy
        .requests_to(&blob)
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert!(gets.len() >= 2, "no second GET of the layer:\n{log}");
    assert_eq!(gets[0].fault, Some(Fault::DropAfter(w.layer_size / 2)));
    let n = gets[1].range_start();
    assert!(
        n.is_some_and(|n| n > 0 && n <= w.layer_size / 2),
        "the second GET of the layer does not resume with Range: bytes=N- (N > 0):\n{log}"
    );
    assert_eq!(gets[1].status, 206, "{log}");
    // Resumed, not restarted: the blob did not cross the wire twice.
    assert!(
        w.proxy.bytes_sent(&blob) < w.layer_size * 3 / 2,
        "{} bytes of a {}-byte layer sent:\n{log}",
        w.proxy.bytes_sent(&blob),
        w.layer_size
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&w.st.run_ok(["inspect", &w.name])).unwrap();
    assert_eq!(inspect[0]["Digest"].as_str(), Some(w.digest.as_str()));
    let out = w.st.hutch().args(["check", "--store"]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    w.runs(&w.name);
}

#[test]
fn wire_manifest_503_once_is_retried() {
    let w = Wire::busybox();
    w.proxy
        .fault("/manifests/", Fault::Status(503), Times::First(1));
    let out = pull_ok(&w.st, &w.name);
    assert_eq!(out, format!("Pulled {} ({})\n", w.name, w.digest));
    let manifests = w.proxy.requests_to("/manifests/");
    assert!(manifests.len() >= 2, "{}", w.proxy.log_text());
    assert_eq!(manifests[0].status, 503);
    assert_eq!(manifests[1].status, 200, "{}", w.proxy.log_text());
    w.runs(&w.name);
}

// ---------------------------------------------------------------- SIGKILL

/// Total size of the regular files under `dir`.
fn bytes_under(dir: &std::path::Path) -> u64 {
    common::tree_listing(dir)
        .iter()
        .filter(|l| l.starts_with("f "))
        .filter_map(|l| l.split(' ').nth(2)?.parse::<u64>().ok())
        .sum()
}

#[test]
fn wire_pull_killed_mid_layer_resumes_the_partial_download() {
    let st = TestStore::new();
    let reg = registry();
    let src = format!("oci-archive:{}", fixture("debian-oci.tar").display());
    let (digest, manifest) = copy_to(&st, &reg, &src, "wire/debian:1");
    let (layer, size, _) = only_layer(&manifest);
    const STALL: u64 = 8 << 20;
    assert!(size > 2 * STALL, "the debian layer is only {size} bytes");
    let proxy = FaultyProxy::start(reg.port);
    let blob = format!("/wire/debian/blobs/{layer}");
    let name = format!("{}/wire/debian:1", proxy.addr());
    st.run_ok(["images"]);
    let empty = bytes_under(st.root());

    proxy.fault(&blob, Fault::Stall(STALL), Times::First(1));
    let child = st
        .hutch()
        .args(["pull", "--tls-verify=false", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut child = child;
    let sent = proxy.wait_sent(&blob, STALL, Duration::from_secs(120));
    if !sent {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "the proxy never sent {STALL} bytes of the layer:\n{}\n{}",
            describe(&out),
            proxy.log_text()
        );
    }
    // Let hutch write what it has received (its store grows, then stops
    // growing while the proxy holds the rest back).
    let t0 = Instant::now();
    let mut last = bytes_under(st.root());
    let mut stable = 0;
    while stable < 5 && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        let now = bytes_under(st.root());
        if now == last && now > empty {
            stable += 1;
        } else {
            stable = 0;
        }
        last = now;
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        status.code().is_none(),
        "hutch (pid {pid}) ended before the kill: {status}"
    );
    proxy.release();
    proxy.clear_faults();
    let first_pull = proxy.requests().len();

    // The same pull again, without faults.
    let out = pull_ok(&st, &name);
    assert_eq!(out, format!("Pulled {name} ({digest})\n"));
    let rows: serde_json::Value =
        serde_json::from_str(&st.run_ok(["images", "--format", "json"])).unwrap();
    let listed = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["digest"].as_str() == Some(digest.as_str()))
        .count();
    assert_eq!(listed, 1, "{rows}");
    // Nothing of the killed pull is left behind: its half download became
    // the blob, its half-unpacked layer was swept.
    let tmp: Vec<_> = std::fs::read_dir(st.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(tmp.is_empty(), "left in tmp/: {tmp:?}");
    let out = st.hutch().args(["check", "--store"]).output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let out = st.run_offline(&name, &["cat", "/etc/debian_version"]);
    assert!(!out.trim().is_empty());
    // It reused what the killed pull had downloaded.
    let log = proxy.log_text();
    let again: Vec<_> = proxy.requests()[first_pull..]
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains(&blob))
        .cloned()
        .collect();
    assert!(
        !again.is_empty(),
        "the second pull never asked for the layer:\n{log}"
    );
    let n = again[0].range_start();
    assert!(
        n.is_some_and(|n| n > 0 && n <= STALL),
        "the second pull did not resume the partial download with Range: bytes=N- (N > 0):\n{log}"
    );
    assert_eq!(again[0].status, 206, "{log}");
}

#[test]
fn wire_a_download_killed_after_its_last_byte_is_finished_by_the_next_pull() {
    let w = Wire::busybox();
    // What a hutch killed between the last byte and the blob's rename
    // leaves: the whole blob under its download name.
    let hex = w.layer.strip_prefix("sha256:").unwrap();
    let blob = std::fs::read(fixture("busybox-oci").join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(blob.len() as u64, w.layer_size);
    w.st.run_ok(["images"]); // the store's skeleton
    std::fs::write(w.st.root().join(format!("tmp/download-{hex}")), &blob).unwrap();
    assert_eq!(
        pull_ok(&w.st, &w.name),
        format!("Pulled {} ({})\n", w.name, w.digest)
    );
    w.runs(&w.name);
    // It asked only for what comes after the end (the registry answers
    // 416), or nothing at all.
    for r in w.proxy.requests_to(&w.blob(&w.layer)) {
        assert_eq!(
            r.range_start(),
            Some(w.layer_size),
            "{}",
            w.proxy.log_text()
        );
    }
    assert!(!w.st.root().join(format!("tmp/download-{hex}")).exists());
}

#[test]
fn wire_a_stalled_layer_is_resumed_after_the_body_timeout() {
    let w = Wire::busybox();
    let stalled_at = w.layer_size / 3;
    w.proxy
        .fault(&w.blob(&w.layer), Fault::Stall(stalled_at), Times::First(1));
    w.st.run_ok(["images"]);
    let child =
        w.st.hutch()
            .env("HUTCH_BODY_TIMEOUT_SECS", "2")
            .args(["pull", "--tls-verify=false", &w.name])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let out = wait_within(child, "pull of a stalled layer", LIMIT);
    assert!(
        out.status.success(),
        "{}\n{}",
        describe(&out),
        w.proxy.log_text()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Pulled {} ({})\n", w.name, w.digest)
    );
    // The second request for the layer continued where the stall was.
    let gets = w.proxy.requests_to(&w.blob(&w.layer));
    assert_eq!(gets.len(), 2, "{}", w.proxy.log_text());
    let start = gets[1].range_start().unwrap_or(0);
    assert!(
        start > 0 && start <= stalled_at,
        "resumed at {start}, stalled at {stalled_at}\n{}",
        w.proxy.log_text()
    );
    w.runs(&w.name);
}
