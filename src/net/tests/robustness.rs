//! Hostile and broken input (random and mutated frames), queues, memory,
//! and the stack's end.

use super::*;

/// A valid Ethernet/IPv4/UDP frame from the container to 10.0.2.2:`port`.
fn udp_frame(port: u16, payload: &[u8]) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;
    let udp = UdpRepr {
        src_port: 40200,
        dst_port: port,
    };
    let ip = Ipv4Repr {
        src_addr: CONTAINER_ADDR,
        dst_addr: GATEWAY_ADDR,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let mut f = vec![0u8; 14 + ip.buffer_len() + ip.payload_len];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    EthernetRepr {
        src_addr: EthernetAddress(CONTAINER_MAC),
        dst_addr: EthernetAddress(GATEWAY_MAC),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let caps = ChecksumCapabilities::default();
    let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut ipp, &caps);
    let mut up = UdpPacket::new_unchecked(ipp.payload_mut());
    udp.emit(
        &mut up,
        &ip.src_addr.into(),
        &ip.dst_addr.into(),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &caps,
    );
    f
}

/// A valid SYN from the container to 10.0.2.2:`port`.
fn syn_frame(port: u16) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;
    let tcp = TcpRepr {
        src_port: 40300,
        dst_port: port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1000),
        ack_number: None,
        window_len: 64240,
        window_scale: Some(7),
        max_seg_size: Some(1460),
        sack_permitted: true,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: CONTAINER_ADDR,
        dst_addr: GATEWAY_ADDR,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let mut f = vec![0u8; 14 + ip.buffer_len() + ip.payload_len];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    EthernetRepr {
        src_addr: EthernetAddress(CONTAINER_MAC),
        dst_addr: EthernetAddress(GATEWAY_MAC),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let caps = ChecksumCapabilities::default();
    let mut ipp = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut ipp, &caps);
    let mut tp = TcpPacket::new_unchecked(ipp.payload_mut());
    tcp.emit(&mut tp, &ip.src_addr.into(), &ip.dst_addr.into(), &caps);
    f
}

#[test]
fn random_and_mutated_frames_do_not_panic() {
    // Host loopback off: nothing the fuzz makes can leave the process.
    let (a, b) = pair();
    let handle = spawn_with(
        a,
        NetConfig {
            allow_host_loopback: false,
            ..test_cfg()
        },
        &[],
    )
    .unwrap();
    use smoltcp::wire::{Icmpv6Repr, NdiscRepr, RawHardwareAddress};
    let ns = crate::net::icmp::tests::v6(
        CONTAINER_ADDR6,
        GATEWAY_ADDR6,
        Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr: GATEWAY_ADDR6,
            lladdr: Some(RawHardwareAddress::from_bytes(&CONTAINER_MAC)),
        }),
    );
    let echo6 = crate::net::icmp::tests::v6(
        CONTAINER_ADDR6,
        GATEWAY_ADDR6,
        Icmpv6Repr::EchoRequest {
            ident: 1,
            seq_no: 1,
            data: b"fuzz",
        },
    );
    let valid = [udp_frame(9, b"hello"), syn_frame(9), arp_frame(), ns, echo6];
    let rss_before = rss_kib();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut sink = vec![0u8; 70000];
    let n_frames = 5000;
    let mut written = 0u64;
    for i in 0..n_frames {
        let frame = match i % 4 {
            0 => {
                let len = (next() % 1600) as usize;
                let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if len >= 14 && next() % 2 == 0 {
                    // IPv4, ARP or IPv6 ethertypes.
                    let (a, b) = [(0x08, 0x00), (0x08, 0x06), (0x86, 0xdd)][(next() % 3) as usize];
                    f[12] = a;
                    f[13] = b;
                }
                f
            }
            _ => {
                let mut f = valid[(next() as usize) % valid.len()].clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % f.len();
                    f[at] ^= 1 << (next() % 8);
                }
                match next() % 8 {
                    0 => f.truncate((next() as usize) % f.len()),
                    1 => f.extend((0..next() % 64).map(|_| next() as u8)),
                    _ => {}
                }
                f
            }
        };
        loop {
            match rustix::io::write(&b, &frame) {
                Ok(_) => {
                    written += 1;
                    break;
                }
                Err(rustix::io::Errno::AGAIN) => {
                    assert!(handle.is_running(), "network thread died");
                    while rustix::io::read(&b, &mut sink[..]).is_ok() {}
                    std::thread::sleep(Duration::from_millis(1));
                }
                // Empty messages and the like may be refused: skip them.
                Err(_) => break,
            }
        }
        while rustix::io::read(&b, &mut sink[..]).is_ok() {}
    }
    // Let the stack catch up.
    let end = StdInstant::now() + Duration::from_secs(10);
    while handle.stats().frames_in < written && StdInstant::now() < end {
        while rustix::io::read(&b, &mut sink[..]).is_ok() {}
        std::thread::sleep(Duration::from_millis(5));
    }
    let st = handle.stats();
    assert!(handle.is_running(), "network thread died");
    assert_eq!(st.frames_in, written, "{st:?}");
    assert!(st.dropped_malformed > (n_frames / 2) as u64, "{st:?}");
    assert!(st.dropped_unsupported > 0, "{st:?}");
    // Nothing the frames asked for is kept: memory stays where it was
    // (a generous bound; the stack's rings are allocated at the start).
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "resident memory grew by {grown} KiB");
    handle.stop().unwrap();
}

