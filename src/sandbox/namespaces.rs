//! A running container's namespaces, kept so that other processes can
//! join them (`hutch exec`).
//!
//! Nobody outside can open them from /proc: the container's init and
//! relay are not dumpable and never ran execve inside, so the kernel
//! refuses their /proc/PID/ns files to every unprivileged process (that
//! is what protects them from the container). Instead init, once the
//! container's root is set up and before the command starts, opens its
//! own /proc/self/ns files and sends them to the launcher ([`send_own`]),
//! which serves them on a unix
//! socket in the container's directory for as long as the container runs
//! ([`JoinServer`]). A client ([`request`]) receives the descriptors and,
//! in a fresh single-threaded child, enters them ([`Namespaces::enter`]):
//! the user namespace first (its owner, the same user, gets every
//! capability in it), then mount, UTS, IPC, network, cgroup and, for its
//! children, PID.

use super::fd_passing;
use super::rlimits::CgroupFallback;
use anyhow::{Context, Result, bail};
use rustix::io::Errno;
use rustix::thread::LinkNameSpaceType as Ns;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The socket's name in the container's directory.
pub const SOCKET: &str = "join.sock";

/// The namespaces in the order they are entered: (tag in the message,
/// file in /proc/self/ns, type for setns).
const KINDS: [(u8, &std::ffi::CStr, Ns); 7] = [
    (b'U', c"/proc/self/ns/user", Ns::User),
    (b'M', c"/proc/self/ns/mnt", Ns::Mount),
    (b'T', c"/proc/self/ns/uts", Ns::HostNameAndNISDomainName),
    (b'I', c"/proc/self/ns/ipc", Ns::InterProcessCommunication),
    (b'N', c"/proc/self/ns/net", Ns::Network),
    (b'C', c"/proc/self/ns/cgroup", Ns::ControlGroup),
    // Init's own PID namespace is the container's; for a joining process
    // it is the namespace of its children.
    (b'P', c"/proc/self/ns/pid_for_children", Ns::ProcessID),
];

/// In the container's init, after pivot_root: open its own namespaces
/// (all of them but the network one when `own_netns` is false: the host's
/// is not the container's to give) and send them over `sock`. Syscalls
/// only.
pub fn send_own(sock: BorrowedFd<'_>, own_netns: bool) -> Result<(), (&'static str, Errno)> {
    const NONE: Option<OwnedFd> = None;
    let mut opened = [NONE; KINDS.len()];
    let mut tags = [0u8; KINDS.len()];
    let mut n = 0;
    for (tag, path, _) in KINDS {
        if tag == b'N' && !own_netns {
            continue;
        }
        let fd = rustix::fs::open(
            path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| {
            let what = match tag {
                b'U' => "opening the container's user namespace",
                b'M' => "opening the container's mount namespace",
                b'T' => "opening the container's UTS namespace",
                b'I' => "opening the container's IPC namespace",
                b'N' => "opening the container's network namespace",
                b'C' => "opening the container's cgroup namespace",
                _ => "opening the container's PID namespace",
            };
            (what, e)
        })?;
        opened[n] = Some(fd);
        tags[n] = tag;
        n += 1;
    }
    let mut fds = [rustix::stdio::stdin(); KINDS.len()];
    for (slot, fd) in fds.iter_mut().zip(opened.iter().flatten()) {
        *slot = fd.as_fd();
    }
    fd_passing::send_fds(sock, &tags[..n], &fds[..n])
        .map_err(|e| ("handing the container's namespaces to hutch", e))
}

/// A container's namespaces, as descriptors.
pub struct Namespaces {
    /// (tag, descriptor) in [`KINDS`] order.
    fds: Vec<(u8, OwnedFd)>,
}

