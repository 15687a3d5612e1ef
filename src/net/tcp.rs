//! TCP NAT: container connections relayed over host `TcpStream`s.
//!
//! Outbound: a SYN to a new (source, destination) pair is held while a
//! non-blocking host `connect` runs. On success a smoltcp socket listens on
//! exactly that destination and the SYN is fed in; on failure or timeout the
//! SYN is fed in with no listener and smoltcp answers RST. At most one fresh
//! listener per destination exists per poll, so two simultaneous SYNs to the
//! same destination cannot swap sockets.
//!
//! Inbound (port forwards): an accepted host connection gets a smoltcp socket
//! connecting from 10.0.2.2:EPHEMERAL to 10.0.2.100:CTRPORT.

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use super::Counters;
use super::config::{CONTAINER_ADDR, GATEWAY_ADDR};
use super::device::FdDevice;
use super::forward::PortAlloc;

type Flow = (SocketAddr, SocketAddr);

/// Connections at once (each holds a host fd and two buffers); SYNs beyond
/// are refused, accepted forwards beyond are closed.
const MAX_CONNS: usize = 16384;

/// Seconds without a word from the container side before a connection is
/// dropped (keep-alive probes go out every 60 s, so only a dead peer
/// stays silent that long).
const KEEPALIVE_TIMEOUT: u64 = 300;

enum Phase {
    /// Host connect in progress; the container's SYN is held.
    Connecting { syn: Vec<u8>, deadline: Instant },
    /// A smoltcp socket exists.
    Open,
}

struct Conn {
    host: TcpStream,
    handle: Option<SocketHandle>,
    /// Outbound: (container endpoint, destination as the container sees it).
    flow: Option<Flow>,
    /// Inbound: our local port on 10.0.2.2.
    local_port: Option<u16>,
    phase: Phase,
    /// Read 0 from the host: FIN sent (or queued) to the container.
    host_eof: bool,
    /// The container's FIN was seen.
    fin_seen: bool,
    /// `shutdown(SHUT_WR)` done on the host socket.
    host_wr_shut: bool,
    /// The host socket would block on write with data pending.
    want_write: bool,
    revents: i16,
}

pub struct TcpNat {
    conns: HashMap<u64, Conn>,
    flows: HashMap<Flow, u64>,
    next_id: u64,
    /// Destinations with a listener created in this round (see module doc).
    fresh_dsts: HashSet<SocketAddr>,
    fresh: Vec<u64>,
    dead: Vec<(u64, bool)>,
    again: bool,
    ports: PortAlloc,
    buf_size: usize,
    connect_timeout: Duration,
    counters: Arc<Counters>,
}

fn new_socket(buf: usize) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; buf]),
        tcp::SocketBuffer::new(vec![0u8; buf]),
    );
    s.set_nagle_enabled(false);
    // Probe idle connections so that one whose container side went away
    // (no answer for KEEPALIVE_TIMEOUT) is aborted instead of kept forever.
    s.set_keep_alive(Some(smoltcp::time::Duration::from_secs(60)));
    s.set_timeout(Some(smoltcp::time::Duration::from_secs(KEEPALIVE_TIMEOUT)));
    s
}

/// Start a non-blocking connect; `Ok((stream, connected_already))`.
fn connect_nonblocking(target: SocketAddr) -> std::io::Result<(TcpStream, bool)> {
    let family = if target.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    let _ = rustix::net::sockopt::set_tcp_nodelay(&fd, true);
    match rustix::net::connect(&fd, &target) {
        Ok(()) => Ok((TcpStream::from(fd), true)),
        Err(rustix::io::Errno::INPROGRESS) => Ok((TcpStream::from(fd), false)),
        Err(e) => Err(e.into()),
    }
}

impl TcpNat {
    pub fn new(buf_size: usize, connect_timeout: Duration, counters: Arc<Counters>) -> TcpNat {
        TcpNat {
            conns: HashMap::new(),
            flows: HashMap::new(),
            next_id: 0,
            fresh_dsts: HashSet::new(),
            fresh: Vec::new(),
            dead: Vec::new(),
            again: false,
            ports: PortAlloc::default(),
            buf_size,
            connect_timeout,
            counters,
        }
    }

