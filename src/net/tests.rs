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

fn start(cfg: NetConfig) -> (NetHandle, Container) {
    let mtu = cfg.mtu;
    let (a, b) = pair();
    let h = spawn(a, cfg).unwrap();
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

#[test]
fn tcp_to_host_loopback_echo_1mib() {
    for mtu in [DEFAULT_MTU, 1500] {
        let (handle, mut c) = start(NetConfig { mtu, ..test_cfg() });
        let (port, server) = echo_server();
        let data = pattern(1 << 20);
        let h = c.tcp_socket();
        c.connect(h, (GATEWAY_ADDR, port), 40000);
        let (mut sent, mut got) = (0, Vec::with_capacity(data.len()));
        let mut closed = false;
        let ok = c.run_until(60, |c| {
            let s = c.tcp(h);
            while sent < data.len() && s.can_send() {
                sent += s.send_slice(&data[sent..]).unwrap();
            }
            if sent == data.len() && !closed {
                s.close();
                closed = true;
            }
            while s.can_recv() {
                s.recv(|b| {
                    got.extend_from_slice(b);
                    (b.len(), ())
                })
                .unwrap();
            }
            // The server's FIN after our FIN: the socket reaches TIME-WAIT.
            got.len() == data.len()
                && matches!(s.state(), tcp::State::TimeWait | tcp::State::Closed)
        });
        assert!(
            ok,
            "mtu {mtu}: transfer stalled at {} of {} bytes sent, {} back",
            sent,
            data.len(),
            got.len()
        );
        assert_eq!(Sha256::digest(&got), Sha256::digest(&data), "mtu {mtu}");
        assert_eq!(server.join().unwrap(), data.len());
        let st = handle.stats();
        assert_eq!(st.tcp_connections, 1);
        assert_eq!(st.dropped_malformed, 0);
        handle.stop().unwrap();
    }
}

/// Connect and step until the socket is established or closed.
fn try_connect(c: &mut Container, to: (std::net::Ipv4Addr, u16)) -> tcp::State {
    let h = c.tcp_socket();
    c.connect(h, to, 40001);
    c.run_until(10, |c| {
        matches!(
            c.tcp(h).state(),
            tcp::State::Established | tcp::State::Closed
        )
    });
    c.tcp(h).state()
}

#[test]
fn tcp_to_host_loopback_refused_unless_allowed() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (handle, mut c) = start(NetConfig {
        allow_host_loopback: false,
        ..test_cfg()
    });
    assert_eq!(
        try_connect(&mut c, (GATEWAY_ADDR, port)),
        tcp::State::Closed
    );
    assert_eq!(handle.stats().tcp_refused, 1);
    assert_eq!(handle.stats().tcp_connections, 0);
    handle.stop().unwrap();

    // Allowed, but nothing listens there: the host's refusal comes through.
    drop(l);
    let (handle, mut c) = start(test_cfg());
    assert_eq!(
        try_connect(&mut c, (GATEWAY_ADDR, port)),
        tcp::State::Closed
    );
    assert_eq!(handle.stats().tcp_refused, 1);
    // So are ports of the DNS address other than 53.
    assert_eq!(try_connect(&mut c, (DNS_ADDR, 80)), tcp::State::Closed);
    handle.stop().unwrap();
}

/// A non-loopback IPv4 address of this host, outside the virtual link.
fn host_v4_addr() -> Option<std::net::Ipv4Addr> {
    let list = super::policy::read_host_addresses().unwrap();
    list.v4
        .into_iter()
        .find(|a| super::policy::fixed_v4(*a, false).is_none())
}

#[test]
fn tcp_to_the_hosts_own_address_only_with_allow_host_loopback() {
    let Some(ip) = host_v4_addr() else {
        eprintln!("skipped: this host has no IPv4 address besides loopback");
        return;
    };
    // A service on every address of the host.
    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (handle, mut c) = start(NetConfig {
        allow_host_loopback: false,
        ..test_cfg()
    });
    assert_eq!(try_connect(&mut c, (ip, port)), tcp::State::Closed);
    // 0.1.2.3 is "this host" too (the host's kernel refuses it anyway).
    assert_eq!(
        try_connect(&mut c, (std::net::Ipv4Addr::new(0, 1, 2, 3), port)),
        tcp::State::Closed
    );
    assert_eq!(handle.stats().tcp_refused, 2);
    assert_eq!(handle.stats().tcp_connections, 0);
    handle.stop().unwrap();
    // An echo request to it is refused too (counted, never sent).
    let (a, b) = pair();
    let handle = spawn(
        a,
        NetConfig {
            allow_host_loopback: false,
            ..test_cfg()
        },
    )
    .unwrap();
    let echo = super::icmp::tests::v4(
        ip,
        smoltcp::wire::Icmpv4Repr::EchoRequest {
            ident: 9,
            seq_no: 1,
            data: b"x",
        },
    );
    rustix::io::write(&b, &echo).unwrap();
    let end = StdInstant::now() + Duration::from_secs(10);
    while handle.stats().icmp_refused == 0 && StdInstant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(handle.stats().icmp_refused, 1);
    assert_eq!(handle.stats().icmp_echo_out, 0);
    handle.stop().unwrap();
    // The control: allowed, the same connect reaches the service.
    let (handle, mut c) = start(test_cfg());
    assert_eq!(try_connect(&mut c, (ip, port)), tcp::State::Established);
    assert_eq!(handle.stats().tcp_connections, 1);
    handle.stop().unwrap();
}

