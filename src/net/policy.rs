//! Which destinations the container may reach through host sockets.
//!
//! The stack's own addresses (10.0.2.2, 10.0.2.3, fd00::2, fd00::3) are
//! mapped before this policy is asked (stack.rs); every other destination
//! of a TCP connect, a UDP datagram or an echo request goes through
//! [`Policy::check`]:
//!
//! * always refused: "this host" (`0.0.0.0/8`, `::`: a connect to 0.0.0.0
//!   reaches the host itself on Linux), loopback (`127.0.0.0/8`, `::1`),
//!   broadcast (`255.255.255.255`), multicast (`224.0.0.0/4`, `ff00::/8`),
//!   IPv6 link-local (`fe80::/10`, meaningless without an interface), the
//!   rest of the virtual link (10.0.2.0/24, fd00::/64), and IPv4 written as
//!   IPv6 (mapped `::ffff:0:0/96`, compatible `::/96`, translated
//!   `::ffff:0:0:0/96`): a host socket would reach the IPv4 address, so the
//!   container has to use IPv4 and face the IPv4 rules;
//! * without `allow_host_loopback`: every address of every host interface,
//!   IPv4 and IPv6, and the network and broadcast addresses of the host's
//!   IPv4 subnets ([`HostAddrs`], kept current);
//! * with `block_private`: RFC 1918 (10/8, 172.16/12, 192.168/16), CGNAT
//!   (100.64/10), IPv4 link-local (169.254/16), ULA (fc00::/7), site-local
//!   (fec0::/10) and local-use NAT64 (64:ff9b:1::/48).
//!
//! IPv6 addresses that carry an IPv4 address the host may end up sending
//! to (NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`) are also
//! judged by their IPv4 address.
//!
//! Nothing here makes a system call per packet: the host's addresses are
//! read with `getifaddrs` when a netlink notification (address added or
//! removed) said they changed, or when the last read is older than
//! [`HostAddrs::max_age`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use super::config::{CONTAINER_ADDR6, NETWORK_ADDR, PREFIX_LEN, PREFIX_LEN6};

/// Why a destination is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `0.0.0.0/8` or `::`.
    ThisHost,
    Loopback,
    Broadcast,
    Multicast,
    /// `fe80::/10`.
    LinkLocal,
    /// An address of the virtual link that the stack does not serve.
    VirtualLink,
    /// An IPv4-mapped, -compatible or -translated IPv6 address.
    Ipv4InIpv6,
    /// An address of the host (with `allow_host_loopback = false`).
    HostAddress,
    /// A private, shared or link-local range (with `block_private = true`).
    Private,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::ThisHost => "\"this host\" address",
            Refusal::Loopback => "loopback address",
            Refusal::Broadcast => "broadcast address",
            Refusal::Multicast => "multicast address",
            Refusal::LinkLocal => "IPv6 link-local address",
            Refusal::VirtualLink => "address of the virtual link",
            Refusal::Ipv4InIpv6 => "IPv4 address in IPv6 form",
            Refusal::HostAddress => "address of the host (allow_host_loopback = false)",
            Refusal::Private => "private address (block_private = true)",
        })
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

const fn v6(segments: [u16; 8]) -> Ipv6Addr {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Addr::new(a, b, c, d, e, f, g, h)
}

/// The classes refused whatever the host's addresses are.
pub fn fixed_v4(ip: Ipv4Addr, block_private: bool) -> Option<Refusal> {
    if in_v4(ip, [0, 0, 0, 0], 8) {
        Some(Refusal::ThisHost)
    } else if ip.is_loopback() {
        Some(Refusal::Loopback)
    } else if ip.is_broadcast() {
        Some(Refusal::Broadcast)
    } else if ip.is_multicast() {
        Some(Refusal::Multicast)
    } else if in_v4(ip, NETWORK_ADDR.octets(), PREFIX_LEN.into()) {
        Some(Refusal::VirtualLink)
    } else if block_private
        && (ip.is_private() || ip.is_link_local() || in_v4(ip, [100, 64, 0, 0], 10))
    {
        Some(Refusal::Private)
    } else {
        None
    }
}