/// Resident memory of this process, from /proc/self/status.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn stop_ends_thread_and_closes_everything() {
    let hp = free_port();
    let fwd = parse_publish(&format!("{hp}:80")).unwrap();
    let (a, b) = pair();
    let handle = spawn_with(a, test_cfg(), &[fwd]).unwrap();
    let task = format!("/proc/self/task/{}", handle.thread_id());
    assert!(std::path::Path::new(&task).exists());
    assert!(TcpStream::connect(("127.0.0.1", hp)).is_ok());
    handle.stop().unwrap();
    // The join returns when the thread has cleared its tid; the kernel
    // drops its /proc entry a moment later (seen under load).
    let gone_by = StdInstant::now() + Duration::from_secs(5);
    while std::path::Path::new(&task).exists() && StdInstant::now() < gone_by {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !std::path::Path::new(&task).exists(),
        "network thread still there"
    );
    // The TAP end is closed (the peer reads EOF) and the listener is gone.
    // (Frames the stack sent before it stopped come first.)
    let mut buf = vec![0u8; 70000];
    let end = StdInstant::now() + Duration::from_secs(5);
    loop {
        assert!(StdInstant::now() < end, "TAP end still open");
        match rustix::io::read(&b, &mut buf[..]) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    assert!(TcpStream::connect(("127.0.0.1", hp)).is_err());
}

#[test]
fn stack_ends_when_tap_closes() {
    let (a, b) = pair();
    let handle = spawn_with(a, test_cfg(), &[]).unwrap();
    drop(b);
    let end = StdInstant::now() + Duration::from_secs(5);
    while handle.is_running() && StdInstant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!handle.is_running());
    handle.stop().unwrap();
}

/// Frames built outside smoltcp (ICMP replies) go out when there is room,
/// wait when there is none, and are dropped when larger than the MTU
/// (instead of blocking the ones behind them).
#[test]
fn raw_frames_queue_wait_or_drop() {
    use crate::net::device::SendRaw;
    let (a, _b) = pair();
    let mut dev = FdDevice::new(a, 1500, Arc::new(Counters::default()));
    assert_eq!(dev.send_raw(&[0u8; 1514 + 1]), SendRaw::TooBig);
    let mut queued = 0;
    loop {
        match dev.send_raw(&[0u8; 100]) {
            SendRaw::Queued => queued += 1,
            SendRaw::NoRoom => break,
            SendRaw::TooBig => panic!("100 bytes is not too big"),
        }
    }
    assert!(queued >= 16, "{queued}");
    assert!(!dev.flush().unwrap(), "everything written");
    assert_eq!(dev.send_raw(&[0u8; 100]), SendRaw::Queued);
}
