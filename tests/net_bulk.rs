//! `--network slirp` under load (issue 5): 1 GiB each way with the sha256
//! compared on both ends, and 500 TCP connections open at the same time.
//!
//! Traffic only goes to the host's 127.0.0.1 (the container reaches it as
//! 10.0.2.2 with a profile that sets `allow_host_loopback`) or to the
//! container through a `-p 127.0.0.1:...` port forward.
//!
//! Every wait has a generous deadline so that a hang in the stack fails the
//! test with what was seen so far instead of blocking the suite; none of
//! them is a performance threshold.

mod common;

use common::{TestStore, describe};
use sha2::{Digest, Sha256};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

/// Bytes sent each way.
const GIB: u64 = 1 << 30;
/// Connections held open at once.
const CONNS: usize = 500;
/// How long one `hutch run` may take before the test calls it a hang (a
/// run takes seconds; two hung tests at a time must still end well within
/// tests/run.sh's 900 s per test executable).
const RUN_DEADLINE: Duration = Duration::from_secs(240);
/// How long a socket may wait for the other end before the test calls it a
/// hang.
const IO_DEADLINE: Duration = Duration::from_secs(120);

/// The two 500-connection tests hold 500 sockets each in this process: one
/// at a time, so that together they stay well under the usual soft
/// RLIMIT_NOFILE of 1024.
static CROWD_LOCK: Mutex<()> = Mutex::new(());

fn crowd_lock() -> MutexGuard<'static, ()> {
    CROWD_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

use common::busybox_with_hostlo_profile as busybox;

