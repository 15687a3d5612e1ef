//! ICMP echo to the world through unprivileged ICMP ("ping") sockets.
//!
//! An echo request from the container to an address outside the link is
//! sent from a host `SOCK_DGRAM`/`IPPROTO_ICMP` (or `ICMPV6`) socket, one
//! per (destination, container identifier); the kernel gives such sockets
//! their own identifier, so replies are rewritten to the container's
//! identifier and sent to it as coming from the destination. Hosts allow
//! these sockets only to the groups in `net.ipv4.ping_group_range`; where
//! the user is not in it (Debian's default), or the host cannot reach the
//! destination, the container gets a "destination unreachable"
//! (administratively prohibited, or host unreachable) from the gateway
//! instead of silence.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType, ipproto};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv4DstUnreachable, Icmpv4Packet,
    Icmpv4Repr, Icmpv6DstUnreachable, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr,
};

use super::Counters;
use super::config::{CONTAINER_ADDR, CONTAINER_ADDR6, GATEWAY_ADDR, GATEWAY_ADDR6, GATEWAY_MAC};
use super::device::ETH_HDR;

/// Echo flows at once; requests beyond are dropped.
const MAX_FLOWS: usize = 64;
/// A flow without requests for this long is closed.
const IDLE: Duration = Duration::from_secs(30);
/// Replies to the container waiting for room in the device.
const MAX_QUEUED: usize = 256;
/// Largest echo payload relayed (the rest of a bigger one is cut).
const MAX_PAYLOAD: usize = 65000;

/// Why the container gets an unreachable instead of an echo reply.
#[derive(Debug, Clone, Copy)]
enum Unreachable {
    /// The host does not allow ICMP sockets for this user.
    Prohibited,
    /// The host has no route to the destination.
    Host,
}

struct Flow {
    sock: OwnedFd,
    dst: IpAddr,
    ident: u16,
    mac: [u8; 6],
    last: Instant,
    readable: bool,
}

/// A parsed echo request from the container.
struct Request<'a> {
    mac: [u8; 6],
    dst: IpAddr,
    ident: u16,
    seq: u16,
    data: &'a [u8],
}

pub struct IcmpRelay {
    flows: HashMap<u64, Flow>,
    by_key: HashMap<(IpAddr, u16), u64>,
    next_id: u64,
    /// Frames for the container, waiting for the device.
    queued: Vec<Vec<u8>>,
    buf: Vec<u8>,
    counters: Arc<Counters>,
}

