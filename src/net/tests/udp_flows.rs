//! UDP flows between the container and host sockets, and their expiry.

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