#[test]
fn tcp_reset_from_host_reaches_container() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (handle, mut c) = start(test_cfg());
    let h = c.tcp_socket();
    c.connect(h, (GATEWAY_ADDR, port), 40002);
    assert!(c.run_until(10, |c| c.tcp(h).state() == tcp::State::Established));
    let (s, _) = l.accept().unwrap();
    rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO)).unwrap();
    drop(s);
    assert!(c.run_until(10, |c| c.tcp(h).state() == tcp::State::Closed));
    handle.stop().unwrap();
}

#[test]
fn udp_round_trip_to_host_loopback() {
    let host = UdpSocket::bind("127.0.0.1:0").unwrap();
    host.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = host.local_addr().unwrap().port();
    let echo = std::thread::spawn(move || {
        let mut buf = [0; 2048];
        for _ in 0..3 {
            let (n, peer) = host.recv_from(&mut buf).unwrap();
            host.send_to(&buf[..n], peer).unwrap();
        }
    });
    let (handle, mut c) = start(test_cfg());
    let u = c.udp_socket(5000);
    let to = IpEndpoint::new(IpAddress::Ipv4(GATEWAY_ADDR), port);
    for i in 0..3u8 {
        let msg = [b'p', b'i', b'n', b'g', i];
        c.sockets
            .get_mut::<udp::Socket>(u)
            .send_slice(&msg, to)
            .unwrap();
        let mut reply = None;
        assert!(c.run_until(10, |c| {
            if let Ok((d, meta)) = c.sockets.get_mut::<udp::Socket>(u).recv() {
                reply = Some((d.to_vec(), meta.endpoint));
            }
            reply.is_some()
        }));
        assert_eq!(reply.unwrap(), (msg.to_vec(), to));
    }
    echo.join().unwrap();
    assert_eq!(handle.stats().udp_flows, 1);
    handle.stop().unwrap();
}

