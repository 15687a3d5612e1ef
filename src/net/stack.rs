//! The interface and the event loop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, Result};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

use super::Counters;
use super::config::{
    DNS_ADDR, DNS_ADDR6, GATEWAY_ADDR, GATEWAY_ADDR6, GATEWAY_MAC, NetConfig, PREFIX_LEN,
    PREFIX_LEN6, PortForward,
};
use super::device::{FdDevice, ReadStatus, SendRaw};
use super::filter::{Class, classify};
use super::forward::Listeners;
use super::icmp::IcmpRelay;
use super::policy::{HostAddrs, Policy};
use super::tcp::TcpNat;
use super::udp::UdpNat;

/// Where a destination seen by the container goes on the host; `None`:
/// refused. The stack's own addresses are mapped here (the gateway to the
/// host's loopback when allowed, the DNS forwarder to the configured
/// upstream resolver and nothing else); every other destination is asked
/// of `policy`.
pub fn map_dest(cfg: &NetConfig, policy: &mut Policy, dst: SocketAddr) -> Option<SocketAddr> {
    let ip = dst.ip();
    if ip == IpAddr::V4(GATEWAY_ADDR) || ip == IpAddr::V6(GATEWAY_ADDR6) {
        let lo: IpAddr = match ip {
            IpAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            IpAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        };
        return cfg
            .allow_host_loopback
            .then(|| SocketAddr::new(lo, dst.port()));
    }
    if ip == IpAddr::V4(DNS_ADDR) || ip == IpAddr::V6(DNS_ADDR6) {
        return if dst.port() == 53 {
            cfg.dns_upstreams.first().copied()
        } else {
            None
        };
    }
    if dst.port() == 0 {
        return None;
    }
    match policy.check(ip) {
        Ok(()) => Some(dst),
        Err(why) => {
            tracing::debug!("network: refused {dst}: {why}");
            None
        }
    }
}

#[derive(Clone, Copy)]
enum Token {
    Tap,
    Stop,
    TcpListener(usize),
    Tcp(u64),
    UdpListener(u64),
    Udp(u64),
    Icmp(u64),
    /// Netlink: the host's addresses changed.
    HostAddrs,
}

pub struct Stack {
    cfg: NetConfig,
    counters: Arc<Counters>,
    iface: Interface,
    dev: FdDevice,
    sockets: SocketSet<'static>,
    tcp: TcpNat,
    udp: UdpNat,
    icmp: IcmpRelay,
    policy: Policy,
    tcp_listeners: Vec<(TcpListener, PortForward, bool)>,
    /// Listeners left out of `poll` after an accept error (EMFILE...),
    /// until the given time: level-triggered readiness would spin.
    paused: Vec<Option<std::time::Instant>>,
    stop: UnixStream,
    pfds: Vec<libc::pollfd>,
    tokens: Vec<Token>,
}

