//! The container's `eth0` for `--network slirp`: a TAP device created by
//! the container's init inside its own network namespace (where the user
//! namespace gives it CAP_NET_ADMIN), configured with ioctls, and its fd
//! sent to hutch over a unix socket, where the userspace stack (src/net)
//! serves it. hutch itself never touches the host's network configuration.

use rustix::io::Errno;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

// The address plan is the stack's (src/net/config.rs): the container is
// .100 (fd00::100), the gateway .2 (fd00::2), the DNS forwarder .3.
use crate::net::{CONTAINER_ADDR, CONTAINER_ADDR6, GATEWAY_ADDR, GATEWAY_ADDR6, PREFIX_LEN6};
const NETMASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);

fn last() -> Errno {
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

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
            s_addr: u32::from_ne_bytes(a.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size on Linux and
    // sockaddr is plain old data; the kernel reads it as sockaddr_in.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// ioctl on `fd` with a pointer argument.
fn ioctl<T>(fd: BorrowedFd<'_>, req: libc::c_ulong, arg: &mut T) -> Result<(), Errno> {
    // SAFETY: `arg` points to a live, properly typed struct for `req`
    // (the callers pair each request with its struct); the kernel reads
    // and writes only within it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg as *mut T) };
    if rc < 0 { Err(last()) } else { Ok(()) }
}

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
    let mut req = ifreq("eth0");
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    ioctl(tun.as_fd(), libc::TUNSETIFF as libc::c_ulong, &mut req)
        .map_err(|x| e("creating the TAP device eth0", x))?;

    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .map_err(|x| e("opening a configuration socket", x))?;
    let mut req = ifreq("eth0");
    req.ifr_ifru.ifru_mtu = mtu as libc::c_int;
    ioctl(sock.as_fd(), libc::SIOCSIFMTU, &mut req).map_err(|x| e("setting the MTU of eth0", x))?;
    let mut req = ifreq("eth0");
    req.ifr_ifru.ifru_addr = sockaddr_in(CONTAINER_ADDR);
    ioctl(sock.as_fd(), libc::SIOCSIFADDR, &mut req)
        .map_err(|x| e("setting the address of eth0", x))?;
    let mut req = ifreq("eth0");
    req.ifr_ifru.ifru_netmask = sockaddr_in(NETMASK);
    ioctl(sock.as_fd(), libc::SIOCSIFNETMASK, &mut req)
        .map_err(|x| e("setting the netmask of eth0", x))?;
    super::sys::interface_up("eth0").map_err(|x| e("bringing eth0 up", x))?;
    // SAFETY: rtentry is plain old data; all-zero is a valid value.
    let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
    rt.rt_dst = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_genmask = sockaddr_in(Ipv4Addr::UNSPECIFIED);
    rt.rt_gateway = sockaddr_in(GATEWAY_ADDR);
    rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    ioctl(sock.as_fd(), libc::SIOCADDRT, &mut rt)
        .map_err(|x| e("adding the default route via 10.0.2.2", x))?;
    ipv6(sock.as_fd()).map_err(|(what, x)| e(what, x))?;
    Ok(tun)
}

/// IPv6 on eth0: fd00::100/64 and a default route via fd00::2. A kernel
/// without IPv6 (ipv6.disable=1), or with IPv6 disabled for new
/// interfaces (disable_ipv6: EACCES), leaves the container with IPv4 only.
fn ipv6(sock: BorrowedFd<'_>) -> Result<(), (&'static str, Errno)> {
    let mut req = ifreq("eth0");
    ioctl(sock, libc::SIOCGIFINDEX, &mut req).map_err(|x| ("finding eth0's index", x))?;
    // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
    let index = unsafe { req.ifr_ifru.ifru_ifindex } as u32;
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

/// Send `fd` over the unix socket `sock` (SCM_RIGHTS).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), Errno> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(
        sock,
        &[std::io::IoSlice::new(b"t")],
        &mut anc,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Receive one fd from `sock`; `Ok(None)` when the other side closed
/// without sending one (the container failed before its network existed).
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<Option<OwnedFd>, Errno> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 1];
    let r = recvmsg(
        sock,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &mut anc,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if r.bytes == 0 {
        return Ok(None);
    }
    for msg in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg
            && let Some(fd) = fds.next()
        {
            return Ok(Some(fd));
        }
    }
    Ok(None)
}
