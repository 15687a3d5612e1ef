//! TCP between the container and host sockets: data both ways over IPv4
//! and IPv6, resets, many connections, bulk transfers.

use super::*;

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
