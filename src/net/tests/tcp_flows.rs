//! TCP through the stack: to the host's loopback and own addresses, resets,
//! many connections, bulk transfers both ways, IPv6, the address mapping.

use super::*;

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
    let list = crate::net::policy::read_host_addresses().unwrap();
    list.v4
        .into_iter()
        .find(|a| crate::net::policy::fixed_v4(*a, false).is_none())
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
    let handle = spawn_with(
        a,
        NetConfig {
            allow_host_loopback: false,
            ..test_cfg()
        },
        &[],
    )
    .unwrap();
    let echo = crate::net::icmp::tests::v4(
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
