//! Port forwarding (`-p`) into the container, TCP and UDP.

use super::*;

#[test]
fn port_forward_tcp_into_container() {
    let hp = free_port();
    let fwd = parse_publish(&format!("{hp}:8080")).unwrap();
    let (handle, mut c) = start_forwarding(&[fwd]);
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
    let (handle, mut c) = start_forwarding(&[fwd]);
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
    let err = spawn_with(a, test_cfg(), &[fwd]).err().unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains(&addr.to_string()), "{msg}");
    assert!(msg.to_lowercase().contains("in use"), "{msg}");
}

#[test]
fn port_forward_to_closed_container_port_resets_host_client() {
    let hp = free_port();
    let fwd = parse_publish(&format!("{hp}:8081")).unwrap();
    let (handle, mut c) = start_forwarding(&[fwd]);
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
