//! Attaching to a detached container's terminal (`-t`) or stdin (`-i`).
//!
//! While a run of such a container lasts, its keeper (the run's child
//! process, keeper.rs) holds the pty's controller or the write end of the
//! command's stdin pipe and listens on `attach.sock` in the container's
//! directory. The socket is bound and reached through short paths (the
//! keeper's working directory is the container's directory; clients go
//! through `/proc/self/fd/N/attach.sock`), as a unix socket path is
//! limited to 108 bytes and a store's may be longer.
//!
//! Both directions carry frames: a kind byte, a 4-byte big-endian
//! length, the bytes. Client to keeper: [`INPUT`], [`RESIZE`] (rows and
//! columns, 2 bytes each), [`INPUT_END`] (closes the command's stdin
//! pipe; nothing with a pty). Keeper to client: [`STDOUT`] and
//! [`STDERR`] (with a pty, everything is `STDOUT`). What the command
//! writes still goes to ctr.log too. Several clients may attach at once;
//! each gets all output from when it connects.

use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};

/// The socket's name in the container's directory.
pub(super) const SOCKET: &str = "attach.sock";

pub(super) const INPUT: u8 = 0;
pub(super) const RESIZE: u8 = 1;
pub(super) const INPUT_END: u8 = 2;
pub(super) const STDOUT: u8 = 1;
pub(super) const STDERR: u8 = 2;

/// Frames larger than this are refused (a confused peer).
const MAX_FRAME: usize = 1 << 20;

fn write_frame(w: &mut impl Write, kind: u8, data: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(5 + data.len());
    buf.push(kind);
    buf.extend_from_slice(&(data.len() as u32).to_be_bytes());
    buf.extend_from_slice(data);
    w.write_all(&buf)
}

/// The next frame; None at the end of the stream.
fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other("attach: frame too large"));
    }
    let mut data = vec![0; len];
    r.read_exact(&mut data)?;
    Ok(Some((head[0], data)))
}

/// Where a client's input goes.
pub(super) enum Input {
    /// The pty's controller (-t): input, and window sizes.
    Pty(OwnedFd),
    /// The write end of the command's stdin pipe (-i), until a client
    /// ends its input.
    Pipe(Mutex<Option<OwnedFd>>),
}

/// The keeper's side: the listening socket and the attached clients.
#[derive(Clone)]
pub(super) struct Server {
    clients: Arc<Mutex<Vec<UnixStream>>>,
}

impl Server {
    /// Bind `attach.sock` in the working directory (the keeper's is the
    /// container's directory), replacing one a killed keeper left.
    pub(super) fn bind() -> Result<UnixListener> {
        let _ = std::fs::remove_file(SOCKET);
        UnixListener::bind(SOCKET).context("binding the container's attach socket")
    }

    /// Accept clients on `listener` from a thread, each served by a
    /// thread of its own that passes its input to `input`.
    pub(super) fn start(listener: UnixListener, input: Input) -> Result<Server> {
        let server = Server {
            clients: Arc::new(Mutex::new(Vec::new())),
        };
        let input = Arc::new(input);
        let clients = server.clients.clone();
        std::thread::Builder::new()
            .name("hutch-attach".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    if let Ok(out) = conn.try_clone()
                        && let Ok(mut list) = clients.lock()
                    {
                        list.push(out);
                    }
                    let input = input.clone();
                    let _ = std::thread::Builder::new()
                        .name("hutch-attached".into())
                        .spawn(move || serve_client(conn, &input));
                }
            })
            .context("starting the attach socket's thread")?;
        Ok(server)
    }

    /// Give every attached client `data` as `kind` (STDOUT or STDERR);
    /// a client that cannot take it is dropped.
    pub(super) fn broadcast(&self, kind: u8, data: &[u8]) {
        if let Ok(mut list) = self.clients.lock() {
            list.retain_mut(|c| write_frame(c, kind, data).is_ok());
        }
    }
}

