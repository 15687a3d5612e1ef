//! Special destinations of the userspace network (`--network slirp`): the
//! host's own addresses, 0.0.0.0 and private ranges, as the unprivileged
//! test user. Every test targets only addresses of this machine: a service
//! the test starts on the host's 0.0.0.0, reached (or not) through one of
//! the host's non-loopback addresses.
//!
//! Each refusal has a control: the same attempt under a profile that does
//! not block it reaches the service.

mod common;

use common::{TestStore, describe, fixture};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::Output;

/// The host's IPv4 addresses (getifaddrs), but loopback, 0.0.0.0/8 and
/// the container's virtual link (10.0.2.0/24), which are not the host's
/// from the container's point of view.
fn host_v4_addrs() -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below; every
    // element's ifa_addr is null or a sockaddr of the family it names.
    unsafe {
        assert_eq!(libc::getifaddrs(&mut head), 0, "getifaddrs");
        let mut cur = head;
        while !cur.is_null() {
            let sa = (*cur).ifa_addr;
            if !sa.is_null() && i32::from((*sa).sa_family) == libc::AF_INET {
                let sin = &*(sa as *const libc::sockaddr_in);
                out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out.retain(|a| {
        !a.is_loopback() && a.octets()[0] != 0 && a.octets()[..3] != [10, 0, 2] && !a.is_multicast()
    });
    out
}

fn is_private(a: Ipv4Addr) -> bool {
    a.is_private() || a.is_link_local() || (a.octets()[0] == 100 && a.octets()[1] & 0xc0 == 64)
}

/// A service on every address of the host (0.0.0.0) answering `body` to
/// every connection, as a dev server or database bound to all addresses.
fn service(body: &'static str) -> u16 {
    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(body.as_bytes());
        }
    });
    port
}

/// A store with `image` and user profiles `NAME.toml` = `text`.
fn store(image: &str, profiles: &[(&str, &str)]) -> TestStore {
    let st = TestStore::new();
    st.run_ok(["load", "-q", fixture(image).to_str().unwrap()]);
    let dir = st.home().join(".config/hutch/profiles");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in profiles {
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    }
    st
}

fn run(st: &TestStore, args: &[&str]) -> Output {
    let work = st.tmp().join("work");
    let _ = std::fs::create_dir(&work);
    st.hutch()
        .current_dir(&work)
        .args(["run", "--rm"])
        .args(args)
        .output()
        .unwrap()
}

