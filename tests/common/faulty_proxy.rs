//! An HTTP/1.1 reverse proxy in front of a test registry that records what
//! hutch asks for and breaks chosen answers on purpose: dropped or stalled
//! connections, truncated or corrupted bodies, wrong headers, replaced
//! documents, error statuses, authentication challenges.
//!
//! One thread per connection, one request per connection (`Connection:
//! close` both ways). Everything a fault does not touch is passed through:
//! request headers (with `Host` rewritten, `Range` kept, so the registry
//! answers 206) and bodies, response status, headers (`Docker-Content-Digest`,
//! `Content-Type`, ...) and bodies. Connections that do not start with an
//! HTTP request line (hutch's TLS probe with `--tls-verify=false`) are
//! closed without an answer and not recorded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Promise the full `Content-Length`, send this many body bytes, then
    /// close the connection.
    DropAfter(u64),
    /// Rewrite `Content-Length` to this many bytes and send only those.
    Truncate(u64),
    /// Flip every bit of the body byte at this offset.
    Corrupt(u64),
    /// Replace the `Content-Type` header.
    ContentType(String),
    /// Answer with this document instead of the registry's body (with its
    /// `Content-Type`, a `Content-Length` and a `Docker-Content-Digest` of
    /// its own); the other headers are the registry's.
    Body { content_type: String, body: Vec<u8> },
    /// Answer this status (with a distribution-style JSON error) without
    /// asking the registry.
    Status(u16),
    /// Answer 401 with this `WWW-Authenticate` header, without asking the
    /// registry.
    Unauthorized(String),
    /// Send this many body bytes, then block until
    /// [`FaultyProxy::release`]; then send the rest.
    Stall(u64),
}

/// How many matching requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    First(usize),
    Always,
}

/// One request the proxy received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The fault applied to it, if any.
    pub fault: Option<Fault>,
    /// The status sent back (0 until the answer's head was sent, or when
    /// the registry could not be reached).
    pub status: u16,
}

