//! UDP NAT with per-flow host sockets and idle timeouts.
//!
//! Outbound: one smoltcp UDP socket is bound to each destination the
//! container sends to (any_ip lets it bind a foreign address); each
//! (container endpoint, destination) flow has its own connected host socket,
//! so replies find their way back and the host kernel filters strangers.
//! Inbound (`-p .../udp`): one smoltcp socket on 10.0.2.2:EPHEMERAL per host
//! peer, talking to 10.0.2.100:CTRPORT; replies go out of the listener with
//! `send_to(peer)`.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use super::Counters;
use super::config::{CONTAINER_ADDR, GATEWAY_ADDR, PortForward};
use super::forward::PortAlloc;

/// Datagrams moved per flow per round, so one flow cannot starve the rest.
const BURST: usize = 64;
/// Destinations with a smoltcp socket at once; datagrams to more are dropped.
const MAX_BINDS: usize = 4096;
/// Flows (host sockets) at once.
const MAX_FLOWS: usize = 8192;

struct Bind {
    handle: SocketHandle,
    target: SocketAddr,
    /// The DNS forwarder's address: flows go to the preferred upstream.
    dns: bool,
    timeout: Duration,
    flows: usize,
    last: Instant,
}

enum Kind {
    Out {
        host: UdpSocket,
        container: SocketAddr,
        dst: SocketAddr,
        dns: Option<DnsState>,
    },
    Fwd {
        listener: usize,
        peer: SocketAddr,
        handle: SocketHandle,
        port: u16,
    },
}

/// Failover state of a flow to the DNS forwarder.
struct DnsState {
    upstream: SocketAddr,
    /// When the oldest query still without an answer was sent.
    waiting: Option<Instant>,
}

/// A query unanswered for this long moves the flow (and the preference)
/// to the next upstream; so does a refusal (ICMP port unreachable).
const DNS_FAILOVER: Duration = Duration::from_secs(2);

/// The upstream after `current`, which becomes the preferred one.
fn next_upstream(upstreams: &[SocketAddr], pref: &mut usize, current: SocketAddr) -> SocketAddr {
    if upstreams.is_empty() {
        return current;
    }
    if upstreams.get(*pref) == Some(&current) {
        *pref = (*pref + 1) % upstreams.len();
    }
    upstreams[*pref % upstreams.len()]
}

struct Flow {
    kind: Kind,
    last: Instant,
    timeout: Duration,
    readable: bool,
}

pub struct UdpNat {
    binds: HashMap<SocketAddr, Bind>,
    out: HashMap<(SocketAddr, SocketAddr), u64>,
    fwd: HashMap<(usize, SocketAddr), u64>,
    flows: HashMap<u64, Flow>,
    listeners: Vec<(UdpSocket, PortForward, bool)>,
    ports: PortAlloc,
    next_id: u64,
    buf: Vec<u8>,
    timeout: Duration,
    dns_upstreams: Vec<SocketAddr>,
    dns_pref: usize,
    dns_timeout: Duration,
    counters: Arc<Counters>,
}

fn new_socket(max_payload: usize) -> udp::Socket<'static> {
    let payload = (4 * max_payload).max(64 * 1024);
    udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0u8; payload]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0u8; payload]),
    )
}

fn ep(a: SocketAddr) -> IpEndpoint {
    IpEndpoint::new(IpAddress::from(a.ip()), a.port())
}

