//! The destination policy: the host's loopback and own addresses only
//! with `allow_host_loopback`, and where each destination goes.

use super::*;

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
    let handle = spawn(
        a,
        NetConfig {
            allow_host_loopback: false,
            ..test_cfg()
        },
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
