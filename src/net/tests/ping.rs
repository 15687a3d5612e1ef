//! ICMP echo: the gateway answers pings, other destinations do not.

use super::*;

#[test]
fn ping_gateway_is_answered_and_others_are_not() {
    use smoltcp::wire::*;
    fn echo(dst: std::net::Ipv4Addr) -> Vec<u8> {
        crate::net::icmp::tests::v4(
            dst,
            Icmpv4Repr::EchoRequest {
                ident: 7,
                seq_no: 1,
                data: b"abcdefgh",
            },
        )
    }
    let (a, b) = pair();
    let handle = spawn(a, test_cfg()).unwrap();
    // Teach the stack our MAC first, as a container's ARP would.
    rustix::io::write(&b, &arp_frame()).unwrap();
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 70000];
    let mut read_replies = |replies: &mut Vec<std::net::Ipv4Addr>| {
        let end = StdInstant::now() + Duration::from_millis(500);
        while StdInstant::now() < end {
            match rustix::io::read(&b, &mut buf[..]) {
                Ok(n) => {
                    let Ok(eth) = EthernetFrame::new_checked(&buf[..n]) else {
                        continue;
                    };
                    if eth.ethertype() != EthernetProtocol::Ipv4 {
                        continue;
                    }
                    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                        continue;
                    };
                    let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
                        continue;
                    };
                    if icmp.msg_type() == Icmpv4Message::EchoReply {
                        replies.push(ip.src_addr());
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    };
    // 10.0.2.77 is on the link but nobody's: no reply, no relay (echo
    // requests to the world go through host ICMP sockets, which a unit
    // test must not reach; tests/net.rs covers them in a private netns).
    for dst in [
        GATEWAY_ADDR,
        DNS_ADDR,
        std::net::Ipv4Addr::new(10, 0, 2, 77),
    ] {
        rustix::io::write(&b, &echo(dst)).unwrap();
    }
    read_replies(&mut replies);
    assert_eq!(replies, vec![GATEWAY_ADDR, DNS_ADDR]);
    assert_eq!(handle.stats().icmp_refused, 1);
    handle.stop().unwrap();
}