impl Namespaces {
    /// Take the message [`send_own`] (or a [`JoinServer`]) sent: tags,
    /// then after a NUL what the sender adds. None: the sender closed
    /// without sending (the container failed before).
    fn from_message(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<Option<(Namespaces, Vec<u8>)>> {
        if bytes.is_empty() {
            return Ok(None);
        }
        let (tags, rest) = match bytes.iter().position(|b| *b == 0) {
            Some(i) => (&bytes[..i], bytes[i + 1..].to_vec()),
            None => (bytes, Vec::new()),
        };
        if tags.len() != fds.len() || !tags.iter().all(|t| KINDS.iter().any(|k| k.0 == *t)) {
            bail!(
                "internal error: a message with {} namespace descriptors for tags {:?}",
                fds.len(),
                String::from_utf8_lossy(tags)
            );
        }
        let mut fds: Vec<(u8, OwnedFd)> = tags.iter().copied().zip(fds).collect();
        fds.sort_by_key(|(t, _)| KINDS.iter().position(|k| k.0 == *t));
        Ok(Some((Namespaces { fds }, rest)))
    }

    /// The launcher's side of [`send_own`].
    pub fn receive(sock: BorrowedFd<'_>) -> Result<Option<Namespaces>> {
        let mut buf = [0u8; 16];
        let (n, fds) = fd_passing::recv_fds(sock, &mut buf)
            .map_err(std::io::Error::from)
            .context("receiving the container's namespaces")?;
        Ok(Self::from_message(&buf[..n], fds)?.map(|(ns, _)| ns))
    }

    /// Enter only the user namespace (then the caller makes the others,
    /// or enters some of these; see [`Self::take_network`]).
    pub fn enter_user(&self) -> Result<(), Errno> {
        match self.fds.iter().find(|(t, _)| *t == b'U') {
            Some((_, fd)) => rustix::thread::move_into_link_name_space(fd.as_fd(), Some(Ns::User)),
            None => Err(Errno::INVAL),
        }
    }

    /// Enter the user namespace, then the mount namespace (whose root
    /// becomes the calling process's root and working directory): the
    /// container's files, as its processes see them, and nothing else of
    /// it. Single-threaded callers only, as [`Self::enter`]. Syscalls only.
    pub fn enter_user_and_mount(&self) -> Result<(), (&'static str, Errno)> {
        for (tag, ns, what) in [
            (b'U', Ns::User, "joining the container's user namespace"),
            (b'M', Ns::Mount, "joining the container's mount namespace"),
        ] {
            let Some((_, fd)) = self.fds.iter().find(|(t, _)| *t == tag) else {
                return Err((what, Errno::INVAL));
            };
            rustix::thread::move_into_link_name_space(fd.as_fd(), Some(ns))
                .map_err(|e| (what, e))?;
        }
        Ok(())
    }

    /// The network namespace's descriptor, taken out (None with
    /// `--network host`, where the container has none of its own).
    pub fn take_network(&mut self) -> Option<OwnedFd> {
        let i = self.fds.iter().position(|(t, _)| *t == b'N')?;
        Some(self.fds.remove(i).1)
    }

    /// Whether the network namespace is among them (not with `--network
    /// host`).
    #[cfg(test)]
    pub fn has_network(&self) -> bool {
        self.fds.iter().any(|(t, _)| *t == b'N')
    }

    fn tags(&self) -> Vec<u8> {
        self.fds.iter().map(|(t, _)| *t).collect()
    }

    /// Enter every namespace, user first. The caller must be a
    /// single-threaded process (a fresh child): setns into a user
    /// namespace requires it. Syscalls only.
    pub fn enter(&self) -> Result<(), (&'static str, Errno)> {
        for (tag, fd) in &self.fds {
            let Some((_, _, ns)) = KINDS.iter().find(|k| k.0 == *tag) else {
                continue;
            };
            rustix::thread::move_into_link_name_space(fd.as_fd(), Some(*ns)).map_err(|e| {
                let what = match tag {
                    b'U' => "joining the container's user namespace",
                    b'M' => "joining the container's mount namespace",
                    b'T' => "joining the container's UTS namespace",
                    b'I' => "joining the container's IPC namespace",
                    b'N' => "joining the container's network namespace",
                    b'C' => "joining the container's cgroup namespace",
                    _ => "joining the container's PID namespace",
                };
                (what, e)
            })?;
        }
        Ok(())
    }
}

/// What a joining process needs besides the namespaces: the container's
/// cgroup (to be counted against its limits) or the rlimits that stand in
/// for limits no cgroup could apply.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JoinInfo {
    pub cgroup: Option<PathBuf>,
    pub fallback: CgroupFallback,
}

