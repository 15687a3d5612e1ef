//! `hutch build` in the world: a RUN step that downloads from the network,
//! a built image pushed to a registry and run by Podman, and a real
//! two-stage Containerfile that installs a compiler with apt-get from a
//! Debian repository (a fixture, served on the host's loopback), compiles a
//! C program and ships it in a busybox image.

mod common;

use common::registry::registry;
use common::{TestStore, describe, fixture, podman};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What [`http_server`] serves at a path (without its leading `/`).
type Lookup = dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync;

/// A static HTTP/1.1 server on 127.0.0.1 (keep-alive, GET and HEAD, 404
/// for what `lookup` does not give); it records every path asked for. It
/// serves until the test process exits.
struct HttpServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn http_server(lookup: impl Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static) -> HttpServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let lookup: Arc<Lookup> = Arc::new(lookup);
    let log = requests.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (lookup, log) = (lookup.clone(), log.clone());
            std::thread::spawn(move || {
                let _ = serve_connection(conn, &*lookup, &log);
            });
        }
    });
    HttpServer { port, requests }
}

/// The files under `dir`, by their path relative to it.
fn serve_dir(dir: PathBuf) -> HttpServer {
    http_server(move |path| {
        if path.split('/').any(|s| s == "..") {
            return None;
        }
        std::fs::read(dir.join(path)).ok()
    })
}