impl Stack {
    pub fn new(
        tap: OwnedFd,
        cfg: NetConfig,
        listeners: Listeners,
        stop: UnixStream,
        counters: Arc<Counters>,
    ) -> Result<Stack> {
        let mut dev = FdDevice::new(tap, cfg.mtu, counters.clone());
        let mut config = Config::new(EthernetAddress(GATEWAY_MAC).into());
        let mut seed = [0u8; 8];
        let _ = rustix::rand::getrandom(&mut seed, rustix::rand::GetRandomFlags::empty());
        config.random_seed = u64::from_ne_bytes(seed);
        let mut iface = Interface::new(config, &mut dev, Instant::now());
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(GATEWAY_ADDR), PREFIX_LEN));
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(DNS_ADDR), PREFIX_LEN));
            let _ = a.push(IpCidr::new(IpAddress::Ipv6(GATEWAY_ADDR6), PREFIX_LEN6));
            let _ = a.push(IpCidr::new(IpAddress::Ipv6(DNS_ADDR6), PREFIX_LEN6));
        });
        // A default route through our own address: with any_ip, every
        // destination is then accepted as local.
        iface
            .routes_mut()
            .add_default_ipv4_route(GATEWAY_ADDR)
            .context("adding the default route")?;
        iface
            .routes_mut()
            .add_default_ipv6_route(GATEWAY_ADDR6)
            .context("adding the default IPv6 route")?;
        iface.set_any_ip(true);
        let tcp = TcpNat::new(cfg.tcp_buffer, cfg.connect_timeout, counters.clone());
        let udp = UdpNat::new(
            listeners.udp,
            cfg.mtu,
            cfg.udp_timeout,
            cfg.dns_upstreams.clone(),
            cfg.dns_timeout,
            counters.clone(),
        );
        stop.set_nonblocking(true)?;
        let policy = Policy::new(cfg.allow_host_loopback, cfg.block_private, HostAddrs::new());
        Ok(Stack {
            paused: vec![None; listeners.tcp.len()],
            tcp_listeners: listeners
                .tcp
                .into_iter()
                .map(|(l, f)| (l, f, false))
                .collect(),
            cfg,
            counters: counters.clone(),
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
            tcp,
            udp,
            icmp: IcmpRelay::new(counters.clone()),
            policy,
            stop,
            pfds: Vec::new(),
            tokens: Vec::new(),
        })
    }

    /// Run until stopped or until the TAP fd closes.
    pub fn run(&mut self) -> Result<()> {
        let mut stop_seen = false;
        loop {
            // After a stop, one last pass without waiting: frames the
            // container sent before it exited (its kernel has seen them
            // acknowledged or queued them) still reach the host sockets,
            // and FINs become shutdowns, before everything is closed.
            let last_pass = stop_seen;
            // Frames in: filter, then hand them over.
            let status = {
                let mut nat = Nat {
                    cfg: &self.cfg,
                    counters: &self.counters,
                    tcp: &mut self.tcp,
                    udp: &mut self.udp,
                    icmp: &mut self.icmp,
                    policy: &mut self.policy,
                    sockets: &mut self.sockets,
                };
                self.dev.read_batch(|frame| nat.filter_frame(frame))
            };
            if status == ReadStatus::Closed {
                return Ok(());
            }
            self.tcp.pre_ingress(&mut self.dev, &mut self.sockets);
            let now = Instant::now();
            self.iface.poll(now, &mut self.dev, &mut self.sockets);
            self.tcp.post_ingress(&mut self.sockets);
            if self.dev.flush().is_err() {
                return Ok(());
            }
            // Host side.
            self.accept();
            self.tcp.relay(&mut self.sockets);
            self.udp.service(&mut self.sockets);
            self.icmp.service();
            let dev = &mut self.dev;
            self.icmp.drain(|f| dev.send_raw(f) == SendRaw::NoRoom);
            let now = Instant::now();
            self.iface.poll(now, &mut self.dev, &mut self.sockets);
            let tx_blocked = match self.dev.flush() {
                Ok(b) => b,
                Err(_) => return Ok(()),
            };
            if last_pass {
                return Ok(());
            }
            // Wait.
            let timeout = self.timeout(now, tx_blocked);
            self.build_pollfds(tx_blocked);
            if let Err(e) = crate::sys::poll(&mut self.pfds, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("poll");
            }
            for i in 0..self.pfds.len() {
                let r = self.pfds[i].revents;
                if r == 0 {
                    continue;
                }
                match self.tokens[i] {
                    Token::Tap => {
                        if r & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                            // The container's end is closed (a TAP fd does not
                            // hang up; a socket used in its place does).
                            return Ok(());
                        }
                    }
                    Token::Stop => stop_seen = true,
                    Token::TcpListener(l) => self.tcp_listeners[l].2 = true,
                    Token::Tcp(id) => self.tcp.set_revents(id, r),
                    Token::UdpListener(l) => self.udp.set_readable(true, l),
                    Token::Udp(id) => self.udp.set_readable(false, id),
                    Token::Icmp(id) => self.icmp.set_readable(id),
                    Token::HostAddrs => self.policy.host_addrs().on_notification(),
                }
            }
        }
    }

    fn accept(&mut self) {
        for i in 0..self.tcp_listeners.len() {
            if !std::mem::take(&mut self.tcp_listeners[i].2) {
                continue;
            }
            for _ in 0..64 {
                match self.tcp_listeners[i].0.accept() {
                    Ok((s, _)) => {
                        let port = self.tcp_listeners[i].1.container_port;
                        self.tcp
                            .add_forwarded(s, port, &mut self.iface, &mut self.sockets);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::debug!("accept on {}: {e}", self.tcp_listeners[i].1.host);
                        self.paused[i] =
                            Some(std::time::Instant::now() + Duration::from_millis(250));
                        break;
                    }
                }
            }
        }
    }

    fn timeout(&mut self, now: Instant, tx_blocked: bool) -> i32 {
        if (self.dev.rx_pending() > 0 || self.tcp.needs_another_pass()) && !tx_blocked {
            return 0;
        }
        let mut ms: Option<u64> = None;
        let mut min = |v: u64| ms = Some(ms.map_or(v, |m| m.min(v)));
        if !tx_blocked && let Some(d) = self.iface.poll_delay(now, &self.sockets) {
            min(d.total_millis());
        }
        let snow = std::time::Instant::now();
        let paused = self.paused.iter().flatten().min().copied();
        for d in [
            self.tcp.next_deadline(),
            self.udp.next_deadline(),
            self.icmp.next_deadline(),
            paused,
        ]
        .into_iter()
        .flatten()
        {
            let left = d.saturating_duration_since(snow) + Duration::from_millis(1);
            min(left.as_millis().min(60_000) as u64);
        }
        ms.map_or(-1, |m| m.min(i32::MAX as u64) as i32)
    }

    fn build_pollfds(&mut self, tx_blocked: bool) {
        self.pfds.clear();
        self.tokens.clear();
        let pfds = &mut self.pfds;
        let tokens = &mut self.tokens;
        let mut push = |fd: i32, events: i16, t: Token| {
            pfds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            tokens.push(t);
        };
        let mut tap_ev = 0;
        if !self.dev.rx_full() {
            tap_ev |= libc::POLLIN;
        }
        if tx_blocked {
            tap_ev |= libc::POLLOUT;
        }
        push(self.dev.raw_fd(), tap_ev, Token::Tap);
        push(self.stop.as_raw_fd(), libc::POLLIN, Token::Stop);
        if let Some(fd) = self.policy.host_addrs().watch_fd() {
            push(fd.as_raw_fd(), libc::POLLIN, Token::HostAddrs);
        }
        let snow = std::time::Instant::now();
        for (i, (l, _, _)) in self.tcp_listeners.iter().enumerate() {
            match self.paused[i] {
                Some(until) if snow < until => continue,
                Some(_) => self.paused[i] = None,
                None => {}
            }
            push(l.as_raw_fd(), libc::POLLIN, Token::TcpListener(i));
        }
        self.tcp
            .interest(&self.sockets, |id, fd, ev| push(fd, ev, Token::Tcp(id)));
        self.udp.interest(|listener, id, fd| {
            let t = if listener {
                Token::UdpListener(id)
            } else {
                Token::Udp(id)
            };
            push(fd, libc::POLLIN, t)
        });
        self.icmp
            .interest(|id, fd| push(fd, libc::POLLIN, Token::Icmp(id)));
    }
}