impl Request {
    /// N of a `Range: bytes=N-` header.
    pub fn range_start(&self) -> Option<u64> {
        self.range
            .as_deref()?
            .trim()
            .strip_prefix("bytes=")?
            .split('-')
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

struct Rule {
    matching: String,
    methods: Vec<String>,
    fault: Fault,
    left: Option<usize>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    log: Vec<Request>,
    /// Response body bytes sent, by path.
    sent: HashMap<String, u64>,
    released: bool,
}

struct Shared {
    upstream: u16,
    port: u16,
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The proxy; stops accepting (and releases stalled answers) on drop.
pub struct FaultyProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FaultyProxy {
    /// A proxy on a free 127.0.0.1 port in front of 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            port,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let sh = sh.clone();
                std::thread::spawn(move || {
                    let _ = handle(&sh, conn);
                });
            }
        });
        FaultyProxy { port, shared }
    }

    /// `127.0.0.1:PORT`, the registry name hutch is given.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Apply `fault` to GET requests whose path contains `matching`.
    pub fn fault(&self, matching: &str, fault: Fault, times: Times) {
        self.fault_methods(matching, &["GET"], fault, times);
    }

    /// Apply `fault` to requests with one of `methods` whose path contains
    /// `matching`; the first rule that matches (and is not used up) wins.
    pub fn fault_methods(&self, matching: &str, methods: &[&str], fault: Fault, times: Times) {
        let mut st = self.shared.lock();
        if matches!(fault, Fault::Stall(_)) {
            st.released = false;
        }
        st.rules.push(Rule {
            matching: matching.to_owned(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            fault,
            left: match times {
                Times::First(n) => Some(n),
                Times::Always => None,
            },
        });
    }

    /// Forget every fault (stalled answers stay stalled until released).
    pub fn clear_faults(&self) {
        self.shared.lock().rules.clear();
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().log.clone()
    }

    /// The requests whose path contains `matching`.
    pub fn requests_to(&self, matching: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.contains(matching))
            .collect()
    }

    /// Forget the recorded requests and byte counts.
    pub fn clear_log(&self) {
        let mut st = self.shared.lock();
        st.log.clear();
        st.sent.clear();
    }

    /// The log, one request a line, for assertion messages.
    pub fn log_text(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                format!(
                    "{} {} range={:?} status={} fault={:?}",
                    r.method,
                    r.path,
                    r.range,
                    r.status,
                    r.fault.as_ref().map(short)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Response body bytes sent for paths containing `matching`.
    pub fn bytes_sent(&self, matching: &str) -> u64 {
        sum_sent(&self.shared.lock(), matching)
    }

    /// Wait until at least `at_least` body bytes were sent for paths
    /// containing `matching`; false after `timeout`.
    pub fn wait_sent(&self, matching: &str, at_least: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if sum_sent(&st, matching) >= at_least {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Let stalled answers go on.
    pub fn release(&self) {
        self.shared.lock().released = true;
        self.shared.changed.notify_all();
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.release();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A fault without its (possibly huge) body, for messages.
fn short(f: &Fault) -> String {
    match f {
        Fault::Body { content_type, body } => {
            format!("Body({content_type}, {} bytes)", body.len())
        }
        f => format!("{f:?}"),
    }
}

fn sum_sent(st: &State, matching: &str) -> u64 {
    st.sent
        .iter()
        .filter(|(p, _)| p.contains(matching))
        .map(|(_, n)| n)
        .sum()
}

/// A request or response head: first line and headers.
struct Head {
    line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let line = line.trim_end().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    Ok(Some(Head { line, headers }))
}

/// Copy a chunked body from `r` to `w` as it is (chunk framing included).
fn copy_chunked(r: &mut impl BufRead, w: &mut impl Write) -> std::io::Result<()> {
    loop {
        let mut size_line = String::new();
        if r.read_line(&mut size_line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        w.write_all(size_line.as_bytes())?;
        let size = u64::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 {
                    return Ok(());
                }
                w.write_all(t.as_bytes())?;
                if t.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        std::io::copy(&mut r.by_ref().take(size + 2), w)?;
    }
}

/// Decode a chunked body from `r`.
fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    copy_chunked(r, &mut raw)?;
    let mut cur = std::io::Cursor::new(raw);
    let mut out = Vec::new();
    loop {
        let mut size_line = String::new();
        cur.read_line(&mut size_line)?;
        let size = u64::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        if size == 0 {
            return Ok(out);
        }
        (&mut cur).take(size).read_to_end(&mut out)?;
        let mut crlf = [0u8; 2];
        cur.read_exact(&mut crlf)?;
    }
}

/// `sha256:HEX` of `data` (through sha256sum: the tests have no hasher).
fn sha256_digest(data: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("sha256sum");
    let _ = writer.join();
    let text = String::from_utf8_lossy(&out.stdout);
    format!(
        "sha256:{}",
        text.split_whitespace().next().unwrap_or_default()
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn handle(sh: &Shared, client: TcpStream) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    client.set_nodelay(true)?;
    let mut out = client.try_clone()?;
    let mut input = BufReader::new(client);
    // Not an HTTP request line (hutch's TLS probe): close.
    let first = input.fill_buf()?;
    if first.is_empty() || !first[0].is_ascii_uppercase() {
        return Ok(());
    }
    let Some(req) = read_head(&mut input)? else {
        return Ok(());
    };
    let mut parts = req.line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();

    // Record the request and pick its fault.
    let (index, fault) = {
        let mut st = sh.lock();
        let fault = st
            .rules
            .iter_mut()
            .find(|r| {
                path.contains(&r.matching) && r.methods.contains(&method) && r.left != Some(0)
            })
            .map(|r| {
                if let Some(n) = &mut r.left {
                    *n -= 1;
                }
                r.fault.clone()
            });
        st.log.push(Request {
            method: method.clone(),
            path: path.clone(),
            range: req.get("range").map(str::to_owned),
            fault: fault.clone(),
            status: 0,
        });
        (st.log.len() - 1, fault)
    };
    let set_status = |status: u16| {
        sh.lock().log[index].status = status;
    };

    // Answers that do not ask the registry.
    match &fault {
        Some(Fault::Status(code)) => {
            let body = format!(
                "{{\"errors\":[{{\"code\":\"UNAVAILABLE\",\"message\":\"HTTP {code} from the test proxy\"}}]}}"
            );
            write!(
                out,
                "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                reason(*code),
                body.len()
            )?;
            set_status(*code);
            return out.flush();
        }
        Some(Fault::Unauthorized(challenge)) => {
            let body = "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}";
            write!(
                out,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {challenge}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            set_status(401);
            return out.flush();
        }
        _ => {}
    }

    // Forward the request: Host rewritten, one request per connection.
    let up = TcpStream::connect(("127.0.0.1", sh.upstream))?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut up_w = up.try_clone()?;
    let mut head = format!("{}\r\n", req.line);
    for (k, v) in &req.headers {
        let lk = k.to_ascii_lowercase();
        if [
            "host",
            "connection",
            "keep-alive",
            "proxy-connection",
            "expect",
        ]
        .contains(&lk.as_str())
        {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Host: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        sh.upstream
    ));
    up_w.write_all(head.as_bytes())?;
    let chunked_req = req
        .get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked_req {
        copy_chunked(&mut input, &mut up_w)?;
    } else if let Some(n) = req
        .get("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::io::copy(&mut (&mut input).take(n), &mut up_w)?;
    }
    up_w.flush()?;

    // The registry's answer.
    let mut up_r = BufReader::new(up);
    let Some(resp) = read_head(&mut up_r)? else {
        return Ok(());
    };
    let status: u16 = resp
        .line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let no_body = method == "HEAD" || status == 204 || status == 304 || status < 200;
    let chunked = resp
        .get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let upstream_len = resp
        .get("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    // The body: in memory, or streamed with a known length.
    let (mut body_mem, mut body_len): (Option<Vec<u8>>, u64) = if no_body {
        (Some(Vec::new()), 0)
    } else if chunked {
        let b = read_chunked(&mut up_r)?;
        let n = b.len() as u64;
        (Some(b), n)
    } else if let Some(n) = upstream_len {
        (None, n)
    } else {
        let mut b = Vec::new();
        up_r.read_to_end(&mut b)?;
        let n = b.len() as u64;
        (Some(b), n)
    };

    let mut headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .filter(|(k, _)| {
            let lk = k.to_ascii_lowercase();
            let hop = ["connection", "keep-alive", "transfer-encoding"].contains(&lk.as_str());
            // Content-Length is set again below (HEAD keeps the registry's).
            !hop && (no_body || lk != "content-length")
        })
        .map(|(k, v)| {
            // Upload locations point at the proxy, not around it.
            if k.eq_ignore_ascii_case("location") {
                let v = v.replace(
                    &format!("127.0.0.1:{}", sh.upstream),
                    &format!("127.0.0.1:{}", sh.port),
                );
                (k.clone(), v)
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let set_header = |headers: &mut Vec<(String, String)>, name: &str, value: &str| {
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        headers.push((name.to_owned(), value.to_owned()));
    };
    let mut send_len = body_len;
    match &fault {
        Some(Fault::ContentType(ct)) => set_header(&mut headers, "Content-Type", ct),
        Some(Fault::Body { content_type, body }) => {
            set_header(&mut headers, "Content-Type", content_type);
            set_header(&mut headers, "Docker-Content-Digest", &sha256_digest(body));
            body_mem = Some(body.clone());
            body_len = body.len() as u64;
            send_len = body_len;
        }
        Some(Fault::Truncate(k)) => send_len = (*k).min(body_len),
        _ => {}
    }
    let mut out_head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in &headers {
        out_head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !no_body {
        out_head.push_str(&format!("Content-Length: {send_len}\r\n"));
    }
    out_head.push_str("Connection: close\r\n\r\n");
    out.write_all(out_head.as_bytes())?;
    set_status(status);
    if no_body {
        return out.flush();
    }

    // The body, through the fault.
    let stop_at = match &fault {
        Some(Fault::DropAfter(k)) => (*k).min(body_len),
        _ => send_len,
    };
    let mut source: Box<dyn Read> = match body_mem {
        Some(b) => Box::new(std::io::Cursor::new(b)),
        None => Box::new(up_r.take(body_len)),
    };
    let stall_at = match &fault {
        Some(Fault::Stall(k)) => Some(*k),
        _ => None,
    };
    let mut stalled = false;
    let mut offset = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while offset < stop_at {
        let mut want = ((stop_at - offset) as usize).min(buf.len());
        if let Some(s) = stall_at
            && !stalled
            && offset < s
        {
            want = want.min((s - offset) as usize);
        }
        if let Some(s) = stall_at
            && !stalled
            && offset == s
        {
            stalled = true;
            out.flush()?;
            let mut st = sh.lock();
            while !st.released && !sh.stop.load(Ordering::SeqCst) {
                st = sh.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            continue;
        }
        let n = source.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        if let Some(Fault::Corrupt(at)) = &fault
            && *at >= offset
            && *at < offset + n as u64
        {
            buf[(*at - offset) as usize] ^= 0xff;
        }
        out.write_all(&buf[..n])?;
        offset += n as u64;
        *sh.lock().sent.entry(path.clone()).or_default() += n as u64;
        sh.changed.notify_all();
    }
    out.flush()?;
    if matches!(fault, Some(Fault::DropAfter(_))) {
        let _ = out.shutdown(Shutdown::Both);
    }
    Ok(())
}
