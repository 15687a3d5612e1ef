//! Port forwarding (`-p`): host listeners, bound before the stack starts.
//!
//! Accepted TCP connections are handed to the TCP NAT, which connects a
//! smoltcp socket from 10.0.2.2 to 10.0.2.100:CTRPORT; UDP listeners are
//! served by the UDP NAT, one flow per host peer.

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};

use anyhow::{Context, Result};

use super::config::{PortForward, Proto};

/// The bound listeners of every `-p`.
pub struct Listeners {
    pub tcp: Vec<(TcpListener, PortForward)>,
    pub udp: Vec<(UdpSocket, PortForward)>,
}

impl Listeners {
    /// Bind every forward's host address, and only that address.
    pub fn bind(forwards: &[PortForward]) -> Result<Listeners> {
        let mut out = Listeners {
            tcp: Vec::new(),
            udp: Vec::new(),
        };
        for f in forwards {
            let what = match f.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            };
            let ctx = || {
                format!(
                    "publishing {}/{what} (container port {}): cannot bind {}",
                    f.host, f.container_port, f.host
                )
            };
            match f.proto {
                Proto::Tcp => {
                    let l = TcpListener::bind(f.host).with_context(ctx)?;
                    l.set_nonblocking(true).with_context(ctx)?;
                    out.tcp.push((l, *f));
                }
                Proto::Udp => {
                    let s = UdpSocket::bind(f.host).with_context(ctx)?;
                    s.set_nonblocking(true).with_context(ctx)?;
                    out.udp.push((s, *f));
                }
            }
        }
        Ok(out)
    }
}

/// Local ports of the stack's own connections into the container
/// (10.0.2.2:PORT), taken from the dynamic range.
#[derive(Default)]
pub struct PortAlloc {
    used: HashSet<u16>,
    next: u16,
}

impl PortAlloc {
    const FIRST: u16 = 49152;

    pub fn alloc(&mut self) -> Option<u16> {
        let span = (u16::MAX - Self::FIRST) as usize + 1;
        if self.used.len() >= span {
            return None;
        }
        loop {
            if self.next < Self::FIRST {
                self.next = Self::FIRST;
            }
            let p = self.next;
            self.next = self.next.wrapping_add(1);
            if self.used.insert(p) {
                return Some(p);
            }
        }
    }

    pub fn free(&mut self, p: u16) {
        self.used.remove(&p);
    }

    pub fn contains(&self, p: u16) -> bool {
        self.used.contains(&p)
    }
}
