//! A smoltcp [`Device`] over a file descriptor that carries one Ethernet
//! frame per `read`/`write`: a TAP device opened with `IFF_NO_PI`, or (in
//! tests) one end of a `SOCK_SEQPACKET` socket pair.
//!
//! Frames are read and written in batches into fixed rings of preallocated
//! buffers: no allocation per packet. The fd must be non-blocking. Read and
//! write errors are counted, never fatal to a frame's neighbours, and never
//! panic.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use smoltcp::phy::{self, Checksum, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use super::Counters;

/// Ethernet header length (no FCS on a TAP device).
pub const ETH_HDR: usize = 14;

/// A ring of frame buffers.
struct Ring {
    bufs: Vec<Box<[u8]>>,
    lens: Vec<usize>,
    head: usize,
    count: usize,
}

impl Ring {
    fn new(slots: usize, size: usize) -> Ring {
        Ring {
            bufs: (0..slots)
                .map(|_| vec![0u8; size].into_boxed_slice())
                .collect(),
            lens: vec![0; slots],
            head: 0,
            count: 0,
        }
    }
    fn is_full(&self) -> bool {
        self.count == self.bufs.len()
    }
    fn tail(&self) -> usize {
        (self.head + self.count) % self.bufs.len()
    }
    /// The free buffer at the tail (call only when not full).
    fn tail_buf(&mut self) -> &mut [u8] {
        let t = self.tail();
        &mut self.bufs[t]
    }
    fn commit(&mut self, len: usize) {
        let t = self.tail();
        self.lens[t] = len;
        self.count += 1;
    }
    fn pop(&mut self) -> usize {
        let i = self.head;
        self.head = (self.head + 1) % self.bufs.len();
        self.count -= 1;
        i
    }
    fn front(&self) -> &[u8] {
        &self.bufs[self.head][..self.lens[self.head]]
    }
}

/// What [`FdDevice::send_raw`] did with a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum SendRaw {
    Queued,
    /// The output ring is full: try again after a flush.
    NoRoom,
    /// Larger than the MTU: dropped (and counted).
    TooBig,
}

/// What reading the fd found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// Read until the fd had nothing more (or the ring filled up).
    Ok,
    /// The fd is unusable (EBADF, ENOTCONN).
    Closed,
}

pub struct FdDevice {
    fd: OwnedFd,
    /// Largest Ethernet frame (IP MTU + header).
    frame_max: usize,
    rx: Ring,
    tx: Ring,
    counters: Arc<Counters>,
}