#[test]
fn dns_forwarder_relays_to_upstream() {
    // A fake resolver: answers any query with the query's id and a marker.
    let dns = UdpSocket::bind("127.0.0.1:0").unwrap();
    dns.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let upstream = dns.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut buf = [0; 512];
        let (n, peer) = dns.recv_from(&mut buf).unwrap();
        let mut answer = buf[..n].to_vec();
        answer[2] |= 0x80; // QR: a response
        answer.extend_from_slice(b"answer");
        dns.send_to(&answer, peer).unwrap();
    });
    // Host loopback is off: the forwarder still reaches a loopback resolver.
    let cfg = NetConfig {
        dns_upstreams: vec![upstream],
        allow_host_loopback: false,
        ..test_cfg()
    };
    let (handle, mut c) = start(cfg);
    let u = c.udp_socket(33333);
    // Query for example.com A.
    let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
    let to = IpEndpoint::new(IpAddress::Ipv4(DNS_ADDR), 53);
    c.sockets
        .get_mut::<udp::Socket>(u)
        .send_slice(&q, to)
        .unwrap();
    let mut reply = None;
    assert!(c.run_until(10, |c| {
        if let Ok((d, meta)) = c.sockets.get_mut::<udp::Socket>(u).recv() {
            reply = Some((d.to_vec(), meta.endpoint));
        }
        reply.is_some()
    }));
    let (d, from) = reply.unwrap();
    assert_eq!(from, to);
    assert_eq!(&d[..2], &[0xab, 0xcd]);
    assert!(d.ends_with(b"answer"));
    server.join().unwrap();
    handle.stop().unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn port_forward_tcp_into_container() {
    let hp = free_port();
    let fwd = parse_publish(&format!("{hp}:8080")).unwrap();
    let (handle, mut c) = start(NetConfig {
        forwards: vec![fwd],
        ..test_cfg()
    });
    let h = c.tcp_socket();
    c.tcp(h).listen(8080).unwrap();
    let data = pattern(300_000);
    let expect = data.clone();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", hp)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(&data).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        back
    });
    // Echo inside the container until the host's FIN, then close.
    let mut pending: Vec<u8> = Vec::new();
    let mut closed = false;
    let ok = c.run_until(30, |c| {
        let s = c.tcp(h);
        while s.can_recv() {
            s.recv(|b| {
                pending.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        if !pending.is_empty() && s.can_send() {
            let n = s.send_slice(&pending).unwrap();
            pending.drain(..n);
        }
        if pending.is_empty() && !closed && s.state() == tcp::State::CloseWait {
            s.close();
            closed = true;
        }
        closed && matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait)
    });
    assert!(ok, "state {:?}", c.tcp(h).state());
    assert_eq!(client.join().unwrap(), expect);
    assert_eq!(handle.stats().tcp_forwarded, 1);
    handle.stop().unwrap();
}

#[test]
fn port_forward_udp_into_container() {
    let hp = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fwd = parse_publish(&format!("127.0.0.1:{hp}:5353/udp")).unwrap();
    let (handle, mut c) = start(NetConfig {
        forwards: vec![fwd],
        ..test_cfg()
    });
    let u = c.udp_socket(5353);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_nonblocking(true).unwrap();
    client.send_to(b"hello", ("127.0.0.1", hp)).unwrap();
    let mut buf = [0; 64];
    let mut got = None;
    let ok = c.run_until(10, |c| {
        let s = c.sockets.get_mut::<udp::Socket>(u);
        if let Ok((d, meta)) = s.recv() {
            let mut r = d.to_vec();
            r.extend_from_slice(b"!");
            assert_eq!(meta.endpoint.addr, IpAddress::Ipv4(GATEWAY_ADDR));
            s.send_slice(&r, meta.endpoint).unwrap();
        }
        if let Ok((n, from)) = client.recv_from(&mut buf) {
            got = Some((buf[..n].to_vec(), from));
        }
        got.is_some()
    });
    assert!(ok);
    let (d, from) = got.unwrap();
    assert_eq!(d, b"hello!");
    assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], hp)));
    handle.stop().unwrap();
}

#[test]
fn port_forward_taken_port_is_an_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let fwd = parse_publish(&format!("{}:80", addr.port())).unwrap();
    let (a, _b) = pair();
    let err = spawn(
        a,
        NetConfig {
            forwards: vec![fwd],
            ..test_cfg()
        },
    )
    .err()
    .unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains(&addr.to_string()), "{msg}");
    assert!(msg.to_lowercase().contains("in use"), "{msg}");
}

/// A valid Ethernet/IPv4/UDP frame from the container to 10.0.2.2:`port`.
fn udp_frame(port: u16, payload: &[u8]) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;
    let udp = UdpRepr {
        src_port: 40200,
        dst_port: port,
    };
    let ip = Ipv4Repr {
        src_addr: CONTAINER_ADDR,
        dst_addr: GATEWAY_ADDR,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let mut f = vec![0u8; 14 + ip.buffer_len() + ip.payload_len];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    EthernetRepr {
        src_addr: EthernetAddress(CONTAINER_MAC),
        dst_addr: EthernetAddress(GATEWAY_MAC),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let caps = ChecksumCapabilities::default();
    let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut ipp, &caps);
    let mut up = UdpPacket::new_unchecked(ipp.payload_mut());
    udp.emit(
        &mut up,
        &ip.src_addr.into(),
        &ip.dst_addr.into(),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &caps,
    );
    f
}

/// A valid SYN from the container to 10.0.2.2:`port`.
fn syn_frame(port: u16) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;
    let tcp = TcpRepr {
        src_port: 40300,
        dst_port: port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1000),
        ack_number: None,
        window_len: 64240,
        window_scale: Some(7),
        max_seg_size: Some(1460),
        sack_permitted: true,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: CONTAINER_ADDR,
        dst_addr: GATEWAY_ADDR,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let mut f = vec![0u8; 14 + ip.buffer_len() + ip.payload_len];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    EthernetRepr {
        src_addr: EthernetAddress(CONTAINER_MAC),
        dst_addr: EthernetAddress(GATEWAY_MAC),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let caps = ChecksumCapabilities::default();
    let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut ipp, &caps);
    let mut tp = TcpPacket::new_unchecked(ipp.payload_mut());
    tcp.emit(&mut tp, &ip.src_addr.into(), &ip.dst_addr.into(), &caps);
    f
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

