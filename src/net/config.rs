//! Configuration of the userspace network: addresses, MTU, port forwards.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The container's address on the virtual link (slirp4netns' default).
pub const CONTAINER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
/// The gateway, which is also the host as seen from the container.
pub const GATEWAY_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The DNS forwarder.
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// Prefix length of the virtual link.
pub const PREFIX_LEN: u8 = 24;
/// The network address of the virtual link.
pub const NETWORK_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 0);
/// The container's IPv6 address (a ULA, as slirp4netns and Podman use).
pub const CONTAINER_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100);
/// The gateway's IPv6 address: the host's `::1` when the host loopback is
/// allowed.
pub const GATEWAY_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
/// The DNS forwarder's IPv6 address.
pub const DNS_ADDR6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3);
/// Prefix length of the IPv6 link.
pub const PREFIX_LEN6: u8 = 64;
/// The stack's MAC address (the one slirp uses for its gateway).
pub const GATEWAY_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
/// Default IP MTU: the largest a TAP device takes, as slirp4netns and pasta use.
pub const DEFAULT_MTU: usize = 65520;

/// Transport protocol of a port forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

/// One `-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]` forward (in a run's
/// spec as `{"host": "127.0.0.1:8080", "container_port": 80, "proto":
/// "tcp"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortForward {
    /// Address and port to bind on the host (port 0: a free one, chosen
    /// when it is bound).
    pub host: SocketAddr,
    /// Port inside the container (at [`CONTAINER_ADDR`]).
    pub container_port: u16,
    pub proto: Proto,
}

/// Settings of one stack.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// IP MTU of the TAP device (the Ethernet frame is 14 bytes more).
    pub mtu: usize,
    /// Whether 10.0.2.2 reaches the host's loopback (127.0.0.1) and the
    /// host's own addresses may be reached at all (false: every address of
    /// every host interface is refused, see policy.rs).
    pub allow_host_loopback: bool,
    /// Refuse private, shared and link-local ranges (RFC 1918, 100.64/10,
    /// 169.254/16, fc00::/7, fe80::/10): only the public internet (and the
    /// DNS forwarder) is reachable.
    pub block_private: bool,
    /// Resolvers that 10.0.2.3:53 relays to, in order of preference: UDP
    /// queries move to the next one when one refuses or stays silent for
    /// 2 s; TCP goes to the first.
    pub dns_upstreams: Vec<SocketAddr>,
    /// Size of each direction's buffer of a relayed TCP connection (1 MiB:
    /// 256 KiB held host-to-container throughput to two thirds at MTU
    /// 65520; memory is only touched as data flows).
    pub tcp_buffer: usize,
    /// Idle time after which a UDP flow (and its host socket) is dropped.
    pub udp_timeout: Duration,
    /// Idle time for flows to the DNS forwarder.
    pub dns_timeout: Duration,
    /// How long to wait for a host `connect` before refusing the container's SYN.
    pub connect_timeout: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            mtu: DEFAULT_MTU,
            allow_host_loopback: false,
            block_private: false,
            // Filled by the caller (run/net.rs reads the host's resolvers
            // into the spec); the stack reads no host file itself.
            dns_upstreams: Vec::new(),
            tcp_buffer: 1024 * 1024,
            udp_timeout: Duration::from_secs(60),
            dns_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl NetConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(576..=65520).contains(&self.mtu) {
            bail!("MTU {} out of range (576 to 65520)", self.mtu);
        }
        if self.tcp_buffer < 4096 {
            bail!("TCP buffer of {} bytes is too small", self.tcp_buffer);
        }
        Ok(())
    }
}

