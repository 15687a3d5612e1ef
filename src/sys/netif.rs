//! Network interfaces: the `ifreq` ioctls that bring an interface up and
//! configure the container's TAP device.

use super::last_errno;
use rustix::io::Errno;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

/// An `ifreq` naming interface `name` (cut to IFNAMSIZ-1 bytes, so it stays
/// NUL-terminated), every other field zero.
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in name.bytes().take(libc::IFNAMSIZ - 1).enumerate() {
        req.ifr_name[i] = b as libc::c_char;
    }
    req
}

fn sockaddr_in(a: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(a).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux and
    // sockaddr is plain old data; the kernel reads it as sockaddr_in.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// One interface ioctl whose argument is an `ifreq`.
fn ifreq_ioctl(
    fd: BorrowedFd<'_>,
    request: libc::c_ulong,
    req: &mut libc::ifreq,
) -> Result<(), Errno> {
    // SAFETY: every request this module passes takes a pointer to an
    // ifreq, which `req` is, live and writable; the kernel reads and writes
    // only within it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, req as *mut libc::ifreq) };
    if rc < 0 {
        Err(Errno::from_raw_os_error(last_errno()))
    } else {
        Ok(())
    }
}

/// TUNSETIFF on an open /dev/net/tun: attach it to a new TAP device `name`
/// without packet information headers.
pub fn tun_create_tap(tun: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    ifreq_ioctl(tun, libc::TUNSETIFF as libc::c_ulong, &mut req)
}

/// TUNSETPERSIST: the device outlives the fd (see `sandbox::tap`).
pub fn tun_set_persist(tap: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TUNSETPERSIST takes an integer argument, no pointer.
    let rc = unsafe {
        libc::ioctl(
            tap.as_raw_fd(),
            libc::TUNSETPERSIST as _,
            1 as libc::c_ulong,
        )
    };
    if rc < 0 {
        Err(Errno::from_raw_os_error(last_errno()))
    } else {
        Ok(())
    }
}

/// SIOCSIFMTU through the configuration socket `sock`.
pub fn set_mtu(sock: BorrowedFd<'_>, name: &str, mtu: u32) -> Result<(), Errno> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_mtu = mtu as libc::c_int;
    ifreq_ioctl(sock, libc::SIOCSIFMTU, &mut req)
}

/// SIOCSIFADDR: the interface's IPv4 address.
pub fn set_ipv4_address(sock: BorrowedFd<'_>, name: &str, addr: Ipv4Addr) -> Result<(), Errno> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_addr = sockaddr_in(addr);
    ifreq_ioctl(sock, libc::SIOCSIFADDR, &mut req)
}

/// SIOCSIFNETMASK: the interface's IPv4 netmask.
pub fn set_ipv4_netmask(sock: BorrowedFd<'_>, name: &str, mask: Ipv4Addr) -> Result<(), Errno> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_netmask = sockaddr_in(mask);
    ifreq_ioctl(sock, libc::SIOCSIFNETMASK, &mut req)
}

/// SIOCGIFINDEX: the interface's index.
pub fn interface_index(sock: BorrowedFd<'_>, name: &str) -> Result<u32, Errno> {
    let mut req = ifreq(name);
    ifreq_ioctl(sock, libc::SIOCGIFINDEX, &mut req)?;
    // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_ifindex } as u32)
}

/// SIOCADDRT: an IPv4 default route through `gateway`.
pub fn add_ipv4_default_route(sock: BorrowedFd<'_>, gateway: Ipv4Addr) -> Result<(), Errno> {
    // SAFETY: rtentry is plain old data; all-zero is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr_in(gateway);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    // SAFETY: SIOCADDRT takes a pointer to an rtentry, which `rt` is, live
    // and writable for the call.
    let rc = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCADDRT,
            &mut rt as *mut libc::rtentry,
        )
    };
    if rc < 0 {
        Err(Errno::from_raw_os_error(last_errno()))
    } else {
        Ok(())
    }
}

/// Set IFF_UP on interface `name` (e.g. "lo").
pub fn interface_up(name: &str) -> Result<(), Errno> {
    use std::os::fd::AsFd;
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    let mut req = ifreq(name);
    ifreq_ioctl(sock.as_fd(), libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    ifreq_ioctl(sock.as_fd(), libc::SIOCSIFFLAGS, &mut req)
}