#[test]
fn random_and_mutated_frames_do_not_panic() {
    // Host loopback off: nothing the fuzz makes can leave the process.
    let (a, b) = pair();
    let handle = spawn(
        a,
        NetConfig {
            allow_host_loopback: false,
            ..test_cfg()
        },
    )
    .unwrap();
    use smoltcp::wire::{Icmpv6Repr, NdiscRepr, RawHardwareAddress};
    let ns = super::icmp::tests::v6(
        CONTAINER_ADDR6,
        GATEWAY_ADDR6,
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr: GATEWAY_ADDR6,
            lladdr: Some(RawHardwareAddress::from_bytes(&CONTAINER_MAC)),
        }),
    );
    let echo6 = super::icmp::tests::v6(
        CONTAINER_ADDR6,
        GATEWAY_ADDR6,
        Icmpv6Repr::EchoRequest {
            ident: 1,
            seq_no: 1,
            data: b"fuzz",
        },
    );
    let valid = [udp_frame(9, b"hello"), syn_frame(9), arp_frame(), ns, echo6];
    let rss_before = rss_kib();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut sink = vec![0u8; 70000];
    let n_frames = 5000;
    let mut written = 0u64;
    for i in 0..n_frames {
        let frame = match i % 4 {
            0 => {
                let len = (next() % 1600) as usize;
                let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if len >= 14 && next() % 2 == 0 {
                    // IPv4, ARP or IPv6 ethertypes.
                    let (a, b) = [(0x08, 0x00), (0x08, 0x06), (0x86, 0xdd)][(next() % 3) as usize];
                    f[12] = a;
                    f[13] = b;
                }
                f
            }
            _ => {
                let mut f = valid[(next() as usize) % valid.len()].clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % f.len();
                    f[at] ^= 1 << (next() % 8);
                }
                match next() % 8 {
                    0 => f.truncate((next() as usize) % f.len()),
                    1 => f.extend((0..next() % 64).map(|_| next() as u8)),
                    _ => {}
                }
                f
            }
        };
        loop {
            match rustix::io::write(&b, &frame) {
                Ok(_) => {
                    written += 1;
                    break;
                }
                Err(rustix::io::Errno::AGAIN) => {
                    assert!(handle.is_running(), "network thread died");
                    while rustix::io::read(&b, &mut sink[..]).is_ok() {}
                    std::thread::sleep(Duration::from_millis(1));
                }
                // Empty messages and the like may be refused: skip them.
                Err(_) => break,
            }
        }
        while rustix::io::read(&b, &mut sink[..]).is_ok() {}
    }
    // Let the stack catch up.
    let end = StdInstant::now() + Duration::from_secs(10);
    while handle.stats().frames_in < written && StdInstant::now() < end {
        while rustix::io::read(&b, &mut sink[..]).is_ok() {}
        std::thread::sleep(Duration::from_millis(5));
    }
    let st = handle.stats();
    assert!(handle.is_running(), "network thread died");
    assert_eq!(st.frames_in, written, "{st:?}");
    assert!(st.dropped_malformed > (n_frames / 2) as u64, "{st:?}");
    assert!(st.dropped_unsupported > 0, "{st:?}");
    // Nothing the frames asked for is kept: memory stays where it was
    // (a generous bound; the stack's rings are allocated at the start).
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "resident memory grew by {grown} KiB");
    handle.stop().unwrap();
}

/// Resident memory of this process, from /proc/self/status.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn stop_ends_thread_and_closes_everything() {
    let hp = free_port();
    let fwd = parse_publish(&format!("{hp}:80")).unwrap();
    let (a, b) = pair();
    let handle = spawn(
        a,
        NetConfig {
            forwards: vec![fwd],
            ..test_cfg()
        },
    )
    .unwrap();
    let task = format!("/proc/self/task/{}", handle.thread_id());
    assert!(std::path::Path::new(&task).exists());
    assert!(TcpStream::connect(("127.0.0.1", hp)).is_ok());
    handle.stop().unwrap();
    assert!(
        !std::path::Path::new(&task).exists(),
        "network thread still there"
    );
    // The TAP end is closed (the peer reads EOF) and the listener is gone.
    // (Frames the stack sent before it stopped come first.)
    let mut buf = vec![0u8; 70000];
    let end = StdInstant::now() + Duration::from_secs(5);
    loop {
        assert!(StdInstant::now() < end, "TAP end still open");
        match rustix::io::read(&b, &mut buf[..]) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    assert!(TcpStream::connect(("127.0.0.1", hp)).is_err());
}

#[test]
fn stack_ends_when_tap_closes() {
    let (a, b) = pair();
    let handle = spawn(a, test_cfg()).unwrap();
    drop(b);
    let end = StdInstant::now() + Duration::from_secs(5);
    while handle.is_running() && StdInstant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!handle.is_running());
    handle.stop().unwrap();
}