impl FdDevice {
    /// `mtu` is the IP MTU; `fd` must be non-blocking.
    pub fn new(fd: OwnedFd, mtu: usize, counters: Arc<Counters>) -> FdDevice {
        let frame_max = mtu + ETH_HDR;
        // About 2 MiB per ring: 32 frames at 64 KiB, 256 at 1500.
        let slots = ((2 << 20) / frame_max).clamp(16, 256);
        FdDevice {
            fd,
            frame_max,
            // One spare byte tells an oversized frame from a full-sized one.
            rx: Ring::new(slots, frame_max + 1),
            tx: Ring::new(slots, frame_max),
            counters,
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Frames queued for the stack.
    pub fn rx_pending(&self) -> usize {
        self.rx.count
    }

    pub fn rx_full(&self) -> bool {
        self.rx.is_full()
    }

    /// Read frames until the fd would block or the ring is full. Each frame is
    /// shown to `keep` first; frames it rejects are not queued.
    pub fn read_batch(&mut self, mut keep: impl FnMut(&[u8]) -> bool) -> ReadStatus {
        while !self.rx.is_full() {
            let buf = self.rx.tail_buf();
            match rustix::io::read(&self.fd, &mut *buf) {
                Ok(0) => {
                    // An empty message (possible on a socket, not on a
                    // TAP), or the end of a socket whose peer closed: the
                    // caller learns the latter from POLLHUP.
                    self.counters.frames_in.fetch_add(1, Relaxed);
                    self.counters.dropped_malformed.fetch_add(1, Relaxed);
                    break;
                }
                Ok(n) if n > self.frame_max => {
                    self.counters.dropped_oversized.fetch_add(1, Relaxed);
                }
                Ok(n) => {
                    self.counters.frames_in.fetch_add(1, Relaxed);
                    self.counters.bytes_in.fetch_add(n as u64, Relaxed);
                    if keep(&buf[..n]) {
                        self.rx.commit(n);
                    }
                }
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::BADF | rustix::io::Errno::NOTCONN) => {
                    self.counters.read_errors.fetch_add(1, Relaxed);
                    return ReadStatus::Closed;
                }
                Err(_) => {
                    // EIO on a TAP whose link is down, EMSGSIZE, ...: count, go on.
                    self.counters.read_errors.fetch_add(1, Relaxed);
                    break;
                }
            }
        }
        ReadStatus::Ok
    }

    /// Queue a frame for the stack as if it had been read (a held SYN).
    /// Returns false when the ring is full.
    pub fn inject(&mut self, frame: &[u8]) -> bool {
        if self.rx.is_full() || frame.len() > self.frame_max {
            return false;
        }
        self.rx.tail_buf()[..frame.len()].copy_from_slice(frame);
        self.rx.commit(frame.len());
        true
    }

    /// Queue a frame built outside smoltcp for the container.
    pub fn send_raw(&mut self, frame: &[u8]) -> SendRaw {
        if frame.len() > self.frame_max {
            self.counters.dropped_oversized.fetch_add(1, Relaxed);
            return SendRaw::TooBig;
        }
        if self.tx.is_full() {
            return SendRaw::NoRoom;
        }
        self.tx.tail_buf()[..frame.len()].copy_from_slice(frame);
        self.tx.commit(frame.len());
        SendRaw::Queued
    }

    /// Write queued frames until the fd would block. Returns the status and
    /// whether frames are still queued.
    pub fn flush(&mut self) -> io::Result<bool> {
        while self.tx.count > 0 {
            match rustix::io::write(&self.fd, self.tx.front()) {
                Ok(n) => {
                    self.counters.frames_out.fetch_add(1, Relaxed);
                    self.counters.bytes_out.fetch_add(n as u64, Relaxed);
                    self.tx.pop();
                }
                Err(rustix::io::Errno::AGAIN) => return Ok(true),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e @ (rustix::io::Errno::BADF | rustix::io::Errno::PIPE)) => {
                    self.counters.write_errors.fetch_add(1, Relaxed);
                    return Err(e.into());
                }
                Err(_) => {
                    // The frame itself was refused (EMSGSIZE, EIO): drop it.
                    self.counters.write_errors.fetch_add(1, Relaxed);
                    self.tx.pop();
                }
            }
        }
        Ok(false)
    }
}

pub struct RxToken<'a> {
    frame: &'a [u8],
}

pub struct TxToken<'a> {
    tx: &'a mut Ring,
    counters: &'a Counters,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        if self.tx.is_full() || len > self.tx.bufs[0].len() {
            // Only reachable through a reply to a received frame when the
            // ring is full: build it in a scratch buffer and drop it.
            self.counters.dropped_tx_full.fetch_add(1, Relaxed);
            let mut scratch = vec![0u8; len];
            return f(&mut scratch);
        }
        let r = f(&mut self.tx.tail_buf()[..len]);
        self.tx.commit(len);
        r
    }
}

impl Device for FdDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // Leave the frame queued while replies have nowhere to go.
        if self.rx.count == 0 || self.tx.is_full() {
            return None;
        }
        let i = self.rx.pop();
        let frame = &self.rx.bufs[i][..self.rx.lens[i]];
        Some((
            RxToken { frame },
            TxToken {
                tx: &mut self.tx,
                counters: &self.counters,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        if self.tx.is_full() {
            return None;
        }
        Some(TxToken {
            tx: &mut self.tx,
            counters: &self.counters,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.frame_max;
        caps.max_burst_size = None;
        // The stack's own frame filter verified the checksums of every frame
        // it let through; smoltcp only computes them on the way out.
        let mut ck = ChecksumCapabilities::default();
        ck.ipv4 = Checksum::Tx;
        ck.tcp = Checksum::Tx;
        ck.udp = Checksum::Tx;
        ck.icmpv4 = Checksum::Tx;
        ck.icmpv6 = Checksum::Tx;
        caps.checksum = ck;
        caps
    }
}