fn serve_connection(
    conn: TcpStream,
    lookup: &Lookup,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or("").to_owned();
        let target = words.next().unwrap_or("").to_owned();
        let mut close = words.next() != Some("HTTP/1.1");
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("connection")
                && v.trim().eq_ignore_ascii_case("close")
            {
                close = true;
            }
        }
        let path = url_path(&target);
        log.lock().unwrap().push(path.clone());
        let found = match method.as_str() {
            "GET" | "HEAD" => lookup(&path),
            _ => None,
        };
        let (status, body) = match found {
            Some(b) => ("200 OK", b),
            None => ("404 Not Found", b"not found\n".to_vec()),
        };
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        )?;
        if method != "HEAD" {
            out.write_all(&body)?;
        }
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// A request target as a relative path: no query, percent-decoded (apt
/// asks for `cpp_4%253a12...deb` for the file `cpp_4%3a12...deb`), no
/// empty or `.` segments.
fn url_path(target: &str) -> String {
    let raw = target.split('?').next().unwrap_or("").as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = raw
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (raw[i], hex) {
            (b'%', Some(b)) => {
                bytes.push(b);
                i += 3;
            }
            (c, _) => {
                bytes.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes)
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// A build context in the store's scratch space: `files` (name, content).
fn context(st: &TestStore, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = st.tmp().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (f, content) in files {
        std::fs::write(dir.join(f), content).unwrap();
    }
    dir
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

const HOST_LOOPBACK: &str = "slirp:allow_host_loopback=true";

#[test]
fn build_world_run_downloads_from_the_host_over_slirp() {
    let st = common::busybox();
    let body = "a body only this server knows: 7f3c9e\n";
    let server = http_server(move |p| (p == "x").then(|| body.as_bytes().to_vec()));
    let ctx = context(
        &st,
        "ctx",
        &[(
            "Containerfile",
            &format!(
                "FROM busybox\nRUN wget -O /got http://10.0.2.2:{}/x\n",
                server.port
            ),
        )],
    );

    // Control first, on the same Containerfile: without a network the RUN
    // cannot reach the server, the build fails and tags nothing.
    let (code, stderr) = st.run_fail([
        "build",
        "--network",
        "none",
        "-t",
        "got:none",
        path_arg(&ctx),
    ]);
    assert!(
        stderr.contains("wget: can't connect"),
        "wget's error is shown: {stderr}"
    );
    // The error names the step and keeps wget's status, as Podman does.
    assert!(
        stderr.contains("Containerfile:2: RUN wget") && stderr.contains("status 1"),
        "{stderr}"
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    let (_, out) = st.run(["inspect", "got:none"]);
    assert!(!out.status.success(), "a failed build tags nothing");

    let id = st.run_ok([
        "build",
        "--network",
        HOST_LOOPBACK,
        "-t",
        "got:net",
        path_arg(&ctx),
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "the image id on stdout: {id:?}");
    assert_eq!(server.requests(), vec!["x".to_string()]);
    assert_eq!(st.run_ok(["run", "--rm", "got:net", "cat", "/got"]), body);
    assert_eq!(st.run_ok(["run", "--rm", id, "cat", "/got"]), body);

    // Control again, with the step's cache out of the way: the same build
    // without a network still fails.
    let (_, stderr) = st.run_fail([
        "build",
        "--no-cache",
        "--network",
        "none",
        "-t",
        "got:none",
        path_arg(&ctx),
    ]);
    assert!(stderr.contains("wget"), "{stderr}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn build_world_pushed_image_runs_in_podman() {
    let st = common::busybox();
    let reg = registry();
    let ctx = context(
        &st,
        "ctx",
        &[
            ("greeting.txt", "hello from the build context\n"),
            (
                "Containerfile",
                "FROM busybox\n\
                 LABEL org.example.built-by=hutch\n\
                 WORKDIR /app\n\
                 COPY greeting.txt ./\n\
                 RUN echo \"made by RUN in $(pwd)\" > built.txt && cat greeting.txt >> built.txt\n\
                 ENV WHO=podman\n\
                 CMD [\"sh\", \"-c\", \"cat /app/built.txt; echo cmd ran for $WHO\"]\n",
            ),
        ],
    );
    st.run_ok(["build", "-q", "-t", "world/app:v1", path_arg(&ctx)]);
    let expected = "made by RUN in /app\nhello from the build context\ncmd ran for podman\n";
    assert_eq!(st.run_offline("world/app:v1", &[]), expected);

    let dest = format!("127.0.0.1:{}/world/app:v1", reg.port);
    let digest = st.run_ok(["push", "-q", "--tls-verify=false", "world/app:v1", &dest]);
    let digest = digest.trim();
    assert!(digest.starts_with("sha256:"), "{digest:?}");

    let pdir = st.tmp().join("podman");
    let podman_ok = |args: &[&str]| {
        let out = podman(&pdir).args(args).output().unwrap();
        assert!(out.status.success(), "podman {args:?}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    podman_ok(&["pull", "-q", "--tls-verify=false", &dest]);
    assert_eq!(
        podman_ok(&["image", "inspect", "--format", "{{.Digest}}", &dest]).trim(),
        digest
    );
    // The image's own CMD, environment and working directory, in Podman.
    assert_eq!(
        podman_ok(&["run", "--rm", "--network", "none", &dest]),
        expected
    );
    assert_eq!(
        podman_ok(&["run", "--rm", "--network", "none", &dest, "pwd"]),
        "/app\n"
    );
    assert_eq!(
        podman_ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            &dest,
            "cat",
            "greeting.txt"
        ]),
        "hello from the build context\n"
    );
    assert_eq!(
        podman_ok(&[
            "image",
            "inspect",
            "--format",
            "{{index .Labels \"org.example.built-by\"}}",
            &dest
        ])
        .trim(),
        "hutch"
    );
    // The tree the build made, nothing more in /app.
    let listing = podman_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &dest,
        "sh",
        "-c",
        "ls /app",
    ]);
    assert_eq!(listing, "built.txt\ngreeting.txt\n");
    let _ = podman(&pdir)
        .args(["unshare", "rm", "-rf"])
        .arg(&pdir)
        .status();
}

const HELLO_C: &str = r#"#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    size_t total = 0;
    for (int i = 1; i < argc; i++)
        total += strlen(argv[i]);
    printf("hello from C: %d args, %zu bytes\n", argc - 1, total);
    return 0;
}
"#;

#[test]
fn build_world_debian_builder_compiles_for_a_busybox_image() {
    let st = common::busybox();
    st.run_ok(["load", "-q", path_arg(&fixture("debian-oci.tar"))]);
    let server = serve_dir(fixture("debian-apt-repo"));
    let ctx = context(
        &st,
        "ctx",
        &[
            ("hello.c", HELLO_C),
            (
                "Containerfile",
                "FROM docker.io/library/debian:bookworm AS builder\n\
                 ARG REPO\n\
                 RUN echo \"deb [trusted=yes] $REPO ./\" > /etc/apt/sources.list \\\n\
                 \x20&& apt-get update \\\n\
                 \x20&& apt-get install -y --no-install-recommends gcc libc6-dev \\\n\
                 \x20&& rm -rf /var/lib/apt/lists/*\n\
                 WORKDIR /src\n\
                 COPY hello.c .\n\
                 RUN gcc -static -O2 -Wall -o hello hello.c && ./hello check\n\
                 \n\
                 FROM busybox\n\
                 COPY --from=builder /src/hello /usr/local/bin/hello\n\
                 RUN hello built in the final stage\n\
                 CMD [\"hello\", \"from\", \"cmd\"]\n",
            ),
        ],
    );
    let repo = format!("REPO=http://10.0.2.2:{}/", server.port);
    let (shown, out) = st.run([
        "build",
        "--network",
        HOST_LOOPBACK,
        "--build-arg",
        &repo,
        "-t",
        "hello:static",
        path_arg(&ctx),
    ]);
    assert!(out.status.success(), "`{shown}`: {}", describe(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("hello from C: 1 args, 5 bytes"), "{log}");
    assert!(log.contains("hello from C: 5 args, 20 bytes"), "{log}");

    // apt took the index and the compiler from the local repository.
    let asked = server.requests();
    assert!(asked.iter().any(|p| p == "Packages"), "{asked:?}");
    for deb in ["gcc-12_", "libc6-dev_", "binutils_"] {
        assert!(
            asked
                .iter()
                .any(|p| p.starts_with(deb) && p.ends_with(".deb")),
            "{deb} not fetched: {asked:?}"
        );
    }

    // The final image: busybox with the binary, its CMD, and no libc (the
    // binary runs because it is static).
    assert_eq!(
        st.run_offline("hello:static", &[]),
        "hello from C: 2 args, 7 bytes\n"
    );
    assert_eq!(
        st.run_offline("hello:static", &["hello", "a", "bc"]),
        "hello from C: 2 args, 3 bytes\n"
    );
    assert_eq!(
        st.run_offline(
            "hello:static",
            &[
                "sh",
                "-c",
                "grep ^ID= /etc/os-release; ls /lib64 /usr/lib/x86_64-linux-gnu /usr/bin/gcc 2>&1 | wc -l; \
                 ls /usr/local/bin"
            ]
        ),
        "ID=busybox-fixture\n3\nhello\n"
    );
    // Control: the builder stage alone is the Debian image with gcc and the
    // C library the final stage lacks.
    st.run_ok([
        "build",
        "-q",
        "--network",
        HOST_LOOPBACK,
        "--build-arg",
        &repo,
        "--target",
        "builder",
        "-t",
        "hello:builder",
        path_arg(&ctx),
    ]);
    let facts = st.run_offline(
        "hello:builder",
        &[
            "sh",
            "-c",
            "grep ^ID= /etc/os-release; gcc --version | head -n1; test -f /usr/lib/x86_64-linux-gnu/libc.a && echo libc.a; ./hello x",
        ],
    );
    assert!(facts.starts_with("ID=debian\ngcc (Debian 12"), "{facts}");
    assert!(
        facts.ends_with("libc.a\nhello from C: 1 args, 1 bytes\n"),
        "{facts}"
    );
}