#[test]
fn destination_mapping() {
    use std::net::{Ipv4Addr, SocketAddrV4};
    let mut cfg = test_cfg();
    cfg.dns_upstreams = vec!["127.0.0.53:53".parse().unwrap()];
    // The host: 192.0.2.2/24 and 2001:db8:5::7.
    let policy = |cfg: &NetConfig| {
        let mut host = AddrList::default();
        host.add(
            "192.0.2.2".parse().unwrap(),
            Some("255.255.255.0".parse().unwrap()),
        );
        host.add("2001:db8:5::7".parse().unwrap(), None);
        Policy::new(
            cfg.allow_host_loopback,
            cfg.block_private,
            HostAddrs::fixed(host),
        )
    };
    let m = |cfg: &NetConfig, ip: [u8; 4], port| {
        let dst = SocketAddrV4::new(Ipv4Addr::from(ip), port).into();
        stack::map_dest(cfg, &mut policy(cfg), dst)
    };
    let m6 = |cfg: &NetConfig, ip: &str, port| {
        let dst = SocketAddr::new(ip.parse().unwrap(), port);
        stack::map_dest(cfg, &mut policy(cfg), dst)
    };
    assert_eq!(
        m(&cfg, [10, 0, 2, 2], 80),
        Some("127.0.0.1:80".parse().unwrap())
    );
    assert_eq!(
        m(&cfg, [10, 0, 2, 3], 53),
        Some("127.0.0.53:53".parse().unwrap())
    );
    assert_eq!(m(&cfg, [10, 0, 2, 3], 80), None);
    assert_eq!(m(&cfg, [10, 0, 2, 9], 80), None);
    assert_eq!(m(&cfg, [127, 0, 0, 1], 80), None);
    assert_eq!(m(&cfg, [224, 0, 0, 1], 80), None);
    assert_eq!(m(&cfg, [255, 255, 255, 255], 80), None);
    assert_eq!(
        m(&cfg, [93, 184, 216, 34], 443),
        Some("93.184.216.34:443".parse().unwrap())
    );
    assert_eq!(m6(&cfg, "fd00::2", 80), Some("[::1]:80".parse().unwrap()));
    assert_eq!(
        m6(&cfg, "fd00::3", 53),
        Some("127.0.0.53:53".parse().unwrap())
    );
    for refused in [
        "fd00::9",
        "::1",
        "fe80::1",
        "ff02::1",
        "::",
        "::ffff:10.0.2.2",
    ] {
        assert_eq!(m6(&cfg, refused, 80), None, "{refused}");
    }
    assert_eq!(
        m6(&cfg, "2001:db8::1", 443),
        Some("[2001:db8::1]:443".parse().unwrap())
    );
    // 0.0.0.0/8 is the host itself on Linux.
    assert_eq!(m(&cfg, [0, 0, 0, 0], 80), None);
    assert_eq!(m(&cfg, [0, 1, 2, 3], 80), None);
    // The host's own addresses are reachable with allow_host_loopback...
    assert_eq!(
        m(&cfg, [192, 0, 2, 2], 80),
        Some("192.0.2.2:80".parse().unwrap())
    );
    assert_eq!(
        m6(&cfg, "2001:db8:5::7", 80),
        Some("[2001:db8:5::7]:80".parse().unwrap())
    );
    cfg.allow_host_loopback = false;
    assert_eq!(m(&cfg, [10, 0, 2, 2], 80), None);
    assert_eq!(m6(&cfg, "fd00::2", 80), None);
    // ... and refused without, with its subnet's broadcast address.
    assert_eq!(m(&cfg, [192, 0, 2, 2], 80), None);
    assert_eq!(m(&cfg, [192, 0, 2, 255], 80), None);
    assert_eq!(m6(&cfg, "2001:db8:5::7", 80), None);
    assert_eq!(
        m(&cfg, [192, 0, 2, 1], 80),
        Some("192.0.2.1:80".parse().unwrap())
    );
    // block_private: private destinations are refused, but the DNS
    // forwarder still reaches its (private or loopback) upstream, and only
    // it, on port 53 only.
    cfg.block_private = true;
    cfg.dns_upstreams = vec!["192.168.1.1:53".parse().unwrap()];
    assert_eq!(m(&cfg, [192, 168, 1, 1], 53), None);
    assert_eq!(m(&cfg, [169, 254, 169, 254], 80), None);
    assert_eq!(m6(&cfg, "fd12::1", 443), None);
    assert_eq!(
        m(&cfg, [10, 0, 2, 3], 53),
        Some("192.168.1.1:53".parse().unwrap())
    );
    assert_eq!(
        m6(&cfg, "fd00::3", 53),
        Some("192.168.1.1:53".parse().unwrap())
    );
    assert_eq!(m(&cfg, [10, 0, 2, 3], 5353), None);
    assert_eq!(
        m(&cfg, [93, 184, 216, 34], 443),
        Some("93.184.216.34:443".parse().unwrap())
    );
    cfg.dns_upstreams.clear();
    assert_eq!(m(&cfg, [10, 0, 2, 3], 53), None);
}

