//! The host's interface addresses (getifaddrs(3)).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Convert a `sockaddr` from getifaddrs.
///
/// # Safety
/// `sa` is null or points to a sockaddr whose family says its size.
unsafe fn ip_of(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: sa is non-null and valid per the caller; the family
    // field is at the start of every sockaddr.
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

/// Every IPv4 and IPv6 address of every interface, with its netmask.
pub fn interface_addresses() -> std::io::Result<Vec<(IpAddr, Option<IpAddr>)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is an element of the list getifaddrs returned, not
        // freed yet; its address fields are null or valid sockaddrs.
        let (addr, mask, next) = unsafe {
            let ifa = &*cur;
            (ip_of(ifa.ifa_addr), ip_of(ifa.ifa_netmask), ifa.ifa_next)
        };
        if let Some(a) = addr {
            out.push((a, mask));
        }
        cur = next;
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}