/// The join socket, bound in the container's directory by whoever serves
/// the container (before it enters the container's user namespace, so the
/// socket belongs to the user).
pub struct JoinListener {
    dir: OwnedFd,
    listener: UnixListener,
}

/// A path to `name` in `dir` short enough for a socket address, whatever
/// the store's path.
fn short_path(dir: &OwnedFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("opening {}", dir.display()))
}

impl JoinListener {
    /// Bind `dir/join.sock`, replacing one a crashed server left (the
    /// caller holds the container's running lock: nobody else serves it).
    pub fn bind(dir: &Path) -> Result<JoinListener> {
        let d = open_dir(dir)?;
        let _ = rustix::fs::unlinkat(&d, SOCKET, rustix::fs::AtFlags::empty());
        let listener = UnixListener::bind(short_path(&d, SOCKET))
            .with_context(|| format!("creating {}", dir.join(SOCKET).display()))?;
        listener
            .set_nonblocking(true)
            .context("making the join socket non-blocking")?;
        Ok(JoinListener { dir: d, listener })
    }
}

/// Serves a running container's namespaces on its join socket, from a
/// thread, until dropped (then the socket file goes).
pub struct JoinServer {
    stop: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: OwnedFd,
}

impl JoinServer {
    pub fn start(listener: JoinListener, ns: Namespaces, info: &JoinInfo) -> Result<JoinServer> {
        let mut message = ns.tags();
        message.push(0);
        message.extend(serde_json::to_vec(info).context("encoding the join information")?);
        let (stop_r, stop_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(std::io::Error::from)
            .context("creating a pipe")?;
        let JoinListener { dir, listener } = listener;
        let me = rustix::process::getuid();
        let thread = std::thread::Builder::new()
            .name("hutch-join".into())
            .spawn(move || serve(&listener, &stop_r, &ns, &message, me))
            .context("starting the join socket's thread")?;
        Ok(JoinServer {
            stop: Some(stop_w),
            thread: Some(thread),
            dir,
        })
    }
}

impl Drop for JoinServer {
    fn drop(&mut self) {
        // Closing the pipe's write end wakes the thread's poll.
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = rustix::fs::unlinkat(&self.dir, SOCKET, rustix::fs::AtFlags::empty());
    }
}

fn serve(
    listener: &UnixListener,
    stop: &OwnedFd,
    ns: &Namespaces,
    message: &[u8],
    me: rustix::process::Uid,
) {
    let fds: Vec<BorrowedFd> = ns.fds.iter().map(|(_, fd)| fd.as_fd()).collect();
    loop {
        let mut polled = [
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        match crate::sys::poll(&mut polled, -1) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("the join socket stops: {e}");
                return;
            }
        }
        if polled[1].revents != 0 {
            return;
        }
        let Ok((conn, _)) = listener.accept() else {
            continue;
        };
        // Only the user who runs the container (the socket's directory is
        // private too): the peer's uid, seen from the container's user
        // namespace, is the launcher's own.
        match rustix::net::sockopt::socket_peercred(&conn) {
            Ok(cred) if cred.uid == me => {}
            _ => continue,
        }
        if let Err(e) = fd_passing::send_fds(conn.as_fd(), message, &fds) {
            tracing::debug!("join socket: sending the namespaces: {e}");
        }
    }
}

/// Why a container's namespaces could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Nothing serves them: the container is not running (or still
    /// starting).
    #[error("nothing serves its namespaces ({0})")]
    NotServed(std::io::Error),
    #[error("{0:#}")]
    Other(anyhow::Error),
}

/// Ask the server of the container in `dir` for its namespaces.
pub fn request(dir: &Path) -> Result<(Namespaces, JoinInfo), JoinError> {
    let d = open_dir(dir).map_err(JoinError::Other)?;
    let conn = match UnixStream::connect(short_path(&d, SOCKET)) {
        Ok(c) => c,
        Err(e) => return Err(JoinError::NotServed(e)),
    };
    let mut buf = vec![0u8; 4096];
    let (n, fds) = fd_passing::recv_fds(conn.as_fd(), &mut buf)
        .map_err(|e| JoinError::Other(anyhow::Error::from(std::io::Error::from(e))))?;
    match Namespaces::from_message(&buf[..n], fds) {
        Ok(Some((ns, rest))) => {
            let info: JoinInfo = serde_json::from_slice(&rest)
                .context("decoding the join information")
                .map_err(JoinError::Other)?;
            Ok((ns, info))
        }
        Ok(None) => Err(JoinError::NotServed(std::io::Error::from(
            std::io::ErrorKind::ConnectionAborted,
        ))),
        Err(e) => Err(JoinError::Other(e)),
    }
}