#[test]
fn many_concurrent_connections_to_one_destination() {
    const N: usize = 100;
    const LEN: usize = 20_000;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut workers = Vec::new();
        for _ in 0..N {
            let (mut s, _) = l.accept().unwrap();
            workers.push(std::thread::spawn(move || {
                let mut buf = vec![0; 8192];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    s.write_all(&buf[..n]).unwrap();
                }
            }));
        }
        for w in workers {
            w.join().unwrap();
        }
    });
    let (handle, mut c) = start(test_cfg());
    let data: Vec<Vec<u8>> = (0..N).map(|i| pattern(LEN + i)).collect();
    let mut conns: Vec<(SocketHandle, usize, Vec<u8>, bool)> = (0..N)
        .map(|i| {
            let h = c.tcp_socket_sized(32 * 1024);
            c.connect(h, (GATEWAY_ADDR, port), 41000 + i as u16);
            (h, 0, Vec::new(), false)
        })
        .collect();
    let ok = c.run_until(60, |c| {
        let mut done = 0;
        for (i, (h, sent, got, closed)) in conns.iter_mut().enumerate() {
            let s = c.tcp(*h);
            while *sent < data[i].len() && s.can_send() {
                *sent += s.send_slice(&data[i][*sent..]).unwrap();
            }
            if *sent == data[i].len() && !*closed {
                s.close();
                *closed = true;
            }
            while s.can_recv() {
                s.recv(|b| {
                    got.extend_from_slice(b);
                    (b.len(), ())
                })
                .unwrap();
            }
            if got.len() == data[i].len()
                && matches!(s.state(), tcp::State::TimeWait | tcp::State::Closed)
            {
                done += 1;
            }
        }
        done == N
    });
    assert!(ok, "{:?}", handle.stats());
    for (i, (_, _, got, _)) in conns.iter().enumerate() {
        assert!(got == &data[i], "connection {i} corrupted");
    }
    server.join().unwrap();
    assert_eq!(handle.stats().tcp_connections, N as u64);
    handle.stop().unwrap();
}

/// Container -> host bulk transfer of 256 MiB (every byte arrives; with
/// `--nocapture` it prints the rate, but asserts none: both ends are
/// smoltcp in this process, so it is a floor, not a benchmark).
#[test]
fn bulk_container_to_host() {
    const TOTAL: usize = 256 << 20;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let sink = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0; 1 << 20];
        let mut n = 0;
        loop {
            match s.read(&mut buf).unwrap() {
                0 => return n,
                k => n += k,
            }
        }
    });
    let (handle, mut c) = start(test_cfg());
    let h = c.tcp_socket_sized(4 << 20);
    c.connect(h, (GATEWAY_ADDR, port), 42000);
    let chunk = pattern(1 << 20);
    let mut sent = 0;
    let t0 = StdInstant::now();
    assert!(c.run_until(120, |c| {
        let s = c.tcp(h);
        while sent < TOTAL && s.can_send() {
            sent += s.send_slice(&chunk[sent % chunk.len()..]).unwrap();
        }
        if sent >= TOTAL {
            s.close();
        }
        matches!(
            s.state(),
            tcp::State::FinWait2 | tcp::State::TimeWait | tcp::State::Closed
        )
    }));
    let got = sink.join().unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(got, TOTAL);
    println!(
        "container -> host: {:.2} Gbit/s",
        TOTAL as f64 * 8.0 / secs / 1e9
    );
    handle.stop().unwrap();
}

#[test]
fn port_forward_to_closed_container_port_resets_host_client() {
    let hp = free_port();
    let fwd = parse_publish(&format!("{hp}:8081")).unwrap();
    let (handle, mut c) = start(NetConfig {
        forwards: vec![fwd],
        ..test_cfg()
    });
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", hp)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16];
        // Nothing listens on 8081 inside: a reset (or EOF), not a hang.
        match s.read(&mut buf) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    });
    c.run_until(3, |_| client.is_finished());
    assert!(client.join().unwrap());
    handle.stop().unwrap();
}

