//! Port forwarding (`-p`): host listeners, bound before the stack starts.
//!
//! Accepted TCP connections are handed to the TCP NAT, which connects a
//! smoltcp socket from 10.0.2.2 to 10.0.2.100:CTRPORT; UDP listeners are
//! served by the UDP NAT, one flow per host peer.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use anyhow::{Result, anyhow};

use super::config::{PortForward, Proto};

/// The bound listeners of every `-p`.
pub struct Listeners {
    pub tcp: Vec<(TcpListener, PortForward)>,
    pub udp: Vec<(UdpSocket, PortForward)>,
    /// Every forward as bound, in the order given.
    published: Vec<PortForward>,
}

/// The lowest port an unprivileged process may bind
/// (`net.ipv4.ip_unprivileged_port_start`; 1024 when it cannot be read).
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// How `-p` spells the host address of `f` (nothing for the default
/// 127.0.0.1), and its protocol suffix (nothing for tcp).
fn spelling(f: &PortForward) -> (String, &'static str) {
    let host = match f.host {
        SocketAddr::V4(a) if *a.ip() == Ipv4Addr::LOCALHOST => String::new(),
        SocketAddr::V4(a) => format!("{}:", a.ip()),
        SocketAddr::V6(a) => format!("[{}]:", a.ip()),
    };
    let proto = match f.proto {
        Proto::Tcp => "",
        Proto::Udp => "/udp",
    };
    (host, proto)
}

/// The `-p` to suggest for `f` when its host port is privileged: the
/// container port if it is allowed, else 8000 more (80 → 8080), else the
/// first allowed port.
fn suggestion(f: &PortForward, start: u16) -> String {
    let c = f.container_port;
    let port = if c >= start {
        c
    } else {
        match c.checked_add(8000) {
            Some(p) if p >= start => p,
            _ => start,
        }
    };
    let (host, proto) = spelling(f);
    format!("-p {host}{port}:{c}{proto}")
}

/// Why binding `f` failed, with what to do about it.
fn bind_error(f: &PortForward, e: std::io::Error) -> anyhow::Error {
    let what = format!(
        "publishing {}/{} (container port {})",
        f.host,
        f.proto.as_str(),
        f.container_port
    );
    let start = unprivileged_port_start();
    if e.kind() == std::io::ErrorKind::PermissionDenied && f.host.port() < start {
        return anyhow!(
            "{what}: host port {} is privileged (below net.ipv4.ip_unprivileged_port_start = {start}): \
             use a port >= {start}, e.g. {}",
            f.host.port(),
            suggestion(f, start)
        );
    }
    let what = format!("{what}: cannot bind {}", f.host);
    if e.kind() == std::io::ErrorKind::AddrInUse {
        let (host, proto) = spelling(f);
        let free = if host.is_empty() {
            format!("-p {}{proto}", f.container_port)
        } else {
            format!("-p {host}:{}{proto}", f.container_port)
        };
        return anyhow!(
            "{what}: {e}; pick another host port, or leave it out for a free one ({free})"
        );
    }
    anyhow!(e).context(what)
}

impl Listeners {
    /// Bind every forward's host address, and only that address; a host
    /// port 0 becomes the free one the kernel chose.
    pub fn bind(forwards: &[PortForward]) -> Result<Listeners> {
        let mut out = Listeners {
            tcp: Vec::new(),
            udp: Vec::new(),
            published: Vec::new(),
        };
        for f in forwards {
            let mut bound = *f;
            match f.proto {
                Proto::Tcp => {
                    let l = TcpListener::bind(f.host).map_err(|e| bind_error(f, e))?;
                    l.set_nonblocking(true).map_err(|e| bind_error(f, e))?;
                    bound.host = l.local_addr().map_err(|e| bind_error(f, e))?;
                    out.tcp.push((l, bound));
                    out.published.push(bound);
                }
                Proto::Udp => {
                    let s = UdpSocket::bind(f.host).map_err(|e| bind_error(f, e))?;
                    s.set_nonblocking(true).map_err(|e| bind_error(f, e))?;
                    bound.host = s.local_addr().map_err(|e| bind_error(f, e))?;
                    out.udp.push((s, bound));
                    out.published.push(bound);
                }
            }
        }
        Ok(out)
    }

    /// The forwards as bound (with the ports chosen for host port 0), in
    /// the order given to [`bind`](Self::bind).
    pub fn published(&self) -> &[PortForward] {
        &self.published
    }
}

/// Local ports of the stack's own connections into the container
/// (10.0.2.2:PORT), taken from the dynamic range.
#[derive(Default)]
pub struct PortAlloc {
    used: HashSet<u16>,
    next: u16,
}

impl PortAlloc {
    const FIRST: u16 = 49152;

    pub fn alloc(&mut self) -> Option<u16> {
        let span = (u16::MAX - Self::FIRST) as usize + 1;
        if self.used.len() >= span {
            return None;
        }
        loop {
            if self.next < Self::FIRST {
                self.next = Self::FIRST;
            }
            let p = self.next;
            self.next = self.next.wrapping_add(1);
            if self.used.insert(p) {
                return Some(p);
            }
        }
    }

    pub fn free(&mut self, p: u16) {
        self.used.remove(&p);
    }

    pub fn contains(&self, p: u16) -> bool {
        self.used.contains(&p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(s: &str) -> PortForward {
        super::super::config::parse_publish(s).unwrap()
    }

    #[test]
    fn suggestions_for_privileged_ports() {
        assert_eq!(suggestion(&fwd("80:80"), 1024), "-p 8080:80");
        assert_eq!(suggestion(&fwd("443:443"), 1024), "-p 8443:443");
        assert_eq!(suggestion(&fwd("80:3000"), 1024), "-p 3000:3000");
        assert_eq!(
            suggestion(&fwd("0.0.0.0:53:53/udp"), 1024),
            "-p 0.0.0.0:8053:53/udp"
        );
        assert_eq!(suggestion(&fwd("[::1]:80:80"), 1024), "-p [::1]:8080:80");
        // A start above 8000 + the container port: the start itself.
        assert_eq!(suggestion(&fwd("80:80"), 9000), "-p 9000:80");
        assert_eq!(suggestion(&fwd("80:65000"), 65500), "-p 65500:65000");
    }

    #[test]
    fn a_taken_port_suggests_a_free_one() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = taken.local_addr().unwrap().port();
        let e = Listeners::bind(&[fwd(&format!("{p}:80"))])
            .err()
            .unwrap()
            .to_string();
        assert!(e.ends_with("leave it out for a free one (-p 80)"), "{e}");
    }

    #[test]
    fn host_port_0_becomes_the_port_bound() {
        let l = Listeners::bind(&[fwd("8080"), fwd("127.0.0.1::53/udp")]).unwrap();
        let p = l.published();
        assert_eq!(p.len(), 2);
        assert_ne!(p[0].host.port(), 0);
        assert_eq!(p[0].host.port(), l.tcp[0].0.local_addr().unwrap().port());
        assert_eq!((p[0].container_port, p[0].proto), (8080, Proto::Tcp));
        assert_eq!(p[1].host.port(), l.udp[0].0.local_addr().unwrap().port());
        assert_eq!((p[1].container_port, p[1].proto), (53, Proto::Udp));
    }
}