/// What the frame filter needs to hand frames to the NAT tables.
struct Nat<'a> {
    cfg: &'a NetConfig,
    counters: &'a Counters,
    tcp: &'a mut TcpNat,
    udp: &'a mut UdpNat,
    icmp: &'a mut IcmpRelay,
    policy: &'a mut Policy,
    sockets: &'a mut SocketSet<'static>,
}

impl Nat<'_> {
    /// Whether `frame` goes on to smoltcp.
    fn filter_frame(&mut self, frame: &[u8]) -> bool {
        match classify(frame) {
            Class::Malformed => {
                self.counters.dropped_malformed.fetch_add(1, Relaxed);
                false
            }
            Class::Unsupported => {
                self.counters.dropped_unsupported.fetch_add(1, Relaxed);
                false
            }
            Class::Pass => true,
            Class::TcpSyn { src, dst } => {
                let target = map_dest(self.cfg, self.policy, dst);
                self.tcp.on_syn(frame, src, dst, target, self.sockets)
            }
            Class::Udp { src: _, dst } => {
                let dns = (dst.ip() == IpAddr::V4(DNS_ADDR) || dst.ip() == IpAddr::V6(DNS_ADDR6))
                    && dst.port() == 53;
                let target = map_dest(self.cfg, self.policy, dst);
                self.udp.on_datagram(dst, target, dns, self.sockets)
            }
            Class::EchoOut { dst } => {
                match self.policy.check(dst) {
                    Ok(()) => self.icmp.on_request(frame),
                    Err(why) => {
                        tracing::debug!("network: refused echo to {dst}: {why}");
                        self.counters.icmp_refused.fetch_add(1, Relaxed);
                    }
                }
                false
            }
        }
    }
}
