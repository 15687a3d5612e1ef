//! Classify each frame from the container before smoltcp sees it.
//!
//! Everything is parsed with smoltcp's checked wire types and the IPv4, TCP,
//! UDP and ICMP checksums are verified here (the device then tells smoltcp
//! not to verify them again). Nothing in here can panic on any input.

use std::net::SocketAddrV4;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv4Repr, IpAddress,
    IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};

use super::config::{CONTAINER_ADDR, DNS_ADDR, GATEWAY_ADDR};

#[derive(Debug, PartialEq, Eq)]
pub enum Class {
    /// Does not parse, or a checksum is wrong.
    Malformed,
    /// Well formed, but not for us.
    Unsupported,
    /// Let smoltcp handle it (ARP, ICMP to the gateway, TCP segments).
    Pass,
    /// A TCP SYN (without ACK) from the container.
    TcpSyn {
        src: SocketAddrV4,
        dst: SocketAddrV4,
    },
    /// A UDP datagram from the container.
    Udp {
        src: SocketAddrV4,
        dst: SocketAddrV4,
    },
}

pub fn classify(frame: &[u8]) -> Class {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Class::Malformed;
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => arp(eth.payload()),
        EthernetProtocol::Ipv4 => ipv4(eth.payload()),
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
    let dst = repr.dst_addr;
    let (s_ip, d_ip): (IpAddress, IpAddress) = (repr.src_addr.into(), dst.into());
    let body = pkt.payload();
    match repr.next_header {
        IpProtocol::Tcp => {
            let Ok(tcp) = TcpPacket::new_checked(body) else {
                return Class::Malformed;
            };
            let Ok(t) = TcpRepr::parse(&tcp, &s_ip, &d_ip, &caps) else {
                return Class::Malformed;
            };
            if t.control == TcpControl::Syn && t.ack_number.is_none() {
                Class::TcpSyn {
                    src: SocketAddrV4::new(repr.src_addr, t.src_port),
                    dst: SocketAddrV4::new(dst, t.dst_port),
                }
            } else {
                Class::Pass
            }
        }
        IpProtocol::Udp => {
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
                src: SocketAddrV4::new(repr.src_addr, u.src_port),
                dst: SocketAddrV4::new(dst, u.dst_port),
            }
        }
        IpProtocol::Icmp => {
            let Ok(icmp) = Icmpv4Packet::new_checked(body) else {
                return Class::Malformed;
            };
            if Icmpv4Repr::parse(&icmp, &caps).is_err() {
                return Class::Malformed;
            }
            // The stack answers echo requests itself: only for its own
            // addresses, not as a fake reply from the rest of the world.
            if dst == GATEWAY_ADDR || dst == DNS_ADDR {
                Class::Pass
            } else {
                Class::Unsupported
            }
        }
        _ => Class::Unsupported,
    }
}