/// Whether something listens on TCP `port` of 127.0.0.1 in the network
/// namespace of the running container in `dir` (a project's `ready = {
/// tcp = PORT }`): a forked child enters its user and network namespaces
/// and connects (a refused connection on loopback is answered at once).
/// Only hutch's own code runs there; the child uses syscalls only.
pub fn tcp_accepts(dir: &Path, port: u16) -> Result<bool> {
    let (mut ns, _) = request(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(net) = ns.take_network() else {
        bail!("the container uses the host's network: it has no namespace of its own to probe");
    };
    let child = match crate::sys::fork() {
        Ok(crate::sys::Forked::Child) => {
            let code = match ns.enter_user().and_then(|()| {
                rustix::thread::move_into_link_name_space(net.as_fd(), Some(Ns::Network))
            }) {
                Err(_) => 2,
                Ok(()) => match connect_loopback(port) {
                    Ok(()) => 0,
                    Err(_) => 1,
                },
            };
            crate::sys::exit_now(code)
        }
        Ok(crate::sys::Forked::Parent(pid)) => pid,
        Err(e) => return Err(std::io::Error::from(e)).context("forking the port probe"),
    };
    drop(net);
    let status = loop {
        match crate::sys::wait(child, false) {
            Ok(Some((_, status))) => break status,
            Ok(None) | Err(Errno::INTR) => continue,
            Err(e) => return Err(std::io::Error::from(e)).context("waiting for the port probe"),
        }
    };
    match crate::sys::exit_code(status) {
        0 => Ok(true),
        1 => Ok(false),
        _ => bail!("the port probe could not enter the container's network namespace"),
    }
}

/// A TCP connection to 127.0.0.1:`port`, closed at once. Syscalls only.
fn connect_loopback(port: u16) -> Result<(), Errno> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, ipproto, socket_with};
    let sock = socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        Some(ipproto::TCP),
    )?;
    let addr = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
    rustix::net::connect(&sock, &addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server started on this process's own namespaces hands them to a
    /// client through the socket, with the information, and removes the
    /// socket when dropped.
    #[test]
    fn a_server_hands_the_namespaces_and_its_information_to_a_client() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        send_own(a.as_fd(), true).unwrap();
        let ns = Namespaces::receive(b.as_fd()).unwrap().unwrap();
        assert_eq!(ns.tags(), b"UMTINCP");
        assert!(ns.has_network());
        let info = JoinInfo {
            cgroup: Some(PathBuf::from("/sys/fs/cgroup/x")),
            fallback: CgroupFallback::default(),
        };
        let server = JoinServer::start(JoinListener::bind(dir.path()).unwrap(), ns, &info).unwrap();
        let (got, got_info) = request(dir.path()).unwrap();
        assert_eq!(got_info, info);
        assert_eq!(got.tags(), b"UMTINCP");
        // The user namespace received is ours.
        let ours = std::fs::metadata("/proc/self/ns/user").unwrap();
        let st = rustix::fs::fstat(&got.fds[0].1).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(st.st_ino, ours.ino());
        drop(server);
        assert!(!dir.path().join(SOCKET).exists());
        assert!(matches!(request(dir.path()), Err(JoinError::NotServed(_))));
    }

    #[test]
    fn without_its_own_network_the_host_network_is_not_sent() {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        send_own(a.as_fd(), false).unwrap();
        let ns = Namespaces::receive(b.as_fd()).unwrap().unwrap();
        assert_eq!(ns.tags(), b"UMTICP");
        assert!(!ns.has_network());
    }

    #[test]
    fn a_message_whose_tags_do_not_match_its_descriptors_is_refused() {
        let f = tempfile::tempfile().unwrap();
        let fd: OwnedFd = f.into();
        assert!(Namespaces::from_message(b"UM", vec![fd]).is_err());
        assert!(Namespaces::from_message(b"", Vec::new()).unwrap().is_none());
    }
}