#[test]
fn ping_gateway_is_answered_and_others_are_not() {
    use smoltcp::wire::*;
    fn echo(dst: std::net::Ipv4Addr) -> Vec<u8> {
        super::icmp::tests::v4(
            dst,
            Icmpv4Repr::EchoRequest {
                ident: 7,
                seq_no: 1,
                data: b"abcdefgh",
            },
        )
    }
    let (a, b) = pair();
    let handle = spawn(a, test_cfg()).unwrap();
    // Teach the stack our MAC first, as a container's ARP would.
    rustix::io::write(&b, &arp_frame()).unwrap();
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 70000];
    let mut read_replies = |replies: &mut Vec<std::net::Ipv4Addr>| {
        let end = StdInstant::now() + Duration::from_millis(500);
        while StdInstant::now() < end {
            match rustix::io::read(&b, &mut buf[..]) {
                Ok(n) => {
                    let Ok(eth) = EthernetFrame::new_checked(&buf[..n]) else {
                        continue;
                    };
                    if eth.ethertype() != EthernetProtocol::Ipv4 {
                        continue;
                    }
                    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                        continue;
                    };
                    let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
                        continue;
                    };
                    if icmp.msg_type() == Icmpv4Message::EchoReply {
                        replies.push(ip.src_addr());
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    };
    // 10.0.2.77 is on the link but nobody's: no reply, no relay (echo
    // requests to the world go through host ICMP sockets, which a unit
    // test must not reach; tests/net.rs covers them in a private netns).
    for dst in [
        GATEWAY_ADDR,
        DNS_ADDR,
        std::net::Ipv4Addr::new(10, 0, 2, 77),
    ] {
        rustix::io::write(&b, &echo(dst)).unwrap();
    }
    read_replies(&mut replies);
    assert_eq!(replies, vec![GATEWAY_ADDR, DNS_ADDR]);
    assert_eq!(handle.stats().icmp_refused, 1);
    handle.stop().unwrap();
}

/// Host -> container bulk transfer (see `bulk_container_to_host`).
#[test]
fn bulk_host_to_container() {
    const TOTAL: usize = 256 << 20;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let source = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let chunk = pattern(1 << 20);
        for _ in 0..TOTAL / chunk.len() {
            s.write_all(&chunk).unwrap();
        }
    });
    let (handle, mut c) = start(test_cfg());
    let h = c.tcp_socket_sized(4 << 20);
    c.connect(h, (GATEWAY_ADDR, port), 42001);
    let mut got = 0;
    let t0 = StdInstant::now();
    assert!(c.run_until(120, |c| {
        let s = c.tcp(h);
        while s.can_recv() {
            got += s.recv(|b| (b.len(), b.len())).unwrap();
        }
        got == TOTAL && s.state() == tcp::State::CloseWait
    }));
    let secs = t0.elapsed().as_secs_f64();
    source.join().unwrap();
    println!(
        "host -> container: {:.2} Gbit/s",
        TOTAL as f64 * 8.0 / secs / 1e9
    );
    handle.stop().unwrap();
}