impl PortForward {
    /// `127.0.0.1:41234->8080/tcp`, as `docker ps` shows a published port.
    pub fn describe(&self) -> String {
        format!(
            "{}->{}/{}",
            self.host,
            self.container_port,
            self.proto.as_str()
        )
    }
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// Parse `-p [[HOSTIP:][HOSTPORT]:]CTRPORT[/tcp|/udp]` as Podman does.
///
/// The host address defaults to 127.0.0.1 (Podman binds all addresses; hutch
/// binds only what is asked). IPv6 host addresses are written in brackets:
/// `[::1]:8080:80`. An empty host address (`:8080:80`) also means the default.
/// Without a host port (`-p 80`, `-p 127.0.0.1::80`) the host port is 0: a
/// free one is chosen when the forward is bound.
pub fn parse_publish(s: &str) -> Result<PortForward> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((spec, p)) => {
            let proto = match p.to_ascii_lowercase().as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => bail!("-p {s}: unknown protocol {p:?} (expected tcp or udp)"),
            };
            (spec, proto)
        }
        None => (s, Proto::Tcp),
    };
    let port = |p: &str, what: &str| -> Result<u16> {
        if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
            match p.parse::<u16>() {
                Ok(0) => bail!(
                    "-p {s}: the {what} port must not be 0{}",
                    if what == "host" {
                        " (leave it out for a free one: -p CTRPORT)"
                    } else {
                        ""
                    }
                ),
                Ok(n) => return Ok(n),
                Err(_) => bail!(
                    "-p {s}: port {} is out of range (1-65535)",
                    p.trim_start_matches('0')
                ),
            }
        }
        bail!(
            "-p {s}: the {what} port {p:?} is not a number (expected [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp])"
        )
    };
    // A host port left out: a free one.
    let host_port = |p: &str| -> Result<u16> { if p.is_empty() { Ok(0) } else { port(p, "host") } };
    let (host_ip, rest): (IpAddr, &str) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after
            .split_once(']')
            .with_context(|| format!("-p {s}: missing ']' after IPv6 address"))?;
        let ip = ip
            .parse()
            .with_context(|| format!("-p {s}: bad host address {ip:?}"))?;
        let rest = rest
            .strip_prefix(':')
            .with_context(|| format!("-p {s}: expected ':' after host address"))?;
        (ip, rest)
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.as_slice() {
            [c] => {
                return Ok(PortForward {
                    host: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                    container_port: port(c, "container")?,
                    proto,
                });
            }
            [_, _] => (IpAddr::V4(Ipv4Addr::LOCALHOST), spec),
            ["", h, c] => (
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                &spec[spec.len() - h.len() - c.len() - 1..],
            ),
            [ip, _, _] => {
                let addr = ip
                    .parse()
                    .with_context(|| format!("-p {s}: bad host address {ip:?}"))?;
                (addr, &spec[ip.len() + 1..])
            }
            _ => bail!("-p {s}: expected [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]"),
        }
    };
    let (h, c) = rest
        .split_once(':')
        .with_context(|| format!("-p {s}: expected HOSTPORT:CTRPORT"))?;
    if c.contains(':') {
        bail!("-p {s}: expected [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]");
    }
    Ok(PortForward {
        host: SocketAddr::new(host_ip, host_port(h)?),
        container_port: port(c, "container")?,
        proto,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(host: &str, c: u16, proto: Proto) -> PortForward {
        PortForward {
            host: host.parse().unwrap(),
            container_port: c,
            proto,
        }
    }

    #[test]
    fn publish_forms() {
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            pf("127.0.0.1:8080", 80, Proto::Tcp)
        );
        assert_eq!(
            parse_publish("8080:80/tcp").unwrap(),
            pf("127.0.0.1:8080", 80, Proto::Tcp)
        );
        assert_eq!(
            parse_publish("5353:53/udp").unwrap(),
            pf("127.0.0.1:5353", 53, Proto::Udp)
        );
        assert_eq!(
            parse_publish("5353:53/UDP").unwrap(),
            pf("127.0.0.1:5353", 53, Proto::Udp)
        );
        assert_eq!(
            parse_publish("0.0.0.0:80:8000").unwrap(),
            pf("0.0.0.0:80", 8000, Proto::Tcp)
        );
        assert_eq!(
            parse_publish("192.168.1.5:80:8000/udp").unwrap(),
            pf("192.168.1.5:80", 8000, Proto::Udp)
        );
        assert_eq!(
            parse_publish(":9000:90").unwrap(),
            pf("127.0.0.1:9000", 90, Proto::Tcp)
        );
        assert_eq!(
            parse_publish("[::1]:8080:80").unwrap(),
            pf("[::1]:8080", 80, Proto::Tcp)
        );
        // No host port: a free one (port 0 until bound).
        assert_eq!(
            parse_publish("8080").unwrap(),
            pf("127.0.0.1:0", 8080, Proto::Tcp)
        );
        assert_eq!(
            parse_publish("53/udp").unwrap(),
            pf("127.0.0.1:0", 53, Proto::Udp)
        );
        assert_eq!(
            parse_publish("0.0.0.0::80").unwrap(),
            pf("0.0.0.0:0", 80, Proto::Tcp)
        );
        assert_eq!(
            parse_publish("[::1]::80").unwrap(),
            pf("[::1]:0", 80, Proto::Tcp)
        );
        assert_eq!(
            parse_publish("80").unwrap().describe(),
            "127.0.0.1:0->80/tcp"
        );
    }

    #[test]
    fn publish_errors() {
        for bad in [
            "",
            "a",
            "a:80",
            "80:b",
            "0:80",
            "80:0",
            "70000:80",
            "80:80/sctp",
            "1.2.3:80:80",
            "1:2:3:4",
            "[::1:80:80",
            "[::1]80:80",
            "80:80:80",
            "80:80/",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad:?} should not parse");
        }
        let e = parse_publish("80:80/sctp").unwrap_err().to_string();
        assert!(e.contains("sctp"), "{e}");
        for (bad, port) in [
            ("99999", "99999"),
            ("99999:80", "99999"),
            ("8080:070000", "70000"),
            ("1.2.3.4:100000:80/udp", "100000"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
        ] {
            let e = parse_publish(bad).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("-p {bad}: port {port} is out of range (1-65535)")
            );
        }
        let e = parse_publish("0:80").unwrap_err().to_string();
        assert!(e.contains("leave it out"), "{e}");
    }
}
