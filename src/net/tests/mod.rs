//! In-process tests: the stack on one end of a SOCK_SEQPACKET pair, a second
//! smoltcp interface playing the container on the other end. All host
//! traffic goes to 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use sha2::{Digest, Sha256};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, IpEndpoint};

use super::config::{DNS_ADDR, GATEWAY_MAC, PREFIX_LEN};
use super::device::{FdDevice, ReadStatus};
use super::policy::{AddrList, HostAddrs, Policy};
use super::*;

const CONTAINER_MAC: [u8; 6] = super::icmp::tests::MAC;

fn pair() -> (OwnedFd, OwnedFd) {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .unwrap();
    for fd in [&a, &b] {
        let _ = rustix::net::sockopt::set_socket_send_buffer_size(fd, 4 << 20);
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(fd, 4 << 20);
    }
    (a, b)
}

/// The "container": a smoltcp interface at 10.0.2.100/24.
struct Container {
    iface: Interface,
    dev: FdDevice,
    sockets: SocketSet<'static>,
}

impl Container {
    fn new(fd: OwnedFd, mtu: usize) -> Container {
        let mut dev = FdDevice::new(fd, mtu, Arc::new(Counters::default()));
        let mut config = Config::new(EthernetAddress(CONTAINER_MAC).into());
        config.random_seed = 42;
        let mut iface = Interface::new(config, &mut dev, Instant::now());
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(CONTAINER_ADDR), PREFIX_LEN))
                .unwrap();
            a.push(IpCidr::new(IpAddress::Ipv6(CONTAINER_ADDR6), PREFIX_LEN6))
                .unwrap();
        });
        iface
            .routes_mut()
            .add_default_ipv4_route(GATEWAY_ADDR)
            .unwrap();
        iface
            .routes_mut()
            .add_default_ipv6_route(GATEWAY_ADDR6)
            .unwrap();
        Container {
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
        }
    }

    fn step(&mut self) {
        assert_eq!(
            self.dev.read_batch(|_| true),
            ReadStatus::Ok,
            "stack closed its end"
        );
        self.iface
            .poll(Instant::now(), &mut self.dev, &mut self.sockets);
        let _ = self.dev.flush();
        let wait = self
            .iface
            .poll_delay(Instant::now(), &self.sockets)
            .map_or(5, |d| d.total_millis().min(5) as i32);
        let mut pfd = libc::pollfd {
            fd: self.dev.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let _ = crate::sys::poll(std::slice::from_mut(&mut pfd), wait);
    }

    /// Step until `done` says so; false on timeout.
    fn run_until(&mut self, secs: u64, mut done: impl FnMut(&mut Container) -> bool) -> bool {
        let end = StdInstant::now() + Duration::from_secs(secs);
        while StdInstant::now() < end {
            self.step();
            if done(self) {
                return true;
            }
        }
        false
    }

    fn tcp_socket(&mut self) -> SocketHandle {
        self.tcp_socket_sized(256 * 1024)
    }

    fn tcp_socket_sized(&mut self, buf: usize) -> SocketHandle {
        let s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buf]),
            tcp::SocketBuffer::new(vec![0; buf]),
        );
        self.sockets.add(s)
    }

    fn udp_socket(&mut self, port: u16) -> SocketHandle {
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 256 * 1024]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 16], vec![0; 256 * 1024]),
        );
        s.bind(port).unwrap();
        self.sockets.add(s)
    }

    fn connect(&mut self, h: SocketHandle, to: (std::net::Ipv4Addr, u16), local_port: u16) {
        self.connect_ip(h, (to.0.into(), to.1), local_port)
    }

    fn connect_ip(&mut self, h: SocketHandle, to: (std::net::IpAddr, u16), local_port: u16) {
        let cx = self.iface.context();
        self.sockets
            .get_mut::<tcp::Socket>(h)
            .connect(cx, IpEndpoint::new(IpAddress::from(to.0), to.1), local_port)
            .unwrap();
    }

    fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }
}

fn test_cfg() -> NetConfig {
    NetConfig {
        dns_upstreams: Vec::new(),
        allow_host_loopback: true,
        ..NetConfig::default()
    }
}

/// The stack on one end of a socket pair, with `forwards` bound.
fn spawn_with(tap: OwnedFd, cfg: NetConfig, forwards: &[PortForward]) -> Result<NetHandle> {
    let listeners = Listeners::bind(forwards)?;
    spawn(tap, cfg, listeners)
}

fn start(cfg: NetConfig) -> (NetHandle, Container) {
    start_with(cfg, &[])
}

fn start_forwarding(forwards: &[PortForward]) -> (NetHandle, Container) {
    start_with(test_cfg(), forwards)
}

fn start_with(cfg: NetConfig, forwards: &[PortForward]) -> (NetHandle, Container) {
    let mtu = cfg.mtu;
    let (a, b) = pair();
    let h = spawn_with(a, cfg, forwards).unwrap();
    (h, Container::new(b, mtu))
}

fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn echo_server() -> (u16, std::thread::JoinHandle<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0; 65536];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n;
            s.write_all(&buf[..n]).unwrap();
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
        total
    });
    (port, t)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn arp_frame() -> Vec<u8> {
    use smoltcp::wire::*;
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(CONTAINER_MAC),
        source_protocol_addr: CONTAINER_ADDR,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: GATEWAY_ADDR,
    };
    let mut f = vec![0u8; 14 + arp.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    EthernetRepr {
        src_addr: EthernetAddress(CONTAINER_MAC),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut eth);
    arp.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    f
}

mod forward;
mod robustness;
mod tcp_flows;
mod udp_dns;