/// The IPv4 address an IPv6 destination stands for, where the host would
/// send to it (NAT64, 6to4, Teredo).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    if in_v6(ip, v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]), 96) {
        Some(Ipv4Addr::from(bits as u32))
    } else if in_v6(ip, v6([0x2002, 0, 0, 0, 0, 0, 0, 0]), 16) {
        Some(Ipv4Addr::from((bits >> 80) as u32))
    } else if in_v6(ip, v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32) {
        // Teredo: the client's address is stored inverted.
        Some(Ipv4Addr::from(!(bits as u32)))
    } else {
        None
    }
}

/// The classes refused whatever the host's addresses are.
pub fn fixed_v6(ip: Ipv6Addr, block_private: bool) -> Option<Refusal> {
    if ip.is_unspecified() {
        Some(Refusal::ThisHost)
    } else if ip.is_loopback() {
        Some(Refusal::Loopback)
    } else if ip.is_multicast() {
        Some(Refusal::Multicast)
    } else if ip.is_unicast_link_local() {
        Some(Refusal::LinkLocal)
    } else if in_v6(ip, CONTAINER_ADDR6, PREFIX_LEN6.into()) {
        Some(Refusal::VirtualLink)
    } else if in_v6(ip, Ipv6Addr::UNSPECIFIED, 96)
        || in_v6(ip, v6([0, 0, 0, 0, 0, 0xffff, 0, 0]), 96)
        || in_v6(ip, v6([0, 0, 0, 0, 0xffff, 0, 0, 0]), 96)
    {
        Some(Refusal::Ipv4InIpv6)
    } else if block_private
        && (in_v6(ip, v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7)
            || in_v6(ip, v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]), 10)
            || in_v6(ip, v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48))
    {
        Some(Refusal::Private)
    } else {
        embedded_v4(ip).and_then(|v4| fixed_v4(v4, block_private))
    }
}

/// The host's own addresses, as last read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AddrList {
    /// Interface addresses.
    pub v4: Vec<Ipv4Addr>,
    /// Network and broadcast addresses of the interfaces' IPv4 subnets.
    pub v4_bcast: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

impl AddrList {
    /// Add `addr`/`netmask` (as getifaddrs reports them).
    pub fn add(&mut self, addr: IpAddr, netmask: Option<IpAddr>) {
        match addr {
            IpAddr::V4(a) => {
                self.v4.push(a);
                if let Some(IpAddr::V4(m)) = netmask {
                    let (a, m) = (u32::from(a), u32::from(m));
                    // /31 and /32 have no network or broadcast address.
                    if m.count_ones() < 31 {
                        self.v4_bcast.push(Ipv4Addr::from(a & m));
                        self.v4_bcast.push(Ipv4Addr::from(a | !m));
                    }
                }
            }
            IpAddr::V6(a) => self.v6.push(a),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(&a) || self.v4_bcast.contains(&a),
            IpAddr::V6(a) => {
                self.v6.contains(&a) || embedded_v4(a).is_some_and(|v| self.contains(v.into()))
            }
        }
    }
}

/// The host's addresses, re-read when they may have changed.
pub struct HostAddrs {
    list: AddrList,
    read_at: Option<Instant>,
    stale: bool,
    /// A netlink socket subscribed to address changes, when one could be
    /// opened.
    watch: Option<OwnedFd>,
    /// Fixed addresses (tests): never re-read.
    fixed: bool,
}

impl HostAddrs {
    /// Reads the addresses on first use.
    pub fn new() -> HostAddrs {
        let watch = match sys::watch_addresses() {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::debug!(
                    "network: cannot watch the host's addresses with netlink ({e}); \
                     re-reading them every {} s",
                    Self::POLL.as_secs()
                );
                None
            }
        };
        HostAddrs {
            list: AddrList::default(),
            read_at: None,
            stale: true,
            watch,
            fixed: false,
        }
    }

    /// Always `list` (for tests).
    #[cfg(test)]
    pub fn fixed(list: AddrList) -> HostAddrs {
        HostAddrs {
            list,
            read_at: None,
            stale: false,
            watch: None,
            fixed: true,
        }
    }

    /// Without netlink notifications, how old a read may be.
    const POLL: Duration = Duration::from_secs(2);
    /// With them, a safety net.
    const WATCHED: Duration = Duration::from_secs(30);

    /// How old the list may get before it is read again.
    pub fn max_age(&self) -> Duration {
        if self.watch.is_some() {
            Self::WATCHED
        } else {
            Self::POLL
        }
    }

    /// The netlink socket to poll for readability, if any.
    pub fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        self.watch.as_ref().map(|w| w.as_fd())
    }

    /// The netlink socket is readable: drain it; the next check re-reads.
    pub fn on_notification(&mut self) {
        if let Some(w) = &self.watch {
            sys::drain(w);
        }
        self.stale = true;
    }

    /// The current list.
    pub fn current(&mut self) -> &AddrList {
        let old = self.read_at.is_none_or(|t| t.elapsed() >= self.max_age());
        if !self.fixed && (self.stale || old) {
            match sys::read_addresses() {
                Ok(list) => self.list = list,
                // Keep the last list; try again after max_age.
                Err(e) => tracing::warn!("network: reading the host's addresses: {e}"),
            }
            self.read_at = Some(Instant::now());
            self.stale = false;
        }
        &self.list
    }
}