#[test]
fn dns_over_tcp_goes_to_upstream() {
    let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = upstream.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = upstream.accept().unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut q = vec![0; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut q).unwrap();
        q[2] |= 0x80;
        s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
        s.write_all(&q).unwrap();
    });
    let cfg = NetConfig {
        dns_upstreams: vec![addr],
        allow_host_loopback: false,
        ..test_cfg()
    };
    let (handle, mut c) = start(cfg);
    let h = c.tcp_socket();
    c.connect(h, (DNS_ADDR, 53), 40400);
    let query = [0, 4, 0x12, 0x34, 0x01, 0x00];
    let mut sent = false;
    let mut got = Vec::new();
    assert!(c.run_until(10, |c| {
        let s = c.tcp(h);
        if !sent && s.can_send() {
            s.send_slice(&query).unwrap();
            sent = true;
        }
        while s.can_recv() {
            s.recv(|b| {
                got.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        got.len() == 6
    }));
    assert_eq!(got, [0, 4, 0x12, 0x34, 0x81, 0x00]);
    server.join().unwrap();
    handle.stop().unwrap();
}

#[test]
fn idle_udp_flows_expire() {
    let host = UdpSocket::bind("127.0.0.1:0").unwrap();
    host.set_nonblocking(true).unwrap();
    let port = host.local_addr().unwrap().port();
    let cfg = NetConfig {
        udp_timeout: Duration::from_millis(200),
        ..test_cfg()
    };
    let (handle, mut c) = start(cfg);
    let u = c.udp_socket(5001);
    let to = IpEndpoint::new(IpAddress::Ipv4(GATEWAY_ADDR), port);
    let mut buf = [0u8; 64];
    let mut peers = Vec::new();
    for _ in 0..2 {
        c.sockets
            .get_mut::<udp::Socket>(u)
            .send_slice(b"x", to)
            .unwrap();
        assert!(c.run_until(10, |_| match host.recv_from(&mut buf) {
            Ok((_, peer)) => {
                peers.push(peer);
                true
            }
            Err(_) => false,
        }));
        // Idle for longer than the timeout.
        let end = StdInstant::now() + Duration::from_millis(400);
        c.run_until(1, |_| StdInstant::now() > end);
    }
    assert_eq!(
        handle.stats().udp_flows,
        2,
        "the second datagram opened a new flow"
    );
    handle.stop().unwrap();
}

#[test]
fn dns_fails_over_to_the_next_upstream() {
    // The first upstream refuses (nothing bound there: ICMP port unreachable).
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dns = UdpSocket::bind("127.0.0.1:0").unwrap();
    dns.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let live = dns.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut buf = [0; 512];
        let (n, peer) = dns.recv_from(&mut buf).unwrap();
        dns.send_to(&buf[..n], peer).unwrap();
    });
    let cfg = NetConfig {
        dns_upstreams: vec![dead, live],
        ..test_cfg()
    };
    let (handle, mut c) = start(cfg);
    let u = c.udp_socket(33334);
    let to = IpEndpoint::new(IpAddress::Ipv4(DNS_ADDR), 53);
    let mut reply = None;
    // The container's resolver retries; the retry goes to the live upstream.
    for _ in 0..5 {
        c.sockets
            .get_mut::<udp::Socket>(u)
            .send_slice(b"\x00\x01query", to)
            .unwrap();
        let end = StdInstant::now() + Duration::from_millis(300);
        c.run_until(1, |c| {
            if let Ok((d, _)) = c.sockets.get_mut::<udp::Socket>(u).recv() {
                reply = Some(d.to_vec());
            }
            reply.is_some() || StdInstant::now() > end
        });
        if reply.is_some() {
            break;
        }
    }
    assert_eq!(reply.as_deref(), Some(&b"\x00\x01query"[..]));
    server.join().unwrap();
    handle.stop().unwrap();
}

/// TCP over IPv6: the container's neighbour discovery finds fd00::2, and
/// [fd00::2]:PORT reaches the host's [::1]:PORT (data both ways, FIN).
#[test]
fn tcp_over_ipv6_to_host_loopback() {
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback on this host: nothing to test");
        return;
    };
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = l.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        s.write_all(b"pong6").unwrap();
        (peer, got)
    });
    let (handle, mut c) = start(test_cfg());
    let h = c.tcp_socket();
    c.connect_ip(h, (GATEWAY_ADDR6.into(), port), 40600);
    assert!(
        c.run_until(10, |c| c.tcp(h).may_send()),
        "IPv6 connection to [fd00::2]:{port} not established"
    );
    c.tcp(h).send_slice(b"ping6").unwrap();
    c.tcp(h).close();
    let mut reply = Vec::new();
    assert!(c.run_until(10, |c| {
        let s = c.tcp(h);
        while s.can_recv() {
            s.recv(|b| {
                reply.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        !s.may_recv()
    }));
    assert_eq!(reply, b"pong6");
    let (peer, got) = server.join().unwrap();
    assert_eq!(got, b"ping6");
    assert!(peer.ip().is_loopback(), "{peer}");
    // Refused without allow_host_loopback, as for IPv4.
    handle.stop().unwrap();
    let (handle, mut c) = start(NetConfig {
        allow_host_loopback: false,
        ..test_cfg()
    });
    let h = c.tcp_socket();
    c.connect_ip(h, (GATEWAY_ADDR6.into(), port), 40601);
    assert!(c.run_until(10, |c| c.tcp(h).state() == tcp::State::Closed));
    assert!(handle.stats().tcp_refused >= 1);
    handle.stop().unwrap();
}

/// Frames built outside smoltcp (ICMP replies) go out when there is room,
/// wait when there is none, and are dropped when larger than the MTU
/// (instead of blocking the ones behind them).
#[test]
fn raw_frames_queue_wait_or_drop() {
    use super::device::SendRaw;
    let (a, _b) = pair();
    let mut dev = FdDevice::new(a, 1500, Arc::new(Counters::default()));
    assert_eq!(dev.send_raw(&[0u8; 1514 + 1]), SendRaw::TooBig);
    let mut queued = 0;
    loop {
        match dev.send_raw(&[0u8; 100]) {
            SendRaw::Queued => queued += 1,
            SendRaw::NoRoom => break,
            SendRaw::TooBig => panic!("100 bytes is not too big"),
        }
    }
    assert!(queued >= 16, "{queued}");
    assert!(!dev.flush().unwrap(), "everything written");
    assert_eq!(dev.send_raw(&[0u8; 100]), SendRaw::Queued);
}