fn host_socket(target: SocketAddr) -> std::io::Result<UdpSocket> {
    let any = match target.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let s = UdpSocket::bind(SocketAddr::new(any, 0))?;
    s.connect(target)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

impl UdpNat {
    pub fn new(
        listeners: Vec<(UdpSocket, PortForward)>,
        mtu: usize,
        timeout: Duration,
        dns_upstreams: Vec<SocketAddr>,
        dns_timeout: Duration,
        counters: Arc<Counters>,
    ) -> UdpNat {
        UdpNat {
            binds: HashMap::new(),
            out: HashMap::new(),
            fwd: HashMap::new(),
            flows: HashMap::new(),
            listeners: listeners.into_iter().map(|(s, f)| (s, f, false)).collect(),
            ports: PortAlloc::default(),
            next_id: 0,
            buf: vec![0u8; mtu.max(1500)],
            timeout,
            dns_upstreams,
            dns_pref: 0,
            dns_timeout,
            counters,
        }
    }

    /// A datagram from the container to `dst`, which maps to `target` on
    /// the host (`None`: not relayed). Makes sure a smoltcp socket is bound
    /// to `dst` before the frame reaches smoltcp. Returns whether the frame
    /// goes on.
    pub fn on_datagram(
        &mut self,
        dst: SocketAddr,
        target: Option<SocketAddr>,
        dns: bool,
        sockets: &mut SocketSet<'static>,
    ) -> bool {
        // Replies to our own inbound (forwarded) flows.
        if dst.ip() == IpAddr::V4(GATEWAY_ADDR) && self.ports.contains(dst.port()) {
            return true;
        }
        let Some(target) = target else {
            // Refused: smoltcp answers "port unreachable", unless a socket
            // was bound to `dst` while it was allowed (the host's
            // addresses change): then the datagram is dropped here.
            if self.binds.contains_key(&dst) {
                self.counters.udp_dropped.fetch_add(1, Relaxed);
                return false;
            }
            return true;
        };
        let now = Instant::now();
        if let Some(b) = self.binds.get_mut(&dst) {
            b.last = now;
            return true;
        }
        if self.binds.len() >= MAX_BINDS {
            self.counters.udp_dropped.fetch_add(1, Relaxed);
            return false;
        }
        let mut s = new_socket(self.buf.len());
        if s.bind(IpListenEndpoint {
            addr: Some(IpAddress::from(dst.ip())),
            port: dst.port(),
        })
        .is_err()
        {
            return false;
        }
        let handle = sockets.add(s);
        let timeout = if dns { self.dns_timeout } else { self.timeout };
        self.binds.insert(
            dst,
            Bind {
                handle,
                target,
                dns,
                timeout,
                flows: 0,
                last: now,
            },
        );
        true
    }

    fn insert(&mut self, kind: Kind, timeout: Duration) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.counters.udp_flows.fetch_add(1, Relaxed);
        self.flows.insert(
            id,
            Flow {
                kind,
                last: Instant::now(),
                timeout,
                readable: false,
            },
        );
        id
    }

    /// Move datagrams both ways and expire idle flows.
    pub fn service(&mut self, sockets: &mut SocketSet<'static>) {
        let now = Instant::now();
        // Container -> host (outbound).
        let dsts: Vec<SocketAddr> = self.binds.keys().copied().collect();
        for dst in dsts {
            let Some(b) = self.binds.get(&dst) else {
                continue;
            };
            let (handle, timeout, dns) = (b.handle, b.timeout, b.dns);
            let target = match self.dns_upstreams.get(self.dns_pref) {
                Some(up) if dns => *up,
                _ => b.target,
            };
            for _ in 0..BURST {
                let s = sockets.get_mut::<udp::Socket>(handle);
                let Ok((data, meta)) = s.recv() else { break };
                let container = SocketAddr::new(meta.endpoint.addr.into(), meta.endpoint.port);
                let id = match self.out.get(&(container, dst)) {
                    Some(id) => *id,
                    None if self.flows.len() >= MAX_FLOWS => {
                        self.counters.udp_dropped.fetch_add(1, Relaxed);
                        continue;
                    }
                    None => match host_socket(target) {
                        Ok(host) => {
                            let id = self.insert(
                                Kind::Out {
                                    host,
                                    container,
                                    dst,
                                    dns: dns.then_some(DnsState {
                                        upstream: target,
                                        waiting: None,
                                    }),
                                },
                                timeout,
                            );
                            self.out.insert((container, dst), id);
                            if let Some(b) = self.binds.get_mut(&dst) {
                                b.flows += 1;
                            }
                            id
                        }
                        Err(_) => {
                            self.counters.udp_dropped.fetch_add(1, Relaxed);
                            continue;
                        }
                    },
                };
                let Some(f) = self.flows.get_mut(&id) else {
                    continue;
                };
                f.last = now;
                if let Kind::Out { host, dns, .. } = &mut f.kind {
                    if let Some(d) = dns {
                        match d.waiting {
                            Some(t) if now.duration_since(t) >= DNS_FAILOVER => {
                                let next = next_upstream(
                                    &self.dns_upstreams,
                                    &mut self.dns_pref,
                                    d.upstream,
                                );
                                if next != d.upstream && host.connect(next).is_ok() {
                                    d.upstream = next;
                                }
                                d.waiting = Some(now);
                            }
                            Some(_) => {}
                            None => d.waiting = Some(now),
                        }
                    }
                    if host.send(data).is_err() {
                        self.counters.udp_dropped.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        // Host -> container, and container replies to forwarded flows.
        for f in self.flows.values_mut() {
            match &mut f.kind {
                Kind::Out {
                    host,
                    container,
                    dst,
                    dns,
                } => {
                    if !std::mem::take(&mut f.readable) {
                        continue;
                    }
                    let Some(b) = self.binds.get(dst) else {
                        continue;
                    };
                    let s = sockets.get_mut::<udp::Socket>(b.handle);
                    for _ in 0..BURST {
                        if !s.can_send() {
                            break;
                        }
                        match host.recv(&mut self.buf) {
                            Ok(n) => {
                                f.last = now;
                                if let Some(d) = dns {
                                    d.waiting = None;
                                }
                                if s.send_slice(&self.buf[..n], ep(*container)).is_err() {
                                    self.counters.udp_dropped.fetch_add(1, Relaxed);
                                }
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            // The upstream resolver refused: the next query
                            // goes to the next one.
                            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                                if let Some(d) = dns {
                                    let next = next_upstream(
                                        &self.dns_upstreams,
                                        &mut self.dns_pref,
                                        d.upstream,
                                    );
                                    if next != d.upstream && host.connect(next).is_ok() {
                                        d.upstream = next;
                                    }
                                    d.waiting = None;
                                }
                                break;
                            }
                            // Other ICMP errors reported on the connected socket.
                            Err(_) => break,
                        }
                    }
                }
                Kind::Fwd {
                    listener,
                    peer,
                    handle,
                    ..
                } => {
                    let s = sockets.get_mut::<udp::Socket>(*handle);
                    let Some((l, _, _)) = self.listeners.get(*listener) else {
                        continue;
                    };
                    for _ in 0..BURST {
                        let Ok((data, _)) = s.recv() else { break };
                        f.last = now;
                        if l.send_to(data, *peer).is_err() {
                            self.counters.udp_dropped.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
        }
        // Host peers -> container (forwards).
        for i in 0..self.listeners.len() {
            if !std::mem::take(&mut self.listeners[i].2) {
                continue;
            }
            for _ in 0..BURST {
                let (n, peer) = match self.listeners[i].0.recv_from(&mut self.buf) {
                    Ok(x) => x,
                    Err(_) => break,
                };
                let cport = self.listeners[i].1.container_port;
                let id = match self.fwd.get(&(i, peer)) {
                    Some(id) => *id,
                    None => {
                        if self.flows.len() >= MAX_FLOWS {
                            self.counters.udp_dropped.fetch_add(1, Relaxed);
                            continue;
                        }
                        let Some(port) = self.ports.alloc() else {
                            break;
                        };
                        let mut s = new_socket(self.buf.len());
                        let local = IpListenEndpoint {
                            addr: Some(IpAddress::Ipv4(GATEWAY_ADDR)),
                            port,
                        };
                        if s.bind(local).is_err() {
                            self.ports.free(port);
                            break;
                        }
                        let handle = sockets.add(s);
                        let id = self.insert(
                            Kind::Fwd {
                                listener: i,
                                peer,
                                handle,
                                port,
                            },
                            self.timeout,
                        );
                        self.fwd.insert((i, peer), id);
                        id
                    }
                };
                let Some(f) = self.flows.get_mut(&id) else {
                    continue;
                };
                f.last = now;
                if let Kind::Fwd { handle, .. } = f.kind {
                    let s = sockets.get_mut::<udp::Socket>(handle);
                    let to = IpEndpoint::new(IpAddress::Ipv4(CONTAINER_ADDR), cport);
                    if s.send_slice(&self.buf[..n], to).is_err() {
                        self.counters.udp_dropped.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        self.expire(now, sockets);
    }

    fn expire(&mut self, now: Instant, sockets: &mut SocketSet<'static>) {
        let idle: Vec<u64> = self
            .flows
            .iter()
            .filter(|(_, f)| now.duration_since(f.last) >= f.timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            let Some(f) = self.flows.remove(&id) else {
                continue;
            };
            match f.kind {
                Kind::Out { container, dst, .. } => {
                    self.out.remove(&(container, dst));
                    if let Some(b) = self.binds.get_mut(&dst) {
                        b.flows = b.flows.saturating_sub(1);
                    }
                }
                Kind::Fwd {
                    listener,
                    peer,
                    handle,
                    port,
                } => {
                    self.fwd.remove(&(listener, peer));
                    sockets.remove(handle);
                    self.ports.free(port);
                }
            }
        }
        self.binds.retain(|_, b| {
            let keep = b.flows > 0 || now.duration_since(b.last) < b.timeout;
            if !keep {
                sockets.remove(b.handle);
            }
            keep
        });
    }

    /// Host fds to poll for input: `(true, index)` for listeners,
    /// `(false, flow id)` for flows.
    pub fn interest(&self, mut f: impl FnMut(bool, u64, RawFd)) {
        for (i, (l, _, _)) in self.listeners.iter().enumerate() {
            f(true, i as u64, l.as_raw_fd());
        }
        for (id, fl) in &self.flows {
            if let Kind::Out { host, .. } = &fl.kind {
                f(false, *id, host.as_raw_fd());
            }
        }
    }

    pub fn set_readable(&mut self, listener: bool, id: u64) {
        if listener {
            if let Some(l) = self.listeners.get_mut(id as usize) {
                l.2 = true;
            }
        } else if let Some(f) = self.flows.get_mut(&id) {
            f.readable = true;
        }
    }

    /// When the next flow may expire.
    pub fn next_deadline(&self) -> Option<Instant> {
        let flows = self.flows.values().map(|f| f.last + f.timeout);
        let binds = self.binds.values().map(|b| b.last + b.timeout);
        flows.chain(binds).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_rotation() {
        let ups: Vec<SocketAddr> = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut pref = 0;
        assert_eq!(next_upstream(&ups, &mut pref, ups[0]), ups[1]);
        // A second flow still on the old upstream follows the preference.
        assert_eq!(next_upstream(&ups, &mut pref, ups[0]), ups[1]);
        assert_eq!(pref, 1);
        assert_eq!(next_upstream(&ups, &mut pref, ups[1]), ups[2]);
        assert_eq!(next_upstream(&ups, &mut pref, ups[2]), ups[0]);
        assert_eq!(next_upstream(&[], &mut pref, ups[2]), ups[2]);
    }
}
