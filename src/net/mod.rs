//! Userspace networking for `--network slirp`: a slirp-style NAT on smoltcp.
//!
//! # Shape
//!
//! The container's network namespace has a TAP device (`eth0`,
//! 10.0.2.100/24 and fd00::100/64, gateway 10.0.2.2 and fd00::2, DNS
//! 10.0.2.3 and fd00::3). Its fd, opened with
//! `IFF_NO_PI`, reaches hutch, and [`spawn`] runs one thread that moves
//! frames between that fd and a smoltcp [`Interface`](smoltcp::iface::Interface),
//! and data between smoltcp sockets and ordinary host sockets:
//!
//! ```text
//!  container ── TAP fd ── FdDevice ── filter ── smoltcp Interface (any_ip)
//!                          (device.rs)   (filter.rs)     │ tcp::Socket / udp::Socket
//!                                                        │   one per flow (tcp.rs, udp.rs)
//!                                                        └── host TcpStream / UdpSocket
//! ```
//!
//! * `device.rs`: the smoltcp `Device` over the fd. Frames are read and
//!   written in batches into preallocated rings; nothing is allocated per
//!   packet; read errors are counted, never fatal.
//! * `filter.rs`: every frame is parsed and its checksums verified before
//!   smoltcp sees it. Malformed frames, fragments, IPv6 extension headers
//!   and anything not meant for the stack are dropped and counted
//!   ([`NetStats`]). New TCP SYNs, UDP datagrams and echo requests to the
//!   world are reported to the NAT tables.
//! * `stack.rs`: the interface (addresses 10.0.2.2, 10.0.2.3, fd00::2 and
//!   fd00::3, `any_ip`, default routes through itself so that every
//!   destination is "local")
//!   and the event loop: `poll(2)` over the TAP fd, a stop socket, the
//!   port-forward listeners and every host socket, then smoltcp's `poll`.
//! * `tcp.rs`: outbound TCP. A SYN to a new destination is *held*: hutch
//!   starts a non-blocking `connect` to the mapped destination. When it
//!   succeeds, a smoltcp socket `listen`s on exactly the container's
//!   destination address and port and the SYN is fed in, so the container
//!   sees its SYN-ACK only once the far end has accepted (as passt does).
//!   When it fails, the SYN is fed in with no listener and smoltcp answers
//!   RST: the container sees "connection refused". Data is relayed both ways
//!   without intermediate copies (host `read` straight into smoltcp's send
//!   ring and the reverse); a side only reads when the other can take data
//!   (backpressure). FIN becomes `shutdown(SHUT_WR)` and the reverse; RST
//!   becomes `SO_LINGER 0` + close and the reverse.
//! * `udp.rs`: UDP NAT. One smoltcp UDP socket per destination the
//!   container talks to, one connected host socket per (container port,
//!   destination) flow, dropped after an idle timeout.
//! * `icmp.rs`: echo requests to the world go out of unprivileged ICMP
//!   ("ping") sockets and the replies come back rewritten; where the host
//!   does not allow those sockets (`net.ipv4.ping_group_range`), the
//!   container gets "administratively prohibited" from the gateway.
//! * `dns.rs`: 10.0.2.3:53 maps to the first host resolver (from
//!   `/etc/resolv.conf`, 127.0.0.53 included, or [`NetConfig::dns_upstreams`]).
//! * `policy.rs`: which destinations may be reached through host sockets
//!   (the host's own addresses are read with getifaddrs and re-read on a
//!   netlink notification, never per packet).
//! * `forward.rs`: `-p` listeners, bound in [`spawn`] so that a taken port is
//!   the caller's error. An accepted host connection becomes a smoltcp
//!   socket that connects from 10.0.2.2 to 10.0.2.100:CTRPORT; UDP forwards
//!   relay datagrams per host peer.
//!
//! Destination mapping: 10.0.2.2 (fd00::2) is the host's 127.0.0.1 (::1)
//! when `allow_host_loopback` is set and refused otherwise; 10.0.2.3:53
//! (fd00::3) is the DNS forwarder, which only ever talks to the configured
//! upstream resolvers; every other destination is judged by `policy.rs`
//! (other addresses of the link, "this host" 0.0.0.0/8 and `::`,
//! loopback, IPv6 link-local, multicast, broadcast and IPv4-in-IPv6 forms
//! are always refused; the host's own addresses unless
//! `allow_host_loopback`; private ranges with `block_private`) and, when
//! allowed, reached through a host socket to the same address. A refused
//! TCP connect gets a RST, a refused datagram an ICMP port unreachable
//! (or nothing), a refused echo request nothing. ICMP echo to the stack's addresses is answered by smoltcp. ARP
//! and neighbour solicitations are answered for the stack's addresses only
//! (with `any_ip`, smoltcp would answer for every address, the container's
//! own included); only 10.0.2.100 and fd00::100 may be sources (and the
//! container's link-local address, for neighbour discovery). The
//! container's IPv6 address is added without duplicate address detection
//! (src/sandbox/netlink.rs), so it is usable at once.
//!
//! Limits, so that a container cannot make the stack grow without bound:
//! 16384 TCP connections, 4096 UDP destinations, 8192 UDP flows and 64
//! echo flows at once (beyond: refused or dropped, and counted); a TCP connection whose
//! container side stays silent for 5 minutes despite keep-alive probes is
//! dropped; held SYNs expire after `connect_timeout`.
//!
//! Tests (`tests.rs`) run the stack on one end of a `SOCK_SEQPACKET` pair
//! and a second smoltcp interface as the container on the other end.

mod config;
mod device;
mod dns;
mod filter;
mod forward;
mod icmp;
mod policy;
mod stack;
mod tcp;
mod udp;

#[cfg(test)]
mod tests;

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};