/// A token unique to one test run, passed into the container as
/// `HUTCH_BULK_TOKEN` so that leftover processes can be found.
fn token(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// `hutch run --rm -e HUTCH_BULK_TOKEN=<token> NET... --tmpfs /tmp busybox
/// sh -c SCRIPT`, started with stdin /dev/null, stdout and stderr captured.
fn busybox_sh(st: &TestStore, token: &str, net: &[&str], script: &str) -> Child {
    st.hutch()
        .args(["run", "--rm", "-e"])
        .arg(format!("HUTCH_BULK_TOKEN={token}"))
        .args(net)
        .args(["--tmpfs", "/tmp", "busybox", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for `child` (stdout and stderr piped) and collect its output; kill
/// it and panic if it runs past [`RUN_DEADLINE`].
fn wait_output(child: Child, what: &str) -> Output {
    wait_output_or(child, what, String::new)
}

/// [`wait_output`], with `progress()` in the message of a hang.
fn wait_output_or(mut child: Child, what: &str, progress: impl Fn() -> String) -> Output {
    fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    }
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let status = child.wait().unwrap();
            let output = Output {
                status,
                stdout: out.join().unwrap(),
                stderr: err.join().unwrap(),
            };
            panic!(
                "{what}: hutch still running after {RUN_DEADLINE:?}, killed; {}\n{}",
                progress(),
                describe(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The run ended cleanly: exit 0, nothing on stderr.
fn assert_clean(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: hutch failed\n{}",
        describe(out)
    );
    assert!(
        out.stderr.is_empty(),
        "{what}: hutch wrote to stderr\n{}",
        describe(out)
    );
}

/// Processes of this user that belong to the run: hutch processes with this
/// store's `HUTCH_ROOT`, container processes with the token. Processes whose
/// environment cannot be read are skipped.
fn processes_of(st: &TestStore, token: &str) -> Vec<String> {
    let root = format!("HUTCH_ROOT={}", st.root().display());
    let tok = format!("HUTCH_BULK_TOKEN={token}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let ours = env
            .split(|&b| b == 0)
            .any(|kv| kv == root.as_bytes() || kv == tok.as_bytes());
        if ours {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// No process of the run is left once hutch has exited (a short grace for
/// processes that are being reaped).
fn assert_nothing_left(st: &TestStore, token: &str) {
    let t0 = Instant::now();
    loop {
        let left = processes_of(st, token);
        if left.is_empty() {
            return;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            panic!(
                "processes left behind after hutch exited:\n{}",
                left.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Accept one connection on a non-blocking `listener`, or `None` after
/// `deadline`.
fn accept_until(listener: &TcpListener, deadline: Instant) -> Option<TcpStream> {
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return Some(s);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), fast enough not to be
/// the bottleneck.
struct Prng(u64);

impl Prng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `key=value` fields of the last line of `stdout` that starts with `tag`.
fn fields<'a>(stdout: &'a str, tag: &str) -> Vec<(&'a str, &'a str)> {
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with(tag))
        .unwrap_or_else(|| panic!("no line starting with {tag:?} in:\n{stdout}"));
    line[tag.len()..]
        .split_whitespace()
        .map(|f| f.split_once('=').unwrap_or((f, "")))
        .collect()
}

fn field<'a>(fields: &[(&'a str, &'a str)], key: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no field {key} in {fields:?}"))
}

/// What the host server saw of one upload.
struct Received {
    bytes: u64,
    sha256: String,
}

#[test]
fn one_gib_from_the_container_to_the_host() {
    let st = busybox();
    let tok = token("upload");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = (|| -> Result<Received, String> {
            let mut s = accept_until(&listener, Instant::now() + RUN_DEADLINE)
                .ok_or("no connection from the container")?;
            s.set_read_timeout(Some(IO_DEADLINE))
                .map_err(|e| e.to_string())?;
            let mut h = Sha256::new();
            let mut bytes = 0u64;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        h.update(&buf[..n]);
                        bytes += n as u64;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read after {bytes} bytes: {e}")),
                }
            }
            let sha256 = hex::encode(h.finalize());
            // The answer travels back after the container's half-close.
            writeln!(s, "host-got bytes={bytes} sha={sha256}")
                .map_err(|e| format!("reply: {e}"))?;
            s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
            Ok(Received { bytes, sha256 })
        })();
        let _ = tx.send(r);
    });
    // The container hashes and counts exactly what goes into nc, through
    // two fifos on a tmpfs (nothing of the 1 GiB touches a disk).
    let script = format!(
        "set -o pipefail
         mkfifo /tmp/h /tmp/c
         sha256sum < /tmp/h > /tmp/h.out &
         wc -c < /tmp/c > /tmp/c.out &
         head -c {GIB} /dev/urandom | tee /tmp/h /tmp/c | nc 10.0.2.2 {port} > /tmp/reply
         rc=$?
         wait
         cat /tmp/reply
         echo \"ctr-sent rc=$rc bytes=$(cat /tmp/c.out) sha=$(cut -d' ' -f1 /tmp/h.out)\""
    );
    let child = busybox_sh(&st, &tok, &["--profile", "hostlo"], &script);
    let out = wait_output(child, "upload");
    let server = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the host server did not finish\n{}", describe(&out)));
    let got = server.unwrap_or_else(|e| panic!("host server: {e}\n{}", describe(&out)));
    assert_clean(&out, "upload");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sent = fields(&stdout, "ctr-sent ");
    assert_eq!(field(&sent, "rc"), "0", "the pipeline failed\n{stdout}");
    assert_eq!(
        field(&sent, "bytes"),
        GIB.to_string(),
        "container sent\n{stdout}"
    );
    assert_eq!(field(&sent, "sha").len(), 64, "container digest\n{stdout}");
    assert_eq!(got.bytes, GIB, "bytes the host received");
    assert_eq!(
        got.sha256,
        field(&sent, "sha"),
        "sha256 of what the host received vs what the container sent"
    );
    // And the host's reply, sent after the container's FIN, came back whole.
    let reply = fields(&stdout, "host-got ");
    assert_eq!(field(&reply, "bytes"), GIB.to_string(), "{stdout}");
    assert_eq!(field(&reply, "sha"), got.sha256, "{stdout}");
    assert_nothing_left(&st, &tok);
}

#[test]
fn one_gib_from_the_host_to_the_container_through_a_published_port() {
    let st = busybox();
    let tok = token("download");
    let host_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The container port is the host port too: unique among concurrent runs.
    let ctr_port = host_port;
    let publish = format!("127.0.0.1:{host_port}:{ctr_port}");
    // nc answers "hello" on accept (then half-closes: its stdin ends), so the
    // host knows when the listener is up; everything nc receives goes to
    // sha256sum and wc -c through fifos on a tmpfs.
    let script = format!(
        "set -o pipefail
         mkfifo /tmp/h
         sha256sum < /tmp/h > /tmp/h.out &
         echo hello | nc -l -p {ctr_port} | tee /tmp/h | wc -c > /tmp/c.out
         rc=$?
         wait
         echo \"ctr-got rc=$rc bytes=$(cat /tmp/c.out) sha=$(cut -d' ' -f1 /tmp/h.out)\""
    );
    let child = busybox_sh(&st, &tok, &["--network", "slirp", "-p", &publish], &script);
    // Connect until the container's listener answers. Before it listens, the
    // forwarded connection is reset or closed without a word.
    let t0 = Instant::now();
    let mut attempts = 0;
    let mut stream = loop {
        attempts += 1;
        let r = TcpStream::connect(("127.0.0.1", host_port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
            let mut hello = Vec::new();
            s.read_to_end(&mut hello)?;
            Ok((s, hello))
        });
        match r {
            Ok((s, hello)) if hello == b"hello\n" => {
                s.set_write_timeout(Some(IO_DEADLINE)).unwrap();
                break s;
            }
            Ok((_, other)) if !other.is_empty() => {
                let out = wait_output(child, "download");
                panic!(
                    "unexpected greeting {:?} through -p {publish}\n{}",
                    String::from_utf8_lossy(&other),
                    describe(&out)
                );
            }
            _ if t0.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => {
                let mut child = child;
                let _ = child.kill();
                let out = wait_output(child, "download");
                panic!(
                    "no greeting through -p {publish} after {attempts} attempts: {other:?}\n{}",
                    describe(&out)
                );
            }
        }
    };
    // The leftover check below can see this run's processes: hutch and
    // the container's nc are running now.
    let during = processes_of(&st, &tok);
    assert!(
        during.iter().any(|p| p.contains("hutch run"))
            && during
                .iter()
                .any(|p| p.contains(&format!("nc -l -p {ctr_port}"))),
        "processes of the running container not found: {during:#?}"
    );
    let mut h = Sha256::new();
    let mut rng = Prng(0x9e37_79b9_7f4a_7c15);
    let mut buf = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    while sent < GIB {
        rng.fill(&mut buf);
        if let Err(e) = stream.write_all(&buf) {
            let mut child = child;
            let _ = child.kill();
            let out = wait_output(child, "download");
            panic!("write after {sent} bytes: {e}\n{}", describe(&out));
        }
        h.update(&buf);
        sent += buf.len() as u64;
    }
    stream.shutdown(Shutdown::Write).unwrap();
    let sha256 = hex::encode(h.finalize());
    // The container closed its side after "hello": nothing more may come.
    let mut rest = Vec::new();
    let r = stream.read_to_end(&mut rest);
    drop(stream);
    let out = wait_output(child, "download");
    assert!(
        matches!(r, Ok(0)),
        "after the upload the host read {r:?} ({:?})\n{}",
        String::from_utf8_lossy(&rest),
        describe(&out)
    );
    assert_clean(&out, "download");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got = fields(&stdout, "ctr-got ");
    assert_eq!(field(&got, "rc"), "0", "the pipeline failed\n{stdout}");
    assert_eq!(
        field(&got, "bytes"),
        GIB.to_string(),
        "bytes the container got"
    );
    assert_eq!(
        field(&got, "sha"),
        sha256,
        "sha256 of what the container received vs what the host sent"
    );
    assert_nothing_left(&st, &tok);
}

/// What the host server saw of the connections.
struct Crowd {
    /// Connections open at once when the server answered.
    open: usize,
    /// Client numbers, in the order they connected.
    ids: Vec<usize>,
}

#[test]
fn five_hundred_connections_open_at_once_to_the_host() {
    let _one_at_a_time = crowd_lock();
    let st = busybox();
    let tok = token("crowd");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Room for every connection in the accept queue: std listens with a
    // backlog of 128, and when a burst of connects overflows it the host
    // kernel itself resets some of them (with any client, hutch or not).
    rustix::net::listen(&listener, 2 * CONNS as i32).unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let (tx, rx) = mpsc::channel();
    let arrived = Arc::new(AtomicUsize::new(0));
    let arrived_srv = arrived.clone();
    // The server keeps every connection open and answers none before all
    // CONNS are open and each has said who it is ("conn N", then FIN): no
    // client can finish before that.
    std::thread::spawn(move || {
        let r = (|| -> Result<Crowd, String> {
            let deadline = Instant::now() + RUN_DEADLINE;
            let mut open: Vec<(usize, TcpStream)> = Vec::new();
            while open.len() < CONNS {
                let mut s = accept_until(&listener, deadline)
                    .ok_or_else(|| format!("only {} connections arrived", open.len()))?;
                s.set_read_timeout(Some(IO_DEADLINE))
                    .map_err(|e| e.to_string())?;
                let mut hello = String::new();
                s.read_to_string(&mut hello)
                    .map_err(|e| format!("connection {}: read: {e}", open.len() + 1))?;
                let id = hello
                    .strip_prefix("conn ")
                    .and_then(|r| r.strip_suffix('\n'))
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| format!("connection {}: said {hello:?}", open.len() + 1))?;
                open.push((id, s));
                arrived_srv.store(open.len(), Ordering::Relaxed);
            }
            // A client that gave up would show here as a reset.
            let count = open.len();
            for (id, s) in &mut open {
                writeln!(s, "reply {id} of {count}").map_err(|e| format!("reply {id}: {e}"))?;
            }
            let ids = open.iter().map(|(id, _)| *id).collect();
            drop(open);
            Ok(Crowd { open: count, ids })
        })();
        let _ = tx.send(r);
    });
    // Each client runs in a subshell that records nc's exit status and
    // answer; the container then checks every answer itself and lists the
    // clients that failed.
    let script = format!(
        "mkdir /tmp/r
         i=1
         while [ $i -le {CONNS} ]; do
           ( echo \"conn $i\" | nc 10.0.2.2 {port} > /tmp/r/$i.out 2> /tmp/r/$i.err
             echo $? > /tmp/r/$i.rc ) &
           i=$((i + 1))
         done
         wait
         ok=0; bad=''
         i=1
         while [ $i -le {CONNS} ]; do
           if [ \"$(cat /tmp/r/$i.rc)\" = 0 ] && [ \"$(cat /tmp/r/$i.out)\" = \"reply $i of {CONNS}\" ] \
              && [ ! -s /tmp/r/$i.err ]; then
             ok=$((ok + 1))
           else
             bad=\"$bad $i:rc=$(cat /tmp/r/$i.rc):$(cat /tmp/r/$i.out /tmp/r/$i.err | tr '\\n' '|')\"
           fi
           i=$((i + 1))
         done
         echo \"crowd ok=$ok bad=$bad\""
    );
    let child = busybox_sh(&st, &tok, &["--profile", "hostlo"], &script);
    let out = wait_output_or(child, "crowd", || {
        format!(
            "the host server had {} of {CONNS} connections",
            arrived.load(Ordering::Relaxed)
        )
    });
    let server = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the host server did not finish\n{}", describe(&out)));
    let crowd = server.unwrap_or_else(|e| panic!("host server: {e}\n{}", describe(&out)));
    assert_clean(&out, "crowd");
    assert_eq!(crowd.open, CONNS, "connections open at once");
    let mut ids = crowd.ids.clone();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=CONNS).collect::<Vec<_>>(),
        "every client connected exactly once"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some(format!("crowd ok={CONNS} bad=").as_str()),
        "every client got its own answer\n{}",
        describe(&out)
    );
    assert_nothing_left(&st, &tok);
}

#[test]
fn five_hundred_connections_open_at_once_through_a_published_port() {
    let _one_at_a_time = crowd_lock();
    let st = busybox();
    let tok = token("crowd-in");
    let host_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ctr_port = host_port;
    let publish = format!("127.0.0.1:{host_port}:{ctr_port}");
    // One handler process per connection (nc -ll -e): it greets, reads the
    // client's number, waits for the client's FIN, answers and reports the
    // number on a fifo. After CONNS reports the script waits for one more
    // connection, number 0, which the test makes only once it has read
    // every answer (the container must not exit with answers in flight:
    // its network goes with it), then stops the server. Fd 3 holds the
    // fifo open for reading and writing, so it never sees EOF.
    let script = format!(
        "mkfifo /tmp/done
         exec 3<>/tmp/done
         nc -ll -p {ctr_port} -e sh -c \
           'echo hi; read -r l; cat > /dev/null; echo \"reply $l\"; echo \"$l\" > /tmp/done' &
         srv=$!
         n=0
         while [ $n -lt {CONNS} ] && read -r l <&3; do
           echo \"$l\" >> /tmp/seen
           n=$((n + 1))
         done
         while read -r l <&3 && [ \"$l\" != \"conn 0\" ]; do :; done
         kill $srv
         echo \"served n=$n distinct=$(sort -u /tmp/seen | wc -l)\""
    );
    let mut child = busybox_sh(&st, &tok, &["--network", "slirp", "-p", &publish], &script);
    // Connection i: connect, read the handler's greeting, send "conn i".
    let open_one = |i: usize| -> std::io::Result<TcpStream> {
        let mut s = TcpStream::connect(("127.0.0.1", host_port))?;
        s.set_read_timeout(Some(IO_DEADLINE))?;
        let mut hi = [0u8; 3];
        s.read_exact(&mut hi)?;
        if &hi != b"hi\n" {
            return Err(std::io::Error::other(format!("greeting {hi:?}")));
        }
        writeln!(s, "conn {i}")?;
        Ok(s)
    };
    // The first one is retried until the container's server listens; every
    // other one must get through at the first try. Each waits for its
    // greeting before the next starts (nc -ll has a tiny listen backlog).
    let t0 = Instant::now();
    let first = loop {
        match open_one(1) {
            Ok(s) => break s,
            Err(_) if t0.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => {
                let _ = child.kill();
                let out = wait_output(child, "crowd-in");
                panic!("no greeting through -p {publish}: {e}\n{}", describe(&out));
            }
        }
    };
    let mut open = vec![first];
    for i in 2..=CONNS {
        match open_one(i) {
            Ok(s) => open.push(s),
            Err(e) => {
                let _ = child.kill();
                let out = wait_output(child, "crowd-in");
                panic!(
                    "connection {i} failed with {} open: {e}\n{}",
                    open.len(),
                    describe(&out)
                );
            }
        }
    }
    // All CONNS handlers have greeted and none can finish before our FIN:
    // they are all connected now. Release them, then read every answer.
    for s in &open {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let mut wrong = Vec::new();
    for (i, s) in open.iter_mut().enumerate() {
        let mut answer = String::new();
        let r = s.read_to_string(&mut answer);
        let want = format!("reply conn {}\n", i + 1);
        if r.is_err() || answer != want {
            wrong.push(format!("{}: {r:?} {answer:?}", i + 1));
        }
    }
    drop(open);
    // Every answer is in: let the container finish.
    let quit = open_one(0).and_then(|mut s| {
        s.shutdown(Shutdown::Write)?;
        let mut rest = String::new();
        s.read_to_string(&mut rest)?;
        Ok(rest)
    });
    let out = wait_output(child, "crowd-in");
    assert!(
        matches!(quit.as_deref(), Ok("reply conn 0\n")),
        "the closing connection: {quit:?}\n{}",
        describe(&out)
    );
    assert!(
        wrong.is_empty(),
        "{} of {CONNS} connections got a wrong answer: {wrong:?}\n{}",
        wrong.len(),
        describe(&out)
    );
    assert_clean(&out, "crowd-in");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("served n={CONNS} distinct={CONNS}\n"),
        "the container served every connection once"
    );
    assert_nothing_left(&st, &tok);
}
