//! The two rtnetlink requests the container's IPv6 setup needs, which have
//! no ioctl form: an address added without duplicate address detection
//! (so it is usable at once rather than "tentative" for a second), and a
//! default route through the gateway. Messages are built as bytes; the
//! kernel's answer is an acknowledgement carrying an errno.

use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};
use std::net::Ipv6Addr;

// From <linux/netlink.h> and <linux/rtnetlink.h> (stable kernel ABI).
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const AF_INET6: u8 = libc::AF_INET6 as u8;

/// A request under construction: header, fixed part, attributes.
struct Msg(Vec<u8>);

impl Msg {
    fn new(kind: u16, fixed: &[u8]) -> Msg {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish()
        b.extend_from_slice(&kind.to_ne_bytes());
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        b.extend_from_slice(fixed);
        Msg(b)
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Msg {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

/// Send one request and wait for its acknowledgement.
fn request(msg: Vec<u8>) -> Result<(), Errno> {
    let sock = rustix::net::socket(AddressFamily::NETLINK, SocketType::DGRAM, None)?;
    rustix::net::send(&sock, &msg, SendFlags::empty())?;
    let mut buf = [0u8; 512];
    let (n, _) = rustix::net::recv(&sock, &mut buf, RecvFlags::empty())?;
    // nlmsghdr (16 bytes), then for NLMSG_ERROR an i32: 0 or -errno.
    if n < 20 || u16::from_ne_bytes([buf[4], buf[5]]) != NLMSG_ERROR {
        return Err(Errno::PROTO);
    }
    match i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]) {
        0 => Ok(()),
        e => Err(Errno::from_raw_os_error(-e)),
    }
}

/// Add `addr/prefix` to interface `index`, usable at once (no DAD).
pub fn add_ipv6_address(index: u32, addr: Ipv6Addr, prefix: u8) -> Result<(), Errno> {
    // struct ifaddrmsg: family, prefixlen, flags, scope, index.
    let mut fixed = vec![AF_INET6, prefix, IFA_F_NODAD as u8, RT_SCOPE_UNIVERSE];
    fixed.extend_from_slice(&index.to_ne_bytes());
    let msg = Msg::new(RTM_NEWADDR, &fixed)
        .attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets())
        .attr(IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes())
        .finish();
    request(msg)
}

/// Add the default IPv6 route through `gateway` on interface `index`.
pub fn add_ipv6_default_route(index: u32, gateway: Ipv6Addr) -> Result<(), Errno> {
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
    // type, flags.
    let mut fixed = vec![
        AF_INET6,
        0,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ];
    fixed.extend_from_slice(&0u32.to_ne_bytes());
    let msg = Msg::new(RTM_NEWROUTE, &fixed)
        .attr(RTA_GATEWAY, &gateway.octets())
        .attr(RTA_OIF, &index.to_ne_bytes())
        .finish();
    request(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_request_layout() {
        let fixed = [AF_INET6, 64, 2, 0, 7, 0, 0, 0];
        let m = Msg::new(RTM_NEWADDR, &fixed)
            .attr(IFA_LOCAL, &[0xfd; 16])
            .attr(IFA_FLAGS, &2u32.to_ne_bytes())
            .finish();
        // 16 header + 8 ifaddrmsg + (4+16) + (4+4)
        assert_eq!(m.len(), 52);
        assert_eq!(u32::from_ne_bytes(m[..4].try_into().unwrap()), 52);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWADDR);
        assert_eq!(u16::from_ne_bytes([m[24], m[25]]), 20);
        assert_eq!(u16::from_ne_bytes([m[26], m[27]]), IFA_LOCAL);
        assert_eq!(u16::from_ne_bytes([m[44], m[45]]), 8);
        assert_eq!(u16::from_ne_bytes([m[46], m[47]]), IFA_FLAGS);
    }

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let m = Msg::new(RTM_NEWROUTE, &[0; 12]).attr(1, &[9]).finish();
        assert_eq!(m.len(), 16 + 12 + 8);
        assert_eq!(u16::from_ne_bytes([m[28], m[29]]), 5);
    }
}