#[cfg(test)]
pub(crate) use config::Proto; // the run/ tests build PortForwards by hand
pub use config::{
    CONTAINER_ADDR, CONTAINER_ADDR6, DEFAULT_MTU, GATEWAY_ADDR, GATEWAY_ADDR6, NetConfig,
    PREFIX_LEN6, PortForward, parse_publish,
};
pub use dns::host_resolvers;
pub use forward::Listeners;

/// Counters shared between the network thread and the handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    dropped_malformed: AtomicU64,
    dropped_unsupported: AtomicU64,
    dropped_oversized: AtomicU64,
    dropped_tx_full: AtomicU64,
    read_errors: AtomicU64,
    write_errors: AtomicU64,
    tcp_connections: AtomicU64,
    tcp_refused: AtomicU64,
    tcp_forwarded: AtomicU64,
    udp_flows: AtomicU64,
    udp_dropped: AtomicU64,
    icmp_echo_out: AtomicU64,
    icmp_refused: AtomicU64,
}

/// A snapshot of the stack's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames read from the TAP fd (before filtering).
    pub frames_in: u64,
    /// Frames written to the TAP fd.
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Frames that did not parse or had bad checksums.
    pub dropped_malformed: u64,
    /// Well-formed frames the stack does not handle (IPv6, fragments, ...).
    pub dropped_unsupported: u64,
    /// Frames larger than the MTU.
    pub dropped_oversized: u64,
    /// Replies dropped because the output ring was full.
    pub dropped_tx_full: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    /// Outbound TCP connections established on the host.
    pub tcp_connections: u64,
    /// Outbound TCP connections refused (by policy or by the host).
    pub tcp_refused: u64,
    /// Connections accepted on port-forward listeners.
    pub tcp_forwarded: u64,
    /// UDP flows opened (outbound and forwarded).
    pub udp_flows: u64,
    /// Datagrams dropped (full buffers, send errors).
    pub udp_dropped: u64,
    /// Echo requests sent to the world through host ICMP sockets.
    pub icmp_echo_out: u64,
    /// Echo requests answered with "unreachable" or dropped.
    pub icmp_refused: u64,
}

impl Counters {
    fn snapshot(&self) -> NetStats {
        let g = |a: &AtomicU64| a.load(Relaxed);
        NetStats {
            frames_in: g(&self.frames_in),
            frames_out: g(&self.frames_out),
            bytes_in: g(&self.bytes_in),
            bytes_out: g(&self.bytes_out),
            dropped_malformed: g(&self.dropped_malformed),
            dropped_unsupported: g(&self.dropped_unsupported),
            dropped_oversized: g(&self.dropped_oversized),
            dropped_tx_full: g(&self.dropped_tx_full),
            read_errors: g(&self.read_errors),
            write_errors: g(&self.write_errors),
            tcp_connections: g(&self.tcp_connections),
            tcp_refused: g(&self.tcp_refused),
            tcp_forwarded: g(&self.tcp_forwarded),
            udp_flows: g(&self.udp_flows),
            udp_dropped: g(&self.udp_dropped),
            icmp_echo_out: g(&self.icmp_echo_out),
            icmp_refused: g(&self.icmp_refused),
        }
    }
}

/// A running stack. [`NetHandle::stop`] (or dropping the handle) ends the
/// network thread and closes the TAP fd and every host socket.
pub struct NetHandle {
    stop: Option<UnixStream>,
    thread: Option<JoinHandle<Result<()>>>,
    counters: Arc<Counters>,
    /// Linux thread id of the network thread (tests look it up in /proc).
    #[cfg(test)]
    tid: i32,
}

impl NetHandle {
    /// The counters so far.
    pub fn stats(&self) -> NetStats {
        self.counters.snapshot()
    }

    /// Whether the network thread is still running (it ends by itself when
    /// the TAP fd is closed on the other side).
    #[cfg(test)]
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Linux thread id of the network thread.
    #[cfg(test)]
    pub fn thread_id(&self) -> i32 {
        self.tid
    }

    /// Stop the stack and wait for its thread; returns the error that ended
    /// it early, if any.
    pub fn stop(mut self) -> Result<()> {
        // What the stack did, for `--log-level debug` (why a connection
        // was refused, whether frames were dropped).
        tracing::debug!(stats = ?self.stats(), "network stack stopping");
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        // Closing our end of the stop socket wakes the thread with POLLHUP.
        drop(self.stop.take());
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| anyhow!("network thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for NetHandle {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("network stack: {e:#}");
        }
    }
}

/// Start the stack on `tap` (a TAP fd with `IFF_NO_PI`, or any fd that
/// carries one Ethernet frame per read and write), serving the port
/// forwards in `listeners` ([`Listeners::bind`]: `hutch run` binds them
/// before the container starts, to report the ports it chose).
pub fn spawn(tap: OwnedFd, cfg: NetConfig, listeners: Listeners) -> Result<NetHandle> {
    cfg.validate()?;
    rustix::io::ioctl_fionbio(&tap, true).context("making the TAP fd non-blocking")?;
    let (stop_tx, stop_rx) = UnixStream::pair().context("creating the stop socket")?;
    let counters = Arc::new(Counters::default());
    let mut stack = stack::Stack::new(tap, cfg, listeners, stop_rx, counters.clone())?;
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("hutch-net".into())
        .spawn(move || {
            let _ = tid_tx.send(rustix::thread::gettid().as_raw_nonzero().get());
            stack.run()
        })
        .context("starting the network thread")?;
    let tid = tid_rx.recv().unwrap_or(0);
    tracing::debug!(tid, "network thread started");
    Ok(NetHandle {
        stop: Some(stop_tx),
        thread: Some(thread),
        counters,
        #[cfg(test)]
        tid,
    })
}
