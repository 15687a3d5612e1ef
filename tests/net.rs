//! `--network slirp`: hutch's userspace network, as the unprivileged test
//! user, with traffic only to 127.0.0.1 (through 10.0.2.2) or inside the
//! container's own namespace.

mod common;

use common::{TestStore, describe, fixture, http_get_until};
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::busybox_with_hostlo_profile as busybox;

fn run(st: &TestStore, args: &[&str]) -> Output {
    st.run(["run", "--rm"].iter().chain(args)).1
}

/// A one-shot HTTP server on 127.0.0.1 answering `body` to every request.
fn http_server(body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn http_to_the_host_loopback_only_when_allowed() {
    let st = busybox();
    let port = http_server("hello from the host\n");
    let url = format!("http://10.0.2.2:{port}/");
    let out = run(
        &st,
        &[
            "--profile",
            "hostlo",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &url,
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the host\n"
    );
    // Without allow_host_loopback the connection is refused (busybox nc:
    // busybox wget crashes on connection errors, on the host too).
    let out = run(
        &st,
        &[
            "--network",
            "slirp",
            "busybox",
            "sh",
            "-c",
            &format!(
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 10.0.2.2 {port}; echo \"rc=$?\""
            ),
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "rc=1\n",
        "refused without allow_host_loopback: {}",
        describe(&out)
    );
    // The container's view of its network.
    let out = run(
        &st,
        &[
            "--profile",
            "hostlo",
            "busybox",
            "sh",
            "-c",
            "cat /sys/class/net/eth0/mtu; ip -4 addr show eth0 | grep -o 'inet [0-9./]*'; \
             ip route | grep default; cat /etc/resolv.conf; grep host.hutch.internal /etc/hosts",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "65520\ninet 10.0.2.100/24\ndefault via 10.0.2.2 dev eth0 \nnameserver 10.0.2.3\n10.0.2.2\thost.hutch.internal\n"
    );
}

#[test]
fn default_profile_has_the_network_and_install_keeps_the_host_out() {
    let st = busybox();
    let port = http_server("host service\n");
    let out = run(
        &st,
        &["busybox", "sh", "-c", "ls /sys/class/net | tr '\\n' ' '"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "eth0 lo ",
        "slirp by default"
    );
    let work = st.tmp().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = st
        .hutch()
        .current_dir(&work)
        .args([
            "run",
            "--rm",
            "--profile",
            "install",
            "busybox",
            "sh",
            "-c",
            &format!(
                "ls /sys/class/net | tr '\\n' ' '; echo; touch /etc/x 2>/dev/null || echo root-ro; \
                 printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 10.0.2.2 {port}; echo rc=$?"
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "eth0 lo \nroot-ro\nrc=1\n",
        "install: network, read-only root, no host loopback"
    );
}

#[test]
fn udp_round_trip_through_the_gateway() {
    let st = busybox();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = sock.send_to(&reply, from);
        }
    });
    // busybox nc has no UDP: perl from the Debian fixture sends the datagram.
    st.run_ok(["load", "-q", fixture("debian-oci.tar").to_str().unwrap()]);
    let script = format!(
        "use IO::Socket::INET; my $s = IO::Socket::INET->new(PeerAddr => '10.0.2.2:{port}', Proto => 'udp') or die $!; \
         $s->send(\"ping\\n\"); my $r; $s->recv($r, 100); print $r;"
    );
    let out = run(
        &st,
        &[
            "--profile",
            "hostlo",
            "debian:bookworm",
            "perl",
            "-e",
            &script,
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo:ping\n");
}

/// A minimal DNS server: answers every A query with 192.0.2.55.
fn dns_server() -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut r = buf[..n].to_vec();
            r[2] = 0x81; // response, recursion desired
            r[3] = 0x80; // recursion available, no error
            r[6..8].copy_from_slice(&[0, 1]); // one answer
            r[8..12].copy_from_slice(&[0, 0, 0, 0]);
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 55]);
            let _ = sock.send_to(&r, from);
        }
    });
    port
}