/// Every address of every host interface, read now.
#[cfg(test)]
pub fn read_host_addresses() -> std::io::Result<AddrList> {
    sys::read_addresses()
}

/// The destination policy of one stack.
pub struct Policy {
    allow_host: bool,
    block_private: bool,
    host: HostAddrs,
}

impl Policy {
    pub fn new(allow_host_loopback: bool, block_private: bool, host: HostAddrs) -> Policy {
        Policy {
            allow_host: allow_host_loopback,
            block_private,
            host,
        }
    }

    /// Whether the container may reach `ip` through a host socket.
    pub fn check(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        let fixed = match ip {
            IpAddr::V4(a) => fixed_v4(a, self.block_private),
            IpAddr::V6(a) => fixed_v6(a, self.block_private),
        };
        if let Some(r) = fixed {
            return Err(r);
        }
        if !self.allow_host && self.host.current().contains(ip) {
            return Err(Refusal::HostAddress);
        }
        Ok(())
    }

    pub fn host_addrs(&mut self) -> &mut HostAddrs {
        &mut self.host
    }
}

/// The host's addresses and the netlink socket that says when they change.
mod sys {
    use super::AddrList;
    use std::os::fd::OwnedFd;

    use rustix::net::netlink::SocketAddrNetlink;
    use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};

    /// `RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR`.
    const GROUPS: u32 = 0x10 | 0x100;

    /// A non-blocking netlink socket that becomes readable when an address
    /// is added to or removed from a host interface.
    pub fn watch_addresses() -> std::io::Result<OwnedFd> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, GROUPS))?;
        Ok(fd)
    }

    /// Read and drop every pending notification (their content does not
    /// matter: the list is read again whole). An overflow (ENOBUFS) means
    /// notifications were lost, which re-reading covers too.
    pub fn drain(fd: &OwnedFd) {
        let mut buf = [0u8; 8192];
        for _ in 0..64 {
            match rustix::net::recv(fd, &mut buf, RecvFlags::DONTWAIT) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
            }
        }
    }

    /// Every address of every interface (getifaddrs(3)).
    pub fn read_addresses() -> std::io::Result<AddrList> {
        let mut list = AddrList::default();
        for (addr, mask) in crate::sys::interface_addresses()? {
            list.add(addr, mask);
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> AddrList {
        let mut l = AddrList::default();
        l.add(
            "192.0.2.2".parse().unwrap(),
            Some("255.255.255.0".parse().unwrap()),
        );
        l.add(
            "198.51.100.7".parse().unwrap(),
            Some("255.255.255.255".parse().unwrap()),
        );
        l.add("2001:db8:5::7".parse().unwrap(), None);
        l
    }

    fn policy(allow_host: bool, block_private: bool) -> Policy {
        Policy::new(allow_host, block_private, HostAddrs::fixed(host()))
    }

    fn check(p: &mut Policy, ip: &str) -> Result<(), Refusal> {
        p.check(ip.parse().unwrap())
    }

    #[test]
    fn fixed_classes_whatever_the_settings() {
        use Refusal::*;
        let cases = [
            ("0.0.0.0", ThisHost),
            ("0.1.2.3", ThisHost),
            ("0.255.255.255", ThisHost),
            ("::", ThisHost),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("::1", Loopback),
            ("255.255.255.255", Broadcast),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("ff0e::fb", Multicast),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("10.0.2.9", VirtualLink),
            ("10.0.2.255", VirtualLink),
            ("fd00::9", VirtualLink),
            // Every IPv4 address in IPv6 form, public or not.
            ("::ffff:127.0.0.1", Ipv4InIpv6),
            ("::ffff:0.0.0.0", Ipv4InIpv6),
            ("::ffff:192.0.2.2", Ipv4InIpv6),
            ("::ffff:8.8.8.8", Ipv4InIpv6),
            ("::127.0.0.1", Ipv4InIpv6),
            ("::0.0.0.2", Ipv4InIpv6),
            ("::8.8.8.8", Ipv4InIpv6),
            ("::ffff:0:127.0.0.1", Ipv4InIpv6),
            // IPv4 reached through NAT64, 6to4 or Teredo: its IPv4 class.
            ("64:ff9b::127.0.0.1", Loopback),
            ("64:ff9b::0.0.0.0", ThisHost),
            ("64:ff9b::224.0.0.1", Multicast),
            ("2002:7f00:1::1", Loopback),
            ("2002:ffff:ffff::1", Broadcast),
            // Teredo client 127.0.0.1, stored inverted.
            ("2001:0:c000:202:0:0:80ff:fffe", Loopback),
        ];
        for allow_host in [false, true] {
            for block_private in [false, true] {
                let mut p = policy(allow_host, block_private);
                for (ip, want) in cases {
                    assert_eq!(
                        check(&mut p, ip),
                        Err(want),
                        "{ip} (allow_host {allow_host}, block_private {block_private})"
                    );
                }
            }
        }
    }

    #[test]
    fn public_addresses_pass() {
        let mut p = policy(false, true);
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "169.253.0.1",
            "11.0.0.1",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "fbff::1",
            "fe00::1",
        ] {
            assert_eq!(check(&mut p, ip), Ok(()), "{ip}");
        }
    }

    #[test]
    fn private_ranges_only_with_block_private() {
        let private = [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "169.254.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "64:ff9b:1::a00:1",
            // Private IPv4 through NAT64 and 6to4.
            "64:ff9b::10.1.2.3",
            "64:ff9b::192.168.0.1",
            "2002:c0a8:101::1",
        ];
        let mut open = policy(true, false);
        let mut closed = policy(true, true);
        for ip in private {
            assert_eq!(check(&mut open, ip), Ok(()), "{ip} without block_private");
            assert_eq!(
                check(&mut closed, ip),
                Err(Refusal::Private),
                "{ip} with block_private"
            );
        }
    }

    #[test]
    fn host_addresses_only_without_allow_host_loopback() {
        let host_forms = [
            "192.0.2.2",
            // The subnet's network and broadcast addresses.
            "192.0.2.0",
            "192.0.2.255",
            "198.51.100.7",
            "2001:db8:5::7",
            // The host's IPv4 address through NAT64 and 6to4.
            "64:ff9b::192.0.2.2",
            "2002:c000:202::1",
        ];
        let mut closed = policy(false, false);
        let mut open = policy(true, false);
        for ip in host_forms {
            assert_eq!(check(&mut closed, ip), Err(Refusal::HostAddress), "{ip}");
            assert_eq!(check(&mut open, ip), Ok(()), "{ip}");
        }
        // Neighbours on the host's subnet are not the host.
        for ip in ["192.0.2.1", "192.0.2.3", "198.51.100.8", "2001:db8:5::8"] {
            assert_eq!(check(&mut closed, ip), Ok(()), "{ip}");
        }
    }

    #[test]
    fn small_subnets_have_no_broadcast() {
        let mut l = AddrList::default();
        l.add(
            "203.0.113.4".parse().unwrap(),
            Some("255.255.255.254".parse().unwrap()),
        );
        l.add(
            "203.0.113.9".parse().unwrap(),
            Some("255.255.255.255".parse().unwrap()),
        );
        assert!(l.v4_bcast.is_empty());
        assert!(l.contains("203.0.113.4".parse().unwrap()));
        assert!(!l.contains("203.0.113.5".parse().unwrap()));
    }

    #[test]
    fn reads_the_hosts_addresses() {
        // Every host has a loopback interface with 127.0.0.1.
        let list = sys::read_addresses().unwrap();
        assert!(list.v4.contains(&Ipv4Addr::LOCALHOST), "{list:?}");
        assert!(list.v4_bcast.contains(&Ipv4Addr::new(127, 255, 255, 255)));
        let mut h = HostAddrs::new();
        assert_eq!(h.current(), &list);
        // A notification (or none: the fallback) makes the next check read
        // again.
        h.on_notification();
        assert!(h.stale);
        let _ = h.current();
        assert!(!h.stale);
    }
}