fn serve_client(mut conn: UnixStream, input: &Input) {
    while let Ok(Some((kind, data))) = read_frame(&mut conn) {
        match (kind, input) {
            (INPUT, Input::Pty(fd)) => write_all(fd, &data),
            (INPUT, Input::Pipe(w)) => {
                if let Ok(w) = w.lock()
                    && let Some(fd) = w.as_ref()
                {
                    write_all(fd, &data);
                }
            }
            (RESIZE, Input::Pty(fd)) if data.len() == 4 => {
                let size = rustix::termios::Winsize {
                    ws_row: u16::from_be_bytes([data[0], data[1]]),
                    ws_col: u16::from_be_bytes([data[2], data[3]]),
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                let _ = rustix::termios::tcsetwinsize(fd, size);
            }
            (INPUT_END, Input::Pipe(w)) => {
                if let Ok(mut w) = w.lock() {
                    w.take();
                }
            }
            _ => {}
        }
    }
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) {
    while !data.is_empty() {
        match rustix::io::write(fd.as_fd(), data) {
            Ok(0) => return,
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

/// `--detach-keys`: Docker's format, `ctrl-p,ctrl-q` (the default):
/// comma-separated keys, each `ctrl-X` (X a letter or one of `@[\]^_`)
/// or one character; empty turns detaching off.
pub(crate) fn parse_detach_keys(text: &str) -> Result<Vec<u8>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|key| {
            let b = key.as_bytes();
            match b {
                [c] if c.is_ascii() => Ok(*c),
                [b'c', b't', b'r', b'l', b'-', c] => match c.to_ascii_lowercase() {
                    c @ b'a'..=b'z' => Ok(c - b'a' + 1),
                    c @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_') => Ok(c - b'@'),
                    _ => bail!("--detach-keys {text:?}: {key:?} is no control key"),
                },
                _ => bail!(
                    "--detach-keys {text:?}: write keys as ctrl-X or single characters, \
                     separated by commas (ctrl-p,ctrl-q)"
                ),
            }
        })
        .collect()
}

/// Finds the detach sequence in what is typed, holding back a partial
/// match until it is complete or broken.
struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    /// What of `input` to pass on, and whether the sequence was typed.
    fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

/// What `hutch attach` (and `start -a -i`) does.
#[derive(Debug, Clone)]
pub(crate) struct AttachOptions {
    /// From [`parse_detach_keys`].
    pub(crate) detach_keys: Vec<u8>,
    /// Pass hutch's stdin to the container.
    pub(crate) stdin: bool,
}

/// How an attachment ended.
enum Ended {
    Detached,
    ContainerEnded,
}

/// `hutch attach`: relay hutch's terminal (or stdin, stdout and stderr)
/// to the running container until it ends (its exit status) or the
/// detach keys are typed (0, and it runs on).
pub(crate) fn attach(store: &Store, key: &str, opts: &AttachOptions) -> Result<i32> {
    let c = store.find_container(key)?;
    let name = &c.state.name;
    let dir = store.container_dir(&c.state.id);
    let spec = super::spec_file::load(&dir, name)?;
    if !spec.process.terminal && !spec.process.stdin {
        bail!(
            "container {name} was created without -t or -i: there is nothing to attach to; \
             `hutch logs -f {name}` shows its output"
        );
    }
    if !c.alive {
        bail!("container {name} is not running; `hutch start -a -i {name}` starts it attached");
    }
    // sun_path holds 108 bytes: reach the socket through a short path.
    let dir_fd = rustix::fs::open(
        &dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("opening {}", dir.display()))?;
    let path = format!(
        "/proc/self/fd/{}/{SOCKET}",
        std::os::fd::AsRawFd::as_raw_fd(&dir_fd)
    );
    let conn = UnixStream::connect(&path).with_context(|| {
        format!(
            "connecting to container {name} (it may be between two runs of its --restart \
             policy; try again)"
        )
    })?;
    drop(dir_fd);
    let tty = spec.process.terminal && rustix::termios::isatty(rustix::stdio::stdin());
    let writer = Arc::new(Mutex::new(conn.try_clone().context("attach socket")?));
    let (tx, rx) = std::sync::mpsc::channel::<Ended>();
    // Window sizes: now and at each SIGWINCH (blocked here, so in every
    // thread started below, and taken by one of them).
    if tty {
        let winch = crate::sys::SigSet::of(&[libc::SIGWINCH]);
        crate::sys::block(&winch);
        send_size(&writer);
        let w = writer.clone();
        std::thread::Builder::new()
            .name("hutch-winch".into())
            .spawn(move || {
                loop {
                    crate::sys::wait_signal(&winch);
                    send_size(&w);
                }
            })
            .context("starting the window size relay")?;
    }
    let raw = tty.then(crate::sandbox::pty::RawMode::enter);
    if opts.stdin {
        let w = writer.clone();
        let tx = tx.clone();
        let mut scan = DetachScanner {
            keys: if tty {
                opts.detach_keys.clone()
            } else {
                Vec::new()
            },
            matched: 0,
        };
        std::thread::Builder::new()
            .name("hutch-attach-in".into())
            .spawn(move || {
                let mut buf = [0u8; 16384];
                loop {
                    let n = match rustix::io::read(rustix::stdio::stdin(), &mut buf) {
                        Ok(n) => n,
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(_) => 0,
                    };
                    let Ok(mut conn) = w.lock() else { return };
                    if n == 0 {
                        let _ = write_frame(&mut *conn, INPUT_END, &[]);
                        return;
                    }
                    let (pass, detach) = scan.feed(&buf[..n]);
                    if !pass.is_empty() && write_frame(&mut *conn, INPUT, &pass).is_err() {
                        return;
                    }
                    if detach {
                        let _ = tx.send(Ended::Detached);
                        return;
                    }
                }
            })
            .context("starting the input relay")?;
    }
    {
        let mut conn = conn;
        std::thread::Builder::new()
            .name("hutch-attach-out".into())
            .spawn(move || {
                let mut out = std::io::stdout();
                let mut err = std::io::stderr();
                while let Ok(Some((kind, data))) = read_frame(&mut conn) {
                    let w: &mut dyn Write = if kind == STDERR { &mut err } else { &mut out };
                    if w.write_all(&data).and_then(|()| w.flush()).is_err() {
                        break;
                    }
                }
                let _ = tx.send(Ended::ContainerEnded);
            })
            .context("starting the output relay")?;
    }
    let ended = rx.recv().unwrap_or(Ended::ContainerEnded);
    drop(raw);
    match ended {
        Ended::Detached => Ok(0),
        Ended::ContainerEnded => {
            // The run's keeper records the exit once the command's output
            // is all out: wait for that (or for the keeper to end).
            loop {
                let st = store.read_container(&c.state.id)?;
                if st.status != crate::store::containers::Status::Running
                    || !store.container_alive(&c.state.id)
                {
                    let st = store.read_container(&c.state.id)?;
                    return Ok(st.exit_code.unwrap_or(crate::error::EXIT_FAILED));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

fn send_size(w: &Mutex<UnixStream>) {
    let size = crate::sandbox::pty::window_size();
    let mut data = size.ws_row.to_be_bytes().to_vec();
    data.extend_from_slice(&size.ws_col.to_be_bytes());
    if let Ok(mut conn) = w.lock() {
        let _ = write_frame(&mut *conn, RESIZE, &data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_as_docker_writes_them() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [16, 17]);
        assert_eq!(parse_detach_keys("ctrl-@,x").unwrap(), [0, b'x']);
        assert!(parse_detach_keys("").unwrap().is_empty());
        for bad in ["ctrl-1", "ctrl-pp", "shift-a", "a,,b"] {
            assert!(parse_detach_keys(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_detach_sequence_is_found_across_reads_and_held_back() {
        let mut s = DetachScanner {
            keys: vec![16, 17],
            matched: 0,
        };
        assert_eq!(s.feed(b"ab\x10"), (b"ab".to_vec(), false));
        // Broken: the held-back key goes on.
        assert_eq!(s.feed(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(s.feed(b"\x10\x10"), (b"\x10".to_vec(), false));
        assert_eq!(s.feed(b"\x11rest"), (Vec::new(), true));
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, STDERR, b"hello").unwrap();
        write_frame(&mut buf, INPUT_END, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((STDERR, b"hello".to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), Some((INPUT_END, Vec::new())));
        assert_eq!(read_frame(&mut r).unwrap(), None);
    }
}
