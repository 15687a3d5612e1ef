//! UDP flows, the DNS forwarder (UDP and TCP, failover) and ICMP echo.

use super::*;

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

#[test]
fn ping_gateway_is_answered_and_others_are_not() {
    use smoltcp::wire::*;
    fn echo(dst: std::net::Ipv4Addr) -> Vec<u8> {
        crate::net::icmp::tests::v4(
            dst,
            Icmpv4Repr::EchoRequest {
                ident: 7,
                seq_no: 1,
                data: b"abcdefgh",
            },
        )
    }
    let (a, b) = pair();
    let handle = spawn_with(a, test_cfg(), &[]).unwrap();
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