    fn insert(&mut self, c: Conn) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(f) = c.flow {
            self.flows.insert(f, id);
        }
        self.conns.insert(id, c);
        id
    }

    fn listen(&mut self, dst: SocketAddr, sockets: &mut SocketSet<'static>) -> SocketHandle {
        let mut s = new_socket(self.buf_size);
        // Cannot fail: the port is not 0 (the filter drops those) and the
        // socket is new.
        let _ = s.listen(IpListenEndpoint {
            addr: Some(IpAddress::from(dst.ip())),
            port: dst.port(),
        });
        self.fresh_dsts.insert(dst);
        sockets.add(s)
    }

    /// A SYN from the container. `target` is where the destination maps on
    /// the host (`None`: refused). Returns whether the frame goes on to
    /// smoltcp now.
    pub fn on_syn(
        &mut self,
        frame: &[u8],
        src: SocketAddr,
        dst: SocketAddr,
        target: Option<SocketAddr>,
        sockets: &mut SocketSet<'static>,
    ) -> bool {
        if let Some(id) = self.flows.get(&(src, dst)) {
            // A retransmitted SYN: drop it while connecting, else smoltcp
            // knows the connection.
            return matches!(self.conns.get(id).map(|c| &c.phase), Some(Phase::Open));
        }
        if dst.port() == 0 || src.port() == 0 {
            return false;
        }
        let target = target.filter(|_| self.conns.len() < MAX_CONNS);
        let Some(target) = target else {
            self.counters.tcp_refused.fetch_add(1, Relaxed);
            return !self.fresh_dsts.contains(&dst);
        };
        let (host, done) = match connect_nonblocking(target) {
            Ok(x) => x,
            Err(_) => {
                self.counters.tcp_refused.fetch_add(1, Relaxed);
                return !self.fresh_dsts.contains(&dst);
            }
        };
        let mut conn = Conn {
            host,
            handle: None,
            flow: Some((src, dst)),
            local_port: None,
            phase: Phase::Connecting {
                syn: frame.to_vec(),
                deadline: Instant::now() + self.connect_timeout,
            },
            host_eof: false,
            fin_seen: false,
            host_wr_shut: false,
            want_write: false,
            revents: 0,
        };
        if done && !self.fresh_dsts.contains(&dst) {
            conn.handle = Some(self.listen(dst, sockets));
            conn.phase = Phase::Open;
            self.counters.tcp_connections.fetch_add(1, Relaxed);
            let id = self.insert(conn);
            self.fresh.push(id);
            return true;
        }
        self.insert(conn);
        false
    }

    /// Before smoltcp's ingress: finish host connects, feed held SYNs.
    pub fn pre_ingress(&mut self, dev: &mut FdDevice, sockets: &mut SocketSet<'static>) {
        let now = Instant::now();
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Connecting { .. }))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(c) = self.conns.get(&id) else {
                continue;
            };
            let Phase::Connecting { syn, deadline } = &c.phase else {
                continue;
            };
            let timed_out = now >= *deadline;
            let ready = c.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0;
            if !ready && !timed_out {
                continue;
            }
            let Some((_, dst)) = c.flow else { continue };
            if self.fresh_dsts.contains(&dst) {
                continue; // next round
            }
            let ok =
                !timed_out && matches!(rustix::net::sockopt::socket_error(&c.host), Ok(Ok(())));
            if !dev.inject(syn) {
                break; // ring full: next round
            }
            if ok {
                let h = self.listen(dst, sockets);
                if let Some(c) = self.conns.get_mut(&id) {
                    c.handle = Some(h);
                    c.phase = Phase::Open;
                    c.revents = 0;
                }
                self.counters.tcp_connections.fetch_add(1, Relaxed);
                self.fresh.push(id);
            } else {
                // No listener: smoltcp answers the SYN with RST.
                self.counters.tcp_refused.fetch_add(1, Relaxed);
                self.fresh_dsts.insert(dst);
                self.remove(id, sockets, false);
            }
        }
    }

    /// After smoltcp's ingress: listeners that did not get their SYN go.
    pub fn post_ingress(&mut self, sockets: &mut SocketSet<'static>) {
        self.fresh_dsts.clear();
        let fresh = std::mem::take(&mut self.fresh);
        for id in &fresh {
            let Some(c) = self.conns.get(id) else {
                continue;
            };
            let (Some(h), Some((src, _))) = (c.handle, c.flow) else {
                continue;
            };
            let s = sockets.get::<tcp::Socket>(h);
            let expected = IpEndpoint::new(IpAddress::from(src.ip()), src.port());
            if s.state() == State::Listen || s.remote_endpoint() != Some(expected) {
                self.remove(*id, sockets, true);
            }
        }
        self.fresh = fresh;
        self.fresh.clear();
    }

    /// A connection accepted on a `-p` listener.
    pub fn add_forwarded(
        &mut self,
        host: TcpStream,
        container_port: u16,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
    ) {
        if self.conns.len() >= MAX_CONNS || host.set_nonblocking(true).is_err() {
            return;
        }
        let _ = host.set_nodelay(true);
        let Some(port) = self.ports.alloc() else {
            return;
        };
        let mut s = new_socket(self.buf_size);
        let remote = IpEndpoint::new(IpAddress::Ipv4(CONTAINER_ADDR), container_port);
        let local = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(GATEWAY_ADDR)),
            port,
        };
        if s.connect(iface.context(), remote, local).is_err() {
            self.ports.free(port);
            return;
        }
        self.counters.tcp_forwarded.fetch_add(1, Relaxed);
        let handle = Some(sockets.add(s));
        self.insert(Conn {
            host,
            handle,
            flow: None,
            local_port: Some(port),
            phase: Phase::Open,
            host_eof: false,
            fin_seen: false,
            host_wr_shut: false,
            want_write: false,
            revents: 0,
        });
    }

    /// Whether the last pass left work that no fd event will announce.
    pub fn needs_another_pass(&self) -> bool {
        self.again
    }

    fn remove(&mut self, id: u64, sockets: &mut SocketSet<'static>, reset: bool) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        if let Some(h) = c.handle {
            sockets.remove(h);
        }
        if let Some(f) = c.flow {
            self.flows.remove(&f);
        }
        if let Some(p) = c.local_port {
            self.ports.free(p);
        }
        if reset {
            // Close with RST, as the container's side did.
            let _ = rustix::net::sockopt::set_socket_linger(&c.host, Some(Duration::ZERO));
        }
    }

    /// Move data between smoltcp sockets and host sockets; reap finished
    /// connections.
    pub fn relay(&mut self, sockets: &mut SocketSet<'static>) {
        self.again = false;
        for (id, c) in self.conns.iter_mut() {
            let Some(h) = c.handle else { continue };
            let s = sockets.get_mut::<tcp::Socket>(h);
            let revents = std::mem::take(&mut c.revents);
            let state = s.state();
            if matches!(
                state,
                State::CloseWait | State::LastAck | State::Closing | State::TimeWait
            ) {
                c.fin_seen = true;
            }
            // Container -> host.
            if !c.host_wr_shut {
                let mut failed = false;
                while s.can_recv() {
                    let r = s.recv(|b| match (&c.host).write(b) {
                        Ok(n) => (n, Ok(n)),
                        Err(e) => (0, Err(e)),
                    });
                    match r {
                        Ok(Ok(0)) => break,
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) if e.kind() == ErrorKind::WouldBlock => break,
                        Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                        Ok(Err(_)) => {
                            failed = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if failed {
                    s.abort();
                    c.host_eof = true;
                    c.host_wr_shut = true;
                    self.again = true;
                    continue;
                }
                c.want_write = s.can_recv();
                if c.fin_seen && !s.can_recv() {
                    let _ = c.host.shutdown(Shutdown::Write);
                    c.host_wr_shut = true;
                }
            }
            // Host -> container.
            if !c.host_eof
                && revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                && s.may_send()
            {
                while s.can_send() {
                    let r = s.send(|b| match (&c.host).read(b) {
                        Ok(n) => (n, Ok(n)),
                        Err(e) => (0, Err(e)),
                    });
                    match r {
                        Ok(Ok(0)) => {
                            c.host_eof = true;
                            s.close();
                            break;
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) if e.kind() == ErrorKind::WouldBlock => break,
                        Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
                        Ok(Err(_)) => {
                            // The host side was reset: reset the container's.
                            s.abort();
                            c.host_eof = true;
                            c.host_wr_shut = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
            // Reap by the state found before this pass: a socket aborted
            // or closed just now must first get its RST or FIN out.
            if s.state() != state {
                self.again = true;
            }
            match state {
                State::TimeWait if !s.can_recv() => self.dead.push((*id, false)),
                State::Closed => {
                    let graceful = c.host_eof && c.fin_seen && !s.can_recv();
                    self.dead.push((*id, !graceful));
                }
                _ => {}
            }
        }
        let dead = std::mem::take(&mut self.dead);
        for &(id, reset) in &dead {
            self.remove(id, sockets, reset);
        }
        self.dead = dead;
        self.dead.clear();
    }

    /// Host fds to poll and for what.
    pub fn interest(&self, sockets: &SocketSet<'static>, mut f: impl FnMut(u64, RawFd, i16)) {
        for (id, c) in &self.conns {
            let ev = match (&c.phase, c.handle) {
                (Phase::Connecting { .. }, _) => libc::POLLOUT,
                (Phase::Open, Some(h)) => {
                    let s = sockets.get::<tcp::Socket>(h);
                    let mut ev = 0;
                    if !c.host_eof && s.can_send() {
                        ev |= libc::POLLIN;
                    }
                    if c.want_write {
                        ev |= libc::POLLOUT;
                    }
                    ev
                }
                _ => 0,
            };
            if ev != 0 {
                f(*id, c.host.as_raw_fd(), ev);
            }
        }
    }

    pub fn set_revents(&mut self, id: u64, revents: i16) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.revents |= revents;
        }
    }

    /// The earliest connect deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|c| match &c.phase {
                Phase::Connecting { deadline, .. } => Some(*deadline),
                Phase::Open => None,
            })
            .min()
    }
}
