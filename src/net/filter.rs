//! Classify each frame from the container before smoltcp sees it.
//!
//! Everything is parsed with smoltcp's checked wire types and the IPv4,
//! IPv6, TCP, UDP, ICMP and ICMPv6 checksums are verified here (the device
//! then tells smoltcp not to verify them again). Nothing in here can panic
//! on any input.

use std::net::{IpAddr, SocketAddr};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet,
    Icmpv6Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, NdiscRepr,
    TcpControl, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};

use super::config::{
    CONTAINER_ADDR, CONTAINER_ADDR6, DNS_ADDR, DNS_ADDR6, GATEWAY_ADDR, GATEWAY_ADDR6,
};

#[derive(Debug, PartialEq, Eq)]
pub enum Class {
    /// Does not parse, or a checksum is wrong.
    Malformed,
    /// Well formed, but not for us.
    Unsupported,
    /// Let smoltcp handle it (ARP, neighbour discovery, ICMP to the
    /// gateway, TCP segments).
    Pass,
    /// A TCP SYN (without ACK) from the container.
    TcpSyn { src: SocketAddr, dst: SocketAddr },
    /// A UDP datagram from the container.
    Udp { src: SocketAddr, dst: SocketAddr },
    /// An ICMP or ICMPv6 echo request to an address outside the link.
    EchoOut { dst: IpAddr },
}

/// The addresses the stack itself answers for.
fn is_stack_addr(a: IpAddr) -> bool {
    a == IpAddr::V4(GATEWAY_ADDR)
        || a == IpAddr::V4(DNS_ADDR)
        || a == IpAddr::V6(GATEWAY_ADDR6)
        || a == IpAddr::V6(DNS_ADDR6)
}

pub fn classify(frame: &[u8]) -> Class {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Class::Malformed;
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => arp(eth.payload()),
        EthernetProtocol::Ipv4 => ipv4(eth.payload()),
        EthernetProtocol::Ipv6 => ipv6(eth.payload()),
        _ => Class::Unsupported,
    }
}

fn arp(payload: &[u8]) -> Class {
    let Ok(pkt) = ArpPacket::new_checked(payload) else {
        return Class::Malformed;
    };
    match ArpRepr::parse(&pkt) {
        // With any_ip, smoltcp would answer for every address: answer only
        // for the addresses of the virtual link other than the container's.
        Ok(ArpRepr::EthernetIpv4 {
            target_protocol_addr: t,
            ..
        }) => {
            if t == GATEWAY_ADDR || t == DNS_ADDR {
                Class::Pass
            } else {
                Class::Unsupported
            }
        }
        Ok(_) => Class::Unsupported,
        Err(_) => Class::Malformed,
    }
}

fn ipv4(payload: &[u8]) -> Class {
    let Ok(pkt) = Ipv4Packet::new_checked(payload) else {
        return Class::Malformed;
    };
    let caps = ChecksumCapabilities::default();
    let Ok(repr) = Ipv4Repr::parse(&pkt, &caps) else {
        return Class::Malformed;
    };
    if pkt.more_frags() || pkt.frag_offset() != 0 {
        return Class::Unsupported;
    }
    // Only the container's own address may be a source (no spoofing).
    if repr.src_addr != CONTAINER_ADDR {
        return Class::Unsupported;
    }
    let (src, dst) = (IpAddr::V4(repr.src_addr), IpAddr::V4(repr.dst_addr));
    let body = pkt.payload();
    match repr.next_header {
        IpProtocol::Tcp => tcp(src, dst, body),
        IpProtocol::Udp => udp(src, dst, body),
        IpProtocol::Icmp => {
            let Ok(icmp) = Icmpv4Packet::new_checked(body) else {
                return Class::Malformed;
            };
            match Icmpv4Repr::parse(&icmp, &caps) {
                Ok(r) => echo(dst, matches!(r, Icmpv4Repr::EchoRequest { .. })),
                Err(_) => Class::Malformed,
            }
        }
        _ => Class::Unsupported,
    }
}

fn ipv6(payload: &[u8]) -> Class {
    let Ok(pkt) = Ipv6Packet::new_checked(payload) else {
        return Class::Malformed;
    };
    let Ok(repr) = Ipv6Repr::parse(&pkt) else {
        return Class::Malformed;
    };
    let (s6, d6) = (repr.src_addr, repr.dst_addr);
    let body = pkt.payload();
    // Neighbour discovery may come from the container's link-local
    // address; everything else only from its own address (no spoofing).
    // Extension headers (hop-by-hop MLD reports, fragments) are not
    // handled.
    if repr.next_header == IpProtocol::Icmpv6 {
        let Ok(icmp) = Icmpv6Packet::new_checked(body) else {
            return Class::Malformed;
        };
        let caps = ChecksumCapabilities::default();
        let Ok(r) = Icmpv6Repr::parse(&s6, &d6, &icmp, &caps) else {
            return Class::Malformed;
        };
        let from_container = s6 == CONTAINER_ADDR6 || s6.is_unicast_link_local();
        return match r {
            // As for ARP: answer only for the stack's own addresses.
            Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. })
                if from_container && is_stack_addr(IpAddr::V6(target_addr)) =>
            {
                Class::Pass
            }
            Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert { .. }) if from_container => Class::Pass,
            Icmpv6Repr::EchoRequest { .. } if s6 == CONTAINER_ADDR6 => echo(IpAddr::V6(d6), true),
            _ => Class::Unsupported,
        };
    }
    if s6 != CONTAINER_ADDR6 {
        return Class::Unsupported;
    }
    let (src, dst) = (IpAddr::V6(s6), IpAddr::V6(d6));
    match repr.next_header {
        IpProtocol::Tcp => tcp(src, dst, body),
        IpProtocol::Udp => udp(src, dst, body),
        _ => Class::Unsupported,
    }
}

