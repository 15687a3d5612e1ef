//! The container's `eth0` for `--network slirp`: a TAP device created by
//! the container's init inside its own network namespace (where the user
//! namespace gives it CAP_NET_ADMIN), configured with ioctls, and its fd
//! sent to hutch over a unix socket, where the userspace stack (src/net)
//! serves it. hutch itself never touches the host's network configuration.

use crate::sys;
use rustix::io::Errno;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

// The address plan is the stack's (src/net/config.rs): the container is
// .100 (fd00::100), the gateway .2 (fd00::2), the DNS forwarder .3.
use crate::net::{CONTAINER_ADDR, CONTAINER_ADDR6, GATEWAY_ADDR, GATEWAY_ADDR6, PREFIX_LEN6};
const NETMASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);

/// Create `eth0` as a TAP device, give it the container addresses (IPv4
/// and, where the kernel has IPv6, IPv6), `mtu`, default routes through
/// the gateway, and bring it up. Returns the TAP fd. Runs in the
/// container's network namespace.
pub fn create(mtu: u32) -> Result<OwnedFd, String> {
    let e = |what: &str, x: Errno| format!("{what}: {}", std::io::Error::from(x));
    let tun = rustix::fs::open(
        "/dev/net/tun",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )
    .map_err(|x| {
        e(
            "opening /dev/net/tun (`hutch check` tells how to allow it)",
            x,
        )
    })?;
    sys::tun_create_tap(tun.as_fd(), "eth0").map_err(|x| e("creating the TAP device eth0", x))?;

    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .map_err(|x| e("opening a configuration socket", x))?;
    sys::set_mtu(sock.as_fd(), "eth0", mtu).map_err(|x| e("setting the MTU of eth0", x))?;
    sys::set_ipv4_address(sock.as_fd(), "eth0", CONTAINER_ADDR)
        .map_err(|x| e("setting the address of eth0", x))?;
    sys::set_ipv4_netmask(sock.as_fd(), "eth0", NETMASK)
        .map_err(|x| e("setting the netmask of eth0", x))?;
    sys::interface_up("eth0").map_err(|x| e("bringing eth0 up", x))?;
    sys::add_ipv4_default_route(sock.as_fd(), GATEWAY_ADDR)
        .map_err(|x| e("adding the default route via 10.0.2.2", x))?;
    ipv6(sock.as_fd()).map_err(|(what, x)| e(what, x))?;
    Ok(tun)
}

/// IPv6 on eth0: fd00::100/64 and a default route via fd00::2. A kernel
/// without IPv6 (ipv6.disable=1), or with IPv6 disabled for new
/// interfaces (disable_ipv6: EACCES), leaves the container with IPv4 only.
fn ipv6(sock: BorrowedFd<'_>) -> Result<(), (&'static str, Errno)> {
    let index = sys::interface_index(sock, "eth0").map_err(|x| ("finding eth0's index", x))?;
    match super::netlink::add_ipv6_address(index, CONTAINER_ADDR6, PREFIX_LEN6) {
        Err(Errno::AFNOSUPPORT | Errno::OPNOTSUPP | Errno::ACCESS) => return Ok(()),
        r => r.map_err(|x| ("setting the IPv6 address of eth0", x))?,
    }
    super::netlink::add_ipv6_default_route(index, GATEWAY_ADDR6)
        .map_err(|x| ("adding the default IPv6 route via fd00::2", x))
}

/// Mark the TAP device persistent, so that closing hutch's fd does not
/// unregister it synchronously (tens of milliseconds spent in the kernel
/// at every container exit); it goes away with the container's network
/// namespace instead, in the kernel's own cleanup work.
pub fn set_persist(tap: BorrowedFd<'_>) -> Result<(), Errno> {
    sys::tun_set_persist(tap)
}