fn parse_request(frame: &[u8]) -> Option<Request<'_>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let mac = eth.src_addr().0;
    let caps = ChecksumCapabilities::ignored();
    let payload = &frame[ETH_HDR..];
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(payload).ok()?;
            let dst = IpAddr::V4(ip.dst_addr());
            let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
            match Icmpv4Repr::parse(&icmp, &caps).ok()? {
                Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                } => Some(Request {
                    mac,
                    dst,
                    ident,
                    seq: seq_no,
                    data,
                }),
                _ => None,
            }
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(payload).ok()?;
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
            match Icmpv6Repr::parse(&src, &dst, &icmp, &caps).ok()? {
                Icmpv6Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                } => Some(Request {
                    mac,
                    dst: IpAddr::V6(dst),
                    ident,
                    seq: seq_no,
                    data,
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// An unprivileged ICMP socket connected to `dst`.
fn ping_socket(dst: IpAddr) -> Result<OwnedFd, Errno> {
    let (family, proto) = match dst {
        IpAddr::V4(_) => (AddressFamily::INET, ipproto::ICMP),
        IpAddr::V6(_) => (AddressFamily::INET6, ipproto::ICMPV6),
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::DGRAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        Some(proto),
    )?;
    rustix::net::connect(&fd, &SocketAddr::new(dst, 0))?;
    Ok(fd)
}

/// An Ethernet frame from the stack's MAC to `mac` carrying `emit`'s IP
/// packet of `ip_len` bytes.
fn frame(mac: [u8; 6], v6: bool, ip_len: usize, emit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut buf = vec![0u8; ETH_HDR + ip_len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_src_addr(EthernetAddress(GATEWAY_MAC));
    eth.set_dst_addr(EthernetAddress(mac));
    eth.set_ethertype(if v6 {
        EthernetProtocol::Ipv6
    } else {
        EthernetProtocol::Ipv4
    });
    emit(eth.payload_mut());
    buf
}

/// An echo reply from `from` to the container.
fn echo_reply(mac: [u8; 6], from: IpAddr, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    match from {
        IpAddr::V4(src) => {
            let icmp = Icmpv4Repr::EchoReply {
                ident,
                seq_no: seq,
                data,
            };
            let ip = Ipv4Repr {
                src_addr: src,
                dst_addr: CONTAINER_ADDR,
                next_header: IpProtocol::Icmp,
                payload_len: icmp.buffer_len(),
                hop_limit: 64,
            };
            frame(mac, false, ip.buffer_len() + icmp.buffer_len(), |b| {
                let mut p = Ipv4Packet::new_unchecked(b);
                ip.emit(&mut p, &caps);
                icmp.emit(&mut Icmpv4Packet::new_unchecked(p.payload_mut()), &caps);
            })
        }
        IpAddr::V6(src) => {
            let icmp = Icmpv6Repr::EchoReply {
                ident,
                seq_no: seq,
                data,
            };
            let ip = Ipv6Repr {
                src_addr: src,
                dst_addr: CONTAINER_ADDR6,
                next_header: IpProtocol::Icmpv6,
                payload_len: icmp.buffer_len(),
                hop_limit: 64,
            };
            frame(mac, true, ip.buffer_len() + icmp.buffer_len(), |b| {
                let mut p = Ipv6Packet::new_unchecked(b);
                ip.emit(&mut p);
                icmp.emit(
                    &src,
                    &CONTAINER_ADDR6,
                    &mut Icmpv6Packet::new_unchecked(p.payload_mut()),
                    &caps,
                );
            })
        }
    }
}

/// A destination unreachable from the gateway about `request` (the whole
/// frame the container sent).
fn unreachable(request: &[u8], mac: [u8; 6], why: Unreachable) -> Option<Vec<u8>> {
    let caps = ChecksumCapabilities::ignored();
    let eth = EthernetFrame::new_checked(request).ok()?;
    let out_caps = ChecksumCapabilities::default();
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let orig = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let header = Ipv4Repr::parse(&orig, &caps).ok()?;
            let body = orig.payload();
            let icmp = Icmpv4Repr::DstUnreachable {
                reason: match why {
                    Unreachable::Prohibited => Icmpv4DstUnreachable::CommProhibited,
                    Unreachable::Host => Icmpv4DstUnreachable::HostUnreachable,
                },
                header,
                data: &body[..body.len().min(8)],
            };
            let ip = Ipv4Repr {
                src_addr: GATEWAY_ADDR,
                dst_addr: CONTAINER_ADDR,
                next_header: IpProtocol::Icmp,
                payload_len: icmp.buffer_len(),
                hop_limit: 64,
            };
            Some(frame(
                mac,
                false,
                ip.buffer_len() + icmp.buffer_len(),
                |b| {
                    let mut p = Ipv4Packet::new_unchecked(b);
                    ip.emit(&mut p, &out_caps);
                    icmp.emit(&mut Icmpv4Packet::new_unchecked(p.payload_mut()), &out_caps);
                },
            ))
        }
        EthernetProtocol::Ipv6 => {
            let orig = Ipv6Packet::new_checked(eth.payload()).ok()?;
            let header = Ipv6Repr::parse(&orig).ok()?;
            let body = orig.payload();
            // An ICMPv6 error carries as much of the original as fits in
            // the minimum MTU.
            let icmp = Icmpv6Repr::DstUnreachable {
                reason: match why {
                    Unreachable::Prohibited => Icmpv6DstUnreachable::AdminProhibit,
                    Unreachable::Host => Icmpv6DstUnreachable::AddrUnreachable,
                },
                header,
                data: &body[..body.len().min(1180)],
            };
            let ip = Ipv6Repr {
                src_addr: GATEWAY_ADDR6,
                dst_addr: CONTAINER_ADDR6,
                next_header: IpProtocol::Icmpv6,
                payload_len: icmp.buffer_len(),
                hop_limit: 64,
            };
            Some(frame(mac, true, ip.buffer_len() + icmp.buffer_len(), |b| {
                let mut p = Ipv6Packet::new_unchecked(b);
                ip.emit(&mut p);
                icmp.emit(
                    &GATEWAY_ADDR6,
                    &CONTAINER_ADDR6,
                    &mut Icmpv6Packet::new_unchecked(p.payload_mut()),
                    &out_caps,
                );
            }))
        }
        _ => None,
    }
}

impl IcmpRelay {
    pub fn new(counters: Arc<Counters>) -> IcmpRelay {
        IcmpRelay {
            flows: HashMap::new(),
            by_key: HashMap::new(),
            next_id: 0,
            queued: Vec::new(),
            buf: vec![0u8; MAX_PAYLOAD + 8],
            counters,
        }
    }

    fn refuse(&mut self, frame: &[u8], mac: [u8; 6], why: Unreachable) {
        self.counters.icmp_refused.fetch_add(1, Relaxed);
        if self.queued.len() < MAX_QUEUED
            && let Some(f) = unreachable(frame, mac, why)
        {
            self.queued.push(f);
        }
    }

    /// An echo request (classified `EchoOut`) from the container.
    pub fn on_request(&mut self, frame: &[u8]) {
        let Some(req) = parse_request(frame) else {
            return;
        };
        let key = (req.dst, req.ident);
        let id = match self.by_key.get(&key) {
            Some(id) => *id,
            None => {
                if self.flows.len() >= MAX_FLOWS {
                    self.counters.icmp_refused.fetch_add(1, Relaxed);
                    return;
                }
                let sock = match ping_socket(req.dst) {
                    Ok(s) => s,
                    Err(Errno::ACCESS | Errno::PERM | Errno::PROTONOSUPPORT) => {
                        return self.refuse(frame, req.mac, Unreachable::Prohibited);
                    }
                    Err(_) => return self.refuse(frame, req.mac, Unreachable::Host),
                };
                let id = self.next_id;
                self.next_id += 1;
                self.flows.insert(
                    id,
                    Flow {
                        sock,
                        dst: req.dst,
                        ident: req.ident,
                        mac: req.mac,
                        last: Instant::now(),
                        readable: false,
                    },
                );
                self.by_key.insert(key, id);
                id
            }
        };
        let Some(flow) = self.flows.get_mut(&id) else {
            return;
        };
        flow.last = Instant::now();
        flow.mac = req.mac;
        // The kernel sets the identifier and the checksum.
        let data = &req.data[..req.data.len().min(MAX_PAYLOAD)];
        let msg = &mut self.buf[..8 + data.len()];
        msg[0] = if req.dst.is_ipv4() { 8 } else { 128 };
        msg[1..6].fill(0);
        msg[6..8].copy_from_slice(&req.seq.to_be_bytes());
        msg[8..].copy_from_slice(data);
        match rustix::net::send(&flow.sock, msg, rustix::net::SendFlags::empty()) {
            Ok(_) => {
                self.counters.icmp_echo_out.fetch_add(1, Relaxed);
            }
            Err(Errno::AGAIN | Errno::NOBUFS) => {
                self.counters.icmp_refused.fetch_add(1, Relaxed);
            }
            Err(Errno::ACCESS | Errno::PERM) => {
                self.refuse(frame, req.mac, Unreachable::Prohibited)
            }
            Err(_) => self.refuse(frame, req.mac, Unreachable::Host),
        }
    }

    /// Read replies from readable sockets and close idle flows.
    pub fn service(&mut self) {
        let now = Instant::now();
        for flow in self.flows.values_mut() {
            if !std::mem::take(&mut flow.readable) {
                continue;
            }
            for _ in 0..64 {
                let n = match rustix::net::recv(
                    &flow.sock,
                    &mut self.buf[..],
                    rustix::net::RecvFlags::empty(),
                ) {
                    Ok((n, _)) => n,
                    Err(Errno::INTR) => continue,
                    // AGAIN, or an ICMP error from the far side (counted
                    // as refused; the container's next request retries).
                    Err(Errno::AGAIN) => break,
                    Err(_) => {
                        self.counters.icmp_refused.fetch_add(1, Relaxed);
                        break;
                    }
                };
                let reply_type = if flow.dst.is_ipv4() { 0 } else { 129 };
                if n < 8 || self.buf[0] != reply_type || self.queued.len() >= MAX_QUEUED {
                    continue;
                }
                let seq = u16::from_be_bytes([self.buf[6], self.buf[7]]);
                let f = echo_reply(flow.mac, flow.dst, flow.ident, seq, &self.buf[8..n]);
                self.queued.push(f);
            }
        }
        let idle: Vec<u64> = self
            .flows
            .iter()
            .filter(|(_, f)| now.duration_since(f.last) >= IDLE)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if let Some(f) = self.flows.remove(&id) {
                self.by_key.remove(&(f.dst, f.ident));
            }
        }
    }

    /// Frames for the container, oldest first; `no_room` returns true when
    /// the device could not take the frame now (it and the rest stay
    /// queued).
    pub fn drain(&mut self, mut no_room: impl FnMut(&[u8]) -> bool) {
        let mut sent = 0;
        for f in &self.queued {
            if no_room(f) {
                break;
            }
            sent += 1;
        }
        self.queued.drain(..sent);
    }

    /// Host sockets to poll for replies.
    pub fn interest(&self, mut f: impl FnMut(u64, RawFd)) {
        for (id, flow) in &self.flows {
            f(*id, flow.sock.as_raw_fd());
        }
    }

    pub fn set_readable(&mut self, id: u64) {
        if let Some(f) = self.flows.get_mut(&id) {
            f.readable = true;
        }
    }

    /// When the oldest flow goes idle.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.flows.values().map(|f| f.last + IDLE).min()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use smoltcp::wire::{
        EthernetRepr, Icmpv4Message, Icmpv6Message, Ipv4Address, Ipv6Address, NdiscRepr,
    };

    pub const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn eth(ethertype: EthernetProtocol, ip_len: usize, emit: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut f = vec![0u8; ETH_HDR + ip_len];
        let mut e = EthernetFrame::new_unchecked(&mut f[..]);
        EthernetRepr {
            src_addr: EthernetAddress(MAC),
            dst_addr: EthernetAddress(GATEWAY_MAC),
            ethertype,
        }
        .emit(&mut e);
        emit(e.payload_mut());
        f
    }

    /// An Ethernet/IPv4 frame from the container carrying `icmp`.
    pub fn v4(dst: Ipv4Address, icmp: Icmpv4Repr) -> Vec<u8> {
        let caps = ChecksumCapabilities::default();
        let ip = Ipv4Repr {
            src_addr: CONTAINER_ADDR,
            dst_addr: dst,
            next_header: IpProtocol::Icmp,
            payload_len: icmp.buffer_len(),
            hop_limit: 64,
        };
        eth(
            EthernetProtocol::Ipv4,
            ip.buffer_len() + icmp.buffer_len(),
            |b| {
                let mut p = Ipv4Packet::new_unchecked(b);
                ip.emit(&mut p, &caps);
                icmp.emit(&mut Icmpv4Packet::new_unchecked(p.payload_mut()), &caps);
            },
        )
    }

    /// An Ethernet/IPv6 frame from `src` carrying `icmp`.
    pub fn v6(src: Ipv6Address, dst: Ipv6Address, icmp: Icmpv6Repr) -> Vec<u8> {
        let caps = ChecksumCapabilities::default();
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Icmpv6,
            payload_len: icmp.buffer_len(),
            hop_limit: 255,
        };
        eth(
            EthernetProtocol::Ipv6,
            ip.buffer_len() + icmp.buffer_len(),
            |b| {
                let mut p = Ipv6Packet::new_unchecked(b);
                ip.emit(&mut p);
                icmp.emit(
                    &src,
                    &dst,
                    &mut Icmpv6Packet::new_unchecked(p.payload_mut()),
                    &caps,
                );
            },
        )
    }

    /// Parse a frame for the container as IPv4 ICMP: (source, type, code,
    /// payload after the 8-byte ICMP header). Checksums are verified.
    fn parse4(f: &[u8]) -> (Ipv4Address, Icmpv4Message, u8, Vec<u8>) {
        let caps = ChecksumCapabilities::default();
        let e = EthernetFrame::new_checked(f).unwrap();
        assert_eq!(e.dst_addr(), EthernetAddress(MAC));
        assert_eq!(e.src_addr(), EthernetAddress(GATEWAY_MAC));
        let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
        let r = Ipv4Repr::parse(&ip, &caps).unwrap();
        assert_eq!(r.dst_addr, CONTAINER_ADDR);
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        (
            r.src_addr,
            icmp.msg_type(),
            icmp.msg_code(),
            ip.payload()[8..].to_vec(),
        )
    }

    #[test]
    fn requests_parse_in_both_families() {
        let f = v4(
            Ipv4Address::new(192, 0, 2, 1),
            Icmpv4Repr::EchoRequest {
                ident: 77,
                seq_no: 3,
                data: b"payload!",
            },
        );
        let r = parse_request(&f).unwrap();
        assert_eq!(
            (r.mac, r.dst, r.ident, r.seq, r.data),
            (MAC, "192.0.2.1".parse().unwrap(), 77, 3, &b"payload!"[..])
        );
        let f = v6(
            CONTAINER_ADDR6,
            "2001:db8::1".parse().unwrap(),
            Icmpv6Repr::EchoRequest {
                ident: 9,
                seq_no: 1,
                data: b"six",
            },
        );
        let r = parse_request(&f).unwrap();
        assert_eq!(
            (r.dst, r.ident, r.seq, r.data),
            ("2001:db8::1".parse().unwrap(), 9, 1, &b"six"[..])
        );
        // Not an echo request: nothing.
        let ns = v6(
            CONTAINER_ADDR6,
            GATEWAY_ADDR6,
            Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
                target_addr: GATEWAY_ADDR6,
                lladdr: None,
            }),
        );
        assert!(parse_request(&ns).is_none());
        assert!(parse_request(&f[..20]).is_none());
    }

    #[test]
    fn replies_carry_the_container_identifier_and_valid_checksums() {
        let from: IpAddr = "192.0.2.1".parse().unwrap();
        let f = echo_reply(MAC, from, 77, 5, b"data");
        let (src, ty, code, rest) = parse4(&f);
        assert_eq!(
            (src, ty, code),
            (Ipv4Address::new(192, 0, 2, 1), Icmpv4Message::EchoReply, 0)
        );
        assert_eq!(rest, b"data");
        assert_eq!(u16::from_be_bytes([f[ETH_HDR + 24], f[ETH_HDR + 25]]), 77);

        let from6: IpAddr = "2001:db8::1".parse().unwrap();
        let f = echo_reply(MAC, from6, 9, 2, b"six");
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv6Packet::new_checked(e.payload()).unwrap();
        assert_eq!(ip.dst_addr(), CONTAINER_ADDR6);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
        assert_eq!(icmp.msg_type(), Icmpv6Message::EchoReply);
        assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (9, 2));
    }

    #[test]
    fn refusals_are_unreachables_from_the_gateway_quoting_the_request() {
        let req = v4(
            Ipv4Address::new(192, 0, 2, 1),
            Icmpv4Repr::EchoRequest {
                ident: 1,
                seq_no: 1,
                data: b"0123456789abcdef",
            },
        );
        let f = unreachable(&req, MAC, Unreachable::Prohibited).unwrap();
        let (src, ty, code, rest) = parse4(&f);
        assert_eq!(
            (src, ty, code),
            (GATEWAY_ADDR, Icmpv4Message::DstUnreachable, 13)
        );
        // The quoted IPv4 header names the original destination, then the
        // first 8 bytes of the original ICMP message.
        assert_eq!(&rest[16..20], &[192, 0, 2, 1]);
        assert_eq!(rest.len(), 20 + 8);
        let f = unreachable(&req, MAC, Unreachable::Host).unwrap();
        assert_eq!(parse4(&f).2, 1);

        let req6 = v6(
            CONTAINER_ADDR6,
            "2001:db8::1".parse().unwrap(),
            Icmpv6Repr::EchoRequest {
                ident: 1,
                seq_no: 1,
                data: b"x",
            },
        );
        let f = unreachable(&req6, MAC, Unreachable::Prohibited).unwrap();
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv6Packet::new_checked(e.payload()).unwrap();
        assert_eq!(
            (ip.src_addr(), ip.dst_addr()),
            (GATEWAY_ADDR6, CONTAINER_ADDR6)
        );
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
        assert_eq!(
            (icmp.msg_type(), icmp.msg_code()),
            (Icmpv6Message::DstUnreachable, 1)
        );
    }
}
