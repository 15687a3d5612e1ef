//! Network interfaces: the `ifreq` and route ioctls that configure one
//! (flags, MTU, IPv4 address and netmask, index, default route), TAP
//! devices, and reading every interface's addresses (getifaddrs).

use super::last_errno;
use rustix::io::Errno;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

fn last() -> Errno {
    Errno::from_raw_os_error(last_errno())
}

/// An `ifreq` naming interface `name` (cut to IFNAMSIZ-1 bytes, so it
/// stays NUL-terminated), everything else zero.
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data (a name array and a union of
    // integers, sockaddrs and a pointer); all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in name.bytes().take(libc::IFNAMSIZ - 1).enumerate() {
        req.ifr_name[i] = b as libc::c_char;
    }
    req
}

/// ioctl `request` on `fd` with an `ifreq`. Only for requests whose
/// argument is an `ifreq` (every caller below names one).
fn ioctl_ifreq(
    fd: BorrowedFd<'_>,
    request: libc::c_ulong,
    req: &mut libc::ifreq,
) -> Result<(), Errno> {
    // SAFETY: `req` is a live ifreq, which is the argument of every
    // request passed here (SIOC[GS]IF*, TUNSETIFF); the kernel reads and
    // writes only within it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, req as *mut libc::ifreq) };
    if rc < 0 { Err(last()) } else { Ok(()) }
}

/// A `sockaddr` holding the IPv4 address `a` (port 0).
fn sockaddr_in(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux and
    // both are plain old data; the kernel reads it as sockaddr_in.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Set IFF_UP on interface `name` (e.g. "lo").
pub(crate) fn interface_up(name: &str) -> Result<(), Errno> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    let mut req = ifreq(name);
    ioctl_ifreq(sock.as_fd(), libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    ioctl_ifreq(sock.as_fd(), libc::SIOCSIFFLAGS, &mut req)
}

/// Turn `tun` (an open /dev/net/tun) into the TAP device `name`, without
/// packet information headers (IFF_TAP | IFF_NO_PI).
pub(crate) fn create_tap(tun: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    ioctl_ifreq(tun, libc::TUNSETIFF as libc::c_ulong, &mut req)
}

/// Set the MTU of interface `name` (`sock`: any AF_INET socket).
pub(crate) fn set_interface_mtu(sock: BorrowedFd<'_>, name: &str, mtu: u32) -> Result<(), Errno> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_mtu = mtu as libc::c_int;
    ioctl_ifreq(sock, libc::SIOCSIFMTU, &mut req)
}

/// Set the IPv4 address of interface `name`.
pub(crate) fn set_interface_ipv4(
    sock: BorrowedFd<'_>,
    name: &str,
    addr: Ipv4Addr,
) -> Result<(), Errno> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_addr = sockaddr_in(addr);
    ioctl_ifreq(sock, libc::SIOCSIFADDR, &mut req)
}

/// Set the IPv4 netmask of interface `name`.
pub(crate) fn set_interface_netmask(
    sock: BorrowedFd<'_>,
    name: &str,
    mask: Ipv4Addr,
) -> Result<(), Errno> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_netmask = sockaddr_in(mask);
    ioctl_ifreq(sock, libc::SIOCSIFNETMASK, &mut req)
}

/// The index of interface `name`.
pub(crate) fn interface_index(sock: BorrowedFd<'_>, name: &str) -> Result<u32, Errno> {
    let mut req = ifreq(name);
    ioctl_ifreq(sock, libc::SIOCGIFINDEX, &mut req)?;
    // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_ifindex } as u32)
}

/// Add the IPv4 default route through `gateway` (SIOCADDRT).
pub(crate) fn add_ipv4_default_route(sock: BorrowedFd<'_>, gateway: Ipv4Addr) -> Result<(), Errno> {
    // SAFETY: rtentry is plain old data (integers, sockaddrs and null
    // pointers); all-zero is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr_in(gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: SIOCADDRT takes a live rtentry, which the kernel only reads
    // (its device pointer is null: no device named).
    let rc = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCADDRT as _,
            &mut rt as *mut libc::rtentry,
        )
    };
    if rc < 0 { Err(last()) } else { Ok(()) }
}

/// Mark TAP device `tap` persistent (TUNSETPERSIST 1).
pub(crate) fn set_tap_persistent(tap: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TUNSETPERSIST takes an integer argument, no pointer.
    let rc = unsafe {
        libc::ioctl(
            tap.as_raw_fd(),
            libc::TUNSETPERSIST as _,
            1 as libc::c_ulong,
        )
    };
    if rc < 0 { Err(last()) } else { Ok(()) }
}

/// The address in a `sockaddr` from getifaddrs (IPv4 or IPv6; None for
/// other families and null pointers).
///
/// # Safety
/// `sa` is null or points to a sockaddr whose family says its size.
unsafe fn ip_of(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: sa is non-null and valid per the caller; the family field
    // is at the start of every sockaddr.
    match i32::from(unsafe { (*sa).sa_family }) {
        libc::AF_INET => {
            // SAFETY: an AF_INET sockaddr is a sockaddr_in.
            let sin = unsafe { &*(sa as *const libc::sockaddr_in) };
            Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into())
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 sockaddr is a sockaddr_in6.
            let sin6 = unsafe { &*(sa as *const libc::sockaddr_in6) };
            Some(Ipv6Addr::from(sin6.sin6_addr.s6_addr).into())
        }
        _ => None,
    }
}

/// Every IPv4 and IPv6 address of every interface with its netmask, if
/// it has one (getifaddrs(3)).
pub(crate) fn interface_addresses() -> std::io::Result<Vec<(IpAddr, Option<IpAddr>)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut list = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is an element of the list getifaddrs returned, not
        // freed yet; its address fields are null or valid sockaddrs.
        let (addr, mask, next) = unsafe {
            let ifa = &*cur;
            (ip_of(ifa.ifa_addr), ip_of(ifa.ifa_netmask), ifa.ifa_next)
        };
        if let Some(a) = addr {
            list.push((a, mask));
        }
        cur = next;
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(list)
}