/// An echo request: the stack answers for its own addresses; others go out
/// through the ICMP relay.
fn echo(dst: IpAddr, is_request: bool) -> Class {
    if is_stack_addr(dst) {
        Class::Pass
    } else if is_request && !dst.is_loopback() && !dst.is_multicast() && !dst.is_unspecified() {
        Class::EchoOut { dst }
    } else {
        Class::Unsupported
    }
}

fn tcp(src: IpAddr, dst: IpAddr, body: &[u8]) -> Class {
    let caps = ChecksumCapabilities::default();
    let (s_ip, d_ip) = (IpAddress::from(src), IpAddress::from(dst));
    let Ok(tcp) = TcpPacket::new_checked(body) else {
        return Class::Malformed;
    };
    let Ok(t) = TcpRepr::parse(&tcp, &s_ip, &d_ip, &caps) else {
        return Class::Malformed;
    };
    if t.control == TcpControl::Syn && t.ack_number.is_none() {
        Class::TcpSyn {
            src: SocketAddr::new(src, t.src_port),
            dst: SocketAddr::new(dst, t.dst_port),
        }
    } else {
        Class::Pass
    }
}

fn udp(src: IpAddr, dst: IpAddr, body: &[u8]) -> Class {
    let caps = ChecksumCapabilities::default();
    let (s_ip, d_ip) = (IpAddress::from(src), IpAddress::from(dst));
    let Ok(udp) = UdpPacket::new_checked(body) else {
        return Class::Malformed;
    };
    let Ok(u) = UdpRepr::parse(&udp, &s_ip, &d_ip, &caps) else {
        return Class::Malformed;
    };
    if u.src_port == 0 || u.dst_port == 0 {
        return Class::Malformed;
    }
    Class::Udp {
        src: SocketAddr::new(src, u.src_port),
        dst: SocketAddr::new(dst, u.dst_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::icmp::tests::{v4, v6};
    use smoltcp::wire::Ipv6Address;

    fn ns(src: Ipv6Address, target: Ipv6Address) -> Vec<u8> {
        v6(
            src,
            target,
            Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
                target_addr: target,
                lladdr: None,
            }),
        )
    }

    #[test]
    fn neighbour_discovery_only_for_the_stack_addresses() {
        let ll: Ipv6Address = "fe80::5054:ff:fe12:3456".parse().unwrap();
        assert_eq!(classify(&ns(CONTAINER_ADDR6, GATEWAY_ADDR6)), Class::Pass);
        assert_eq!(classify(&ns(ll, DNS_ADDR6)), Class::Pass);
        // Not the stack's: the container's own address (DAD), others on
        // the link, and solicitations from strangers.
        assert_eq!(classify(&ns(ll, CONTAINER_ADDR6)), Class::Unsupported);
        assert_eq!(
            classify(&ns(CONTAINER_ADDR6, "fd00::55".parse().unwrap())),
            Class::Unsupported
        );
        assert_eq!(
            classify(&ns("2001:db8::9".parse().unwrap(), GATEWAY_ADDR6)),
            Class::Unsupported
        );
    }

    #[test]
    fn echo_requests_are_answered_or_relayed() {
        let echo6 = |dst: &str| {
            v6(
                CONTAINER_ADDR6,
                dst.parse().unwrap(),
                Icmpv6Repr::EchoRequest {
                    ident: 1,
                    seq_no: 1,
                    data: b"x",
                },
            )
        };
        let echo4 = |dst: [u8; 4]| {
            v4(
                dst.into(),
                Icmpv4Repr::EchoRequest {
                    ident: 1,
                    seq_no: 1,
                    data: b"x",
                },
            )
        };
        assert_eq!(classify(&echo6("fd00::2")), Class::Pass);
        assert_eq!(classify(&echo4([10, 0, 2, 3])), Class::Pass);
        assert_eq!(
            classify(&echo6("2001:db8::1")),
            Class::EchoOut {
                dst: "2001:db8::1".parse().unwrap()
            }
        );
        assert_eq!(
            classify(&echo4([192, 0, 2, 1])),
            Class::EchoOut {
                dst: "192.0.2.1".parse().unwrap()
            }
        );
        assert_eq!(classify(&echo4([127, 0, 0, 1])), Class::Unsupported);
        // A corrupted checksum is malformed.
        let mut bad = echo6("2001:db8::1");
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        assert_eq!(classify(&bad), Class::Malformed);
    }
}