#[test]
fn dns_goes_through_the_forwarder() {
    let st = busybox();
    let port = dns_server();
    let out = st
        .hutch()
        .env("HUTCH_DNS_UPSTREAM", format!("127.0.0.1:{port}"))
        .args([
            "run",
            "--rm",
            "--network",
            "slirp",
            "busybox",
            "nslookup",
            "example.test",
            "10.0.2.3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("192.0.2.55"),
        "{}",
        describe(&out)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn published_port_reaches_a_server_in_the_container() {
    let st = busybox();
    let port = free_port();
    let publish = format!("{port}:8080");
    let mut child = st
        .hutch()
        .args([
            "run",
            "--rm",
            "--network",
            "slirp",
            "-p",
            &publish,
            "busybox",
            "sh",
            "-c",
            "mkdir -p /www && echo served-from-container > /www/index.html && \
             httpd -f -p 8080 -h /www & echo ready; sleep 20",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut seen = [0u8; 6];
    out.read_exact(&mut seen).unwrap();
    let body = http_get_until(port, "/index.html", Duration::from_secs(10), |v| {
        v.contains("served-from-container")
    })
    .unwrap_or_else(|e| panic!("no answer through -p {publish}: {e}"));
    assert!(body.starts_with("HTTP/1."), "{body}");
    let _ = child.kill();
    let _ = child.wait();
    // A port that is taken is a clear error before anything runs.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = format!("{}:80", taken.local_addr().unwrap().port());
    let (code, err) = st.run_fail([
        "run",
        "--rm",
        "--network",
        "slirp",
        "-p",
        &p,
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("127.0.0.1"), "{err}");
}

#[test]
fn ipv6_to_the_host_loopback_and_ping_the_gateway() {
    let st = busybox();
    // The container's IPv6 view, and ICMP echo to the gateway in both
    // families (answered by the stack itself).
    let out = run(
        &st,
        &[
            "--network",
            "slirp",
            "busybox",
            "sh",
            "-c",
            "ip -6 addr show eth0 | grep -o 'inet6 fd00[0-9a-f:/]*'; ip -6 route | grep -o 'default via fd00::2'; \
             ping -c 1 -W 5 fd00::2 | grep -o '1 packets received'; \
             ping -c 1 -W 5 10.0.2.2 | grep -o '1 packets received'",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "inet6 fd00::100/64\ndefault via fd00::2\n1 packets received\n1 packets received\n"
    );
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        eprintln!("this host has no IPv6 loopback: TCP over IPv6 not tested here");
        return;
    };
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let peer = s.peer_addr().unwrap();
            let _ = writeln!(s, "hello over IPv6 from {}", peer.ip());
        }
    });
    // `--network slirp:allow_host_loopback=true` (Podman's spelling) opens
    // the host's loopback, [::1] at fd00::2 as 127.0.0.1 at 10.0.2.2.
    let nc = format!("nc fd00::2 {port} </dev/null; echo rc=$?");
    let out = run(
        &st,
        &[
            "--network",
            "slirp:allow_host_loopback=true",
            "busybox",
            "sh",
            "-c",
            &nc,
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello over IPv6 from ::1\nrc=0\n"
    );
    let out = run(&st, &["--network", "slirp", "busybox", "sh", "-c", &nc]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "rc=1\n",
        "refused without allow_host_loopback: {}",
        describe(&out)
    );
}

/// Run hutch inside a user+network namespace made for the test, where
/// 192.0.2.1 and 2001:db8::1 are local addresses (so echo requests never
/// leave the machine) and `net.ipv4.ping_group_range` is `range` (or the
/// kernel's default for a new namespace, "1 0": nobody).
fn run_in_private_netns(st: &TestStore, range: Option<&str>, args: &[&str]) -> Output {
    let base = st.hutch();
    let mut cmd = std::process::Command::new("unshare");
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    // Inside a user namespace of its own hutch maps one id.
    cmd.env("HUTCH_IDMAP", "single");
    let range = range
        .map(|r| format!("echo '{r}' > /proc/sys/net/ipv4/ping_group_range; "))
        .unwrap_or_default();
    let setup = format!(
        "set -e; ip link set lo up; ip addr add 192.0.2.1/32 dev lo; \
         ip addr add 2001:db8::1/128 dev lo nodad; {range}exec \"$@\""
    );
    cmd.args(["-Urn", "sh", "-c", &setup, "sh"])
        .arg(base.get_program())
        // 192.0.2.1 stands in for the world but is an address of this
        // namespace, that is of hutch's host: reaching it needs
        // allow_host_loopback (the host's own addresses are refused without).
        .args(["run", "--rm", "--network", "slirp:allow_host_loopback=true"])
        .args(args);
    cmd.output().unwrap()
}

#[test]
fn icmp_echo_to_the_world_goes_through_ping_sockets() {
    let st = busybox();
    // Allowed (gid 0 of the test's namespace is the test user's group):
    // replies come back in both families.
    let out = run_in_private_netns(
        &st,
        Some("0 0"),
        &[
            "busybox",
            "sh",
            "-c",
            "ping -c 2 -W 5 192.0.2.1 | grep -o '2 packets received'; \
             ping -c 2 -W 5 2001:db8::1 | grep -o '2 packets received'",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2 packets received\n2 packets received\n",
        "{}",
        describe(&out)
    );
    // Not allowed (the default range excludes every group): the
    // container gets "communication administratively prohibited" from the
    // gateway rather than silence. perl reads it on a raw socket.
    st.run_ok(["load", "-q", fixture("debian-oci.tar").to_str().unwrap()]);
    let script = r#"
        use Socket;
        socket(my $s, PF_INET, SOCK_RAW, 1) or die "socket: $!";
        my $p = pack("CCnnn", 8, 0, 0, 0x4242, 1) . "hutch-icmp";
        my $sum = 0;
        $sum += $_ for unpack("n*", $p);
        $sum = ($sum >> 16) + ($sum & 0xffff);
        $sum += $sum >> 16;
        substr($p, 2, 2) = pack("n", ~$sum & 0xffff);
        send($s, $p, 0, sockaddr_in(0, inet_aton("192.0.2.1"))) or die "send: $!";
        $SIG{ALRM} = sub { print "timeout\n"; exit 1 };
        alarm 5;
        while (1) {
            my $from = recv($s, my $buf, 1500, 0);
            my ($t, $c) = unpack("CC", substr($buf, 20));
            next if $t == 8;
            my (undef, $addr) = sockaddr_in($from);
            print "type $t code $c from ", inet_ntoa($addr), "\n";
            last;
        }
    "#;
    let out = run_in_private_netns(&st, None, &["debian:bookworm", "perl", "-e", script]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "type 3 code 13 from 10.0.2.2\n"
    );
}

#[test]
fn published_udp_port_reaches_a_server_in_the_container() {
    let st = busybox();
    st.run_ok(["load", "-q", fixture("debian-oci.tar").to_str().unwrap()]);
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let publish = format!("{port}:5353/udp");
    // A UDP echo server in the container (busybox nc has no UDP: perl),
    // answering three datagrams, then exiting.
    let script = "use IO::Socket::INET; \
        my $s = IO::Socket::INET->new(LocalPort => 5353, Proto => 'udp') or die $!; \
        $| = 1; print \"ready\\n\"; \
        for (1..3) { my $m; my $peer = $s->recv($m, 2048); $s->send(\"echo:$m\", 0, $peer); }";
    let mut child = st
        .hutch()
        .args([
            "run",
            "--rm",
            "--network",
            "slirp",
            "-p",
            &publish,
            "debian:bookworm",
            "perl",
            "-e",
            script,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    child.stdout.take().unwrap().read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready\n");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..3 {
        let msg = format!("datagram {i}");
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = sock.recv_from(&mut buf).expect("an answer through -p/udp");
        assert_eq!(from.port(), port);
        assert_eq!(&buf[..n], format!("echo:{msg}").as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn mtu_from_the_profile_the_flag_and_the_network_option() {
    let st = busybox();
    let dir = st.home().join(".config/hutch/profiles");
    std::fs::write(
        dir.join("small.toml"),
        "extends = \"default\"\n[network]\nmtu = 1500\n",
    )
    .unwrap();
    let mtu = |args: &[&str]| -> u64 {
        let mut all = vec!["run", "--dry-run"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["busybox", "true"]);
        let out = st.run_ok(all);
        let spec: serde_json::Value = serde_json::from_str(&out).unwrap();
        spec["net"]["mtu"].as_u64().unwrap()
    };
    assert_eq!(mtu(&[]), 65520);
    assert_eq!(mtu(&["--profile", "small"]), 1500);
    assert_eq!(mtu(&["--profile", "small", "--mtu", "9000"]), 9000);
    assert_eq!(mtu(&["--network", "slirp:mtu=2000"]), 2000);
    // And the container sees it.
    let out = run(
        &st,
        &[
            "--profile",
            "small",
            "busybox",
            "cat",
            "/sys/class/net/eth0/mtu",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1500\n");
}

/// GET /index.html from 127.0.0.1:`port` until the container's server
/// answers (it may not listen yet; 10 s at most).
fn get(port: u16) -> String {
    http_get_until(port, "/index.html", Duration::from_secs(10), |v| {
        v.starts_with("HTTP/1.")
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn publish_without_a_host_port_takes_a_free_one_shown_by_ps() {
    use std::io::BufRead;
    let st = busybox();
    let mut child = st
        .hutch()
        .args(["run", "--rm", "--name", "web", "--network", "slirp"])
        .args(["-p", "8080", "busybox", "sh", "-c"])
        .arg(
            "mkdir -p /www && echo served-from-container > /www/index.html && \
             httpd -f -p 8080 -h /www & echo ready; sleep 20",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Said on stderr at the start.
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim_end()
        .strip_prefix("hutch: port 8080/tcp is published on ")
        .unwrap_or_else(|| panic!("{line:?}"));
    let port: u16 = addr
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    assert_ne!(port, 0);
    let mut seen = [0u8; 6];
    child.stdout.take().unwrap().read_exact(&mut seen).unwrap();
    let body = get(port);
    assert!(body.contains("served-from-container"), "{body}");
    let ps = st.run_ok(["ps"]);
    let header = ps.lines().next().unwrap();
    assert!(header.contains(" PORTS "), "{ps}");
    assert!(ps.contains(&format!("127.0.0.1:{port}->8080/tcp")), "{ps}");
    let v: serde_json::Value = serde_json::from_str(&st.run_ok(["inspect", "web"])).unwrap();
    assert_eq!(
        v[0]["Hutch"]["Ports"],
        serde_json::json!([format!("127.0.0.1:{port}->8080/tcp")])
    );
    assert_eq!(
        v[0]["NetworkSettings"]["Ports"],
        serde_json::json!({"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": port.to_string()}]})
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn privileged_and_out_of_range_host_ports_are_explained() {
    let st = busybox();
    let run_p = |p: &str| {
        st.run([
            "run",
            "--rm",
            "--network",
            "slirp",
            "-p",
            p,
            "busybox",
            "true",
        ])
        .1
    };
    let out = run_p("99999");
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err,
        "hutch: error: -p 99999: port 99999 is out of range (1-65535)\n"
    );
    let out = run_p("99999:80");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("port 99999 is out of range (1-65535)"),
        "{}",
        describe(&out)
    );
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = run_p("80:80");
    if start > 80 {
        assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
        let suggested = if start <= 8080 { 8080 } else { start };
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "host port 80 is privileged (below net.ipv4.ip_unprivileged_port_start = {start}): \
                 use a port >= {start}, e.g. -p {suggested}:80"
            )),
            "{err}"
        );
    } else {
        // This host lets everyone bind port 80: nothing to refuse.
        assert!(out.status.success(), "{}", describe(&out));
    }
    // Nothing was left behind, even without --rm.
    let (_, out) = st.run([
        "run",
        "--network",
        "slirp",
        "-p",
        "99999",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(st.run_ok(["ps", "-aq"]).trim().is_empty());
}