/// busybox nc to `ip:port` under `profile`: what the service said, then
/// `rc=` nc's status (1: refused).
fn nc(st: &TestStore, profile: &str, ip: IpAddr, port: u16) -> String {
    let script = format!("nc -w 5 {ip} {port} </dev/null; echo \"rc=$?\"");
    let out = run(st, &["--profile", profile, "busybox", "sh", "-c", &script]);
    assert!(out.status.success(), "{profile}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const HOST_SERVICES: &str =
    "extends = \"install\"\n[network]\nallow_host_loopback = true\nblock_private = false\n";
const PUBLIC: &str = "extends = \"install\"\n[network]\nblock_private = false\n";

#[test]
fn special_host_addresses_refused_under_install() {
    let addrs = host_v4_addrs();
    if addrs.is_empty() {
        eprintln!("skipped: this host has no IPv4 address besides loopback");
        return;
    }
    let st = store(
        "busybox-oci.tar",
        &[("hostsvc", HOST_SERVICES), ("public", PUBLIC)],
    );
    let port = service("host service\n");
    for ip in addrs {
        let ip = IpAddr::V4(ip);
        // install, and install without block_private (so that a private
        // host address is refused as the host's, not as private).
        for profile in ["install", "public"] {
            assert_eq!(
                nc(&st, profile, ip, port),
                "rc=1\n",
                "{profile} must not reach the host's service at {ip}"
            );
        }
        // Control: the same connection reaches it when the host's services
        // are allowed.
        assert_eq!(
            nc(&st, "hostsvc", ip, port),
            "host service\nrc=0\n",
            "hostsvc reaches the host's service at {ip}"
        );
    }
}

#[test]
fn special_block_private_refuses_the_hosts_private_address() {
    let Some(ip) = host_v4_addrs().into_iter().find(|a| is_private(*a)) else {
        eprintln!(
            "skipped: this host has no private IPv4 address (10/8, 172.16/12, \
             192.168/16, 100.64/10, 169.254/16) to aim at"
        );
        return;
    };
    let st = store(
        "busybox-oci.tar",
        &[
            ("hostsvc", HOST_SERVICES),
            (
                "hostprivate",
                "extends = \"install\"\n[network]\nallow_host_loopback = true\nblock_private = true\n",
            ),
        ],
    );
    let port = service("private service\n");
    let ip = IpAddr::V4(ip);
    // The host's services are allowed, private destinations are not.
    assert_eq!(nc(&st, "hostprivate", ip, port), "rc=1\n");
    // Control: block_private = false reaches the same address.
    assert_eq!(nc(&st, "hostsvc", ip, port), "private service\nrc=0\n");
}

/// A perl script (Debian fixture) that sends one TCP SYN to `ARGV[0]:ARGV[1]`
/// as a raw Ethernet frame on eth0 (the container's kernel would route a
/// connect to 0.0.0.0 to its own loopback: only a raw frame reaches the
/// stack), and prints the stack's answer: `synack`, `rst` or, in `sentinel`
/// mode (ARGV[2]), `none` when a second SYN sent after it, to 10.0.2.3:81
/// (always reset at once), was answered first: the stack handles frames in
/// order, so the first SYN was seen and dropped.
const RAW_SYN: &str = r#"
use strict;
my ($dst, $port, $mode) = @ARGV;
sub csum { my $d = shift; $d .= "\0" if length($d) % 2; my $s = 0;
  $s += $_ for unpack("n*", $d); $s = ($s & 0xffff) + ($s >> 16) while $s >> 16; ~$s & 0xffff }
sub ip4 { pack("C4", split(/\./, shift)) }
sub slurp { open(my $f, "<", shift) or die "$!"; my $l = <$f>; chomp $l; $l }
my $ifindex = slurp("/sys/class/net/eth0/ifindex");
my $mac = pack("H12", join("", split(/:/, slurp("/sys/class/net/eth0/address"))));
my $gw = pack("H12", "52550a000202");
my $me = ip4("10.0.2.100");
socket(my $p, 17, 3, unpack("S", pack("n", 3))) or die "AF_PACKET socket: $!";
bind($p, pack("S n i S C C a8", 17, 3, $ifindex, 0, 0, 0, "")) or die "bind: $!";
sub frame { my ($type, $payload) = @_; send($p, $gw . $mac . pack("n", $type) . $payload, 0) or die "send: $!" }
# Teach the stack our MAC (it answers ARP for 10.0.2.2 and learns the asker).
frame(0x0806, pack("n n C C n", 1, 0x0800, 6, 4, 1) . $mac . $me . ("\0" x 6) . ip4("10.0.2.2"));
sub syn { my ($to, $dport, $sport) = @_; my $d = ip4($to);
  my $tcp = pack("n n N N C C n n n", $sport, $dport, 1000, 0, 5 << 4, 0x02, 64240, 0, 0);
  my $c = csum($me . $d . pack("C C n", 0, 6, length $tcp) . $tcp);
  substr($tcp, 16, 2) = pack("n", $c);
  my $ip = pack("C C n n n C C n", 0x45, 0, 20 + length $tcp, 1, 0x4000, 64, 6, 0) . $me . $d;
  substr($ip, 10, 2) = pack("n", csum($ip));
  frame(0x0800, $ip . $tcp) }
my ($waited, $buf) = (0, "");
# Wait for the ARP reply before sending anything else.
while (1) { die "no ARP reply\n" if ++$waited > 60; my $r = ""; vec($r, fileno($p), 1) = 1;
  next unless select($r, undef, undef, 0.5); recv($p, $buf, 70000, 0);
  last if length($buf) >= 14 && substr($buf, 0, 6) eq $mac && unpack("n", substr($buf, 12, 2)) == 0x0806 }
syn($dst, $port, 40001);
syn("10.0.2.3", 81, 40002) if $mode eq "sentinel";
$waited = 0;
while ($waited < 60) {
  my $r = ""; vec($r, fileno($p), 1) = 1;
  unless (select($r, undef, undef, 0.5)) { $waited++; next }
  recv($p, $buf, 70000, 0);
  next unless length($buf) >= 54 && substr($buf, 0, 6) eq $mac && unpack("n", substr($buf, 12, 2)) == 0x0800;
  my $ihl = (unpack("C", substr($buf, 14, 1)) & 15) * 4;
  next unless unpack("C", substr($buf, 23, 1)) == 6;
  my ($sp, $dp) = unpack("n n", substr($buf, 14 + $ihl, 4));
  my $flags = unpack("C", substr($buf, 14 + $ihl + 13, 1));
  if ($dp == 40001 && $sp == $port) { print(($flags & 0x12) == 0x12 ? "synack\n" : ($flags & 4) ? "rst\n" : "other $flags\n"); exit 0 }
  if ($dp == 40002 && ($flags & 4)) { print "none\n"; exit 0 }
}
print "timeout\n";
"#;

#[test]
fn special_this_host_address_is_never_forwarded() {
    let Some(host_ip) = host_v4_addrs().into_iter().next() else {
        eprintln!("skipped: this host has no IPv4 address besides loopback");
        return;
    };
    // Raw frames need CAP_NET_RAW (inside the container's namespaces) and
    // the default seccomp policy (strict refuses AF_PACKET).
    let raw = "extends = \"install\"\n[network]\nblock_private = false\n\
               [security]\nseccomp = \"default\"\ncapabilities = [\"NET_RAW\"]\n";
    let raw_host = "extends = \"rawinstall\"\n[network]\nallow_host_loopback = true\n";
    let st = store(
        "debian-oci.tar",
        &[("rawinstall", raw), ("rawhost", raw_host)],
    );
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    // What forwarding 0.0.0.0 would do: on the host, a connect to 0.0.0.0
    // reaches the host's own service.
    drop(std::net::TcpStream::connect(("0.0.0.0", port)).expect("0.0.0.0 is the host"));
    assert!(listener.accept().is_ok());
    let syn = |profile: &str, dst: &str, mode: &str| {
        let p = port.to_string();
        let out = run(
            &st,
            &[
                "--profile",
                profile,
                "debian:bookworm",
                "perl",
                "-e",
                RAW_SYN,
                dst,
                &p,
                mode,
            ],
        );
        assert!(out.status.success(), "{profile} {dst}: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let host = host_ip.to_string();
    // Whatever allow_host_loopback says, a SYN to 0.0.0.0 is dropped
    // (there is no address to reset it from), and nothing reaches the host.
    for profile in ["rawinstall", "rawhost"] {
        assert_eq!(syn(profile, "0.0.0.0", "sentinel"), "none\n", "{profile}");
    }
    // The host's own address is reset under install...
    assert_eq!(syn("rawinstall", &host, "wait"), "rst\n");
    let pending = std::iter::from_fn(|| listener.accept().ok()).count();
    assert_eq!(pending, 0, "a refused SYN reached the host's service");
    // ... and the control: the same raw SYN to it, with the host's services
    // allowed, is answered (the stack connected to the service).
    assert_eq!(syn("rawhost", &host, "wait"), "synack\n");
}
